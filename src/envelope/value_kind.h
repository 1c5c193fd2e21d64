// Which storage transformer wrote an etcd value (DESIGN.md §4). kube-apiserver prefixes every
// encrypted value with `k8s:enc:<scheme>:<version>:<provider name>:`; an unencrypted (identity)
// value is the plain encoding itself: `k8s\0` + protobuf, or JSON (`{`).
//
//   ValuePrefix p = SplitValuePrefix(value);
//   if (p.kind == ValueKind::kKmsV2) { ... p.provider == "kms-provider" ... }
//
// Classification looks at the prefix only; it never fails and never reads past the input. A
// value that starts like an encrypted one but lacks the provider segment is kUnknown.
#pragma once

#include <cstddef>
#include <string_view>

namespace kshield::envelope {

enum class ValueKind {
  kIdentity,   // `k8s\0` protobuf or JSON, not encrypted
  kKmsV2,      // k8s:enc:kms:v2:<provider>:
  kKmsV1,      // k8s:enc:kms:v1:<provider>:
  kAesGcm,     // k8s:enc:aesgcm:v1:<key name>:
  kAesCbc,     // k8s:enc:aescbc:v1:<key name>:
  kSecretbox,  // k8s:enc:secretbox:v1:<key name>:
  kUnknown,
};

inline constexpr std::string_view kKmsV2Prefix = "k8s:enc:kms:v2:";
inline constexpr std::string_view kKmsV1Prefix = "k8s:enc:kms:v1:";
inline constexpr std::string_view kAesGcmPrefix = "k8s:enc:aesgcm:v1:";
inline constexpr std::string_view kAesCbcPrefix = "k8s:enc:aescbc:v1:";
inline constexpr std::string_view kSecretboxPrefix = "k8s:enc:secretbox:v1:";
// The apiserver's protobuf serializer writes this magic before runtime.Unknown.
inline constexpr std::string_view kProtobufMagic{"k8s\0", 4};

// The largest etcd value any parser here accepts (etcd's default request limit is 1.5 MiB and the
// apiserver caps objects near 3 MiB; this only keeps sizes far from int overflow).
inline constexpr size_t kMaxValueSize = 64 * 1024 * 1024;

struct ValuePrefix {
  ValueKind kind = ValueKind::kUnknown;
  // The EncryptionConfiguration provider / key name from the prefix (non-empty, no ':') for the
  // encrypted kinds; empty for kIdentity and kUnknown.
  std::string_view provider;
  // The bytes after the prefix; for kIdentity the whole value; for kUnknown empty.
  std::string_view payload;
};

// Views point into `etcd_value`.
ValuePrefix SplitValuePrefix(std::string_view etcd_value);

inline ValueKind ClassifyValue(std::string_view etcd_value) {
  return SplitValuePrefix(etcd_value).kind;
}

// Stable lowercase names for reports and metric labels: "identity", "kms-v2", "kms-v1",
// "aesgcm", "aescbc", "secretbox", "unknown".
std::string_view ValueKindName(ValueKind kind);

}  // namespace kshield::envelope
