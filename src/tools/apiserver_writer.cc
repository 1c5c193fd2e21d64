#include "tools/apiserver_writer.h"

#include <openssl/crypto.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "tools/etcd_tools.h"
#include "tools/parallel.h"
#include "tools/value_decryptor.h"

namespace kshield::tools {
namespace {

constexpr size_t kApiserverDekSize = 32;  // the apiserver's seed / DEK size

}  // namespace

std::string_view SimFormatName(SimFormat f) {
  switch (f) {
    case SimFormat::kKmsV2Seed:
      return "kms-v2-seed";
    case SimFormat::kKmsV2AesGcmKey:
      return "kms-v2-aes-gcm-key";
    case SimFormat::kKmsV1:
      return "kms-v1";
    case SimFormat::kIdentity:
      return "identity";
    case SimFormat::kAesGcm:
      return "aesgcm";
  }
  return "unknown";
}

absl::StatusOr<SimFormat> ParseSimFormat(std::string_view name) {
  for (SimFormat f : kAllSimFormats) {
    if (SimFormatName(f) == name) return f;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown format \"", AV(name),
      "\" (kms-v2-seed, kms-v2-aes-gcm-key, kms-v1, identity, aesgcm)"));
}

bool SimFormatUsesPlugin(SimFormat f) {
  return f == SimFormat::kKmsV2Seed || f == SimFormat::kKmsV2AesGcmKey || f == SimFormat::kKmsV1;
}

std::string SecretEtcdKey(std::string_view prefix, std::string_view namespace_name,
                          std::string_view name) {
  std::string_view p = prefix;
  while (!p.empty() && p.back() == '/') p.remove_suffix(1);
  return absl::StrCat(AV(p), "/secrets/", AV(namespace_name), "/", AV(name));
}

ApiserverWriter::ApiserverWriter(etcd::Client* etcd, KmsClient* kms, ApiserverOptions options)
    : etcd_(etcd),
      kms_(kms),
      options_(std::move(options)),
      aesgcm_key_(crypto::RandomSecret(32)) {}

absl::Status ApiserverWriter::PollStatus() {
  if (kms_ == nullptr) return absl::FailedPreconditionError("no KMS plugin");
  KSH_ASSIGN_OR_RETURN(std::string id, kms_->StatusKeyId());
  absl::MutexLock lock(&mu_);
  key_id_ = std::move(id);
  last_poll_ = std::chrono::steady_clock::now();
  return absl::OkStatus();
}

std::string ApiserverWriter::key_id() const {
  absl::MutexLock lock(&mu_);
  return key_id_;
}

absl::StatusOr<std::shared_ptr<const ApiserverWriter::V2State>> ApiserverWriter::CurrentV2(
    envelope::DekSourceType type) {
  if (kms_ == nullptr) return absl::FailedPreconditionError("no KMS plugin");
  bool poll;
  {
    absl::MutexLock lock(&mu_);
    poll = key_id_.empty() ||
           std::chrono::steady_clock::now() - last_poll_ >= options_.status_poll_interval;
  }
  if (poll) KSH_RETURN_IF_ERROR(PollStatus());
  absl::MutexLock lock(&mu_);
  std::shared_ptr<const V2State>& slot =
      type == envelope::DekSourceType::kAesGcmKey ? aes_key_ : seed_;
  if (slot != nullptr && slot->key_id == key_id_) return slot;
  // The key_id changed (or first write): a new seed / DEK, wrapped once. Held under the lock so
  // concurrent writers do not each make one, as the apiserver's transformer does.
  auto state = std::make_shared<V2State>();
  state->dek_source = crypto::RandomSecret(kApiserverDekSize);
  KSH_ASSIGN_OR_RETURN(state->wrapped, kms_->EncryptV2(state->dek_source));
  state->key_id = state->wrapped.key_id;
  // The apiserver keys its transformer by the Status key_id; if Encrypt answered with a newer
  // one (a rotation in between), follow it.
  key_id_ = state->key_id;
  slot = state;
  return slot;
}

absl::StatusOr<std::string> ApiserverWriter::Transform(SimFormat f, std::string_view etcd_key,
                                                       std::string_view plaintext) {
  switch (f) {
    case SimFormat::kIdentity:
      return std::string(plaintext);
    case SimFormat::kAesGcm:
      return BuildAesGcmValue(options_.aesgcm_key_name, aesgcm_key_, plaintext, etcd_key);
    case SimFormat::kKmsV1: {
      if (kms_ == nullptr) return absl::FailedPreconditionError("no KMS plugin");
      SecretBytes dek = crypto::RandomSecret(kApiserverDekSize);
      KSH_ASSIGN_OR_RETURN(std::string wrapped, kms_->EncryptV1(dek));
      KSH_ASSIGN_OR_RETURN(std::string data, envelope::EncryptKmsV1Data(dek, plaintext, etcd_key));
      return envelope::BuildKmsV1(options_.provider_name, wrapped, data);
    }
    case SimFormat::kKmsV2Seed:
    case SimFormat::kKmsV2AesGcmKey: {
      envelope::DekSourceType type = f == SimFormat::kKmsV2Seed
                                         ? envelope::DekSourceType::kHkdfSha256XNonceAesGcmSeed
                                         : envelope::DekSourceType::kAesGcmKey;
      KSH_ASSIGN_OR_RETURN(std::shared_ptr<const V2State> st, CurrentV2(type));
      envelope::KmsV2Value v;
      v.provider = options_.provider_name;
      v.key_id = st->key_id;
      v.encrypted_dek_source = st->wrapped.ciphertext;
      v.dek_source_type = type;
      v.annotations = st->wrapped.annotations;
      KSH_ASSIGN_OR_RETURN(v.encrypted_data,
                           envelope::EncryptKmsV2Data(type, st->dek_source, plaintext, etcd_key));
      return envelope::BuildKmsV2(v);
    }
  }
  return absl::InvalidArgumentError("unknown format");
}

absl::StatusOr<int64_t> ApiserverWriter::WriteSecret(SimFormat f,
                                                     const envelope::SecretInfo& secret) {
  std::string key = SecretEtcdKey(options_.prefix, secret.namespace_name, secret.name);
  KSH_ASSIGN_OR_RETURN(std::string plain, envelope::EncodeSecret(secret));
  absl::StatusOr<std::string> value = Transform(f, key, plain);
  OPENSSL_cleanse(plain.data(), plain.size());
  if (!value.ok()) return value.status();
  return etcd_->Put(key, *value);
}

envelope::SecretInfo SimSecret(std::string_view namespace_name, std::string_view name, int index,
                               int value_size) {
  envelope::SecretInfo s;
  s.api_version = "v1";
  s.kind = "Secret";
  s.namespace_name = std::string(namespace_name);
  s.name = std::string(name);
  s.uid = absl::StrCat("00000000-0000-4000-8000-", 100000000000LL + index);
  s.labels["app.kubernetes.io/part-of"] = "kshield-sim";
  s.type = "Opaque";
  s.data["index"] = SecretBytes::CopyFrom(std::to_string(index));
  s.data["username"] = SecretBytes::CopyFrom(absl::StrCat("user-", index));
  std::string payload;
  std::string block = absl::StrCat(AV(namespace_name), "/", AV(name), "#", index);
  while (payload.size() < static_cast<size_t>(std::max(0, value_size))) {
    block = crypto::Sha256(block);
    payload += block;
  }
  payload.resize(static_cast<size_t>(std::max(0, value_size)));
  s.data["payload"] = SecretBytes::CopyFrom(payload);
  return s;
}

std::string SimNamespace(std::string_view namespace_prefix, SimFormat f) {
  return absl::StrCat(AV(namespace_prefix), "-", AV(SimFormatName(f)));
}

std::string SimName(int index) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "secret-%05d", index);
  return buf;
}

absl::StatusOr<std::vector<FormatWriteStats>> WriteSecrets(ApiserverWriter& writer,
                                                           const WriteSecretsOptions& options) {
  std::vector<FormatWriteStats> out;
  for (SimFormat f : options.formats) {
    KmsClient* kms = writer.kms();
    FormatWriteStats st;
    st.format = f;
    std::string ns = SimNamespace(options.namespace_prefix, f);
    absl::Mutex mu;
    std::atomic<int64_t> ok{0}, failed{0};
    auto start = std::chrono::steady_clock::now();
    KmsClient::Counters before = kms != nullptr ? kms->counters() : KmsClient::Counters{};
    ParallelFor(static_cast<size_t>(std::max(0, options.per_format)), options.concurrency,
                [&](size_t i) {
                  int index = static_cast<int>(i);
                  absl::StatusOr<int64_t> r =
                      writer.WriteSecret(f, SimSecret(ns, SimName(index), index,
                                                      options.value_size));
                  if (r.ok()) {
                    ok.fetch_add(1);
                  } else {
                    failed.fetch_add(1);
                    absl::MutexLock lock(&mu);
                    if (st.first_error.empty()) st.first_error = std::string(r.status().message());
                  }
                });
    st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    st.written = ok.load();
    st.failed = failed.load();
    if (kms != nullptr) st.plugin_calls = CountersSince(kms->counters(), before);
    out.push_back(std::move(st));
  }
  return out;
}

absl::StatusOr<ReadStats> ColdReadSecrets(etcd::Client& etcd, ValueDecryptor& decryptor,
                                          KmsClient* kms, std::string_view key_prefix,
                                          int concurrency) {
  ReadStats st;
  KmsClient::Counters before = kms != nullptr ? kms->counters() : KmsClient::Counters{};
  auto start = std::chrono::steady_clock::now();
  std::vector<etcd::KeyValue> all;
  KSH_RETURN_IF_ERROR(etcd.RangePrefix(key_prefix, 1000, [&](const std::vector<etcd::KeyValue>& kvs) {
                            all.insert(all.end(), kvs.begin(), kvs.end());
                            return absl::OkStatus();
                          }).status());
  absl::Mutex mu;
  std::atomic<int64_t> ok{0}, failed{0};
  ParallelFor(all.size(), concurrency, [&](size_t i) {
    absl::StatusOr<std::string> plain = decryptor.Decrypt(all[i].key, all[i].value);
    absl::Status s = plain.status();
    if (plain.ok()) {
      s = envelope::DecodeSecret(*plain).status();
      OPENSSL_cleanse(plain->data(), plain->size());
    }
    if (s.ok()) {
      ok.fetch_add(1);
    } else {
      failed.fetch_add(1);
      absl::MutexLock lock(&mu);
      if (st.first_error.empty()) st.first_error = absl::StrCat(all[i].key, ": ", s.message());
    }
  });
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  st.read = ok.load();
  st.failed = failed.load();
  if (kms != nullptr) st.plugin_calls = CountersSince(kms->counters(), before);
  return st;
}

}  // namespace kshield::tools
