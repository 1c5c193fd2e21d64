// DekDecrypter — what the operator tools need to open the DEKs / seeds kube-apiserver stored in
// etcd: the two Decrypt calls of the KMS APIs. Two implementations:
//   KmsClient        (tools/kms_client.h)        — online, through the plugin's unix socket;
//   OfflineDecrypter (tools/offline_decrypter.h) — offline, with KEKs opened from a backup file,
//                                                  no plugin (the emergency path).
//
//   std::unique_ptr<DekDecrypter> d = ...;
//   KSH_ASSIGN_OR_RETURN(SecretBytes seed, d->DecryptV2(v.encrypted_dek_source, v.key_id, {}));
//
// Errors say why (retired key, unknown key_id, "authentication failed") without key bytes.
// Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/secret.h"

namespace kshield::tools {

// Calls made, by kind (offline: unwraps done in-process, counted the same way).
struct KmsCallCounters {
  uint64_t status = 0;
  uint64_t v2_encrypt = 0;
  uint64_t v2_decrypt = 0;
  uint64_t v1_encrypt = 0;
  uint64_t v1_decrypt = 0;
  uint64_t total() const { return status + v2_encrypt + v2_decrypt + v1_encrypt + v1_decrypt; }
};

class DekDecrypter {
 public:
  virtual ~DekDecrypter() = default;
  // KMS v2 Decrypt: the DEK / seed behind `ciphertext` (an EncryptedObject's encryptedDEKSource).
  virtual absl::StatusOr<SecretBytes> DecryptV2(
      std::string_view ciphertext, std::string_view key_id,
      const std::map<std::string, std::string>& annotations) = 0;
  // KMS v1beta1 Decrypt: the DEK behind a v1 value's wrapped DEK.
  virtual absl::StatusOr<SecretBytes> DecryptV1(std::string_view ciphertext) = 0;
  virtual KmsCallCounters counters() const = 0;
};

}  // namespace kshield::tools
