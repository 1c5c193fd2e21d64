#include "envelope/kms_v2.h"

#include <climits>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "crypto/aead.h"
#include "crypto/hkdf.h"
#include "crypto/random.h"
#include "envelope/byte_reader.h"
#include "envelope/value_kind.h"
#include "google/protobuf/unknown_field_set.h"
#include "k8s_envelope.pb.h"

namespace kshield::envelope {
namespace {

namespace pb = ::kshield::k8s::envelope;

absl::Status Invalid(std::string_view msg) {
  return absl::InvalidArgumentError(AV(absl::StrCat("KMS v2 value: ", AV(msg))));
}

absl::Status AuthFailed() { return absl::InvalidArgumentError(AV(crypto::kAuthFailed)); }

bool IsDns1123Label(std::string_view label) {
  // [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters.
  if (label.empty() || label.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(label.front()) || !alnum(label.back())) return false;
  for (char c : label) {
    if (!alnum(c) && c != '-') return false;
  }
  return true;
}

}  // namespace

bool IsFullyQualifiedDomainName(std::string_view name) {
  // k8s.io/apimachinery/pkg/util/validation/field IsFullyQualifiedDomainName.
  if (name.empty()) return false;
  if (name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return false;  // IsDNS1123Subdomain: <= 253
  size_t labels = 0;
  while (true) {
    const size_t dot = name.find('.');
    if (!IsDns1123Label(name.substr(0, dot))) return false;  // also refuses empty labels
    ++labels;
    if (dot == std::string_view::npos) break;
    name.remove_prefix(dot + 1);
  }
  return labels >= 2;
}

absl::Status ValidateKmsV2Value(const KmsV2Value& value) {
  if (value.provider.empty() || value.provider.find(':') != std::string::npos) {
    return Invalid("provider name must be non-empty and must not contain ':'");
  }
  switch (value.dek_source_type) {
    case DekSourceType::kAesGcmKey:
    case DekSourceType::kHkdfSha256XNonceAesGcmSeed:
      break;
    default:
      return Invalid(
          absl::StrCat("unknown encryptedDEKSourceType ", static_cast<int>(value.dek_source_type)));
  }
  if (value.encrypted_data.empty()) return Invalid("encryptedData is empty");
  if (value.encrypted_dek_source.empty()) return Invalid("encryptedDEKSource is empty");
  if (value.encrypted_dek_source.size() > kKmsV2MaxDekSourceSize) {
    return Invalid(absl::StrCat("encryptedDEKSource is ", value.encrypted_dek_source.size(),
                                " bytes, more than ", kKmsV2MaxDekSourceSize));
  }
  if (value.key_id.empty()) return Invalid("keyID is empty");
  if (value.key_id.size() > kKmsV2MaxKeyIdSize) {
    return Invalid(
        absl::StrCat("keyID is ", value.key_id.size(), " bytes, more than ", kKmsV2MaxKeyIdSize));
  }
  size_t total = 0;
  for (const auto& [k, v] : value.annotations) {
    if (!IsFullyQualifiedDomainName(k)) {
      return Invalid("an annotation key is not a fully qualified domain name");
    }
    total += k.size() + v.size();
  }
  if (total > kKmsV2MaxAnnotationsSize) {
    return Invalid(
        absl::StrCat("annotations total ", total, " bytes, more than ", kKmsV2MaxAnnotationsSize));
  }
  return absl::OkStatus();
}

absl::StatusOr<KmsV2Value> ParseKmsV2(std::string_view etcd_value) {
  if (etcd_value.size() > kMaxValueSize) return Invalid("larger than the maximum value size");
  const ValuePrefix prefix = SplitValuePrefix(etcd_value);
  if (prefix.kind != ValueKind::kKmsV2) {
    return Invalid(absl::StrCat("no k8s:enc:kms:v2:<provider>: prefix (value kind ",
                                AV(ValueKindName(prefix.kind)), ")"));
  }
  pb::EncryptedObject obj;
  if (!obj.ParseFromArray(prefix.payload.data(), static_cast<int>(prefix.payload.size()))) {
    return Invalid("malformed EncryptedObject protobuf");
  }
  KmsV2Value out;
  out.provider = std::string(prefix.provider);
  out.key_id = std::move(*obj.mutable_key_id());
  out.encrypted_dek_source = std::move(*obj.mutable_encrypted_dek_source());
  out.dek_source_type = static_cast<DekSourceType>(obj.encrypted_dek_source_type());
  out.encrypted_data = std::move(*obj.mutable_encrypted_data());
  for (pb::BytesEntry& e : *obj.mutable_annotations()) {
    out.annotations[e.key()] = std::move(*e.mutable_value());  // last one wins, as in Go
  }
  const google::protobuf::UnknownFieldSet& unknown = obj.GetReflection()->GetUnknownFields(obj);
  if (!unknown.empty() && !unknown.SerializeToString(&out.unknown_fields)) {
    return Invalid("unknown fields could not be kept");
  }
  KSH_RETURN_IF_ERROR(ValidateKmsV2Value(out));
  return out;
}

absl::StatusOr<std::string> BuildKmsV2(const KmsV2Value& value) {
  KSH_RETURN_IF_ERROR(ValidateKmsV2Value(value));
  pb::EncryptedObject obj;
  obj.set_encrypted_data(value.encrypted_data);
  obj.set_key_id(value.key_id);
  obj.set_encrypted_dek_source(value.encrypted_dek_source);
  for (const auto& [k, v] : value.annotations) {  // std::map: sorted, so the output is stable
    pb::BytesEntry* e = obj.add_annotations();
    e->set_key(k);
    e->set_value(v);
  }
  obj.set_encrypted_dek_source_type(
      static_cast<pb::EncryptedDEKSourceType>(static_cast<int>(value.dek_source_type)));
  if (!value.unknown_fields.empty() &&
      !obj.GetReflection()->MutableUnknownFields(&obj)->ParseFromString(value.unknown_fields)) {
    return Invalid("unknown_fields is not valid protobuf");
  }
  std::string out = absl::StrCat(AV(kKmsV2Prefix), value.provider, ":");
  if (!obj.AppendToString(&out)) return absl::InternalError("KMS v2 value: serialization failed");
  if (out.size() > kMaxValueSize) return Invalid("larger than the maximum value size");
  return out;
}

absl::StatusOr<std::string> BuildKmsV2(std::string_view provider, const KmsV2Value& value) {
  KmsV2Value copy = value;
  copy.provider = std::string(provider);
  return BuildKmsV2(copy);
}

absl::StatusOr<std::string> DecryptKmsV2Data(const KmsV2Value& value,
                                             const SecretBytes& dek_or_seed,
                                             std::string_view etcd_key) {
  ByteReader r(value.encrypted_data);
  switch (value.dek_source_type) {
    case DekSourceType::kAesGcmKey: {
      if (dek_or_seed.size() != 16 && dek_or_seed.size() != 24 && dek_or_seed.size() != 32) {
        return absl::InvalidArgumentError(absl::StrCat(
            "KMS v2 AES_GCM_KEY: the DEK must be 16, 24 or 32 bytes, got ", dek_or_seed.size()));
      }
      std::string_view nonce;
      if (!r.Read(crypto::kAesGcmNonceSize, &nonce)) return AuthFailed();
      return crypto::AesGcmOpen(dek_or_seed, nonce, r.rest(), etcd_key);
    }
    case DekSourceType::kHkdfSha256XNonceAesGcmSeed: {
      if (dek_or_seed.size() < kKmsV2MinSeedSize) {
        return absl::InvalidArgumentError(absl::StrCat("KMS v2 HKDF seed must be at least ",
                                                       kKmsV2MinSeedSize, " bytes, got ",
                                                       dek_or_seed.size()));
      }
      std::string_view info, nonce;
      if (!r.Read(kKmsV2InfoSize, &info) || !r.Read(crypto::kAesGcmNonceSize, &nonce)) {
        return AuthFailed();
      }
      KSH_ASSIGN_OR_RETURN(SecretBytes dek,
                           crypto::HkdfExpandSha256(dek_or_seed, info, kKmsV2DerivedKeySize));
      return crypto::AesGcmOpen(dek, nonce, r.rest(), etcd_key);
    }
  }
  return Invalid(
      absl::StrCat("unknown encryptedDEKSourceType ", static_cast<int>(value.dek_source_type)));
}

absl::StatusOr<std::string> EncryptKmsV2Data(DekSourceType type, const SecretBytes& dek_or_seed,
                                             std::string_view plaintext,
                                             std::string_view etcd_key) {
  switch (type) {
    case DekSourceType::kAesGcmKey: {
      const std::string nonce = crypto::RandomString(crypto::kAesGcmNonceSize);
      KSH_ASSIGN_OR_RETURN(std::string sealed,
                           crypto::AesGcmSeal(dek_or_seed, nonce, plaintext, etcd_key));
      return absl::StrCat(nonce, sealed);
    }
    case DekSourceType::kHkdfSha256XNonceAesGcmSeed: {
      if (dek_or_seed.size() < kKmsV2MinSeedSize) {
        return absl::InvalidArgumentError(absl::StrCat("KMS v2 HKDF seed must be at least ",
                                                       kKmsV2MinSeedSize, " bytes, got ",
                                                       dek_or_seed.size()));
      }
      const std::string info = crypto::RandomString(kKmsV2InfoSize);
      const std::string nonce = crypto::RandomString(crypto::kAesGcmNonceSize);
      KSH_ASSIGN_OR_RETURN(SecretBytes dek,
                           crypto::HkdfExpandSha256(dek_or_seed, info, kKmsV2DerivedKeySize));
      KSH_ASSIGN_OR_RETURN(std::string sealed, crypto::AesGcmSeal(dek, nonce, plaintext, etcd_key));
      return absl::StrCat(info, nonce, sealed);
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown KMS v2 DEK source type ", static_cast<int>(type)));
}

}  // namespace kshield::envelope
