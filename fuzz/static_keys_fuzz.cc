// Fuzz target: keys::ParseStaticKeys, the parser of the static emergency-keys file (operator
// supplied, but a file on disk all the same; see keys/static_provider.h for the format).
// Invariants:
//  - a success has 1..kMaxStaticKeyVersions versions, ascending, each in 1..2^32-2 with a 32-byte
//    key, and the file written back in canonical form ("VERSION: BASE64" lines) parses to the
//    same versions and keys;
//  - a failure is InvalidArgument with a bounded, printable message that repeats no token of the
//    input longer than 11 characters other than digits (errors name lines, never their content,
//    which may hold key bytes).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "fuzz_check.h"
#include "keys/static_provider.h"

using kshield::keys::ParseStaticKeys;

namespace {

bool DigitsOrDots(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || c == '.')) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto keys = ParseStaticKeys(in);
  if (!keys.ok()) {
    FUZZ_CHECK(keys.status().code() == absl::StatusCode::kInvalidArgument);
    const std::string msg(keys.status().message());
    FUZZ_CHECK(!msg.empty() && msg.size() <= 200);
    for (unsigned char c : msg) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
    size_t start = 0;
    for (size_t i = 0; i <= in.size(); ++i) {
      const bool sep = i == in.size() || in[i] == ' ' || in[i] == '\t' || in[i] == '\n' ||
                       in[i] == '\r' || in[i] == ':' || in[i] == '"' || in[i] == '\'';
      if (!sep) continue;
      std::string_view token = in.substr(start, i - start);
      if (token.size() >= 12 && !DigitsOrDots(token)) {
        FUZZ_CHECK(msg.find(token) == std::string::npos);
      }
      start = i + 1;
    }
    return 0;
  }

  const auto versions = keys->versions();
  FUZZ_CHECK(!versions.empty() && versions.size() <= kshield::keys::kMaxStaticKeyVersions);
  FUZZ_CHECK(keys->size() == versions.size());
  FUZZ_CHECK(keys->highest_version() == versions.back());
  FUZZ_CHECK(!keys->sealed());
  std::string canonical;
  for (size_t i = 0; i < versions.size(); ++i) {
    FUZZ_CHECK(versions[i] >= 1 && versions[i] <= 0xfffffffeu);
    if (i > 0) FUZZ_CHECK(versions[i] > versions[i - 1]);
    const auto* key = keys->Find(versions[i]);
    FUZZ_CHECK(key != nullptr && key->size() == kshield::keys::kStaticKeySize);
    canonical += std::to_string(versions[i]) + ": " +
                 absl::Base64Escape(absl::string_view(
                     reinterpret_cast<const char*>(key->UnsafeView().data()), key->size())) +
                 "\n";
  }
  auto again = ParseStaticKeys(canonical);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->versions() == versions);
  for (uint32_t v : versions) FUZZ_CHECK(again->Find(v)->Equals(*keys->Find(v)));
  return 0;
}
