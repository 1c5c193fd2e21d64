// Policy: parsing, the refusal of system:* names at load and at issue time, and evaluation.
#include "relay/policy.h"

#include <gtest/gtest.h>

namespace kshield::relay {
namespace {

const std::set<std::string> kClusters = {"prod", "staging"};

constexpr char kPolicy[] = R"(
identities:
  - identity: alice@example.com
    clusters: [prod]
    groups: [developers]
  - identity: alice@example.com
    clusters: [prod, staging]
    groups: [developers, viewers]
  - identity: "group:sre"
    clusters: ["*"]
    groups: [sre]
  - identity: bob
    clusters: staging
    groups: []
)";

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(PolicyTest, ParsesAndEvaluates) {
  auto p = Policy::Parse(kPolicy, kClusters);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->rules().size(), 4u);
  EXPECT_EQ(*p->GroupsFor("alice@example.com", {}, "prod"),
            (std::vector<std::string>{"developers", "viewers"}));
  EXPECT_EQ(*p->GroupsFor("alice@example.com", {}, "staging"),
            (std::vector<std::string>{"developers", "viewers"}));
  EXPECT_EQ(*p->GroupsFor("alice@example.com", {"sre"}, "staging"),
            (std::vector<std::string>{"developers", "viewers", "sre"}));
  EXPECT_EQ(*p->GroupsFor("carol", {"sre", "other"}, "prod"), std::vector<std::string>{"sre"});
  EXPECT_TRUE(p->GroupsFor("bob", {}, "staging")->empty());
}

TEST(PolicyTest, NoMatchingRuleIsPermissionDenied) {
  auto p = Policy::Parse(kPolicy, kClusters);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(p->GroupsFor("bob", {}, "prod").status()));
  EXPECT_TRUE(absl::IsPermissionDenied(p->GroupsFor("mallory", {"dev"}, "prod").status()));
  // Names are exact: no case folding, no prefix match, "group:" is not a user name.
  EXPECT_FALSE(p->GroupsFor("Alice@example.com", {}, "prod").ok());
  EXPECT_FALSE(p->GroupsFor("alice@example.co", {}, "prod").ok());
  EXPECT_FALSE(p->GroupsFor("group:sre", {}, "prod").ok());
}

TEST(PolicyTest, SystemGroupsRefusedAtLoad) {
  for (const char* g : {"system:masters", "System:Masters", "SYSTEM:nodes", "system:"}) {
    auto p = Policy::Parse(std::string("identities:\n  - identity: alice\n    clusters: [prod]\n"
                                       "    groups: [dev, \"") +
                               g + "\"]\n",
                           kClusters);
    ASSERT_FALSE(p.ok()) << g;
    EXPECT_NE(Message(p.status()).find("reserved"), std::string::npos) << p.status();
    EXPECT_NE(Message(p.status()).find("identities[0]"), std::string::npos) << p.status();
  }
}

TEST(PolicyTest, SystemIdentitiesRefusedAtLoad) {
  for (const char* id : {"system:admin", "system:node:worker-1", "group:system:masters",
                         "group:System:authenticated"}) {
    auto p = Policy::Parse(std::string("identities:\n  - identity: \"") + id +
                               "\"\n    clusters: [prod]\n    groups: [dev]\n",
                           kClusters);
    EXPECT_FALSE(p.ok()) << id;
  }
}

TEST(PolicyTest, SystemUserRefusedAtIssueTime) {
  auto p = Policy::Parse(
      "identities:\n  - identity: \"group:admins\"\n    clusters: ['*']\n"
      "    groups: [admins]\n",
      kClusters);
  ASSERT_TRUE(p.ok()) << p.status();
  // A user named system:... in a corporate group that the policy grants: still refused.
  for (const char* user : {"system:admin", "system:kube-controller-manager", "SYSTEM:x"}) {
    auto g = p->GroupsFor(user, {"admins"}, "prod");
    EXPECT_TRUE(absl::IsPermissionDenied(g.status())) << user;
  }
  EXPECT_TRUE(p->GroupsFor("admin", {"admins"}, "prod").ok());
}

TEST(PolicyTest, BadUserNamesRefusedAtIssueTime) {
  auto p = Policy::Parse(
      "identities:\n  - identity: \"group:all\"\n    clusters: ['*']\n"
      "    groups: [all]\n",
      kClusters);
  ASSERT_TRUE(p.ok());
  for (std::string user : {std::string(""), std::string("a\nb"), std::string(" alice"),
                           std::string(300, 'a'), std::string("x\x7f")}) {
    EXPECT_TRUE(absl::IsPermissionDenied(p->GroupsFor(user, {"all"}, "prod").status()));
  }
}

TEST(PolicyTest, UnknownClusterRefusedAtLoad) {
  auto p = Policy::Parse("identities:\n  - identity: a\n    clusters: [prdo]\n    groups: []\n",
                         kClusters);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(Message(p.status()).find("\"prdo\" is not a cluster this relay serves"),
            std::string::npos);
}

TEST(PolicyTest, StructuralErrorsNameTheKey) {
  struct Case {
    const char* yaml;
    const char* want;
  } cases[] = {
      {"identity: [x]", "unknown key \"identity\""},
      {"identities: {}", "must be a list"},
      {"identities:\n  - identity: a\n    clusters: [prod]\n", "groups: missing"},
      {"identities:\n  - clusters: [prod]\n    groups: []\n", "identity: missing"},
      {"identities:\n  - identity: a\n    groups: []\n", "clusters: missing"},
      {"identities:\n  - identity: a\n    clusters: []\n    groups: []\n", "clusters: missing"},
      {"identities:\n  - identity: a\n    clusters: [prod]\n    groups: []\n    role: x\n",
       "unknown key \"role\""},
      {"identities:\n  - identity: a\n    clusters: [prod]\n    groups: [[x]]\n", "groups:"},
      {"identities:\n  - identity: \"\"\n    clusters: [prod]\n    groups: []\n", "empty"},
      {"identities:\n  - identity: \"group:\"\n    clusters: [prod]\n    groups: []\n", "empty"},
      {"identities: [\n", "not valid YAML"},
      {"- a\n- b\n", "must be a YAML mapping"},
  };
  for (const Case& c : cases) {
    auto p = Policy::Parse(c.yaml, kClusters);
    ASSERT_FALSE(p.ok()) << c.yaml;
    EXPECT_NE(Message(p.status()).find(c.want), std::string::npos) << p.status();
  }
}

TEST(PolicyTest, TooManyGroups) {
  std::string groups;
  for (int i = 0; i < 33; ++i) groups += (i ? ", g" : "g") + std::to_string(i);
  auto p = Policy::Parse(
      "identities:\n  - identity: a\n    clusters: [prod]\n    groups: [" + groups + "]\n",
      kClusters);
  EXPECT_FALSE(p.ok());
}

TEST(PolicyTest, ReservedNameHelper) {
  EXPECT_TRUE(IsReservedKubernetesName("system:masters"));
  EXPECT_TRUE(IsReservedKubernetesName("SyStEm:x"));
  EXPECT_FALSE(IsReservedKubernetesName("system"));
  EXPECT_FALSE(IsReservedKubernetesName("systems:x"));
  EXPECT_FALSE(IsReservedKubernetesName("my-system:x"));
}

}  // namespace
}  // namespace kshield::relay
