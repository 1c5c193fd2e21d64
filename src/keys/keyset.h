// An immutable snapshot of a keyset: what the hot path reads (STYLE.md: hot paths read immutable
// snapshots swapped by the control path; no lock on read).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/aead.h"

namespace kshield::keys {

enum class KeyState { kPrimary, kActive, kRetired };
std::string_view KeyStateName(KeyState s);

struct KeyVersion {
  uint32_t version = 0;
  KeyState state = KeyState::kActive;
  int64_t created_unix = 0;
  std::string key_id;
  // Null for retired versions (they can no longer decrypt).
  std::shared_ptr<const crypto::Aead> kek;
};

class Keyset {
 public:
  // `versions` must be sorted by version with exactly one primary.
  Keyset(std::string keyset_id, std::vector<KeyVersion> versions);

  const std::string& keyset_id() const { return keyset_id_; }
  const KeyVersion& primary() const { return versions_[primary_index_]; }
  // nullptr when unknown.
  const KeyVersion* Find(uint32_t version) const;
  const std::vector<KeyVersion>& versions() const { return versions_; }

 private:
  std::string keyset_id_;
  std::vector<KeyVersion> versions_;
  size_t primary_index_ = 0;
};

}  // namespace kshield::keys
