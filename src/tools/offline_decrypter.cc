#include "tools/offline_decrypter.h"

#include <openssl/crypto.h>

#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "crypto/aead.h"
#include "keys/dek_cipher.h"
#include "keys/key_id.h"
#include "keys/keyset_manager.h"
#include "keys/keyset_store.h"

namespace kshield::tools {
namespace {

constexpr size_t kKekSize = 32;

// The record lives only in memory: nothing of an offline run touches the plugin's data dir.
class MemoryKeysetStore final : public keys::KeysetStore {
 public:
  explicit MemoryKeysetStore(kshield::keys::v1::KeysetRecord record) : record_(std::move(record)) {}
  absl::StatusOr<std::optional<kshield::keys::v1::KeysetRecord>> Load() override {
    return record_;
  }
  absl::Status Save(const kshield::keys::v1::KeysetRecord&) override {
    return absl::FailedPreconditionError("an offline keyset from a backup is read-only");
  }
  std::string Describe() const override { return "backup file (offline)"; }

 private:
  kshield::keys::v1::KeysetRecord record_;
};

// "Opens" a version by handing out an AES-256-GCM Aead over its KEK from the backup: the same
// Aead the local and cached providers give the plugin.
class BackupKekProvider final : public keys::KeyProvider {
 public:
  explicit BackupKekProvider(std::map<uint32_t, SecretBytes> keks) : keks_(std::move(keks)) {}
  std::string_view name() const override { return "backup"; }
  absl::StatusOr<std::string> CreateVersion(const keys::KekContext&) override {
    return absl::FailedPreconditionError("an offline keyset from a backup cannot rotate");
  }
  absl::StatusOr<std::shared_ptr<const crypto::Aead>> OpenVersion(
      const keys::KekContext& ctx, std::string_view) override {
    auto it = keks_.find(ctx.version);
    if (it == keks_.end()) {
      return absl::DataLossError(
          absl::StrCat("the backup holds no KEK for version ", ctx.version));
    }
    KSH_ASSIGN_OR_RETURN(auto aead, crypto::AesGcmAead::New(it->second.Clone()));
    return std::shared_ptr<const crypto::Aead>(std::move(aead));
  }
  absl::Status Probe() override { return absl::OkStatus(); }

 private:
  std::map<uint32_t, SecretBytes> keks_;
};

absl::StatusOr<SecretBytes> ToSecret(absl::StatusOr<std::string> plain) {
  if (!plain.ok()) return plain.status();
  SecretBytes out = SecretBytes::CopyFrom(*plain);
  OPENSSL_cleanse(plain->data(), plain->size());
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<OfflineDecrypter>> OfflineDecrypter::Create(
    std::string keyset_id, uint32_t next_version, std::vector<OfflineKek> keks) {
  if (!keys::IsValidKeysetId(keyset_id)) {
    return absl::InvalidArgumentError("backup: invalid keyset_id");
  }
  kshield::keys::v1::KeysetRecord record;
  record.set_format(1);
  record.set_keyset_id(keyset_id);
  record.set_next_version(next_version);
  std::map<uint32_t, SecretBytes> by_version;
  for (OfflineKek& k : keks) {
    if (k.kek.size() != kKekSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("backup: KEK version ", k.version, " is not ", kKekSize, " bytes"));
    }
    auto* v = record.add_versions();
    v->set_version(k.version);
    v->set_state(k.state);
    v->set_created_unix(k.created_unix);
    v->set_provider("backup");
    if (!by_version.emplace(k.version, std::move(k.kek)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("backup: KEK version ", k.version, " appears twice"));
    }
  }
  KSH_RETURN_IF_ERROR(Annotate(keys::KeysetManager::Validate(record), "backup"));
  auto manager = std::make_unique<keys::KeysetManager>(
      std::make_unique<MemoryKeysetStore>(std::move(record)),
      std::make_shared<BackupKekProvider>(std::move(by_version)));
  KSH_RETURN_IF_ERROR(manager->Init());
  return std::unique_ptr<OfflineDecrypter>(new OfflineDecrypter(std::move(manager)));
}

OfflineDecrypter::OfflineDecrypter(std::unique_ptr<keys::KeysetManager> manager)
    : manager_(std::move(manager)), cipher_(std::make_unique<keys::DekCipher>(manager_.get())) {}

OfflineDecrypter::~OfflineDecrypter() = default;

absl::StatusOr<SecretBytes> OfflineDecrypter::DecryptV2(
    std::string_view ciphertext, std::string_view key_id,
    const std::map<std::string, std::string>& /*annotations: kshield never sets any*/) {
  v2_decrypt_.fetch_add(1, std::memory_order_relaxed);
  return ToSecret(cipher_->Unwrap(ciphertext, key_id, keys::WrapFormat::kKmsV2));
}

absl::StatusOr<SecretBytes> OfflineDecrypter::DecryptV1(std::string_view ciphertext) {
  v1_decrypt_.fetch_add(1, std::memory_order_relaxed);
  return ToSecret(cipher_->Unwrap(ciphertext, std::nullopt, keys::WrapFormat::kKmsV1beta1));
}

KmsCallCounters OfflineDecrypter::counters() const {
  KmsCallCounters c;
  c.v2_decrypt = v2_decrypt_.load();
  c.v1_decrypt = v1_decrypt_.load();
  return c;
}

const keys::Keyset& OfflineDecrypter::keyset() const { return *manager_->Current(); }

}  // namespace kshield::tools
