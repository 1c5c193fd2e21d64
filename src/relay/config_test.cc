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
  EXPECT_EQ(c->oidc.jwks_file, "/etc/kshield/jwks.json");
  EXPECT_EQ(c->oidc.jwks_url, "");
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

TEST(RelayConfigTest, JwksUrl) {
  const std::string url_config = Replace(kConfig, "  jwks_file: jwks.json\n",
                                         "  jwks_url: https://idp.example.com:8443/oauth2/v1/keys\n"
                                         "  jwks_ca_file: idp-ca.pem\n  jwks_refresh: 30m\n");
  auto c = ParseRelayConfig(url_config, "/etc/kshield");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->oidc.jwks_url, "https://idp.example.com:8443/oauth2/v1/keys");
  EXPECT_EQ(c->oidc.jwks_file, "");
  EXPECT_EQ(c->oidc.jwks_ca_file, "/etc/kshield/idp-ca.pem");
  EXPECT_EQ(c->oidc.jwks_refresh, absl::Minutes(30));

  // Defaults: the system trust store, hourly.
  c = ParseRelayConfig(
      Replace(Replace(url_config, "  jwks_ca_file: idp-ca.pem\n", ""), "  jwks_refresh: 30m\n", ""),
      "/etc/kshield");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->oidc.jwks_ca_file, "");
  EXPECT_EQ(c->oidc.jwks_refresh, absl::Hours(1));
  EXPECT_EQ(c->oidc.jwks_refresh, OidcConfig().jwks_refresh);
}

TEST(RelayConfigTest, JwksUrlMutations) {
  const std::string url_config =
      Replace(kConfig, "  jwks_file: jwks.json\n",
              "  jwks_url: https://idp.example.com/keys\n  jwks_refresh: 30m\n");
  // https:// only, and a URL the client can use.
  ExpectError(Replace(url_config, "https://idp.example.com/keys", "http://idp.example.com/keys"),
              "oidc.jwks_url: must be an https:// URL");
  for (const char* bad : {"idp.example.com/keys", "https://", "https://user@idp/keys",
                          "https://idp:0/keys", "https://idp/a b", "ftp://idp/keys"}) {
    ExpectError(Replace(url_config, "https://idp.example.com/keys", std::string("\"") + bad + "\""),
                "oidc.jwks_url: must be an https:// URL");
  }
  ExpectError(Replace(url_config, "https://idp.example.com/keys", "\"\""),
              "oidc.jwks_url: must not be empty");
  // Exactly one source.
  ExpectError(Replace(url_config, "  jwks_refresh: 30m\n", "  jwks_refresh: 30m\n  jwks_file: j\n"),
              "oidc: jwks_url and jwks_file are exclusive");
  ExpectError(Replace(kConfig, "  jwks_file: jwks.json\n", ""),
              "oidc: one of jwks_url and jwks_file is required");
  // Refresh bounds and syntax.
  ExpectError(Replace(url_config, "jwks_refresh: 30m", "jwks_refresh: 59s"),
              "oidc.jwks_refresh: must be from 1m to 24h");
  ExpectError(Replace(url_config, "jwks_refresh: 30m", "jwks_refresh: 25h"),
              "oidc.jwks_refresh: must be from 1m to 24h");
  ExpectError(Replace(url_config, "jwks_refresh: 30m", "jwks_refresh: often"), "invalid duration");
  EXPECT_TRUE(
      ParseRelayConfig(Replace(url_config, "jwks_refresh: 30m", "jwks_refresh: 1m"), "/").ok());
  EXPECT_TRUE(
      ParseRelayConfig(Replace(url_config, "jwks_refresh: 30m", "jwks_refresh: 24h"), "/").ok());
  // The URL's companions mean nothing with a file: say so rather than ignore them.
  ExpectError(
      Replace(kConfig, "  jwks_file: jwks.json\n", "  jwks_file: jwks.json\n  jwks_refresh: 5m\n"),
      "oidc.jwks_refresh: only applies to jwks_url");
  ExpectError(Replace(kConfig, "  jwks_file: jwks.json\n",
                      "  jwks_file: jwks.json\n  jwks_ca_file: ca.pem\n"),
              "oidc.jwks_ca_file: only applies to jwks_url");
  ExpectError(Replace(url_config, "jwks_refresh: 30m", "jwks_refreshh: 30m"),
              "oidc.jwks_refreshh: unknown key");
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
