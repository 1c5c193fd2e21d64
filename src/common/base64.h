// Strict base64 (RFC 4648 §4) and base64url (§5) decoding, straight into protected memory when
// the bytes are secret (keys in a kubeconfig or a static keys file), and encoding.
//
// Decoding refuses characters outside the alphabet, impossible lengths, misplaced or excess '='
// and non-zero unused bits in the last symbol, so every byte string has exactly one accepted
// spelling. Errors ("base64: ..." / "base64url: ...") never quote the input.
//
//   KSH_ASSIGN_OR_RETURN(SecretBytes key, Base64DecodeSecret(text, {.padding = Base64Padding::kRequired}));
//   KSH_ASSIGN_OR_RETURN(std::string sig, Base64Decode(seg, kBase64UrlNoPadding));
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/secret.h"

namespace kshield {

enum class Base64Padding { kOptional, kRequired, kForbidden };

struct Base64Options {
  bool url_alphabet = false;  // '-' '_' instead of '+' '/'
  Base64Padding padding = Base64Padding::kOptional;
  bool allow_whitespace = false;  // CR, LF, space and tab are skipped (PEM-style line breaks)
  bool allow_empty = false;
};

// JWS / JWT segments (RFC 7515 §2).
inline constexpr Base64Options kBase64UrlNoPadding{
    .url_alphabet = true, .padding = Base64Padding::kForbidden, .allow_empty = true};

absl::StatusOr<SecretBytes> Base64DecodeSecret(std::string_view text,
                                               const Base64Options& options = {});
absl::StatusOr<std::string> Base64Decode(std::string_view text, const Base64Options& options = {});

std::string Base64Encode(std::string_view bytes, bool url_alphabet = false, bool pad = true);

}  // namespace kshield
