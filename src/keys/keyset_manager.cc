#include "keys/keyset_manager.h"

#include <ctime>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "crypto/random.h"
#include "keys/key_id.h"

namespace kshield::keys {
namespace {

using v1::KekVersionRecord;
using v1::KeysetRecord;

KeyState FromRecord(KekVersionRecord::State s) {
  switch (s) {
    case KekVersionRecord::PRIMARY:
      return KeyState::kPrimary;
    case KekVersionRecord::RETIRED:
      return KeyState::kRetired;
    default:
      return KeyState::kActive;
  }
}

}  // namespace

KeysetManager::KeysetManager(std::unique_ptr<KeysetStore> store,
                             std::shared_ptr<KeyProvider> provider)
    : store_(std::move(store)), provider_(std::move(provider)) {}

absl::Status KeysetManager::Validate(const KeysetRecord& r) {
  if (r.format() != 1) {
    return absl::DataLossError(absl::StrCat("unsupported keyset format ", r.format()));
  }
  if (!IsValidKeysetId(r.keyset_id())) return absl::DataLossError("invalid keyset_id");
  int primaries = 0;
  uint32_t prev = 0;
  for (const auto& v : r.versions()) {
    if (v.version() == 0 || v.version() <= prev) {
      return absl::DataLossError("keyset versions are not strictly increasing from 1");
    }
    if (v.version() >= r.next_version()) {
      return absl::DataLossError(absl::StrCat("version ", v.version(), " >= next_version ",
                                              r.next_version()));
    }
    if (v.state() == KekVersionRecord::STATE_UNSPECIFIED ||
        !KekVersionRecord::State_IsValid(v.state())) {
      return absl::DataLossError(absl::StrCat("version ", v.version(), " has no valid state"));
    }
    if (v.state() == KekVersionRecord::PRIMARY) ++primaries;
    prev = v.version();
  }
  if (primaries != 1) {
    return absl::DataLossError(absl::StrCat("keyset has ", primaries, " primary versions, want 1"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const Keyset>> KeysetManager::BuildSnapshot(
    const KeysetRecord& record, const Keyset* previous) {
  std::vector<KeyVersion> versions;
  versions.reserve(static_cast<size_t>(record.versions_size()));
  for (const auto& v : record.versions()) {
    KeyVersion kv;
    kv.version = v.version();
    kv.state = FromRecord(v.state());
    kv.created_unix = v.created_unix();
    kv.key_id = FormatKeyId(record.keyset_id(), v.version());
    if (kv.state != KeyState::kRetired) {
      const KeyVersion* old = previous != nullptr ? previous->Find(v.version()) : nullptr;
      if (old != nullptr && old->kek != nullptr) {
        kv.kek = old->kek;
      } else {
        auto kek = provider_->OpenVersion({record.keyset_id(), v.version()}, v.material());
        if (!kek.ok()) return Annotate(kek.status(), absl::StrCat("opening ", kv.key_id));
        kv.kek = std::move(*kek);
      }
    }
    versions.push_back(std::move(kv));
  }
  return std::make_shared<const Keyset>(record.keyset_id(), std::move(versions));
}

absl::Status KeysetManager::CreateNew() {
  KeysetRecord rec;
  rec.set_format(1);
  rec.set_keyset_id(crypto::RandomHex(kKeysetIdLength / 2));
  KSH_ASSIGN_OR_RETURN(std::string material, provider_->CreateVersion({rec.keyset_id(), 1}));
  auto* v = rec.add_versions();
  v->set_version(1);
  v->set_state(KekVersionRecord::PRIMARY);
  v->set_created_unix(time(nullptr));
  v->set_provider(std::string(provider_->name()));
  v->set_material(material);
  rec.set_next_version(2);
  // Nothing was ever issued under this keyset, so version 1 may be primary in its first write.
  KSH_RETURN_IF_ERROR(store_->Save(rec));
  KSH_ASSIGN_OR_RETURN(auto snap, BuildSnapshot(rec, nullptr));
  record_ = std::move(rec);
  snapshot_.store(std::move(snap));
  log::Info("keyset.created", {{"keyset_id", record_.keyset_id()},
                               {"key_id", FormatKeyId(record_.keyset_id(), 1)},
                               {"provider", std::string(provider_->name())},
                               {"store", store_->Describe()}});
  return absl::OkStatus();
}

absl::Status KeysetManager::Init() {
  std::lock_guard<std::mutex> lock(mu_);
  KSH_ASSIGN_OR_RETURN(auto loaded, store_->Load());
  if (!loaded.has_value()) return CreateNew();
  KSH_RETURN_IF_ERROR(Annotate(Validate(*loaded), store_->Describe()));
  KSH_ASSIGN_OR_RETURN(auto snap, BuildSnapshot(*loaded, nullptr));
  record_ = std::move(*loaded);
  snapshot_.store(std::move(snap));
  const Keyset& ks = *snapshot_.load();
  log::Info("keyset.loaded", {{"keyset_id", ks.keyset_id()},
                              {"key_id", ks.primary().key_id},
                              {"versions", static_cast<uint64_t>(ks.versions().size())},
                              {"provider", std::string(provider_->name())},
                              {"store", store_->Describe()}});
  return absl::OkStatus();
}

absl::StatusOr<RotateResult> KeysetManager::Rotate() {
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<const Keyset> current = snapshot_.load();
  if (current == nullptr) return absl::FailedPreconditionError("keyset not initialised");
  KeysetRecord rec = record_;
  const uint32_t version = rec.next_version();
  if (version == UINT32_MAX) return absl::ResourceExhaustedError("key versions exhausted");
  auto material = provider_->CreateVersion({rec.keyset_id(), version});
  if (!material.ok()) return Annotate(material.status(), "rotate: creating a new KEK version");
  auto* added = rec.add_versions();
  added->set_version(version);
  added->set_state(KekVersionRecord::ACTIVE);
  added->set_created_unix(time(nullptr));
  added->set_provider(std::string(provider_->name()));
  added->set_material(*material);
  rec.set_next_version(version + 1);

  // Step 1: persist the new version as active. Until this returns, nothing may use it.
  KSH_RETURN_IF_ERROR(Annotate(store_->Save(rec), "rotate: persisting the new version"));
  record_ = rec;
  auto with_active = BuildSnapshot(rec, current.get());
  if (!with_active.ok()) return Annotate(with_active.status(), "rotate: opening the new version");
  snapshot_.store(*with_active);

  // Step 2: promote it.
  for (auto& v : *rec.mutable_versions()) {
    if (v.state() == KekVersionRecord::PRIMARY) v.set_state(KekVersionRecord::ACTIVE);
    if (v.version() == version) v.set_state(KekVersionRecord::PRIMARY);
  }
  KSH_RETURN_IF_ERROR(Annotate(store_->Save(rec), "rotate: persisting the promotion"));
  record_ = rec;
  KSH_ASSIGN_OR_RETURN(auto promoted, BuildSnapshot(rec, with_active->get()));
  snapshot_.store(promoted);
  RotateResult result{current->primary().key_id, promoted->primary().key_id};
  log::Info("keyset.rotated", {{"keyset_id", rec.keyset_id()},
                               {"previous_key_id", result.previous_key_id},
                               {"key_id", result.key_id}});
  return result;
}

absl::Status KeysetManager::Refresh() {
  std::lock_guard<std::mutex> lock(mu_);
  KSH_ASSIGN_OR_RETURN(auto loaded, store_->Load());
  if (!loaded.has_value()) {
    return absl::DataLossError(absl::StrCat("keyset vanished from ", store_->Describe()));
  }
  KSH_RETURN_IF_ERROR(Annotate(Validate(*loaded), store_->Describe()));
  std::shared_ptr<const Keyset> current = snapshot_.load();
  if (current != nullptr && loaded->keyset_id() != current->keyset_id()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the store now holds keyset ", loaded->keyset_id(), ", not ",
                     current->keyset_id(), "; refusing to switch keysets under a running plugin"));
  }
  KSH_ASSIGN_OR_RETURN(auto snap, BuildSnapshot(*loaded, current.get()));
  record_ = std::move(*loaded);
  snapshot_.store(std::move(snap));
  log::Info("keyset.refreshed", {{"keyset_id", record_.keyset_id()},
                                 {"key_id", snapshot_.load()->primary().key_id}});
  return absl::OkStatus();
}

kshield::keys::v1::KeysetRecord KeysetManager::record() const {
  std::lock_guard<std::mutex> lock(mu_);
  return record_;
}

absl::Status KeysetManager::Retire(uint32_t version) {
  std::lock_guard<std::mutex> lock(mu_);
  KeysetRecord rec = record_;
  KekVersionRecord* target = nullptr;
  for (auto& v : *rec.mutable_versions()) {
    if (v.version() == version) target = &v;
  }
  if (target == nullptr) {
    return absl::NotFoundError(absl::StrCat("no key version ", version, " in keyset ",
                                            rec.keyset_id()));
  }
  if (target->state() == KekVersionRecord::PRIMARY) {
    return absl::FailedPreconditionError(
        absl::StrCat("version ", version, " is the primary; rotate first"));
  }
  if (target->state() == KekVersionRecord::RETIRED) return absl::OkStatus();
  target->set_state(KekVersionRecord::RETIRED);
  KSH_RETURN_IF_ERROR(store_->Save(rec));
  record_ = rec;
  KSH_ASSIGN_OR_RETURN(auto snap, BuildSnapshot(rec, snapshot_.load().get()));
  snapshot_.store(std::move(snap));
  log::Info("keyset.retired", {{"keyset_id", rec.keyset_id()},
                               {"key_id", FormatKeyId(rec.keyset_id(), version)}});
  return absl::OkStatus();
}

}  // namespace kshield::keys
