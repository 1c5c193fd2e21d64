#include "keys/key_id.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status.h"

namespace kshield::keys {
namespace {

std::string Quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s.substr(0, 64)) out.push_back((c >= 0x20 && c < 0x7f) ? c : '?');
  if (s.size() > 64) out.append("...");
  out.push_back('"');
  return out;
}

}  // namespace

std::string FormatKeyId(std::string_view keyset_id, uint32_t version) {
  return absl::StrCat(AV(kKeyIdPrefix), AV(keyset_id), ":", version);
}

bool IsValidKeysetId(std::string_view id) {
  if (id.size() != kKeysetIdLength) return false;
  for (char c : id) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::StatusOr<KeyId> ParseKeyId(std::string_view key_id) {
  if (key_id.size() > kMaxKeyIdLength) {
    return absl::InvalidArgumentError("key_id longer than 1024 bytes");
  }
  if (key_id.substr(0, kKeyIdPrefix.size()) != kKeyIdPrefix) {
    return absl::InvalidArgumentError(
        absl::StrCat("key_id ", Quoted(key_id), " was not issued by kshield (want ksh1:...)"));
  }
  std::string_view rest = key_id.substr(kKeyIdPrefix.size());
  size_t colon = rest.find(':');
  if (colon == std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("malformed key_id ", Quoted(key_id)));
  }
  std::string_view keyset = rest.substr(0, colon);
  std::string_view ver = rest.substr(colon + 1);
  if (!IsValidKeysetId(keyset) || ver.empty() || ver.size() > 10 || ver[0] == '0') {
    return absl::InvalidArgumentError(absl::StrCat("malformed key_id ", Quoted(key_id)));
  }
  uint64_t v = 0;
  for (char c : ver) {
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError(absl::StrCat("malformed key_id ", Quoted(key_id)));
    }
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v == 0 || v > UINT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat("malformed key_id ", Quoted(key_id)));
  }
  return KeyId{std::string(keyset), static_cast<uint32_t>(v)};
}

}  // namespace kshield::keys
