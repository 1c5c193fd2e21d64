// kshield's wrapped-DEK format: what Encrypt returns as `ciphertext` (DESIGN.md §3).
//
//   offset size
//   0      2    magic "kS" (0x6b 0x53)
//   2      1    format: 0x01 = KMS v2, 0x02 = KMS v1beta1 (domain separation between the APIs)
//   3      4    KEK version, uint32 big-endian, >= 1
//   7      12   nonce            ┐ the KEK's AEAD output
//   19     n    AES-256-GCM ct   │ (nonce || ct || tag)
//   19+n   16   tag              ┘
//
// AAD = the 7 header bytes || key_id ("ksh1:<keyset_id>:<version>"). v1beta1 sends no key_id, so
// the header alone names the version and the plugin rebuilds key_id from its own keyset id: a
// ciphertext moved to another keyset fails authentication.
// Total size is bounded: at least 36 bytes (1-byte DEK), at most 1,024 bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace kshield::keys {

inline constexpr uint8_t kWrappedDekMagic0 = 0x6b;  // 'k'
inline constexpr uint8_t kWrappedDekMagic1 = 0x53;  // 'S'
inline constexpr size_t kWrappedDekHeaderSize = 7;
inline constexpr size_t kWrappedDekMinSize = kWrappedDekHeaderSize + 12 + 1 + 16;
inline constexpr size_t kWrappedDekMaxSize = 1024;
// The largest DEK / seed we wrap; the apiserver sends 32 bytes.
inline constexpr size_t kMaxDekSize = 4096;

enum class WrapFormat : uint8_t { kKmsV2 = 0x01, kKmsV1beta1 = 0x02 };

struct WrappedDek {
  WrapFormat format = WrapFormat::kKmsV2;
  uint32_t version = 0;
  std::string_view header;  // the 7 header bytes (part of the AAD)
  std::string_view body;    // nonce || ct || tag, handed to the KEK's Aead
};

// Why a parse failed. Callers count reasons but answer every one with the same message.
enum class ParseError { kTooShort, kTooLong, kBadMagic, kBadFormat, kBadVersion };
std::string_view ParseErrorName(ParseError e);

// Parses without copying; views point into `bytes`. On failure sets *error (if given) and returns
// InvalidArgument("authentication failed").
absl::StatusOr<WrappedDek> ParseWrappedDek(std::string_view bytes, ParseError* error = nullptr);

std::string BuildWrappedDekHeader(WrapFormat format, uint32_t version);
// AAD for the KEK's Aead.
std::string WrappedDekAad(std::string_view header, std::string_view key_id);

}  // namespace kshield::keys
