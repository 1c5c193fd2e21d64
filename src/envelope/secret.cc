#include "envelope/secret.h"

#include <openssl/crypto.h>

#include <climits>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "envelope/value_kind.h"
#include "k8s_envelope.pb.h"

namespace kshield::envelope {
namespace {

namespace pb = ::kshield::k8s::envelope;

constexpr std::string_view kProtobufContentType = "application/vnd.kubernetes.protobuf";

absl::Status Invalid(std::string_view msg) {
  return absl::InvalidArgumentError(AV(absl::StrCat("Secret: ", AV(msg))));
}

void Cleanse(std::string* s) {
  if (!s->empty()) OPENSSL_cleanse(s->data(), s->size());
}

// Map entries, last one wins (Go's decoder overwrites on a repeated key).
std::map<std::string, std::string> ToStringMap(
    const google::protobuf::RepeatedPtrField<pb::BytesEntry>& entries) {
  std::map<std::string, std::string> out;
  for (const pb::BytesEntry& e : entries) out[e.key()] = e.value();
  return out;
}

// Moves values into protected memory and clears the protobuf's copies.
std::map<std::string, SecretBytes> ToSecretMap(
    google::protobuf::RepeatedPtrField<pb::BytesEntry>* entries) {
  std::map<std::string, SecretBytes> out;
  for (pb::BytesEntry& e : *entries) {
    out[e.key()] = SecretBytes::CopyFrom(std::string_view(e.value()));
    Cleanse(e.mutable_value());
  }
  return out;
}

void AddEntries(const std::map<std::string, std::string>& m,
                google::protobuf::RepeatedPtrField<pb::BytesEntry>* out) {
  for (const auto& [k, v] : m) {
    pb::BytesEntry* e = out->Add();
    e->set_key(k);
    e->set_value(v);
  }
}

void AddSecretEntries(const std::map<std::string, SecretBytes>& m,
                      google::protobuf::RepeatedPtrField<pb::BytesEntry>* out) {
  for (const auto& [k, v] : m) {
    pb::BytesEntry* e = out->Add();
    e->set_key(k);
    e->set_value(std::string(v.UnsafeStringView()));
  }
}

void CleanseEntries(google::protobuf::RepeatedPtrField<pb::BytesEntry>* entries) {
  for (pb::BytesEntry& e : *entries) Cleanse(e.mutable_value());
}

// ---- YAML
// ----------------------------------------------------------------------------------------

// Decodes one UTF-8 sequence at s[i]; returns its length, or 0 if it is not valid UTF-8 (overlong,
// surrogate, > U+10FFFF, truncated).
size_t DecodeUtf8(std::string_view s, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  const uint8_t c = b(0);
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t n = 0;
  uint32_t v = 0;
  uint32_t min = 0;
  if ((c & 0xe0) == 0xc0) {
    n = 2;
    v = c & 0x1f;
    min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    n = 3;
    v = c & 0x0f;
    min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    n = 4;
    v = c & 0x07;
    min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() - i < n) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xc0) != 0x80) return 0;
    v = (v << 6) | (b(k) & 0x3f);
  }
  if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return n;
}

// A double-quoted YAML scalar (YAML 1.2 double-quoted style is a superset of JSON strings). Control
// and line-separator characters are escaped; invalid UTF-8 becomes U+FFFD.
std::string Quote(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "\"";
  out.reserve(s.size() + 2);
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp = 0;
    size_t n = DecodeUtf8(s, i, &cp);
    if (n == 0) {
      out += "\\uFFFD";
      ++i;
      continue;
    }
    if (cp == '"') {
      out += "\\\"";
    } else if (cp == '\\') {
      out += "\\\\";
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 ||
               cp == 0x2029 || cp == 0xfeff) {
      out += "\\u";
      for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(cp >> shift) & 0xf];
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  out += '"';
  return out;
}

void AppendStringMap(std::string* out, std::string_view indent,
                     const std::map<std::string, std::string>& m) {
  for (const auto& [k, v] : m) absl::StrAppend(out, AV(indent), Quote(k), ": ", Quote(v), "\n");
}

}  // namespace

absl::StatusOr<SecretInfo> DecodeSecret(std::string_view plaintext) {
  if (plaintext.size() > kMaxValueSize) return Invalid("larger than the maximum value size");
  if (!plaintext.starts_with(kProtobufMagic)) {
    return Invalid("not a Kubernetes protobuf value (no k8s\\0 magic)");
  }
  plaintext.remove_prefix(kProtobufMagic.size());
  pb::Unknown unknown;
  if (!unknown.ParseFromArray(plaintext.data(), static_cast<int>(plaintext.size()))) {
    return Invalid("malformed runtime.Unknown protobuf");
  }
  if (unknown.type_meta().api_version() != "v1" || unknown.type_meta().kind() != "Secret") {
    Cleanse(unknown.mutable_raw());
    return Invalid("apiVersion/kind is not v1/Secret");
  }
  if (!unknown.content_encoding().empty() ||
      (!unknown.content_type().empty() && unknown.content_type() != kProtobufContentType)) {
    Cleanse(unknown.mutable_raw());
    return Invalid("unsupported contentEncoding or contentType");
  }
  pb::Secret secret;
  const bool parsed = secret.ParseFromString(unknown.raw());
  Cleanse(unknown.mutable_raw());
  if (!parsed) {
    CleanseEntries(secret.mutable_data());
    CleanseEntries(secret.mutable_string_data());
    return Invalid("malformed v1.Secret protobuf");
  }

  SecretInfo out;
  out.api_version = "v1";
  out.kind = "Secret";
  const pb::ObjectMeta& meta = secret.metadata();
  out.namespace_name = meta.namespace_();
  out.name = meta.name();
  out.generate_name = meta.generate_name();
  out.uid = meta.uid();
  out.resource_version = meta.resource_version();
  if (meta.has_creation_timestamp()) {
    out.creation_timestamp_seconds = meta.creation_timestamp().seconds();
  }
  out.labels = ToStringMap(meta.labels());
  out.annotations = ToStringMap(meta.annotations());
  out.type = secret.type();
  out.data = ToSecretMap(secret.mutable_data());
  out.string_data = ToSecretMap(secret.mutable_string_data());
  if (secret.has_immutable()) out.immutable = secret.immutable();
  if (out.name.empty()) return Invalid("metadata.name is empty");
  if (out.namespace_name.empty()) return Invalid("metadata.namespace is empty");
  return out;
}

absl::StatusOr<std::string> EncodeSecret(const SecretInfo& s) {
  if (s.name.empty() || s.namespace_name.empty()) {
    return Invalid("metadata.name and metadata.namespace must be set");
  }
  pb::Secret secret;
  pb::ObjectMeta* meta = secret.mutable_metadata();
  meta->set_name(s.name);
  meta->set_generate_name(s.generate_name);
  meta->set_namespace_(s.namespace_name);
  meta->set_uid(s.uid);
  meta->set_resource_version(s.resource_version);
  if (s.creation_timestamp_seconds.has_value()) {
    meta->mutable_creation_timestamp()->set_seconds(*s.creation_timestamp_seconds);
  }
  AddEntries(s.labels, meta->mutable_labels());
  AddEntries(s.annotations, meta->mutable_annotations());
  AddSecretEntries(s.data, secret.mutable_data());
  secret.set_type(s.type);
  AddSecretEntries(s.string_data, secret.mutable_string_data());
  if (s.immutable.has_value()) secret.set_immutable(*s.immutable);

  pb::Unknown unknown;
  unknown.mutable_type_meta()->set_api_version("v1");
  unknown.mutable_type_meta()->set_kind("Secret");
  const bool raw_ok = secret.SerializeToString(unknown.mutable_raw());
  CleanseEntries(secret.mutable_data());
  CleanseEntries(secret.mutable_string_data());
  std::string out(kProtobufMagic);
  const bool ok = raw_ok && unknown.AppendToString(&out);
  Cleanse(unknown.mutable_raw());
  if (!ok) {
    Cleanse(&out);
    return absl::InternalError("Secret: serialization failed");
  }
  return out;
}

std::string SecretToYaml(const SecretInfo& s) {
  std::string out;
  if (!s.uid.empty())
    absl::StrAppend(&out, "# decrypted from etcd; source uid ", Quote(s.uid), "\n");
  absl::StrAppend(&out, "apiVersion: v1\nkind: Secret\nmetadata:\n");
  absl::StrAppend(&out, "  name: ", Quote(s.name), "\n");
  absl::StrAppend(&out, "  namespace: ", Quote(s.namespace_name), "\n");
  if (!s.labels.empty()) {
    absl::StrAppend(&out, "  labels:\n");
    AppendStringMap(&out, "    ", s.labels);
  }
  if (!s.annotations.empty()) {
    absl::StrAppend(&out, "  annotations:\n");
    AppendStringMap(&out, "    ", s.annotations);
  }
  if (!s.type.empty()) absl::StrAppend(&out, "type: ", Quote(s.type), "\n");
  if (s.immutable.has_value()) {
    absl::StrAppend(&out, "immutable: ", *s.immutable ? "true" : "false", "\n");
  }
  if (!s.data.empty()) {
    absl::StrAppend(&out, "data:\n");
    for (const auto& [k, v] : s.data) {
      std::string b64;
      absl::Base64Escape(AV(v.UnsafeStringView()), &b64);
      absl::StrAppend(&out, "  ", Quote(k), ": \"", b64, "\"\n");
      Cleanse(&b64);
    }
  }
  if (!s.string_data.empty()) {
    absl::StrAppend(&out, "stringData:\n");
    for (const auto& [k, v] : s.string_data) {
      std::string q = Quote(v.UnsafeStringView());
      absl::StrAppend(&out, "  ", Quote(k), ": ", q, "\n");
      Cleanse(&q);
    }
  }
  return out;
}

}  // namespace kshield::envelope
