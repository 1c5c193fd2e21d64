// KMS v1 values as kube-apiserver stores them in etcd (DESIGN.md §4; k8s.io/apiserver
// pkg/storage/value/encrypt/envelope, envelope.go):
//
//   k8s:enc:kms:v1:<provider>:  ‖  uint16 BE n  ‖  wrapped DEK (n bytes)  ‖  data
//
//   data, apiserver >= 1.25: nonce(12) ‖ AES-GCM ct ‖ tag(16), AAD = the full etcd key
//   data, older:             IV(16) ‖ AES-CBC ct with PKCS#7 padding, no AAD (unauthenticated)
//
// v1 wraps a new DEK on every write (one plugin Encrypt per Secret write, one Decrypt per read).
//
//   KSH_ASSIGN_OR_RETURN(KmsV1Value v, ParseKmsV1(etcd_value));
//   KSH_ASSIGN_OR_RETURN(SecretBytes dek, plugin.Decrypt(v.wrapped_dek));
//   KSH_ASSIGN_OR_RETURN(std::string plain, DecryptKmsV1Data(v.data, dek, etcd_key));
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/secret.h"

namespace kshield::envelope {

inline constexpr size_t kKmsV1MaxWrappedDekSize = 0xffff;  // what a uint16 length can say
inline constexpr size_t kAesCbcBlockSize = 16;

struct KmsV1Value {
  std::string provider;     // from the prefix; non-empty, no ':'
  std::string wrapped_dek;  // the plugin's ciphertext of the DEK; non-empty
  std::string data;         // the DEK's ciphertext of the object (GCM or, before 1.25, CBC)
};

// Refuses (InvalidArgument, message naming the problem): another prefix, a value shorter than the
// length field, a length larger than what follows, an empty wrapped DEK.
absl::StatusOr<KmsV1Value> ParseKmsV1(std::string_view etcd_value);

// `k8s:enc:kms:v1:<provider>:` ‖ u16 BE ‖ wrapped_dek ‖ data. Refuses a provider that is empty or
// contains ':', an empty or > 65535-byte wrapped DEK.
absl::StatusOr<std::string> BuildKmsV1(std::string_view provider, std::string_view wrapped_dek,
                                       std::string_view data);

// GCM data (apiserver >= 1.25). Every failure of the data returns InvalidArgument("authentication
// failed"); a DEK that is not 16, 24 or 32 bytes is InvalidArgument with its own message.
absl::StatusOr<std::string> DecryptKmsV1Data(std::string_view data, const SecretBytes& dek,
                                             std::string_view etcd_key);

// CBC data (apiserver < 1.25): IV(16) ‖ ciphertext, a non-zero multiple of 16 bytes, strict
// PKCS#7 (last byte p in 1..16, the last p bytes all equal p). CBC is not authenticated: success
// only means the padding was well formed (about 1 in 256 wrong keys pass), so check the result
// (e.g. DecodeSecret) before trusting it. Every failure returns InvalidArgument("authentication
// failed"), whatever the reason, so padding errors are no oracle.
absl::StatusOr<std::string> DecryptKmsV1CbcData(std::string_view data, const SecretBytes& dek);

// For a reader that does not know which apiserver version wrote a v1 value: GCM first; if that
// fails and `data` has a CBC shape, CBC, accepted only if the result looks like a stored object
// (`k8s\0` protobuf or JSON). Failures return InvalidArgument("authentication failed").
absl::StatusOr<std::string> DecryptKmsV1DataGcmOrCbc(std::string_view data, const SecretBytes& dek,
                                                     std::string_view etcd_key);

// The apiserver's write side (simulator and tests): nonce(12, random) ‖ ct ‖ tag, AAD = etcd key.
absl::StatusOr<std::string> EncryptKmsV1Data(const SecretBytes& dek, std::string_view plaintext,
                                             std::string_view etcd_key);
// The pre-1.25 write side, for tests of the CBC read path only: IV(16, random) ‖ CBC(PKCS#7).
absl::StatusOr<std::string> EncryptKmsV1CbcData(const SecretBytes& dek, std::string_view plaintext);

}  // namespace kshield::envelope
