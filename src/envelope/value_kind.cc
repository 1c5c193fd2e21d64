#include "envelope/value_kind.h"

#include "envelope/byte_reader.h"

namespace kshield::envelope {
namespace {

struct PrefixEntry {
  std::string_view prefix;
  ValueKind kind;
};

constexpr PrefixEntry kPrefixes[] = {
    {kKmsV2Prefix, ValueKind::kKmsV2},         {kKmsV1Prefix, ValueKind::kKmsV1},
    {kAesGcmPrefix, ValueKind::kAesGcm},       {kAesCbcPrefix, ValueKind::kAesCbc},
    {kSecretboxPrefix, ValueKind::kSecretbox},
};

}  // namespace

ValuePrefix SplitValuePrefix(std::string_view etcd_value) {
  for (const PrefixEntry& e : kPrefixes) {
    ByteReader r(etcd_value);
    if (!r.Skip(e.prefix)) continue;
    // The provider name runs to the next ':' (the apiserver refuses names containing ':').
    std::string_view provider;
    if (!r.ReadUntil(':', &provider) || provider.empty()) return {};
    return {e.kind, provider, r.rest()};
  }
  if (etcd_value.starts_with(kProtobufMagic) || etcd_value.starts_with('{')) {
    return {ValueKind::kIdentity, {}, etcd_value};
  }
  return {};
}

std::string_view ValueKindName(ValueKind kind) {
  switch (kind) {
    case ValueKind::kIdentity:
      return "identity";
    case ValueKind::kKmsV2:
      return "kms-v2";
    case ValueKind::kKmsV1:
      return "kms-v1";
    case ValueKind::kAesGcm:
      return "aesgcm";
    case ValueKind::kAesCbc:
      return "aescbc";
    case ValueKind::kSecretbox:
      return "secretbox";
    case ValueKind::kUnknown:
      break;
  }
  return "unknown";
}

}  // namespace kshield::envelope
