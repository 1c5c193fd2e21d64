// The relay's access policy: which authenticated identities may get a certificate for which
// cluster, and which Kubernetes groups (subject O=) that certificate carries.
//
//   # relay-policy.yaml — unknown keys are errors; rules are additive (a user gets the union of
//   # the groups of every rule that matches them for the cluster)
//   identities:
//     - identity: alice@example.com        # a user name (OIDC username claim / client-cert CN)
//       clusters: [prod, staging]
//       groups: [developers]
//     - identity: "group:sre"              # everyone in corporate group "sre" (OIDC groups
//       clusters: ["*"]                    #   claim; client-cert O= when enabled in the config)
//       groups: [sre, developers]
//     - identity: bob@example.com
//       clusters: [staging]
//       groups: []                         # authenticated as bob, no group
//
// Refused at load time: an identity or a granted group starting with "system:" (any case — the
// relay never mints Kubernetes system identities such as system:masters or system:node:*), a
// cluster the relay does not serve (typo guard; "*" means every cluster), empty or control-
// character names, more than 32 groups in a rule. Refused again at issue time (defence in
// depth): a "system:" user name or group, whatever the policy said.
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kshield::relay {

inline constexpr size_t kMaxPolicyBytes = 1024 * 1024;
inline constexpr size_t kMaxGroupsPerCertificate = 32;
inline constexpr size_t kMaxNameLength = 256;

// True for names Kubernetes reserves: "system:" prefix, compared case-insensitively.
bool IsReservedKubernetesName(std::string_view name);

// A user or group name the relay will put into a certificate: 1..256 bytes, no control
// characters, no leading/trailing space, not reserved. InvalidArgument / PermissionDenied.
absl::Status ValidateSubjectName(std::string_view what, std::string_view name);

struct PolicyRule {
  std::string identity;               // user name, or "group:<corporate group>"
  std::vector<std::string> clusters;  // cluster names, or "*"
  std::vector<std::string> groups;    // Kubernetes groups granted
};

class Policy {
 public:
  // `known_clusters`: the clusters the relay serves. Errors name the rule index and the key.
  static absl::StatusOr<Policy> Parse(std::string_view yaml,
                                      const std::set<std::string>& known_clusters);
  static absl::StatusOr<Policy> LoadFile(const std::string& path,
                                         const std::set<std::string>& known_clusters);

  // The Kubernetes groups `user` (member of `corporate_groups`) gets on `cluster`, in rule order
  // without duplicates. PermissionDenied when no rule grants the cluster, when the user or a
  // group is reserved ("system:..."), or when more than 32 groups would result.
  absl::StatusOr<std::vector<std::string>> GroupsFor(
      std::string_view user, const std::vector<std::string>& corporate_groups,
      std::string_view cluster) const;

  const std::vector<PolicyRule>& rules() const { return rules_; }

 private:
  std::vector<PolicyRule> rules_;
};

}  // namespace kshield::relay
