// base64url (RFC 4648 §5) without padding, as JWS uses it (RFC 7515 §2, Appendix C).
//
// Decoding is strict: no '=' padding, no whitespace, no characters outside [A-Za-z0-9-_], no
// length of the form 4k+1, and the unused low bits of the last character must be zero (so every
// byte string has exactly one encoding and a token cannot be altered without changing its text).
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace kshield::relay {

// InvalidArgument ("base64url: ...") for anything that is not canonical unpadded base64url.
absl::StatusOr<std::string> Base64UrlDecode(std::string_view in);

std::string Base64UrlEncode(std::string_view in);

}  // namespace kshield::relay
