// kshield-relay end to end: the real binary on a free loopback port with a temp PKI, OIDC issuer,
// sim-platform TEE and policy (RelayFixture); requests over real TLS, with and without client
// certificates. Then: audit lines for every request, a clean SIGTERM stop, and a scan of
// everything the relay wrote for the tokens and private keys the test used.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "crypto/x509.h"
#include "https_client.h"
#include "nlohmann/json.hpp"
#include "relay/base64url.h"
#include "relay/testing/relay_fixture.h"
#include "support/process.h"
#include "tee/ratls.h"

namespace kshield::testing {
namespace {

using relay::testing::RelayFixture;

const std::string kRelay = std::string(KSHIELD_BIN_DIR) + "/kshield-relay";

std::vector<std::string> Lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(line);
  }
  return out;
}

// The base64 lines of a PEM body (what a leaked key would look like in any file).
std::vector<std::string> PemBodyLines(std::string_view pem) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(absl::string_view(pem.data(), pem.size()), '\n')) {
    if (line.size() >= 40 && line.find("-----") == absl::string_view::npos) {
      out.emplace_back(line);
    }
  }
  return out;
}

class RelayIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = FreeLoopbackPort();
    ASSERT_GT(port_, 0);
    relay::testing::RelayFixtureOptions opts;
    opts.listen = "127.0.0.1:" + std::to_string(port_);
    auto fx = RelayFixture::Create(dir_.path(), opts);
    ASSERT_TRUE(fx.ok()) << fx.status();
    fx_ = std::move(*fx);
    log_path_ = dir_.Sub("relay.log");
    relay_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{kRelay, "--config", fx_->config_path}, log_path_);
    const bool up = WaitFor(
        [&] {
          return relay_->running() &&
                 Https(port_, fx_->tls_ca.certificate_pem, {.target = "/healthz"}).status == 200;
        },
        std::chrono::seconds(20));
    ASSERT_TRUE(up) << "relay did not come up; log:\n" << ReadWholeFile(log_path_);
    auto kc = RelayFixture::MakeCsr();
    ASSERT_TRUE(kc.ok());
    csr_ = std::move(*kc);
  }

  void TearDown() override {
    if (relay_) relay_->Signal(SIGKILL);
  }

  HttpsResult Post(const std::string& cluster, const nlohmann::json& body,
                   const std::string& token = "", const RelayFixture::ClientCert* cert = nullptr) {
    HttpsRequest r;
    r.method = "POST";
    r.target = "/v1/clusters/" + cluster + "/certificates";
    r.body = body.dump();
    r.headers["Content-Type"] = "application/json";
    if (!token.empty()) {
      r.headers["Authorization"] = "Bearer " + token;
      tokens_.push_back(token);
    }
    if (cert != nullptr) {
      r.client_cert_pem = &cert->certificate_pem;
      r.client_key_pem = &cert->private_key_pem;
    }
    ++requests_;
    return Https(port_, fx_->tls_ca.certificate_pem, r);
  }
  HttpsResult PostCsr(const std::string& cluster, const std::string& token = "",
                      const RelayFixture::ClientCert* cert = nullptr) {
    return Post(cluster, {{"csr", csr_.csr_pem}}, token, cert);
  }

  // The certificate of a 200 answer, checked: CN, O, chain to the global root, client purpose.
  crypto::CertInfo ExpectIssued(const HttpsResult& r, const std::string& user,
                                const std::vector<std::string>& groups) {
    EXPECT_EQ(r.status, 200) << r.error << r.body;
    nlohmann::json body = nlohmann::json::parse(r.body, nullptr, false);
    if (!body.is_object() || !body.contains("certificate")) {
      ADD_FAILURE() << r.body;
      return {};
    }
    const std::string cert = body["certificate"];
    auto info = crypto::ParseCertificate(cert);
    EXPECT_TRUE(info.ok());
    EXPECT_EQ(info->common_name, user);
    EXPECT_EQ(info->organizations, groups);
    EXPECT_EQ(body["user"], user);
    EXPECT_EQ(body["groups"], nlohmann::json(groups));
    absl::Status chain = crypto::VerifyCertificateChain(
        cert, body["chain"].get<std::string>(), fx_->root.certificate_pem, absl::Now(), "client");
    EXPECT_TRUE(chain.ok()) << chain;
    EXPECT_EQ(body["root"], fx_->root.certificate_pem);
    return *info;
  }

  void ExpectStatus(const HttpsResult& r, int status, std::string_view reason_part) {
    EXPECT_EQ(r.status, status) << r.error << r.body;
    nlohmann::json body = nlohmann::json::parse(r.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << r.body;
    EXPECT_NE(body.value("error", "").find(reason_part), std::string::npos) << r.body;
    EXPECT_FALSE(body.contains("certificate"));
  }

  TempDir dir_;
  int port_ = 0;
  std::unique_ptr<RelayFixture> fx_;
  std::string log_path_;
  std::unique_ptr<ChildProcess> relay_;
  RelayFixture::KeyAndCsr csr_;
  std::vector<std::string> tokens_;
  int requests_ = 0;
};

TEST_F(RelayIntegrationTest, IssuesAndRefusesAndAuditsEverything) {
  // 1. A valid OIDC ID token: a 1 h certificate for alice with the policy's groups.
  crypto::CertInfo alice =
      ExpectIssued(PostCsr("prod", fx_->Token(fx_->Claims("alice@example.com"))),
                   "alice@example.com", {"developers"});
  EXPECT_LE(alice.not_after, absl::Now() + absl::Hours(1) + absl::Seconds(10));
  EXPECT_GE(alice.not_after, absl::Now() + absl::Minutes(58));
  EXPECT_EQ(alice.issuer_common_name, "kshield prod CA");
  EXPECT_TRUE(crypto::KeyMatchesPublicKey(csr_.key.private_key_pem, alice.public_key_pem));

  // ES256 and a corporate group from the token, on the 30 min cluster.
  const std::string es =
      fx_->ec->Sign({{"alg", "ES256"}, {"kid", "ec-1"}}, fx_->Claims("carol@example.com", {"sre"}));
  crypto::CertInfo carol = ExpectIssued(PostCsr("staging", es), "carol@example.com", {"sre"});
  EXPECT_LE(carol.not_after, absl::Now() + absl::Minutes(30) + absl::Seconds(10));

  // 2. A valid corporate client certificate (mTLS): bob.
  auto bob = fx_->MakeClientCert("bob");
  ASSERT_TRUE(bob.ok());
  ExpectIssued(PostCsr("prod", "", &*bob), "bob", {"ops"});

  // A client certificate from a CA the relay does not trust: 401 (handshake still completes).
  auto rogue_ca = crypto::MakeSelfSignedCa({.common_name = "Rogue CA"});
  auto rogue = fx_->MakeClientCert("bob", &*rogue_ca);
  ExpectStatus(PostCsr("prod", "", &*rogue), 401, "not trusted");
  // No credentials at all.
  ExpectStatus(PostCsr("prod"), 401, "no credentials");

  // 3. Bad tokens: 401.
  nlohmann::json expired = fx_->Claims("alice@example.com");
  expired["exp"] = absl::ToUnixSeconds(absl::Now()) - 600;
  expired["iat"] = absl::ToUnixSeconds(absl::Now()) - 1200;
  ExpectStatus(PostCsr("prod", fx_->Token(expired)), 401, "expired");
  nlohmann::json aud = fx_->Claims("alice@example.com");
  aud["aud"] = "another-client";
  ExpectStatus(PostCsr("prod", fx_->Token(aud)), 401, "aud");
  nlohmann::json iss = fx_->Claims("alice@example.com");
  iss["iss"] = "https://evil.example.com";
  ExpectStatus(PostCsr("prod", fx_->Token(iss)), 401, "iss");
  const std::string none = relay::Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." +
                           relay::Base64UrlEncode(fx_->Claims("alice@example.com").dump()) + ".";
  ExpectStatus(PostCsr("prod", none), 401, "alg");
  // A bad token with a good client certificate: the token decides (no fall-back).
  ExpectStatus(PostCsr("prod", fx_->Token(expired), &*bob), 401, "expired");

  // 4. Policy: a system:* user (even in a granted group), a user without a rule.
  ExpectStatus(PostCsr("prod", fx_->Token(fx_->Claims("system:admin", {"sre"}))), 403, "reserved");
  ExpectStatus(PostCsr("prod", fx_->Token(fx_->Claims("eve@example.com"))), 403, "no policy rule");

  // 5. Unknown cluster, bad CSR, bad JSON, oversized body, wrong method.
  const std::string alice_token = fx_->Token(fx_->Claims("alice@example.com"));
  ExpectStatus(PostCsr("nowhere", alice_token), 404, "unknown cluster");
  ExpectStatus(Post("prod",
                    {{"csr",
                      "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                      "-----END CERTIFICATE REQUEST-----\n"}},
                    alice_token),
               400, "CSR");
  ExpectStatus(Post("prod", {{"certificate_signing_request", csr_.csr_pem}}, alice_token), 400,
               "csr");
  ExpectStatus(Post("prod", {{"csr", csr_.csr_pem}, {"pad", std::string(70000, 'x')}}, alice_token),
               413, "64 KiB");
  {
    HttpsRequest get{.method = "GET", .target = "/v1/clusters/prod/certificates"};
    get.headers["Authorization"] = "Bearer " + alice_token;
    HttpsResult r = Https(port_, fx_->tls_ca.certificate_pem, get);
    ++requests_;
    EXPECT_EQ(r.status, 405);
    EXPECT_EQ(r.headers["Allow"], "POST");
  }

  // 6. A cluster that requires TEE evidence: the daemon's RA-TLS key must be the CSR key.
  auto ratls = tee::MakeRaTlsIdentity(*fx_->sim);
  ASSERT_TRUE(ratls.ok()) << ratls.status();
  auto tee_csr = crypto::MakeCsr(ratls->private_key_pem, "daemon", {});
  ASSERT_TRUE(tee_csr.ok());
  ExpectIssued(Post("secure", {{"csr", *tee_csr}, {"evidence_certificate", ratls->certificate_pem}},
                    alice_token),
               "alice@example.com", {"developers"});
  ExpectStatus(
      Post("secure", {{"csr", csr_.csr_pem}, {"evidence_certificate", ratls->certificate_pem}},
           alice_token),
      403, "another key");
  ExpectStatus(Post("secure", {{"csr", *tee_csr}}, alice_token), 403, "evidence");

  // 7. The audit log: one line per certificate request, decisions and statuses as answered.
  std::vector<std::string> audit = Lines(fx_->audit_path);
  ASSERT_EQ(static_cast<int>(audit.size()), requests_) << ReadWholeFile(fx_->audit_path);
  int issued = 0;
  std::map<int, int> by_status;
  for (const std::string& line : audit) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    EXPECT_EQ(j["event"], "relay.certificate");
    EXPECT_TRUE(absl::StartsWith(j["peer"].get<std::string>(), "127.0.0.1:")) << line;
    ++by_status[j["status"].get<int>()];
    if (j["decision"] == "issued") {
      ++issued;
      EXPECT_FALSE(j["serial"].get<std::string>().empty());
      EXPECT_EQ(j["fingerprint_sha256"].get<std::string>().size(), 64u);
    } else {
      EXPECT_FALSE(j["reason"].get<std::string>().empty()) << line;
    }
  }
  EXPECT_EQ(issued, 4);
  EXPECT_EQ(by_status[401], 7);
  EXPECT_EQ(by_status[403], 4);
  EXPECT_EQ(by_status[404], 1);
  EXPECT_EQ(by_status[400], 2);
  EXPECT_EQ(by_status[413], 1);
  EXPECT_EQ(by_status[405], 1);
  struct stat st;
  ASSERT_EQ(stat(fx_->audit_path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // 8. SIGTERM: a clean stop.
  relay_->Signal(SIGTERM);
  const int status = relay_->Wait(std::chrono::seconds(10));
  ASSERT_NE(status, -1) << "relay did not stop on SIGTERM";
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  // 9. Nothing the relay wrote holds a token or a private key.
  std::vector<std::string> secrets = tokens_;
  std::vector<const SecretBytes*> keys = {&csr_.key.private_key_pem, &bob->private_key_pem,
                                          &ratls->private_key_pem};
  for (const char* f : {"tls.key", "prod-ca.key", "staging-ca.key", "secure-ca.key"}) {
    secrets.push_back(ReadWholeFile(dir_.Sub(f)));
  }
  for (const SecretBytes* k : keys) secrets.emplace_back(k->UnsafeStringView());
  std::vector<std::string> needles;
  for (const std::string& s : secrets) {
    if (s.find("PRIVATE KEY") != std::string::npos) {
      for (std::string& line : PemBodyLines(s)) needles.push_back(std::move(line));
    } else {
      needles.push_back(s);                           // a whole token
      needles.push_back(s.substr(s.rfind('.') + 1));  // its signature alone
    }
  }
  ASSERT_GT(needles.size(), 20u);
  for (const std::string& file : {log_path_, fx_->audit_path}) {
    const std::string text = ReadWholeFile(file);
    ASSERT_FALSE(text.empty()) << file;
    EXPECT_EQ(text.find("PRIVATE KEY"), std::string::npos) << file;
    for (const std::string& n : needles) {
      if (n.size() < 16) continue;
      EXPECT_EQ(text.find(n), std::string::npos) << "secret found in " << file;
    }
  }
}

TEST_F(RelayIntegrationTest, KeepAliveAndHealth) {
  HttpsResult h =
      Https(port_, fx_->tls_ca.certificate_pem, {.method = "POST", .target = "/healthz"});
  EXPECT_EQ(h.status, 405);
  HttpsResult nf = Https(port_, fx_->tls_ca.certificate_pem, {.target = "/v1/clusters"});
  EXPECT_EQ(nf.status, 404);
  EXPECT_EQ(Lines(fx_->audit_path).size(), 0u);  // not certificate requests
}

TEST_F(RelayIntegrationTest, ClientCertificateWithoutClientAuthPurposeRefused) {
  auto kp = crypto::GenerateEcP256Key();
  ASSERT_TRUE(kp.ok());
  RelayFixture::ClientCert server_only;
  auto cert = crypto::IssueCertificate(fx_->corp_ca, kp->public_key_pem,
                                       {.common_name = "bob", .server_auth = true});
  ASSERT_TRUE(cert.ok());
  server_only.certificate_pem = *cert;
  server_only.private_key_pem = std::move(kp->private_key_pem);
  ExpectStatus(PostCsr("prod", "", &server_only), 401, "not trusted");
  std::vector<std::string> audit = Lines(fx_->audit_path);
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_NE(audit[0].find("\"auth\":\"client_cert\""), std::string::npos) << audit[0];
}

// Start-up refusals: the binary exits 1 with one clear line.
class RelayStartupTest : public ::testing::Test {
 protected:
  int Run(const std::vector<std::string>& args, std::string* output) {
    std::string cmd = kRelay;
    for (const std::string& a : args) cmd += " '" + a + "'";
    return RunCommand(cmd, output);
  }
  TempDir dir_;
};

TEST_F(RelayStartupTest, PolicyGrantingSystemMastersRefusedAtLoad) {
  relay::testing::RelayFixtureOptions opts;
  opts.policy_yaml =
      "identities:\n  - identity: alice@example.com\n    clusters: [prod]\n"
      "    groups: [developers, system:masters]\n";
  auto fx = RelayFixture::Create(dir_.path(), opts);
  ASSERT_TRUE(fx.ok());
  std::string out;
  EXPECT_EQ(Run({"--config", (*fx)->config_path}, &out), 1) << out;
  EXPECT_NE(out.find("system:masters"), std::string::npos) << out;
  EXPECT_NE(out.find("policy.yaml"), std::string::npos) << out;
  EXPECT_EQ(Run({"check-config", "--config", (*fx)->config_path}, &out), 1) << out;
  EXPECT_NE(out.find("reserved Kubernetes name"), std::string::npos) << out;
}

TEST_F(RelayStartupTest, CheckConfig) {
  auto fx = RelayFixture::Create(dir_.path(), {});
  ASSERT_TRUE(fx.ok());
  std::string out;
  EXPECT_EQ(Run({"check-config", "--config", (*fx)->config_path}, &out), 0) << out;
  EXPECT_NE(out.find("is valid"), std::string::npos) << out;
  EXPECT_NE(out.find("cluster secure"), std::string::npos) << out;
  EXPECT_NE(out.find("requires TEE evidence"), std::string::npos) << out;
}

TEST_F(RelayStartupTest, ClearErrorsForBadFiles) {
  auto fx = RelayFixture::Create(dir_.path(), {});
  ASSERT_TRUE(fx.ok());
  std::string out;
  ASSERT_EQ(chmod(dir_.Sub("prod-ca.key").c_str(), 0644), 0);
  EXPECT_EQ(Run({"--config", (*fx)->config_path}, &out), 1);
  EXPECT_NE(out.find("prod-ca.key"), std::string::npos) << out;
  ASSERT_EQ(chmod(dir_.Sub("prod-ca.key").c_str(), 0600), 0);
  ASSERT_EQ(chmod(dir_.Sub("tls.key").c_str(), 0640), 0);
  EXPECT_EQ(Run({"check-config", "--config", (*fx)->config_path}, &out), 1);
  EXPECT_NE(out.find("tls.key"), std::string::npos) << out;
  EXPECT_EQ(Run({"--config", dir_.Sub("missing.yaml")}, &out), 1);
  EXPECT_NE(out.find("missing.yaml"), std::string::npos) << out;
  EXPECT_EQ(Run({}, &out), 2) << out;  // --config is required
}

}  // namespace
}  // namespace kshield::testing
