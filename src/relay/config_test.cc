// Relay config parsing: a full config, then one key broken at a time.
#include "relay/config.h"

#include <gtest/gtest.h>

namespace kshield::relay {
namespace {

constexpr char kConfig[] = R"(
listen: 127.0.0.1:9443
tls:
  cert_file: tls.crt
  key_file: /abs/tls.key
  client_ca_file: corp.pem
oidc:
  issuer: https://idp.example.com
  audience: kshield
  jwks_file: jwks.json
  clock_skew: 2m
root_ca:
  cert_file: root.crt
clusters:
  - name: prod
    ca: {cert_file: prod.crt, key_file: prod.key}
  - name: dev-1
    ca: {cert_file: dev.crt, key_file: dev.key}
    max_ttl: 15m
    require_tee: true
attestation:
  root_file: att-root.pem
  policy_file: att-policy.yaml
policy_file: policy.yaml
audit_log: audit.log
threads: 4
)";

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

void ExpectError(const std::string& yaml, const std::string& want) {
  auto c = ParseRelayConfig(yaml, "/etc/kshield");
  ASSERT_FALSE(c.ok()) << "expected error containing: " << want;
  EXPECT_NE(std::string(c.status().message()).find(want), std::string::npos) << c.status();
}

TEST(RelayConfigTest, ParsesAFullConfig) {
  auto c = ParseRelayConfig(kConfig, "/etc/kshield");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen, "127.0.0.1:9443");
  EXPECT_EQ(c->tls_cert_file, "/etc/kshield/tls.crt");
  EXPECT_EQ(c->tls_key_file, "/abs/tls.key");
  EXPECT_EQ(c->client_ca_file, "/etc/kshield/corp.pem");
  EXPECT_TRUE(c->oidc.enabled);
  EXPECT_EQ(c->oidc.username_claim, "email");
  EXPECT_EQ(c->oidc.groups_claim, "groups");
  EXPECT_EQ(c->oidc.clock_skew, absl::Minutes(2));
  ASSERT_EQ(c->clusters.size(), 2u);
  EXPECT_EQ(c->clusters[0].max_ttl, absl::Hours(1));
  EXPECT_FALSE(c->clusters[0].require_tee);
  EXPECT_EQ(c->clusters[1].max_ttl, absl::Minutes(15));
  EXPECT_TRUE(c->clusters[1].require_tee);
  EXPECT_EQ(c->attestation_policy_file, "/etc/kshield/att-policy.yaml");
  EXPECT_EQ(c->audit_log, "/etc/kshield/audit.log");
  EXPECT_EQ(c->threads, 4);
}

TEST(RelayConfigTest, ErrorsNameTheKey) {
  ExpectError(Replace(kConfig, "threads: 4", "thread: 4"), "thread: unknown key");
  ExpectError(Replace(kConfig, "  audience: kshield\n", ""), "oidc.audience: missing");
  ExpectError(Replace(kConfig, "https://idp", "http://idp"), "oidc.issuer: must be an https");
  ExpectError(Replace(kConfig, "key_file: prod.key", "key: prod.key"),
              "clusters[0].ca.key: unknown");
  ExpectError(Replace(kConfig, "key_file: prod.key", "key_file: \"\""), "clusters[0].ca.key_file");
  ExpectError(Replace(kConfig, "max_ttl: 15m", "max_ttl: 48h"),
              "clusters[1].max_ttl: must be from 1m to 24h");
  ExpectError(Replace(kConfig, "max_ttl: 15m", "max_ttl: soon"), "invalid duration");
  ExpectError(Replace(kConfig, "require_tee: true", "require_tee: maybe"), "true or false");
  ExpectError(Replace(kConfig, "name: dev-1", "name: prod"), "\"prod\" appears twice");
  ExpectError(Replace(kConfig, "name: dev-1", "name: Dev/1"), "clusters[1].name");
  ExpectError(Replace(kConfig, "threads: 4", "threads: 0"), "threads: must be an integer");
  ExpectError(Replace(kConfig, "clock_skew: 2m", "clock_skew: 1h"), "at most 10m");
  ExpectError(Replace(kConfig, "policy_file: policy.yaml\n", ""), "policy_file: missing");
  ExpectError("[1, 2]", "must be a YAML mapping");
  ExpectError("tls: {", "not valid YAML");
}

TEST(RelayConfigTest, RequireTeeNeedsAttestation) {
  std::string yaml = kConfig;
  yaml = Replace(yaml, "attestation:\n  root_file: att-root.pem\n  policy_file: att-policy.yaml\n",
                 "");
  ExpectError(yaml, "cluster \"dev-1\" has require_tee: true but there is no attestation section");
}

TEST(RelayConfigTest, NeedsAnAuthenticationMethod) {
  std::string yaml = Replace(kConfig, "  client_ca_file: corp.pem\n", "");
  yaml = Replace(yaml,
                 "oidc:\n  issuer: https://idp.example.com\n  audience: kshield\n"
                 "  jwks_file: jwks.json\n  clock_skew: 2m\n",
                 "");
  ExpectError(yaml, "no way to authenticate users");
}

TEST(RelayConfigTest, TlsIsMandatory) {
  std::string yaml = Replace(kConfig,
                             "tls:\n  cert_file: tls.crt\n  key_file: /abs/tls.key\n"
                             "  client_ca_file: corp.pem\n",
                             "");
  ExpectError(yaml, "tls: missing");
}

TEST(RelayConfigTest, Durations) {
  EXPECT_EQ(*ParseConfigDuration("90"), absl::Seconds(90));
  EXPECT_EQ(*ParseConfigDuration("1h30m"), absl::Minutes(90));
  EXPECT_FALSE(ParseConfigDuration("0s").ok());
  EXPECT_FALSE(ParseConfigDuration("-1h").ok());
  EXPECT_FALSE(ParseConfigDuration("inf").ok());
  EXPECT_FALSE(ParseConfigDuration("").ok());
}

TEST(RelayConfigTest, ClusterNames) {
  EXPECT_TRUE(IsValidClusterName("prod"));
  EXPECT_TRUE(IsValidClusterName("eu-west-1.prod_a"));
  EXPECT_FALSE(IsValidClusterName(""));
  EXPECT_FALSE(IsValidClusterName("-prod"));
  EXPECT_FALSE(IsValidClusterName("Prod"));
  EXPECT_FALSE(IsValidClusterName("a/b"));
  EXPECT_FALSE(IsValidClusterName(std::string(64, 'a')));
}

}  // namespace
}  // namespace kshield::relay
