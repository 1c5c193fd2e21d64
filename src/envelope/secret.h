// The decrypted etcd value of a Secret: kube-apiserver's protobuf encoding (DESIGN.md §4)
//
//   "k8s\0" ‖ runtime.Unknown { typeMeta {apiVersion "v1", kind "Secret"}, raw = v1.Secret }
//
// which is also exactly what the `identity` provider stores. DecodeSecret reads enough of it for
// kshieldctl (show, scan, `etcd decrypt --out DIR`); EncodeSecret writes it (apiserver simulator,
// tests); SecretToYaml renders a kubectl-appliable manifest.
//
//   KSH_ASSIGN_OR_RETURN(SecretInfo s, DecodeSecret(plaintext));
//   std::string yaml = SecretToYaml(s);  // holds the Secret's values: write it 0600, never log it
//
// Where Secret values live: `data` and `string_data` values are SecretBytes (protected memory,
// zeroized). Everything else (names, labels, annotations) is metadata in std::string. Note that
// the annotation `kubectl.kubernetes.io/last-applied-configuration`, when present, repeats the
// Secret's data in clear: treat a whole SecretInfo as sensitive.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/secret.h"

namespace kshield::envelope {

struct SecretInfo {
  std::string api_version;  // always "v1" after DecodeSecret
  std::string kind;         // always "Secret" after DecodeSecret
  // metadata
  std::string namespace_name;  // metadata.namespace; non-empty after DecodeSecret
  std::string name;            // metadata.name; non-empty after DecodeSecret
  std::string generate_name;
  std::string uid;
  std::string resource_version;  // usually empty in etcd (the revision is etcd's mod_revision)
  std::optional<int64_t> creation_timestamp_seconds;  // Unix seconds, when set
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  // the Secret itself
  std::string type;                                // e.g. "Opaque", "kubernetes.io/tls"
  std::map<std::string, SecretBytes> data;         // name -> value bytes
  std::map<std::string, SecretBytes> string_data;  // write-only upstream; normally absent in etcd
  std::optional<bool> immutable;
};

// Refuses (InvalidArgument, message naming the problem, never echoing content): a missing `k8s\0`
// magic, malformed runtime.Unknown / v1.Secret protobuf, apiVersion/kind other than v1/Secret,
// a contentEncoding (none is used for storage), a contentType other than empty or
// "application/vnd.kubernetes.protobuf", an empty name or namespace. Map keys repeated on the wire
// keep their last value (as Go's decoder does). Fields not read here are ignored.
absl::StatusOr<SecretInfo> DecodeSecret(std::string_view plaintext);

// "k8s\0" + runtime.Unknown{v1, Secret, raw = v1.Secret}: the fields of SecretInfo listed above
// (api_version / kind are always written as v1 / Secret). DecodeSecret(EncodeSecret(s)) gives s
// back. Refuses an empty name or namespace.
absl::StatusOr<std::string> EncodeSecret(const SecretInfo& secret);

// A v1 Secret manifest for `kubectl apply -f` / `kubectl create -f`: apiVersion, kind,
// metadata.{name, namespace, labels, annotations}, type, immutable, data (base64) and stringData.
// uid, resourceVersion and creationTimestamp are server-set (applying them to another cluster
// fails), so the uid only appears in a leading comment. Every string is a double-quoted YAML
// scalar with JSON-style escapes; bytes that are not UTF-8 become U+FFFD, as `kubectl get -o
// yaml` would show them (data values are base64 and exact). The result holds Secret values.
std::string SecretToYaml(const SecretInfo& secret);

}  // namespace kshield::envelope
