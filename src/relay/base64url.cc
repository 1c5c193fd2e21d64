#include "relay/base64url.h"

#include "common/base64.h"

namespace kshield::relay {

absl::StatusOr<std::string> Base64UrlDecode(std::string_view in) {
  return Base64Decode(in, kBase64UrlNoPadding);
}

std::string Base64UrlEncode(std::string_view in) {
  return Base64Encode(in, /*url_alphabet=*/true, /*pad=*/false);
}

}  // namespace kshield::relay
