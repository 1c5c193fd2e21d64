// Fuzz target: keys::ParseWrappedDek, the parser of every ciphertext the apiserver hands back
// (untrusted: it comes from etcd). Invariants checked on every input:
//  - a parse never crashes and never reads outside the input;
//  - a failure always carries the one generic message (no oracle) and a named reason;
//  - a success respects the size bounds, its views tile the input exactly, and rebuilding the
//    header with BuildWrappedDekHeader gives back the input's first 7 bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "crypto/aead.h"
#include "fuzz_check.h"
#include "keys/wrapped_dek.h"

using kshield::keys::BuildWrappedDekHeader;
using kshield::keys::ParseError;
using kshield::keys::ParseErrorName;
using kshield::keys::ParseWrappedDek;
using kshield::keys::WrapFormat;
using kshield::keys::WrappedDekAad;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  ParseError reason = static_cast<ParseError>(-1);
  auto parsed = ParseWrappedDek(in, &reason);
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(std::string(parsed.status().message()) == kshield::crypto::kAuthFailed);
    FUZZ_CHECK(ParseErrorName(reason) != "unknown");
    // The reason must agree with the cheapest checks, which run first.
    if (size < kshield::keys::kWrappedDekMinSize) FUZZ_CHECK(reason == ParseError::kTooShort);
    if (size > kshield::keys::kWrappedDekMaxSize) FUZZ_CHECK(reason == ParseError::kTooLong);
    // The parser without an error pointer must agree.
    FUZZ_CHECK(!ParseWrappedDek(in).ok());
    return 0;
  }

  const auto& w = *parsed;
  FUZZ_CHECK(size >= kshield::keys::kWrappedDekMinSize);
  FUZZ_CHECK(size <= kshield::keys::kWrappedDekMaxSize);
  FUZZ_CHECK(w.version != 0);
  FUZZ_CHECK(w.format == WrapFormat::kKmsV2 || w.format == WrapFormat::kKmsV1beta1);
  // Views point into the input and tile it: header || body.
  FUZZ_CHECK(w.header.data() == in.data());
  FUZZ_CHECK(w.header.size() == kshield::keys::kWrappedDekHeaderSize);
  FUZZ_CHECK(w.body.data() == in.data() + kshield::keys::kWrappedDekHeaderSize);
  FUZZ_CHECK(w.header.size() + w.body.size() == size);
  FUZZ_CHECK(w.body.size() >= kshield::crypto::kAesGcmNonceSize + 1 + kshield::crypto::kAesGcmTagSize);
  // Round trip of the header.
  FUZZ_CHECK(BuildWrappedDekHeader(w.format, w.version) == in.substr(0, 7));
  // A reparse of the rebuilt ciphertext gives the same fields.
  std::string rebuilt = BuildWrappedDekHeader(w.format, w.version);
  rebuilt.append(w.body);
  FUZZ_CHECK(rebuilt == in);
  auto again = ParseWrappedDek(rebuilt);
  FUZZ_CHECK(again.ok() && again->version == w.version && again->format == w.format);
  // The AAD is header || key_id, whatever the key_id.
  const std::string aad = WrappedDekAad(w.header, "ksh1:0123456789abcdef:1");
  FUZZ_CHECK(aad.size() == 7 + 23 && aad.substr(0, 7) == in.substr(0, 7));
  return 0;
}
