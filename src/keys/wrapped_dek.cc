#include "keys/wrapped_dek.h"

#include "common/status.h"
#include "crypto/aead.h"

namespace kshield::keys {

std::string_view ParseErrorName(ParseError e) {
  switch (e) {
    case ParseError::kTooShort:
      return "too_short";
    case ParseError::kTooLong:
      return "too_long";
    case ParseError::kBadMagic:
      return "bad_magic";
    case ParseError::kBadFormat:
      return "bad_format";
    case ParseError::kBadVersion:
      return "bad_version";
  }
  return "unknown";
}

absl::StatusOr<WrappedDek> ParseWrappedDek(std::string_view bytes, ParseError* error) {
  auto fail = [&](ParseError e) -> absl::Status {
    if (error != nullptr) *error = e;
    return absl::InvalidArgumentError(AV(crypto::kAuthFailed));
  };
  if (bytes.size() < kWrappedDekMinSize) return fail(ParseError::kTooShort);
  if (bytes.size() > kWrappedDekMaxSize) return fail(ParseError::kTooLong);
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  if (p[0] != kWrappedDekMagic0 || p[1] != kWrappedDekMagic1) return fail(ParseError::kBadMagic);
  if (p[2] != static_cast<uint8_t>(WrapFormat::kKmsV2) &&
      p[2] != static_cast<uint8_t>(WrapFormat::kKmsV1beta1)) {
    return fail(ParseError::kBadFormat);
  }
  uint32_t version = (uint32_t{p[3]} << 24) | (uint32_t{p[4]} << 16) | (uint32_t{p[5]} << 8) |
                     uint32_t{p[6]};
  if (version == 0) return fail(ParseError::kBadVersion);
  WrappedDek out;
  out.format = static_cast<WrapFormat>(p[2]);
  out.version = version;
  out.header = bytes.substr(0, kWrappedDekHeaderSize);
  out.body = bytes.substr(kWrappedDekHeaderSize);
  return out;
}

std::string BuildWrappedDekHeader(WrapFormat format, uint32_t version) {
  std::string h(kWrappedDekHeaderSize, '\0');
  h[0] = static_cast<char>(kWrappedDekMagic0);
  h[1] = static_cast<char>(kWrappedDekMagic1);
  h[2] = static_cast<char>(format);
  h[3] = static_cast<char>((version >> 24) & 0xff);
  h[4] = static_cast<char>((version >> 16) & 0xff);
  h[5] = static_cast<char>((version >> 8) & 0xff);
  h[6] = static_cast<char>(version & 0xff);
  return h;
}

std::string WrappedDekAad(std::string_view header, std::string_view key_id) {
  std::string aad;
  aad.reserve(header.size() + key_id.size());
  aad.append(header);
  aad.append(key_id);
  return aad;
}

}  // namespace kshield::keys
