#include "keys/keyset.h"

#include <algorithm>
#include <cstdlib>

namespace kshield::keys {

std::string_view KeyStateName(KeyState s) {
  switch (s) {
    case KeyState::kPrimary:
      return "primary";
    case KeyState::kActive:
      return "active";
    case KeyState::kRetired:
      return "retired";
  }
  return "unknown";
}

Keyset::Keyset(std::string keyset_id, std::vector<KeyVersion> versions)
    : keyset_id_(std::move(keyset_id)), versions_(std::move(versions)) {
  size_t primaries = 0;
  for (size_t i = 0; i < versions_.size(); ++i) {
    if (versions_[i].state == KeyState::kPrimary) {
      primary_index_ = i;
      ++primaries;
    }
  }
  // KeysetManager validates records before building a snapshot; reaching here without exactly
  // one primary is a bug, not bad input.
  if (primaries != 1) std::abort();
}

const KeyVersion* Keyset::Find(uint32_t version) const {
  auto it = std::lower_bound(versions_.begin(), versions_.end(), version,
                             [](const KeyVersion& kv, uint32_t v) { return kv.version < v; });
  if (it == versions_.end() || it->version != version) return nullptr;
  return &*it;
}

}  // namespace kshield::keys
