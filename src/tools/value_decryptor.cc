#include "tools/value_decryptor.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "crypto/aead.h"
#include "crypto/random.h"

namespace kshield::tools {
namespace {

constexpr size_t kGcmNonceSize = 12;
constexpr size_t kGcmTagSize = 16;
// A cluster has a handful of DEK sources (one per apiserver start and key rotation); this bound
// only keeps a hostile etcd from growing the cache without limit.
constexpr size_t kMaxCachedDekSources = 100000;

void AppendField(std::string* out, std::string_view s) {
  absl::StrAppend(out, s.size(), ":", AV(s), ";");
}

}  // namespace

std::string V2DekSourceId(const envelope::KmsV2Value& v) {
  std::string id;
  AppendField(&id, v.key_id);
  AppendField(&id, v.encrypted_dek_source);
  for (const auto& [k, val] : v.annotations) {
    AppendField(&id, k);
    AppendField(&id, val);
  }
  return id;
}

absl::StatusOr<std::string> BuildAesGcmValue(std::string_view key_name, const SecretBytes& key,
                                             std::string_view plaintext,
                                             std::string_view etcd_key) {
  if (key_name.empty() || key_name.find(':') != std::string_view::npos) {
    return absl::InvalidArgumentError("aesgcm key name must be non-empty without ':'");
  }
  std::string nonce = crypto::RandomString(kGcmNonceSize);
  KSH_ASSIGN_OR_RETURN(std::string sealed, crypto::AesGcmSeal(key, nonce, plaintext, etcd_key));
  return absl::StrCat(AV(envelope::kAesGcmPrefix), AV(key_name), ":", nonce, sealed);
}

absl::StatusOr<std::string> OpenAesGcmPayload(const SecretBytes& key, std::string_view payload,
                                              std::string_view etcd_key) {
  if (payload.size() < kGcmNonceSize + kGcmTagSize) {
    return absl::InvalidArgumentError("authentication failed");
  }
  auto plain = crypto::AesGcmOpen(key, payload.substr(0, kGcmNonceSize),
                                  payload.substr(kGcmNonceSize), etcd_key);
  if (!plain.ok()) return absl::InvalidArgumentError("authentication failed");
  return plain;
}

ValueDecryptor::ValueDecryptor(DekDecrypter* kms, std::string provider_name)
    : kms_(kms), provider_name_(std::move(provider_name)) {}

void ValueDecryptor::AddAesGcmKey(std::string name, SecretBytes key) {
  absl::MutexLock lock(&mu_);
  aesgcm_keys_[std::move(name)] = std::make_shared<const SecretBytes>(std::move(key));
}

size_t ValueDecryptor::cached_dek_sources() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, entry] : v2_cache_) {
    absl::MutexLock entry_lock(&entry->mu);
    if (entry->value != nullptr) ++n;
  }
  return n;
}

absl::StatusOr<std::shared_ptr<const SecretBytes>> ValueDecryptor::V2DekSource(
    const envelope::KmsV2Value& v) {
  if (kms_ == nullptr) return absl::FailedPreconditionError("no KMS plugin to decrypt with");
  std::string id = V2DekSourceId(v);
  std::shared_ptr<CacheEntry> entry;
  {
    absl::MutexLock lock(&mu_);
    auto it = v2_cache_.find(id);
    if (it != v2_cache_.end()) {
      entry = it->second;
    } else {
      entry = std::make_shared<CacheEntry>();
      // Past the bound, decrypt without caching (a hostile etcd cannot grow memory forever).
      if (v2_cache_.size() < kMaxCachedDekSources) v2_cache_.emplace(std::move(id), entry);
    }
  }
  absl::MutexLock lock(&entry->mu);
  if (entry->value != nullptr) return entry->value;
  // A failure is not cached: the next reader of this source asks the plugin again.
  KSH_ASSIGN_OR_RETURN(SecretBytes seed,
                       kms_->DecryptV2(v.encrypted_dek_source, v.key_id, v.annotations));
  entry->value = std::make_shared<const SecretBytes>(std::move(seed));
  return entry->value;
}

absl::StatusOr<std::string> ValueDecryptor::Decrypt(std::string_view etcd_key,
                                                    std::string_view value) {
  envelope::ValuePrefix p = envelope::SplitValuePrefix(value);
  switch (p.kind) {
    case envelope::ValueKind::kIdentity:
      return std::string(value);
    case envelope::ValueKind::kKmsV2: {
      if (p.provider != provider_name_) {
        return absl::FailedPreconditionError(
            absl::StrCat("kms-v2 value of provider \"", AV(p.provider), "\", not this provider"));
      }
      KSH_ASSIGN_OR_RETURN(envelope::KmsV2Value v, envelope::ParseKmsV2(value));
      KSH_ASSIGN_OR_RETURN(std::shared_ptr<const SecretBytes> seed, V2DekSource(v));
      return envelope::DecryptKmsV2Data(v, *seed, etcd_key);
    }
    case envelope::ValueKind::kKmsV1: {
      if (p.provider != provider_name_) {
        return absl::FailedPreconditionError(
            absl::StrCat("kms-v1 value of provider \"", AV(p.provider), "\", not this provider"));
      }
      if (kms_ == nullptr) return absl::FailedPreconditionError("no KMS plugin to decrypt with");
      KSH_ASSIGN_OR_RETURN(envelope::KmsV1Value v, envelope::ParseKmsV1(value));
      KSH_ASSIGN_OR_RETURN(SecretBytes dek, kms_->DecryptV1(v.wrapped_dek));
      return envelope::DecryptKmsV1DataGcmOrCbc(v.data, dek, etcd_key);
    }
    case envelope::ValueKind::kAesGcm: {
      std::shared_ptr<const SecretBytes> key;
      {
        absl::MutexLock lock(&mu_);
        auto it = aesgcm_keys_.find(std::string(p.provider));
        if (it != aesgcm_keys_.end()) key = it->second;
      }
      if (key == nullptr) {
        return absl::FailedPreconditionError(
            absl::StrCat("aesgcm value of key \"", AV(p.provider), "\": key not available"));
      }
      return OpenAesGcmPayload(*key, p.payload, etcd_key);
    }
    default:
      return absl::FailedPreconditionError(
          absl::StrCat(AV(envelope::ValueKindName(p.kind)), " value: cannot decrypt here"));
  }
}

}  // namespace kshield::tools
