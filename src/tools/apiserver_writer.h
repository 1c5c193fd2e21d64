// The write side of kube-apiserver's storage transformers, for the apiserver simulator
// (kshield-bench apiserver) and the tools' tests: Secrets stored in etcd at
// `<prefix>/secrets/<namespace>/<name>` exactly as the apiserver would store them (DESIGN.md §4),
// with AAD = the full etcd key.
//
//   ApiserverWriter w(etcd.get(), kms.get(), {.prefix = "/registry", .provider_name = "kshield"});
//   KSH_RETURN_IF_ERROR(w.PollStatus());
//   KSH_ASSIGN_OR_RETURN(int64_t rev, w.WriteSecret(SimFormat::kKmsV2Seed, secret));
//
// Formats:
//   kKmsV2Seed      KMS v2, HKDF_SHA256_XNONCE_AES_GCM_SEED (apiserver >= 1.29): one random seed per
//                   Status key_id, wrapped by one plugin Encrypt; every write draws a fresh info.
//   kKmsV2AesGcmKey KMS v2, AES_GCM_KEY (apiserver <= 1.28): one DEK per key_id, one Encrypt.
//   kKmsV1          KMS v1: a new DEK and one v1beta1 Encrypt per write.
//   kIdentity       the plain `k8s\0` protobuf (the identity provider).
//   kAesGcm         the aesgcm provider with a local key (`k8s:enc:aesgcm:v1:<name>:`).
// Like the apiserver, the writer learns the plugin's key_id from Status, polled at most every
// `status_poll_interval` (the apiserver: 60 s); a changed key_id makes the next v2 write generate a
// new seed / DEK. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/secret.h"
#include "envelope/envelope.h"
#include "etcd/client.h"
#include "tools/kms_client.h"
#include "tools/value_decryptor.h"

namespace kshield::tools {

enum class SimFormat { kKmsV2Seed, kKmsV2AesGcmKey, kKmsV1, kIdentity, kAesGcm };
inline constexpr SimFormat kAllSimFormats[] = {SimFormat::kKmsV2Seed, SimFormat::kKmsV2AesGcmKey,
                                               SimFormat::kKmsV1, SimFormat::kIdentity,
                                               SimFormat::kAesGcm};
// "kms-v2-seed", "kms-v2-aes-gcm-key", "kms-v1", "identity", "aesgcm".
std::string_view SimFormatName(SimFormat f);
absl::StatusOr<SimFormat> ParseSimFormat(std::string_view name);
bool SimFormatUsesPlugin(SimFormat f);

struct ApiserverOptions {
  std::string prefix = "/registry";      // the apiserver's --etcd-prefix
  std::string provider_name = "kshield";  // EncryptionConfiguration name of the KMS providers
  std::string aesgcm_key_name = "key1";
  std::chrono::milliseconds status_poll_interval{60000};
};

// `<prefix>/secrets/<namespace>/<name>`.
std::string SecretEtcdKey(std::string_view prefix, std::string_view namespace_name,
                          std::string_view name);

class ApiserverWriter {
 public:
  // `kms` may be null when only kIdentity / kAesGcm are written. The aesgcm key is random.
  ApiserverWriter(etcd::Client* etcd, KmsClient* kms, ApiserverOptions options);

  // KMS Status now; remembers the key_id.
  absl::Status PollStatus();
  // The key_id the writer currently uses for v2 (empty before the first PollStatus).
  std::string key_id() const;

  // The stored value of `plaintext` (an encoded object) at `etcd_key` in format `f`.
  absl::StatusOr<std::string> Transform(SimFormat f, std::string_view etcd_key,
                                        std::string_view plaintext);
  // EncodeSecret + Transform + Put at SecretEtcdKey. Returns the new mod_revision.
  absl::StatusOr<int64_t> WriteSecret(SimFormat f, const envelope::SecretInfo& secret);

  const ApiserverOptions& options() const { return options_; }
  KmsClient* kms() const { return kms_; }
  // For readers of the aesgcm values (ValueDecryptor::AddAesGcmKey).
  SecretBytes aesgcm_key() const { return aesgcm_key_.Clone(); }

 private:
  struct V2State {
    std::string key_id;
    SecretBytes dek_source;
    KmsClient::V2Wrapped wrapped;
  };
  absl::StatusOr<std::shared_ptr<const V2State>> CurrentV2(envelope::DekSourceType type);

  etcd::Client* etcd_;
  KmsClient* kms_;
  ApiserverOptions options_;
  SecretBytes aesgcm_key_;
  mutable absl::Mutex mu_;
  std::string key_id_ ABSL_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point last_poll_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const V2State> seed_ ABSL_GUARDED_BY(mu_);     // type 1
  std::shared_ptr<const V2State> aes_key_ ABSL_GUARDED_BY(mu_);  // type 0
};

// A deterministic Secret for simulator and tests: namespace/name as given, type Opaque, a label,
// and data {"index": "<index>", "username": "user-<index>", "payload": <value_size bytes derived
// from name and index>}. Tests compare what tools read back against SimSecret(...).
envelope::SecretInfo SimSecret(std::string_view namespace_name, std::string_view name, int index,
                               int value_size = 64);
// The namespace the bulk writer uses for a format: "<namespace_prefix>-<SimFormatName>".
std::string SimNamespace(std::string_view namespace_prefix, SimFormat f);
// "secret-00042".
std::string SimName(int index);

struct WriteSecretsOptions {
  int per_format = 100;
  std::vector<SimFormat> formats = {std::begin(kAllSimFormats), std::end(kAllSimFormats)};
  std::string namespace_prefix = "sim";
  int value_size = 64;
  int concurrency = 4;  // writer threads (the apiserver writes concurrently)
};

struct FormatWriteStats {
  SimFormat format = SimFormat::kIdentity;
  int64_t written = 0;
  int64_t failed = 0;
  double seconds = 0;
  std::string first_error;
  KmsClient::Counters plugin_calls;  // made while writing this format
};

// Writes per_format Secrets of each format (format after format, each timed). Fails only if a
// set-up call fails; per-write failures are counted.
absl::StatusOr<std::vector<FormatWriteStats>> WriteSecrets(ApiserverWriter& writer,
                                                           const WriteSecretsOptions& options);

struct ReadStats {
  int64_t read = 0;    // values decrypted and decoded as Secrets
  int64_t failed = 0;
  double seconds = 0;  // etcd Range + decrypt + decode of all
  std::string first_error;
  KmsClient::Counters plugin_calls;
};

// The apiserver's cold read of every Secret under `key_prefix` (e.g. "/registry/secrets/ns/"):
// one etcd walk, then decrypt (through `decryptor`: v1 one plugin Decrypt per value, v2 one per
// distinct DEK source) and decode each, `concurrency` at a time. `kms` (may be null) is only
// read for its call counters.
absl::StatusOr<ReadStats> ColdReadSecrets(etcd::Client& etcd, ValueDecryptor& decryptor,
                                          KmsClient* kms, std::string_view key_prefix,
                                          int concurrency);

}  // namespace kshield::tools
