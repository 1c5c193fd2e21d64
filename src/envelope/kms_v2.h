// KMS v2 values as kube-apiserver stores them in etcd (DESIGN.md §4):
//
//   k8s:enc:kms:v2:<provider>:  +  EncryptedObject protobuf (proto/k8s_envelope.proto)
//
//   EncryptedObject.encryptedData, by encryptedDEKSourceType:
//     AES_GCM_KEY (0)                      nonce(12) ‖ AES-GCM ct ‖ tag(16); key = the DEK
//     HKDF_SHA256_XNONCE_AES_GCM_SEED (1)  info(32) ‖ nonce(12) ‖ AES-256-GCM ct ‖ tag(16);
//                                          key = HKDF-Expand(SHA-256, PRK = seed, info, 32)
//   AAD = the full etcd key (with any prefix the apiserver uses), e.g. /registry/secrets/ns/name.
//
// The DEK / seed itself is encryptedDEKSource decrypted by the KMS plugin (Decrypt with keyID and
// annotations); this file never talks to a plugin.
//
//   KSH_ASSIGN_OR_RETURN(KmsV2Value v, ParseKmsV2(etcd_value));
//   KSH_ASSIGN_OR_RETURN(SecretBytes seed, plugin.Decrypt(v.encrypted_dek_source, v.key_id, ...));
//   KSH_ASSIGN_OR_RETURN(std::string plain, DecryptKmsV2Data(v, seed, etcd_key));
//
// Rewrap (kshieldctl etcd rewrap): parse, replace key_id / encrypted_dek_source / annotations with
// what the plugin's Encrypt of the same seed returned, BuildKmsV2: encrypted_data is copied byte
// for byte, and fields we do not know are kept.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/secret.h"

namespace kshield::envelope {

// Limits kube-apiserver enforces when it decodes an EncryptedObject
// (k8s.io/apiserver/.../envelope/kmsv2: ValidateEncryptedObject).
inline constexpr size_t kKmsV2MaxKeyIdSize = 1024;
inline constexpr size_t kKmsV2MaxDekSourceSize = 1024;
inline constexpr size_t kKmsV2MaxAnnotationsSize = 32 * 1024;  // sum of key and value sizes
// encryptedData layout (type 1).
inline constexpr size_t kKmsV2InfoSize = 32;
inline constexpr size_t kKmsV2DerivedKeySize = 32;
inline constexpr size_t kKmsV2MinSeedSize = 32;  // the apiserver refuses shorter seeds

enum class DekSourceType : int {
  kAesGcmKey = 0,                   // AES_GCM_KEY (apiserver <= 1.28 default)
  kHkdfSha256XNonceAesGcmSeed = 1,  // HKDF_SHA256_XNONCE_AES_GCM_SEED (default since 1.29)
};

struct KmsV2Value {
  std::string provider;              // from the prefix; non-empty, no ':'
  std::string key_id;                // keyID: non-empty, <= 1 KiB
  std::string encrypted_dek_source;  // encryptedDEKSource: non-empty, <= 1 KiB
  DekSourceType dek_source_type = DekSourceType::kHkdfSha256XNonceAesGcmSeed;
  // Annotation keys are fully qualified domain names; keys + values <= 32 KiB. A key repeated on
  // the wire keeps its last value (as Go's decoder does).
  std::map<std::string, std::string> annotations;
  std::string encrypted_data;  // encryptedData: non-empty
  // Serialized protobuf fields this version does not know; BuildKmsV2 writes them back unchanged.
  std::string unknown_fields;
};

// Parses and validates like the apiserver: a value it would refuse is refused here with
// InvalidArgument and a message naming the field (never echoing value bytes).
absl::StatusOr<KmsV2Value> ParseKmsV2(std::string_view etcd_value);

// The apiserver's checks on a decoded EncryptedObject, plus a usable provider name.
absl::Status ValidateKmsV2Value(const KmsV2Value& value);

// `k8s:enc:kms:v2:<provider>:` + EncryptedObject (deterministic field and annotation order, then
// value.unknown_fields). Validates first: a value the apiserver could not read is never built.
absl::StatusOr<std::string> BuildKmsV2(const KmsV2Value& value);
// Same, with `provider` in place of value.provider.
absl::StatusOr<std::string> BuildKmsV2(std::string_view provider, const KmsV2Value& value);

// Decrypts value.encrypted_data with the plaintext DEK (type 0: 16, 24 or 32 bytes) or seed
// (type 1: >= 32 bytes). Any failure of the data itself (short, bad tag, wrong etcd key) returns
// InvalidArgument("authentication failed"), whatever the reason; a DEK / seed of the wrong size is
// InvalidArgument with its own message (the caller's input, not the value's).
absl::StatusOr<std::string> DecryptKmsV2Data(const KmsV2Value& value,
                                             const SecretBytes& dek_or_seed,
                                             std::string_view etcd_key);

// The apiserver's write side (for the apiserver simulator and tests): encryptedData for
// `plaintext` stored at `etcd_key`. Type 1 draws a fresh random info (32) per call, so each write
// has its own derived key; both types draw a random 12-byte nonce.
absl::StatusOr<std::string> EncryptKmsV2Data(DekSourceType type, const SecretBytes& dek_or_seed,
                                             std::string_view plaintext, std::string_view etcd_key);

// True for a syntactically valid annotation key (k8s IsFullyQualifiedDomainName: a DNS-1123
// subdomain of at least two labels, each label <= 63, total <= 253, one trailing '.' allowed).
bool IsFullyQualifiedDomainName(std::string_view name);

}  // namespace kshield::envelope
