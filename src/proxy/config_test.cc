// Daemon config: one valid document, then one field changed at a time.
#include "proxy/config.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace kshield::kubectl {
namespace {

constexpr char kValid[] = R"(
listen_port: 16443
control_socket: /run/user/1000/kshield-kubectl.sock
token_ttl: 10m
audit_log: /var/log/kshield-audit.log
log_level: info
proxy_threads: 2
tee: none
relay:
  url: https://relay.example:8443
  ca_file: /etc/kshield/relay-ca.pem
  client_cert_file: /home/alice/.corp/alice.crt
  client_key_file: /home/alice/.corp/alice.key
  timeout: 15s
clusters:
  - name: prod
    server: https://10.0.0.1:6443
    ca_file: /etc/kshield/prod-ca.pem
    credential: relay
    renew_before: 20m
  - name: lab
    credential: imported
  - name: sso
    server: https://sso.example:6443/prefix/
    ca_file: /etc/kshield/sso-ca.pem
    credential: oidc
    oidc:
      issuer: https://idp.example
      token_endpoint: https://idp.example/token
      client_id: kubectl
)";

std::string Mutate(std::string_view from, std::string_view to) {
  std::string s = kValid;
  const size_t pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos) s.replace(pos, from.size(), to);
  return s;
}

void ExpectError(const std::string& yaml, std::string_view needle) {
  absl::StatusOr<DaemonConfig> c = ParseDaemonConfig(yaml);
  ASSERT_FALSE(c.ok()) << "accepted a config that should fail with: " << needle;
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(c.status().message()).find(needle), std::string::npos)
      << c.status().message();
}

TEST(DaemonConfigTest, ValidConfigParses) {
  absl::StatusOr<DaemonConfig> c = ParseDaemonConfig(kValid);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen_port, 16443);
  EXPECT_EQ(c->control_socket, "/run/user/1000/kshield-kubectl.sock");
  EXPECT_EQ(c->token_ttl, absl::Minutes(10));
  EXPECT_EQ(c->audit_log, "/var/log/kshield-audit.log");
  ASSERT_TRUE(c->relay.has_value());
  EXPECT_EQ(c->relay->url, "https://relay.example:8443");
  EXPECT_EQ(c->relay->timeout, absl::Seconds(15));
  ASSERT_EQ(c->clusters.size(), 3u);
  EXPECT_EQ(c->clusters[0].credential, CredentialKind::kRelay);
  ASSERT_TRUE(c->clusters[0].renew_before.fixed.has_value());
  EXPECT_EQ(*c->clusters[0].renew_before.fixed, absl::Minutes(20));
  EXPECT_EQ(c->clusters[1].credential, CredentialKind::kImported);
  EXPECT_TRUE(c->clusters[1].server.empty());
  EXPECT_EQ(c->clusters[2].credential, CredentialKind::kOidc);
  EXPECT_EQ(c->clusters[2].oidc.client_id, "kubectl");
  EXPECT_EQ(c->FindCluster("sso"), &c->clusters[2]);
  EXPECT_EQ(c->FindCluster("nope"), nullptr);
}

TEST(DaemonConfigTest, Defaults) {
  absl::StatusOr<DaemonConfig> c = ParseDaemonConfig(R"(
clusters:
  - name: lab
    credential: imported
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen_port, kDefaultListenPort);
  EXPECT_EQ(c->token_ttl, absl::Minutes(10));
  EXPECT_EQ(c->audit_log, "-");
  EXPECT_EQ(c->tee, "none");
  EXPECT_FALSE(c->relay.has_value());
  EXPECT_EQ(c->control_socket, DefaultControlSocketPath());
  EXPECT_FALSE(c->clusters[0].renew_before.fixed.has_value());
  EXPECT_NEAR(c->clusters[0].renew_before.fraction, 1.0 / 3, 1e-9);
}

TEST(DaemonConfigTest, DefaultSocketPath) {
  const char* old = getenv("XDG_RUNTIME_DIR");
  std::string saved = old ? old : "";
  setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
  EXPECT_EQ(DefaultControlSocketPath(), "/run/user/4242/kshield-kubectl.sock");
  unsetenv("XDG_RUNTIME_DIR");
  EXPECT_EQ(DefaultControlSocketPath(),
            absl::StrCat("/tmp/kshield-kubectl-", geteuid(), "/kshield-kubectl.sock"));
  setenv("XDG_RUNTIME_DIR", "relative/dir", 1);  // not absolute: ignored
  EXPECT_EQ(DefaultControlSocketPath(),
            absl::StrCat("/tmp/kshield-kubectl-", geteuid(), "/kshield-kubectl.sock"));
  if (old) {
    setenv("XDG_RUNTIME_DIR", saved.c_str(), 1);
  } else {
    unsetenv("XDG_RUNTIME_DIR");
  }
}

TEST(DaemonConfigTest, PortZeroAllowed) {
  absl::StatusOr<DaemonConfig> c = ParseDaemonConfig(Mutate("listen_port: 16443", "listen_port: 0"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->listen_port, 0);
}

TEST(DaemonConfigTest, RenewBeforePercent) {
  absl::StatusOr<DaemonConfig> c =
      ParseDaemonConfig(Mutate("renew_before: 20m", "renew_before: 50%"));
  ASSERT_TRUE(c.ok()) << c.status();
  const RenewBefore& r = c->clusters[0].renew_before;
  EXPECT_FALSE(r.fixed.has_value());
  const absl::Time nb = absl::FromUnixSeconds(1000);
  EXPECT_EQ(r.RenewAt(nb, nb + absl::Hours(1)), nb + absl::Minutes(30));
}

TEST(DaemonConfigTest, RenewAtIsClampedToLifetime) {
  RenewBefore r;
  r.fixed = absl::Hours(2);
  const absl::Time nb = absl::FromUnixSeconds(1000);
  EXPECT_EQ(r.RenewAt(nb, nb + absl::Hours(1)), nb);
  RenewBefore third;
  EXPECT_EQ(third.RenewAt(nb, nb + absl::Minutes(30)), nb + absl::Minutes(20));
}

TEST(DaemonConfigTest, TildeExpandsToHome) {
  const char* home = getenv("HOME");
  std::string saved = home ? home : "";
  setenv("HOME", "/home/alice", 1);
  absl::StatusOr<DaemonConfig> c = ParseDaemonConfig(
      Mutate("ca_file: /etc/kshield/relay-ca.pem", "ca_file: ~/relay-ca.pem"));
  if (home) {
    setenv("HOME", saved.c_str(), 1);
  } else {
    unsetenv("HOME");
  }
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->relay->ca_file, "/home/alice/relay-ca.pem");
}

// Go-style spellings (common/duration.h) beyond the ones in kValid; the bounds are inclusive.
TEST(DaemonConfigTest, DurationSpellings) {
  const std::pair<const char*, absl::Duration> good[] = {
      {"token_ttl: 1h30m", absl::Minutes(90)}, {"token_ttl: 1.5h", absl::Minutes(90)},
      {"token_ttl: +90s", absl::Seconds(90)},  {"token_ttl: 0.5m", absl::Seconds(30)},
      {"token_ttl: 30s", absl::Seconds(30)},   {"token_ttl: 24h", absl::Hours(24)},
  };
  for (const auto& [line, want] : good) {
    absl::StatusOr<DaemonConfig> c = ParseDaemonConfig(Mutate("token_ttl: 10m", line));
    ASSERT_TRUE(c.ok()) << line << ": " << c.status();
    EXPECT_EQ(c->token_ttl, want) << line;
  }
  absl::StatusOr<DaemonConfig> c =
      ParseDaemonConfig(Mutate("    renew_before: 20m", "    renew_before: 1h30m"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(*c->clusters[0].renew_before.fixed, absl::Minutes(90));
  ExpectError(Mutate("token_ttl: 10m", "token_ttl: inf"), "token_ttl: invalid duration");
  ExpectError(Mutate("token_ttl: 10m", "token_ttl: 0"), "token_ttl: invalid duration");
  ExpectError(Mutate("token_ttl: 10m", "token_ttl: 10M"), "unknown unit \"M\"");
}

struct Mutation {
  const char* from;
  const char* to;
  const char* error;
};

class DaemonConfigMutationTest : public ::testing::TestWithParam<Mutation> {};

TEST_P(DaemonConfigMutationTest, RefusedWithPreciseError) {
  ExpectError(Mutate(GetParam().from, GetParam().to), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    OneFieldAtATime, DaemonConfigMutationTest,
    ::testing::Values(
        Mutation{"listen_port: 16443", "listen_port: 70000", "listen_port"},
        Mutation{"listen_port: 16443", "listen_port: -1", "listen_port"},
        Mutation{"listen_port: 16443", "listen_port: http", "listen_port"},
        Mutation{"listen_port: 16443", "listen_port: [1]", "listen_port: must be a scalar"},
        Mutation{"control_socket: /run/user/1000/kshield-kubectl.sock",
                 "control_socket: relative.sock", "control_socket: must be an absolute path"},
        Mutation{"token_ttl: 10m", "token_ttl: 10", "token_ttl: invalid duration"},
        Mutation{"token_ttl: 10m", "token_ttl: 5s", "out of range"},
        Mutation{"token_ttl: 10m", "token_ttl: 48h", "out of range"},
        Mutation{"token_ttl: 10m", "token_ttl: -10m", "out of range"},
        Mutation{"log_level: info", "log_level: loud", "log_level"},
        Mutation{"proxy_threads: 2", "proxy_threads: 0", "proxy_threads"},
        Mutation{"tee: none", "tee: gramine", "tee: \"gramine\" is not one of none, sim, auto"},
        Mutation{"tee: none", "tea: none", "unknown config key \"tea\""},
        Mutation{"  url: https://relay.example:8443", "  url: http://relay.example:8443",
                 "relay.url: \"http://relay.example:8443\" is not a valid https URL"},
        Mutation{"  url: https://relay.example:8443", "  url: https://relay.example:99999",
                 "bad port"},
        Mutation{"  url: https://relay.example:8443", "  url: https://u:p@relay.example",
                 "no user info"},
        Mutation{"  url: https://relay.example:8443", "  url: https://relay.example/?x=1",
                 "no query"},
        Mutation{"  url: https://relay.example:8443\n", "", "relay.url is required"},
        Mutation{"  ca_file: /etc/kshield/relay-ca.pem\n", "", "relay.ca_file is required"},
        Mutation{"  client_key_file: /home/alice/.corp/alice.key\n", "",
                 "client_cert_file and client_key_file go together"},
        Mutation{"  timeout: 15s", "  timeout: 0s", "relay.timeout"},
        Mutation{"  timeout: 15s", "  timeot: 15s", "unknown config key \"relay.timeot\""},
        Mutation{"  - name: prod", "  - name: Prod", "clusters[0].name"},
        Mutation{"  - name: prod", "  - name: -prod", "clusters[0].name"},
        Mutation{"  - name: prod", "  - name: a/b", "clusters[0].name"},
        Mutation{"  - name: lab", "  - name: prod", "duplicate cluster name \"prod\""},
        Mutation{"    server: https://10.0.0.1:6443\n", "", "clusters[0].server is required"},
        Mutation{"    server: https://10.0.0.1:6443", "    server: 10.0.0.1:6443",
                 "clusters[0].server"},
        Mutation{"    ca_file: /etc/kshield/prod-ca.pem\n", "", "clusters[0].ca_file is required"},
        Mutation{"    credential: relay", "    credential: magic",
                 "\"magic\" is not one of relay, imported, oidc"},
        Mutation{"    credential: relay\n", "", "clusters[0].credential is required"},
        Mutation{"    renew_before: 20m", "    renew_before: 95%", "percentage"},
        Mutation{"    renew_before: 20m", "    renew_before: soon", "invalid duration"},
        Mutation{"    credential: imported", "    credential: imported\n    colour: red",
                 "unknown config key \"clusters[1].colour\""},
        Mutation{"      token_endpoint: https://idp.example/token\n", "",
                 "clusters[2].oidc.token_endpoint is required"},
        Mutation{"      client_id: kubectl\n", "", "clusters[2].oidc.client_id is required"},
        Mutation{"    credential: oidc", "    credential: relay",
                 ".oidc is only allowed with credential: oidc"},
        Mutation{"relay:\n  url: https://relay.example:8443\n  ca_file: /etc/kshield/relay-ca.pem\n"
                 "  client_cert_file: /home/alice/.corp/alice.crt\n"
                 "  client_key_file: /home/alice/.corp/alice.key\n  timeout: 15s\n",
                 "", "uses credential: relay but there is no relay: section"},
        Mutation{"clusters:", "clusterz:", "unknown config key \"clusterz\""},
        Mutation{"listen_port: 16443\n", "listen_port: 1\nlisten_port: 2\n", "duplicate key"}));

TEST(DaemonConfigTest, StructuralErrors) {
  ExpectError("", "config must be a YAML mapping");
  ExpectError("[1, 2]", "config must be a YAML mapping");
  ExpectError("clusters: []", "non-empty list of clusters");
  ExpectError("clusters: {a: 1}", "non-empty list of clusters");
  ExpectError("clusters:\n  - 42\n", "clusters[0]: must be a mapping");
  ExpectError("clusters: [{name: x, credential: imported}\n", "not valid YAML");
  ExpectError("relay: 5\nclusters: [{name: x, credential: imported}]", "relay: must be a mapping");
  ExpectError("? [a]\n: 1\nclusters: [{name: x, credential: imported}]", "keys must be strings");
}

TEST(DaemonConfigTest, ParseHttpsUrl) {
  absl::StatusOr<HttpsUrl> u = ParseHttpsUrl("https://[::1]:6443/a/b/");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 6443);
  EXPECT_EQ(u->path, "/a/b");
  u = ParseHttpsUrl("https://example.com");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->path, "");
  EXPECT_FALSE(ParseHttpsUrl("https://").ok());
  EXPECT_FALSE(ParseHttpsUrl("https://:443").ok());
  EXPECT_FALSE(ParseHttpsUrl("https://a:").ok());
  EXPECT_FALSE(ParseHttpsUrl("https://[::1").ok());
  EXPECT_FALSE(ParseHttpsUrl("https://::1:6443").ok());
  EXPECT_FALSE(ParseHttpsUrl("https://a b").ok());
  EXPECT_FALSE(ParseHttpsUrl("ftp://a").ok());
  EXPECT_FALSE(ParseHttpsUrl("https://a:0").ok());
}

TEST(DaemonConfigTest, ClusterNames) {
  EXPECT_TRUE(IsValidClusterName("prod"));
  EXPECT_TRUE(IsValidClusterName("a.b-c_d9"));
  EXPECT_TRUE(IsValidClusterName(std::string(63, 'a')));
  EXPECT_FALSE(IsValidClusterName(std::string(64, 'a')));
  EXPECT_FALSE(IsValidClusterName(""));
  EXPECT_FALSE(IsValidClusterName(".x"));
  EXPECT_FALSE(IsValidClusterName("X"));
  EXPECT_FALSE(IsValidClusterName("a b"));
}

TEST(DaemonConfigTest, LoadNamesTheFile) {
  absl::StatusOr<DaemonConfig> c = LoadDaemonConfig("/nonexistent/kshield-kubectl.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(std::string(c.status().message()).find("/nonexistent/kshield-kubectl.yaml"),
            std::string::npos)
      << c.status();
}

}  // namespace
}  // namespace kshield::kubectl
