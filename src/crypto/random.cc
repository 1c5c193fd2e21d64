#include "crypto/random.h"

#include <openssl/err.h>
#include <openssl/rand.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace kshield::crypto {
namespace {

// A process that cannot produce random bytes must not continue (it would reuse nonces or make
// weak keys), and there is no caller that could recover: one line to stderr, then abort.
[[noreturn]] void DieNoRandomness(const absl::Status& status) {
  std::fprintf(stderr, "kshield: fatal: CSPRNG failure: %s\n",
               std::string(status.message()).c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace

absl::Status RandomFill(absl::Span<uint8_t> out) {
  // RAND_bytes takes an int length; larger requests are served in chunks.
  while (!out.empty()) {
    const size_t chunk = std::min<size_t>(out.size(), INT_MAX);
    if (RAND_bytes(out.data(), static_cast<int>(chunk)) != 1) {
      unsigned long err = ERR_get_error();
      char buf[256] = {0};
      if (err != 0) ERR_error_string_n(err, buf, sizeof(buf));
      ERR_clear_error();
      return absl::InternalError(absl::StrCat("RAND_bytes failed", err != 0 ? ": " : "", buf));
    }
    out.remove_prefix(chunk);
  }
  return absl::OkStatus();
}

std::string RandomString(size_t n) {
  std::string s(n, '\0');
  absl::Status status = RandomFill(absl::MakeSpan(reinterpret_cast<uint8_t*>(s.data()), n));
  if (!status.ok()) DieNoRandomness(status);
  return s;
}

SecretBytes RandomSecret(size_t n) {
  SecretBytes s(n);
  absl::Status status = RandomFill(absl::MakeSpan(s.UnsafeMutableData(), n));
  if (!status.ok()) DieNoRandomness(status);
  return s;
}

std::string RandomHex(size_t n) { return absl::BytesToHexString(RandomString(n)); }

}  // namespace kshield::crypto
