// key_id = "ksh1:<keyset_id>:<version>" (DESIGN.md §3). Public (the apiserver logs it), never
// reused, at most 1,024 bytes. keyset_id is 16 lowercase hex characters; version is a decimal
// uint32 >= 1 without leading zeros.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace kshield::keys {

inline constexpr std::string_view kKeyIdPrefix = "ksh1:";
inline constexpr size_t kKeysetIdLength = 16;
inline constexpr size_t kMaxKeyIdLength = 1024;

struct KeyId {
  std::string keyset_id;
  uint32_t version = 0;
};

std::string FormatKeyId(std::string_view keyset_id, uint32_t version);
bool IsValidKeysetId(std::string_view keyset_id);
// InvalidArgument with a message that quotes at most the first 64 characters of the input.
absl::StatusOr<KeyId> ParseKeyId(std::string_view key_id);

}  // namespace kshield::keys
