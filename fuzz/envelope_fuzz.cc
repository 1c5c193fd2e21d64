// Fuzz target: src/envelope/, the parsers of values read from etcd (untrusted: anyone with etcd
// write access, or a corrupted disk, chooses these bytes). Invariants checked on every input:
//  - no parse crashes or reads outside the input;
//  - ClassifyValue agrees with the parsers: ParseKmsV2 / ParseKmsV1 succeed only on values
//    classified as kKmsV2 / kKmsV1;
//  - a parsed KMS v2 value respects the apiserver's bounds, and BuildKmsV2 of it parses back to
//    the same fields (rewrap never produces a value the apiserver cannot read);
//  - a parsed KMS v1 value rebuilds to the input byte for byte;
//  - DecodeSecret of the input and of the input after the `k8s\0` magic never crashes; a decoded
//    Secret re-encodes and decodes to the same metadata; SecretToYaml never crashes;
//  - decrypting with a fixed key never crashes, and fails with InvalidArgument.
//
// fuzz-libs: kshield_envelope
// fuzz-sources: src/envelope/value_kind.cc src/envelope/kms_v2.cc src/envelope/kms_v1.cc src/envelope/secret.cc
// (the clang build also compiles proto/k8s_envelope.proto, as it does keyset.proto)
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/secret.h"
#include "envelope/envelope.h"
#include "fuzz_check.h"

namespace env = kshield::envelope;

namespace {

void CheckSecret(std::string_view in) {
  auto s = env::DecodeSecret(in);
  if (!s.ok()) {
    FUZZ_CHECK(s.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  FUZZ_CHECK(!s->name.empty() && !s->namespace_name.empty());
  FUZZ_CHECK(s->api_version == "v1" && s->kind == "Secret");
  const std::string yaml = env::SecretToYaml(*s);
  FUZZ_CHECK(yaml.find("kind: Secret\n") != std::string::npos);
  auto encoded = env::EncodeSecret(*s);
  FUZZ_CHECK(encoded.ok());
  auto again = env::DecodeSecret(*encoded);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->name == s->name && again->namespace_name == s->namespace_name);
  FUZZ_CHECK(again->labels == s->labels && again->annotations == s->annotations);
  FUZZ_CHECK(again->data.size() == s->data.size());
  for (const auto& [k, v] : s->data) {
    auto it = again->data.find(k);
    FUZZ_CHECK(it != again->data.end() && it->second.Equals(v));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  static const kshield::SecretBytes* const kKey = new kshield::SecretBytes(
      kshield::SecretBytes::CopyFrom(std::string_view("0123456789abcdef0123456789abcdef")));

  const env::ValuePrefix prefix = env::SplitValuePrefix(in);
  FUZZ_CHECK(env::ClassifyValue(in) == prefix.kind);
  FUZZ_CHECK(env::ValueKindName(prefix.kind) != "");
  if (!prefix.provider.empty()) {
    FUZZ_CHECK(prefix.provider.find(':') == std::string_view::npos);
    FUZZ_CHECK(prefix.payload.data() + prefix.payload.size() == in.data() + in.size());
  }

  auto v2 = env::ParseKmsV2(in);
  FUZZ_CHECK(!v2.ok() || prefix.kind == env::ValueKind::kKmsV2);
  if (v2.ok()) {
    FUZZ_CHECK(!v2->key_id.empty() && v2->key_id.size() <= env::kKmsV2MaxKeyIdSize);
    FUZZ_CHECK(!v2->encrypted_dek_source.empty() &&
               v2->encrypted_dek_source.size() <= env::kKmsV2MaxDekSourceSize);
    FUZZ_CHECK(!v2->encrypted_data.empty());
    FUZZ_CHECK(v2->provider == prefix.provider);
    auto built = env::BuildKmsV2(*v2);
    FUZZ_CHECK(built.ok());
    auto again = env::ParseKmsV2(*built);
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(again->key_id == v2->key_id && again->encrypted_data == v2->encrypted_data &&
               again->encrypted_dek_source == v2->encrypted_dek_source &&
               again->dek_source_type == v2->dek_source_type &&
               again->annotations == v2->annotations &&
               again->unknown_fields == v2->unknown_fields);
    auto plain = env::DecryptKmsV2Data(*v2, *kKey, "/registry/secrets/ns/name");
    FUZZ_CHECK(!plain.ok() || plain->size() < in.size());
    if (!plain.ok()) FUZZ_CHECK(plain.status().code() == absl::StatusCode::kInvalidArgument);
  } else {
    FUZZ_CHECK(v2.status().code() == absl::StatusCode::kInvalidArgument);
  }

  auto v1 = env::ParseKmsV1(in);
  FUZZ_CHECK(!v1.ok() || prefix.kind == env::ValueKind::kKmsV1);
  if (v1.ok()) {
    auto built = env::BuildKmsV1(v1->provider, v1->wrapped_dek, v1->data);
    FUZZ_CHECK(built.ok() && *built == in);
    auto gcm = env::DecryptKmsV1Data(v1->data, *kKey, "/registry/secrets/ns/name");
    if (!gcm.ok()) FUZZ_CHECK(gcm.status().code() == absl::StatusCode::kInvalidArgument);
    auto cbc = env::DecryptKmsV1CbcData(v1->data, *kKey);
    if (!cbc.ok()) FUZZ_CHECK(cbc.status().code() == absl::StatusCode::kInvalidArgument);
  }

  CheckSecret(in);
  // Most inputs lack the magic; also try them as the protobuf behind it.
  std::string with_magic(env::kProtobufMagic);
  with_magic.append(in);
  CheckSecret(with_magic);
  return 0;
}
