// KeysetManager — owns a keyset: loads or creates it, rotates, retires, refreshes; publishes an
// immutable Keyset snapshot for the hot path.
//
//   KeysetManager mgr(std::make_unique<FileKeysetStore>(dir + "/keyset.bin"), provider);
//   KSH_RETURN_IF_ERROR(mgr.Init());
//   std::shared_ptr<const Keyset> ks = mgr.Current();   // lock-free
//   KSH_ASSIGN_OR_RETURN(RotateResult r, mgr.Rotate());
//
// Durability rule (DESIGN.md §3): a new version is persisted (as `active`) before it is promoted
// to primary in a second persisted write, so no ciphertext is ever issued under a version that a
// crash could lose. Version numbers come from `next_version` and are never reused.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "keys/keyset.h"
#include "keys/keyset_store.h"
#include "keys/provider.h"

namespace kshield::keys {

struct RotateResult {
  std::string previous_key_id;
  std::string key_id;
};

class KeysetManager {
 public:
  KeysetManager(std::unique_ptr<KeysetStore> store, std::shared_ptr<KeyProvider> provider);

  // Loads the stored keyset (opening every non-retired version) or creates one with version 1.
  [[nodiscard]] absl::Status Init();
  // Never null after a successful Init().
  std::shared_ptr<const Keyset> Current() const { return snapshot_.load(); }

  absl::StatusOr<RotateResult> Rotate();
  // Re-reads the store and reopens versions not yet open ("key force update").
  [[nodiscard]] absl::Status Refresh();
  // Marks a non-primary version retired: it no longer decrypts. Callers (kshieldctl) check that
  // nothing in etcd uses it first.
  [[nodiscard]] absl::Status Retire(uint32_t version);

  // A copy of the persisted record (versions, states, provider material) as last loaded or saved.
  // For backups: material is provider-wrapped, never a raw KEK.
  kshield::keys::v1::KeysetRecord record() const;

  KeyProvider& provider() const { return *provider_; }
  const KeysetStore& store() const { return *store_; }

  // Validates a record's invariants; exposed for tests.
  static absl::Status Validate(const kshield::keys::v1::KeysetRecord& record);

 private:
  // Builds a snapshot, reusing KEKs already open in `previous` (no second unwrap per rotation).
  absl::StatusOr<std::shared_ptr<const Keyset>> BuildSnapshot(
      const kshield::keys::v1::KeysetRecord& record, const Keyset* previous);
  absl::Status CreateNew();

  std::unique_ptr<KeysetStore> store_;
  std::shared_ptr<KeyProvider> provider_;
  mutable std::mutex mu_;  // serialises control operations; never taken on the hot path
  kshield::keys::v1::KeysetRecord record_;  // guarded by mu_
  std::atomic<std::shared_ptr<const Keyset>> snapshot_;
};

}  // namespace kshield::keys
