// Turns an etcd value written by kube-apiserver back into the plain stored object (`k8s\0`
// protobuf), as the apiserver's read path does: identity values as they are; KMS v2 values by one
// plugin Decrypt per distinct encryptedDEKSource (cached, like the apiserver's DEK cache); KMS v1
// values by one plugin Decrypt per value; aesgcm values with a local key registered here.
// "The plugin" is any DekDecrypter: the plugin socket (KmsClient) or KEKs from a backup
// (OfflineDecrypter).
//
//   ValueDecryptor d(kms.get(), "kshield");
//   absl::StatusOr<std::string> plain = d.Decrypt(kv.key, kv.value);
//
// Only KMS values whose provider name is `provider_name` are sent to the plugin: a value another
// plugin wrote is refused with FailedPrecondition ("not this provider"), without a plugin call.
// Errors name the value kind and reason, never bytes of the value or of a DEK. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/secret.h"
#include "envelope/envelope.h"
#include "tools/dek_decrypter.h"

namespace kshield::tools {

class ValueDecryptor {
 public:
  // `kms` may be null: then only identity and registered aesgcm values decrypt.
  ValueDecryptor(DekDecrypter* kms, std::string provider_name);

  // Registers the key of an aesgcm provider entry (`k8s:enc:aesgcm:v1:<name>:`).
  void AddAesGcmKey(std::string name, SecretBytes key);

  // The stored object (`k8s\0` protobuf or JSON) of `value` read at `etcd_key` (the AAD).
  // Identity values are returned as they are.
  absl::StatusOr<std::string> Decrypt(std::string_view etcd_key, std::string_view value);

  // The plaintext DEK / seed of a KMS v2 value (cached by keyID, encryptedDEKSource, annotations).
  absl::StatusOr<std::shared_ptr<const SecretBytes>> V2DekSource(const envelope::KmsV2Value& v);

  // Distinct DEK sources decrypted so far.
  size_t cached_dek_sources() const;

  const std::string& provider_name() const { return provider_name_; }

 private:
  DekDecrypter* kms_;
  std::string provider_name_;
  mutable absl::Mutex mu_;
  // One entry per distinct DEK source; its own mutex makes concurrent readers of the same source
  // wait for one plugin call instead of each making one (as the apiserver's cache does).
  struct CacheEntry {
    absl::Mutex mu;
    std::shared_ptr<const SecretBytes> value ABSL_GUARDED_BY(mu);
  };
  std::map<std::string, std::shared_ptr<CacheEntry>> v2_cache_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::shared_ptr<const SecretBytes>> aesgcm_keys_ ABSL_GUARDED_BY(mu_);
};

// The cache key of a v2 DEK source: keyID, encryptedDEKSource and annotations, unambiguously joined.
std::string V2DekSourceId(const envelope::KmsV2Value& v);

// The aesgcm provider's value: `k8s:enc:aesgcm:v1:<name>:` ‖ nonce(12) ‖ ct ‖ tag(16), AAD = the
// etcd key (k8s.io/apiserver .../value/encrypt/aes, the AES-GCM transformer).
absl::StatusOr<std::string> BuildAesGcmValue(std::string_view key_name, const SecretBytes& key,
                                             std::string_view plaintext,
                                             std::string_view etcd_key);
absl::StatusOr<std::string> OpenAesGcmPayload(const SecretBytes& key, std::string_view payload,
                                              std::string_view etcd_key);

}  // namespace kshield::tools
