// CertificateService end to end without the network: a real PKI, OIDC issuer and sim TEE from
// RelayFixture, requests built field by field, certificates checked against the global root.
#include "relay/service.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "crypto/x509.h"
#include "relay/base64url.h"
#include "relay/testing/relay_fixture.h"
#include "tee/ratls.h"

namespace kshield::relay {
namespace {

using testing::RelayFixture;
using testing::TestSigner;

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fx = RelayFixture::Create(dir_.path(), {});
    ASSERT_TRUE(fx.ok()) << fx.status();
    fx_ = std::move(*fx);
    auto config = LoadRelayConfigFile(fx_->config_path);
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    auto service = CertificateService::Create(
        config_, AuditLog::ToSink([this](const std::string& line) { audit_.push_back(line); }));
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
    auto kc = RelayFixture::MakeCsr();
    ASSERT_TRUE(kc.ok());
    csr_ = std::move(*kc);
  }

  RelayRequest Post(const std::string& cluster, const nlohmann::json& body,
                    const std::string& token = "") {
    RelayRequest r;
    r.method = "POST";
    r.target = "/v1/clusters/" + cluster + "/certificates";
    r.content_type = "application/json";
    r.body = body.dump();
    if (!token.empty()) r.authorization = "Bearer " + token;
    r.peer.address = "127.0.0.1:40000";
    return r;
  }
  RelayRequest PostCsr(const std::string& cluster, const std::string& token) {
    return Post(cluster, {{"csr", csr_.csr_pem}}, token);
  }
  nlohmann::json Audit(size_t back = 0) {
    EXPECT_GT(audit_.size(), back);
    return nlohmann::json::parse(audit_[audit_.size() - 1 - back]);
  }
  // Status + the audit line's decision and status agree.
  void ExpectRefusal(const RelayResponse& r, int status, std::string_view reason_part) {
    EXPECT_EQ(r.status, status) << r.body;
    nlohmann::json body = nlohmann::json::parse(r.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << r.body;
    EXPECT_NE(body.value("error", "").find(reason_part), std::string::npos) << r.body;
    nlohmann::json a = Audit();
    EXPECT_EQ(a["decision"], "refused");
    EXPECT_EQ(a["status"], status);
    EXPECT_EQ(a["certificate"], nullptr);
  }

  ::kshield::testing::TempDir dir_;
  std::unique_ptr<RelayFixture> fx_;
  RelayConfig config_;
  std::unique_ptr<CertificateService> service_;
  std::vector<std::string> audit_;
  RelayFixture::KeyAndCsr csr_;
};

TEST_F(ServiceTest, OidcUserGetsACertificate) {
  const std::string token = fx_->Token(fx_->Claims("alice@example.com"));
  RelayResponse r = service_->Handle(PostCsr("prod", token));
  ASSERT_EQ(r.status, 200) << r.body;
  nlohmann::json body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["user"], "alice@example.com");
  EXPECT_EQ(body["groups"], nlohmann::json({"developers"}));
  const std::string cert = body["certificate"];
  auto info = crypto::ParseCertificate(cert);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->common_name, "alice@example.com");
  // The CSR asked for O=system:masters; the relay ignores the CSR subject.
  EXPECT_EQ(info->organizations, std::vector<std::string>{"developers"});
  EXPECT_FALSE(info->is_ca);
  EXPECT_EQ(info->issuer_common_name, "kshield prod CA");
  EXPECT_TRUE(crypto::KeyMatchesPublicKey(csr_.key.private_key_pem, info->public_key_pem));
  EXPECT_LE(info->not_after, absl::Now() + absl::Hours(1) + absl::Seconds(5));
  EXPECT_GE(info->not_after, absl::Now() + absl::Minutes(59));
  EXPECT_TRUE(crypto::VerifyCertificateChain(cert, body["chain"].get<std::string>(),
                                             fx_->root.certificate_pem, absl::Now(), "client")
                  .ok());
  EXPECT_EQ(body["root"], fx_->root.certificate_pem);

  nlohmann::json a = Audit();
  EXPECT_EQ(a["decision"], "issued");
  EXPECT_EQ(a["auth"], "oidc");
  EXPECT_EQ(a["user"], "alice@example.com");
  EXPECT_EQ(a["cluster"], "prod");
  EXPECT_EQ(a["groups"], nlohmann::json({"developers"}));
  EXPECT_EQ(a["fingerprint_sha256"], info->sha256_fingerprint_hex);
  EXPECT_EQ(a["not_after"], body["not_after"]);
  EXPECT_EQ(a["serial"].get<std::string>().size() >= 16, true);
  EXPECT_EQ(audit_.back().find(token), std::string::npos);
  EXPECT_EQ(audit_.back().find("BEGIN"), std::string::npos);
}

TEST_F(ServiceTest, Es256TokenAccepted) {
  const std::string token =
      fx_->ec->Sign({{"alg", "ES256"}, {"kid", "ec-1"}}, fx_->Claims("alice@example.com"));
  EXPECT_EQ(service_->Handle(PostCsr("prod", token)).status, 200);
}

TEST_F(ServiceTest, CorporateGroupFromTokenAndShorterClusterTtl) {
  RelayResponse r =
      service_->Handle(PostCsr("staging", fx_->Token(fx_->Claims("carol@example.com", {"sre"}))));
  ASSERT_EQ(r.status, 200) << r.body;
  auto info =
      crypto::ParseCertificate(nlohmann::json::parse(r.body)["certificate"].get<std::string>());
  EXPECT_EQ(info->organizations, std::vector<std::string>{"sre"});
  EXPECT_LE(info->not_after, absl::Now() + absl::Minutes(30) + absl::Seconds(5));
}

TEST_F(ServiceTest, RequestedTtlIsCappedByTheCluster) {
  const std::string token = fx_->Token(fx_->Claims("alice@example.com"));
  RelayResponse shorter =
      service_->Handle(Post("prod", {{"csr", csr_.csr_pem}, {"ttl_seconds", 600}}, token));
  ASSERT_EQ(shorter.status, 200);
  auto info = crypto::ParseCertificate(
      nlohmann::json::parse(shorter.body)["certificate"].get<std::string>());
  EXPECT_LE(info->not_after, absl::Now() + absl::Minutes(10) + absl::Seconds(5));
  RelayResponse longer =
      service_->Handle(Post("prod", {{"csr", csr_.csr_pem}, {"ttl_seconds", 86400}}, token));
  ASSERT_EQ(longer.status, 200);
  info = crypto::ParseCertificate(
      nlohmann::json::parse(longer.body)["certificate"].get<std::string>());
  EXPECT_LE(info->not_after, absl::Now() + absl::Hours(1) + absl::Seconds(5));
  ExpectRefusal(service_->Handle(Post("prod", {{"csr", csr_.csr_pem}, {"ttl_seconds", 5}}, token)),
                400, "ttl_seconds");
  ExpectRefusal(
      service_->Handle(Post("prod", {{"csr", csr_.csr_pem}, {"ttl_seconds", "600"}}, token)), 400,
      "ttl_seconds");
}

TEST_F(ServiceTest, ClientCertificateUser) {
  RelayRequest req = PostCsr("prod", "");
  req.peer.cert_presented = true;
  req.peer.cert_verified = true;
  req.peer.cert_common_names = {"bob"};
  RelayResponse r = service_->Handle(req);
  ASSERT_EQ(r.status, 200) << r.body;
  auto info =
      crypto::ParseCertificate(nlohmann::json::parse(r.body)["certificate"].get<std::string>());
  EXPECT_EQ(info->common_name, "bob");
  EXPECT_EQ(info->organizations, std::vector<std::string>{"ops"});
  EXPECT_EQ(Audit()["auth"], "client_cert");
  // O= of the client certificate is not a corporate group unless configured.
  req.peer.cert_common_names = {"dave"};
  req.peer.cert_organizations = {"sre"};
  ExpectRefusal(service_->Handle(req), 403, "no policy rule");
}

TEST_F(ServiceTest, UnverifiedOrAmbiguousClientCertificateRefused) {
  RelayRequest req = PostCsr("prod", "");
  req.peer.cert_presented = true;
  req.peer.cert_verified = false;
  req.peer.cert_error = "unable to get local issuer certificate";
  req.peer.cert_common_names = {"bob"};
  ExpectRefusal(service_->Handle(req), 401, "not trusted");
  req.peer.cert_verified = true;
  req.peer.cert_common_names = {"bob", "alice@example.com"};
  ExpectRefusal(service_->Handle(req), 401, "exactly one subject CN");
  req.peer.cert_common_names = {};
  ExpectRefusal(service_->Handle(req), 401, "exactly one subject CN");
}

TEST_F(ServiceTest, NoCredentials) {
  RelayResponse r = service_->Handle(PostCsr("prod", ""));
  ExpectRefusal(r, 401, "no credentials");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].first, "WWW-Authenticate");
  EXPECT_EQ(Audit()["auth"], "none");
  EXPECT_EQ(Audit()["user"], "");
}

TEST_F(ServiceTest, BadTokensRefused) {
  nlohmann::json expired = fx_->Claims("alice@example.com");
  expired["exp"] = absl::ToUnixSeconds(absl::Now()) - 3600;
  nlohmann::json wrong_aud = fx_->Claims("alice@example.com");
  wrong_aud["aud"] = "someone-else";
  nlohmann::json wrong_iss = fx_->Claims("alice@example.com");
  wrong_iss["iss"] = "https://evil.example.com";
  const std::string alg_none = Base64UrlEncode(R"({"alg":"none"})") + "." +
                               Base64UrlEncode(fx_->Claims("alice@example.com").dump()) + ".";
  struct Case {
    std::string token;
    std::string reason;
  } cases[] = {
      {fx_->Token(expired), "expired"}, {fx_->Token(wrong_aud), "aud"},
      {fx_->Token(wrong_iss), "iss"},   {alg_none, "alg"},
      {"garbage", "three segments"},
  };
  for (const Case& c : cases) {
    RelayResponse r = service_->Handle(PostCsr("prod", c.token));
    ExpectRefusal(r, 401, c.reason);
    EXPECT_EQ(Audit()["user"], "");  // unverified claims are not trusted, so not recorded
    EXPECT_EQ(audit_.back().find(c.token), std::string::npos);
  }
  RelayRequest basic = PostCsr("prod", "");
  basic.authorization = "Basic YWxpY2U6cHc=";
  ExpectRefusal(service_->Handle(basic), 401, "scheme");
}

TEST_F(ServiceTest, UnverifiedEmailRefused) {
  nlohmann::json c = fx_->Claims("alice@example.com");
  c["email_verified"] = false;
  ExpectRefusal(service_->Handle(PostCsr("prod", fx_->Token(c))), 401, "email_verified");
}

TEST_F(ServiceTest, PolicyRefusals) {
  ExpectRefusal(service_->Handle(PostCsr("prod", fx_->Token(fx_->Claims("eve@example.com")))), 403,
                "no policy rule");
  // alice has no rule for staging.
  ExpectRefusal(service_->Handle(PostCsr("staging", fx_->Token(fx_->Claims("alice@example.com")))),
                403, "no policy rule");
  // A system:* user name, even in a group the policy grants everything to.
  nlohmann::json sys = fx_->Claims("system:admin", {"sre"});
  ExpectRefusal(service_->Handle(PostCsr("prod", fx_->Token(sys))), 403, "reserved");
  sys["email"] = "System:kube-scheduler";
  ExpectRefusal(service_->Handle(PostCsr("prod", fx_->Token(sys))), 403, "reserved");
}

TEST_F(ServiceTest, UnknownClusterAndRoutes) {
  const std::string token = fx_->Token(fx_->Claims("alice@example.com"));
  ExpectRefusal(service_->Handle(PostCsr("nope", token)), 404, "unknown cluster");
  // Unauthenticated: 401 before the cluster is looked up (cluster names are not disclosed).
  ExpectRefusal(service_->Handle(PostCsr("nope", "")), 401, "no credentials");
  RelayRequest get = PostCsr("prod", token);
  get.method = "GET";
  ExpectRefusal(service_->Handle(get), 405, "POST");
  RelayRequest other = PostCsr("prod", token);
  other.target = "/v1/clusters/prod/certificates/x";
  EXPECT_EQ(service_->Handle(other).status, 404);
  other.target = "/v1/clusters//certificates";
  EXPECT_EQ(service_->Handle(other).status, 404);
  RelayRequest health;
  health.method = "GET";
  health.target = "/healthz";
  RelayResponse h = service_->Handle(health);
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, "ok\n");
}

TEST_F(ServiceTest, BadBodies) {
  const std::string token = fx_->Token(fx_->Claims("alice@example.com"));
  RelayRequest r = PostCsr("prod", token);
  r.body = "{not json";
  ExpectRefusal(service_->Handle(r), 400, "not valid JSON");
  r.body = "[]";
  ExpectRefusal(service_->Handle(r), 400, "not a JSON object");
  r.body = R"({"csr": 5})";
  ExpectRefusal(service_->Handle(r), 400, "\"csr\" missing");
  r.body =
      nlohmann::json{
          {"csr", "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}}
          .dump();
  ExpectRefusal(service_->Handle(r), 400, "CSR");
  r.body = "{\"csr\":" + nlohmann::json(csr_.csr_pem).dump() + ",\"csr\":\"x\"}";
  ExpectRefusal(service_->Handle(r), 400, "duplicate key");
  r = PostCsr("prod", token);
  r.content_type = "text/plain";
  ExpectRefusal(service_->Handle(r), 400, "Content-Type");
  r = PostCsr("prod", token);
  r.content_type = "application/json; charset=utf-8";
  EXPECT_EQ(service_->Handle(r).status, 200);
  r.body_too_large = true;
  ExpectRefusal(service_->Handle(r), 413, "64 KiB");
}

TEST_F(ServiceTest, TeeEvidenceMatchingTheCsrKey) {
  const std::string token = fx_->Token(fx_->Claims("alice@example.com"));
  auto id = tee::MakeRaTlsIdentity(*fx_->sim);
  ASSERT_TRUE(id.ok()) << id.status();
  auto csr = crypto::MakeCsr(id->private_key_pem, "alice", {});
  ASSERT_TRUE(csr.ok());
  RelayResponse ok = service_->Handle(
      Post("secure", {{"csr", *csr}, {"evidence_certificate", id->certificate_pem}}, token));
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(Audit()["tee"], "verified");

  // Evidence for another key than the CSR's.
  ExpectRefusal(
      service_->Handle(Post(
          "secure", {{"csr", csr_.csr_pem}, {"evidence_certificate", id->certificate_pem}}, token)),
      403, "another key");
  // No evidence.
  ExpectRefusal(service_->Handle(Post("secure", {{"csr", *csr}}, token)), 403, "evidence");
  // Not RA-TLS at all (an ordinary certificate for the same key).
  auto plain = crypto::IssueCertificate(
      fx_->corp_ca, crypto::ParseCertificate(id->certificate_pem)->public_key_pem,
      {.common_name = "x"});
  ASSERT_TRUE(plain.ok());
  ExpectRefusal(
      service_->Handle(Post("secure", {{"csr", *csr}, {"evidence_certificate", *plain}}, token)),
      403, "TEE evidence refused");
  ExpectRefusal(
      service_->Handle(Post("secure", {{"csr", *csr}, {"evidence_certificate", "junk"}}, token)),
      403, "TEE evidence refused");
  // The prod cluster does not require evidence: it is not looked at.
  EXPECT_EQ(service_->Handle(Post("prod", {{"csr", *csr}}, token)).status, 200);
  EXPECT_EQ(Audit()["tee"], "not_required");
}

TEST_F(ServiceTest, TeeEvidenceFromAnotherSignerRefused) {
  tee::PlatformOptions other_opts{dir_.path() + "/sim"};  // same machine (root), other signer
  other_opts.sim_identity = "someone-else";
  auto other = tee::SimPlatform::New(other_opts);
  ASSERT_TRUE(other.ok());
  auto id = tee::MakeRaTlsIdentity(**other);
  ASSERT_TRUE(id.ok());
  auto csr = crypto::MakeCsr(id->private_key_pem, "alice", {});
  ExpectRefusal(service_->Handle(
                    Post("secure", {{"csr", *csr}, {"evidence_certificate", id->certificate_pem}},
                         fx_->Token(fx_->Claims("alice@example.com")))),
                403, "mrsigner");
}

TEST_F(ServiceTest, JwksReloadedForANewKid) {
  auto rotated = TestSigner::Rsa("rsa-2");
  ASSERT_TRUE(rotated.ok());
  const std::string token =
      (*rotated)->Sign({{"alg", "RS256"}, {"kid", "rsa-2"}}, fx_->Claims("alice@example.com"));
  ASSERT_TRUE(WriteFileAtomic(config_.oidc.jwks_file,
                              TestSigner::JwksJson({fx_->rsa.get(), rotated->get()}))
                  .ok());
  EXPECT_EQ(service_->Handle(PostCsr("prod", token)).status, 200);
  // A second unknown kid right after: no reload (rate-limited), refused.
  auto third = TestSigner::Rsa("rsa-3");
  ASSERT_TRUE(
      WriteFileAtomic(config_.oidc.jwks_file, TestSigner::JwksJson({fx_->rsa.get(), third->get()}))
          .ok());
  ExpectRefusal(
      service_->Handle(PostCsr("prod", (*third)->Sign({{"alg", "RS256"}, {"kid", "rsa-3"}},
                                                      fx_->Claims("alice@example.com")))),
      401, "unknown kid");
}

TEST_F(ServiceTest, EveryCertificateRequestIsAudited) {
  const size_t before = audit_.size();
  service_->Handle(PostCsr("prod", fx_->Token(fx_->Claims("alice@example.com"))));
  service_->Handle(PostCsr("prod", ""));
  service_->Handle(PostCsr("nope", fx_->Token(fx_->Claims("alice@example.com"))));
  RelayRequest health;
  health.method = "GET";
  health.target = "/healthz";
  service_->Handle(health);  // not a certificate request: no line
  EXPECT_EQ(audit_.size(), before + 3);
  for (const std::string& line : audit_) {
    nlohmann::json j = nlohmann::json::parse(line);
    for (const char* key : {"ts", "event", "decision", "status", "peer", "auth", "user", "cluster",
                            "groups", "serial", "not_after", "reason"}) {
      EXPECT_TRUE(j.contains(key)) << key << " in " << line;
    }
    EXPECT_EQ(j["peer"], "127.0.0.1:40000");
  }
}

// Start-up refusals: each names the file and the problem.
class ServiceCreateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto fx = RelayFixture::Create(dir_.path(), {});
    ASSERT_TRUE(fx.ok()) << fx.status();
    fx_ = std::move(*fx);
    config_ = *LoadRelayConfigFile(fx_->config_path);
  }
  std::string CreateError() {
    auto s = CertificateService::Create(config_, AuditLog::ToSink([](const std::string&) {}));
    return s.ok() ? "" : std::string(s.status().message());
  }
  ::kshield::testing::TempDir dir_;
  std::unique_ptr<RelayFixture> fx_;
  RelayConfig config_;
};

TEST_F(ServiceCreateTest, ValidSetupLoads) { EXPECT_EQ(CreateError(), ""); }

TEST_F(ServiceCreateTest, CaKeyMustBePrivate) {
  ASSERT_EQ(chmod(config_.clusters[0].ca_key_file.c_str(), 0644), 0);
  EXPECT_NE(CreateError().find("ca.key_file"), std::string::npos);
}

TEST_F(ServiceCreateTest, CaKeyMustMatch) {
  config_.clusters[0].ca_key_file = config_.clusters[1].ca_key_file;
  EXPECT_NE(CreateError().find("is not the key of ca.cert_file"), std::string::npos);
}

TEST_F(ServiceCreateTest, CaMustChainToTheRoot) {
  auto other_root = crypto::MakeSelfSignedCa({.common_name = "other root"});
  auto stray = crypto::MakeIntermediateCa(*other_root, {.common_name = "stray"});
  ASSERT_TRUE(WriteFileAtomic(dir_.Sub("stray.crt"), stray->certificate_pem).ok());
  ASSERT_TRUE(
      WriteFileAtomic(dir_.Sub("stray.key"), stray->private_key_pem.UnsafeStringView()).ok());
  config_.clusters[0].ca_cert_file = dir_.Sub("stray.crt");
  config_.clusters[0].ca_key_file = dir_.Sub("stray.key");
  EXPECT_NE(CreateError().find("does not chain to the root"), std::string::npos);
}

TEST_F(ServiceCreateTest, RootAsClusterCaRefused) {
  config_.clusters[0].ca_cert_file = dir_.Sub("root.crt");
  EXPECT_NE(CreateError().find("intermediate CA"), std::string::npos);
}

TEST_F(ServiceCreateTest, PolicyGrantingSystemMastersRefused) {
  ASSERT_TRUE(WriteFileAtomic(config_.policy_file,
                              "identities:\n  - identity: alice\n    clusters: [prod]\n"
                              "    groups: [system:masters]\n")
                  .ok());
  const std::string e = CreateError();
  EXPECT_NE(e.find("system:masters"), std::string::npos) << e;
  EXPECT_NE(e.find(config_.policy_file), std::string::npos) << e;
}

TEST_F(ServiceCreateTest, JwksWithoutUsableKeysRefused) {
  ASSERT_TRUE(
      WriteFileAtomic(config_.oidc.jwks_file, R"({"keys":[{"kty":"oct","k":"AAAA"}]})").ok());
  EXPECT_NE(CreateError().find("oidc.jwks_file"), std::string::npos);
}

TEST_F(ServiceCreateTest, MissingFilesNamed) {
  config_.root_ca_file = dir_.Sub("missing-root.crt");
  EXPECT_NE(CreateError().find("missing-root.crt"), std::string::npos);
}

}  // namespace
}  // namespace kshield::relay
