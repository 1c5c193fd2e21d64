#include "relay/policy.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <exception>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"

namespace kshield::relay {
namespace {

constexpr std::string_view kGroupPrefix = "group:";

absl::Status RuleError(size_t index, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("policy: identities[", index, "]: ", AV(what)));
}

// A YAML sequence of scalars (a single scalar is accepted as a one-element list).
absl::StatusOr<std::vector<std::string>> StringList(const YAML::Node& node) {
  std::vector<std::string> out;
  if (node.IsNull()) return out;
  if (node.IsScalar()) {
    out.push_back(node.Scalar());
    return out;
  }
  if (!node.IsSequence()) return absl::InvalidArgumentError("must be a list of strings");
  for (const YAML::Node& item : node) {
    if (!item.IsScalar()) return absl::InvalidArgumentError("must be a list of strings");
    out.push_back(item.Scalar());
  }
  return out;
}

absl::StatusOr<std::vector<PolicyRule>> ParseRules(const YAML::Node& root,
                                                   const std::set<std::string>& known) {
  if (!root.IsMap()) return absl::InvalidArgumentError("policy: must be a YAML mapping");
  std::vector<PolicyRule> rules;
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (key != "identities") {
      return absl::InvalidArgumentError(
          absl::StrCat("policy: unknown key \"", key, "\" (known keys: identities)"));
    }
  }
  const YAML::Node list = root["identities"];
  if (!list || !list.IsSequence()) {
    return absl::InvalidArgumentError("policy: \"identities\" must be a list of rules");
  }
  size_t index = 0;
  for (const YAML::Node& item : list) {
    if (!item.IsMap()) return RuleError(index, "must be a mapping");
    PolicyRule rule;
    bool have_identity = false, have_clusters = false, have_groups = false;
    for (const auto& kv : item) {
      const std::string key = kv.first.as<std::string>();
      if (key == "identity") {
        if (!kv.second.IsScalar()) return RuleError(index, "identity: must be a string");
        rule.identity = kv.second.Scalar();
        have_identity = true;
      } else if (key == "clusters") {
        auto v = StringList(kv.second);
        if (!v.ok()) return RuleError(index, absl::StrCat("clusters: ", v.status().message()));
        rule.clusters = std::move(*v);
        have_clusters = true;
      } else if (key == "groups") {
        auto v = StringList(kv.second);
        if (!v.ok()) return RuleError(index, absl::StrCat("groups: ", v.status().message()));
        rule.groups = std::move(*v);
        have_groups = true;
      } else {
        return RuleError(index, absl::StrCat("unknown key \"", key,
                                             "\" (known keys: identity, clusters, groups)"));
      }
    }
    if (!have_identity) return RuleError(index, "identity: missing");
    if (!have_clusters || rule.clusters.empty())
      return RuleError(index, "clusters: missing or empty");
    if (!have_groups) return RuleError(index, "groups: missing (write groups: [] for none)");

    std::string_view subject = rule.identity;
    std::string_view kind = "identity";
    if (absl::StartsWith(AV(subject), AV(kGroupPrefix))) {
      subject.remove_prefix(kGroupPrefix.size());
      kind = "identity (corporate group)";
    }
    if (absl::Status s = ValidateSubjectName(kind, subject); !s.ok()) {
      return RuleError(index, SV(s.message()));
    }
    for (const std::string& c : rule.clusters) {
      if (c != "*" && known.count(c) == 0) {
        return RuleError(index,
                         absl::StrCat("clusters: \"", c, "\" is not a cluster this relay serves"));
      }
    }
    if (rule.groups.size() > kMaxGroupsPerCertificate) {
      return RuleError(index, "groups: more than 32");
    }
    for (const std::string& g : rule.groups) {
      if (absl::Status s = ValidateSubjectName("group", g); !s.ok()) {
        return RuleError(index, absl::StrCat("groups: ", s.message()));
      }
    }
    rules.push_back(std::move(rule));
    ++index;
  }
  return rules;
}

}  // namespace

bool IsReservedKubernetesName(std::string_view name) {
  return name.size() >= 7 && absl::EqualsIgnoreCase(AV(name.substr(0, 7)), "system:");
}

absl::Status ValidateSubjectName(std::string_view what, std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(AV(what), " is empty"));
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(absl::StrCat(AV(what), " is longer than 256 bytes"));
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(AV(what), " contains a control character"));
    }
  }
  if (name.front() == ' ' || name.back() == ' ') {
    return absl::InvalidArgumentError(absl::StrCat(AV(what), " has leading or trailing spaces"));
  }
  if (IsReservedKubernetesName(name)) {
    return absl::PermissionDeniedError(absl::StrCat(AV(what), " \"", AV(name.substr(0, 64)),
                                                    "\" is a reserved Kubernetes name (system:*)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Policy> Policy::Parse(std::string_view yaml,
                                     const std::set<std::string>& known_clusters) {
  if (yaml.size() > kMaxPolicyBytes) return absl::InvalidArgumentError("policy: larger than 1 MiB");
  // yaml-cpp reports errors by throwing; nothing may escape (STYLE.md).
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    auto rules = ParseRules(root, known_clusters);
    if (!rules.ok()) return rules.status();
    Policy p;
    p.rules_ = std::move(*rules);
    return p;
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy: not valid YAML: line ", e.mark.line + 1, ": ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("policy: ", e.what()));
  }
}

absl::StatusOr<Policy> Policy::LoadFile(const std::string& path,
                                        const std::set<std::string>& known_clusters) {
  auto text = ReadFileBounded(path, kMaxPolicyBytes);
  if (!text.ok()) return Annotate(text.status(), "policy file " + path);
  auto p = Parse(*text, known_clusters);
  if (!p.ok()) return Annotate(p.status(), path);
  return p;
}

absl::StatusOr<std::vector<std::string>> Policy::GroupsFor(
    std::string_view user, const std::vector<std::string>& corporate_groups,
    std::string_view cluster) const {
  // Re-checked here whatever the policy file said: the user name comes from outside.
  if (absl::Status s = ValidateSubjectName("user", user); !s.ok()) {
    return absl::PermissionDeniedError(s.message());
  }
  std::vector<std::string> out;
  bool granted = false;
  for (const PolicyRule& rule : rules_) {
    // A "group:" rule matches members of that corporate group only, never a user who happens to
    // be called "group:...".
    bool match = false;
    if (!absl::StartsWith(rule.identity, AV(kGroupPrefix))) {
      match = rule.identity == user;
    } else {
      const std::string_view wanted = std::string_view(rule.identity).substr(kGroupPrefix.size());
      match = std::find(corporate_groups.begin(), corporate_groups.end(), wanted) !=
              corporate_groups.end();
    }
    if (!match) continue;
    const bool cluster_ok =
        std::find_if(rule.clusters.begin(), rule.clusters.end(), [&](const std::string& c) {
          return c == "*" || c == cluster;
        }) != rule.clusters.end();
    if (!cluster_ok) continue;
    granted = true;
    for (const std::string& g : rule.groups) {
      if (std::find(out.begin(), out.end(), g) == out.end()) out.push_back(g);
    }
  }
  if (!granted) {
    return absl::PermissionDeniedError(
        absl::StrCat("no policy rule grants this user access to cluster \"", AV(cluster), "\""));
  }
  for (const std::string& g : out) {
    if (absl::Status s = ValidateSubjectName("group", g); !s.ok()) {
      return absl::PermissionDeniedError(s.message());
    }
  }
  if (out.size() > kMaxGroupsPerCertificate) {
    return absl::PermissionDeniedError("the policy grants more than 32 groups");
  }
  return out;
}

}  // namespace kshield::relay
