// oidc.jwks_url: the relay fetches the issuer's JWKS over HTTPS from a local issuer
// (JwksServer, a real TLS server on a loopback port). Three layers:
//  - JwksSource alone, with short timings: start-up fetch, on-demand refetch for a new kid and
//    its rate limit, every kind of bad answer keeping the last good set, issuer down at start-up
//    then back, periodic refresh, a slow issuer bounding the wait;
//  - CertificateService in-process with the production timings: tokens signed with the served
//    key, key rotation at the issuer, issuer down at start-up (client certificates still issue,
//    OIDC 401 audited, then OIDC works without a restart), nothing about tokens in the logs;
//  - the kshield-relay binary: issuer down at start-up, then up, over real HTTPS; check-config.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"
#include "common/testing/log_capture.h"
#include "common/testing/temp_dir.h"
#include "https_client.h"
#include "jwks_server.h"
#include "nlohmann/json.hpp"
#include "relay/config.h"
#include "relay/jwks_source.h"
#include "relay/service.h"
#include "relay/testing/jwt_signer.h"
#include "relay/testing/relay_fixture.h"
#include "support/process.h"

namespace kshield::relay {
namespace {

using ::kshield::testing::LogCapture;

namespace kt = ::kshield::testing;
using testing::RelayFixture;
using testing::TestSigner;

const std::string kRelay = std::string(KSHIELD_BIN_DIR) + "/kshield-relay";

std::unique_ptr<TestSigner> NewRsa(const std::string& kid) {
  auto s = TestSigner::Rsa(kid);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? std::move(*s) : nullptr;
}

std::vector<std::string> Kids(const Jwks& jwks) {
  std::vector<std::string> out;
  for (const Jwk& k : jwks.keys) out.push_back(k.kid);
  return out;
}

// --- JwksSource ----------------------------------------------------------------------------------

class JwksSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = kt::MakeLoopbackServerPki("idp");
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
    ASSERT_TRUE(WriteFileAtomic(dir_.Sub("idp-ca.crt"), pki_.ca.certificate_pem).ok());
    rsa1_ = NewRsa("rsa-1");
    rsa2_ = NewRsa("rsa-2");
    ASSERT_TRUE(rsa1_ && rsa2_);
    idp_ = StartIdp(0);
    ASSERT_TRUE(idp_);
    idp_->Serve(200, TestSigner::JwksJson({rsa1_.get()}));
  }

  std::unique_ptr<kt::JwksServer> StartIdp(uint16_t port) {
    auto s = kt::JwksServer::Start(
        {.cert_pem = pki_.cert_pem, .key_pem = pki_.key_pem.Clone(), .port = port});
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  // Short timings so the failure paths run in milliseconds.
  JwksSource::Options Options(const std::string& url) {
    JwksSource::Options o;
    o.url = url;
    o.ca_file = dir_.Sub("idp-ca.crt");
    o.min_reload_interval = absl::ZeroDuration();
    o.fetch_timeout = absl::Seconds(2);
    o.on_demand_wait = absl::Seconds(5);
    o.initial_backoff = absl::Milliseconds(20);
    o.max_backoff = absl::Milliseconds(100);
    return o;
  }

  std::unique_ptr<JwksSource> Create(const JwksSource::Options& o) {
    auto s = JwksSource::Create(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }

  kt::TempDir dir_;
  kt::LoopbackServerPki pki_;
  std::unique_ptr<TestSigner> rsa1_, rsa2_;
  std::unique_ptr<kt::JwksServer> idp_;
};

TEST_F(JwksSourceTest, FetchedAtStartup) {
  auto src = Create(Options(idp_->url()));
  ASSERT_TRUE(src);
  std::shared_ptr<const Jwks> keys = src->Current();
  ASSERT_NE(keys, nullptr);
  EXPECT_EQ(Kids(*keys), std::vector<std::string>{"rsa-1"});
  EXPECT_EQ(src->source(), idp_->url());
  JwksSource::Stats st = src->stats();
  EXPECT_TRUE(st.loaded);
  EXPECT_EQ(st.generation, 1u);
  EXPECT_EQ(st.reloads_ok, 1u);
  // A plain GET of the configured path, naming the relay, carrying no credential.
  std::vector<std::string> heads = idp_->heads();
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(heads[0], "GET /keys HTTP/1.1\r\n")) << heads[0];
  EXPECT_TRUE(absl::StrContains(heads[0], "User-Agent: kshield-relay")) << heads[0];
  EXPECT_FALSE(absl::StrContains(absl::AsciiStrToLower(heads[0]), "authorization")) << heads[0];
}

TEST_F(JwksSourceTest, NewKidRefetchedOnDemandThenRateLimited) {
  JwksSource::Options o = Options(idp_->url());
  o.min_reload_interval = absl::Seconds(30);  // production
  auto src = Create(o);
  ASSERT_TRUE(src);
  std::shared_ptr<const Jwks> before = src->Current();
  idp_->Serve(200, TestSigner::JwksJson({rsa1_.get(), rsa2_.get()}));
  EXPECT_TRUE(src->ReloadOnDemand(before.get()));
  EXPECT_EQ(Kids(*src->Current()), (std::vector<std::string>{"rsa-1", "rsa-2"}));
  EXPECT_EQ(idp_->requests(), 2);
  // A caller that checked against the old set learns a newer one exists, without a fetch.
  EXPECT_TRUE(src->ReloadOnDemand(before.get()));
  EXPECT_EQ(idp_->requests(), 2);
  // Another unknown kid right after: rate-limited, no request reaches the issuer.
  auto rsa3 = NewRsa("rsa-3");
  idp_->Serve(200, TestSigner::JwksJson({rsa3.get()}));
  EXPECT_FALSE(src->ReloadOnDemand(src->Current().get()));
  EXPECT_EQ(idp_->requests(), 2);
  EXPECT_EQ(Kids(*src->Current()), (std::vector<std::string>{"rsa-1", "rsa-2"}));
}

TEST_F(JwksSourceTest, BadAnswersKeepTheLastGoodSet) {
  auto src = Create(Options(idp_->url()));
  ASSERT_TRUE(src);
  const std::shared_ptr<const Jwks> good = src->Current();
  ASSERT_NE(good, nullptr);
  const std::string rotated = TestSigner::JwksJson({rsa2_.get()});
  // Past the parser's 256 KiB limit but under the 1 MiB response bound, and past both.
  const std::string big_json =
      absl::StrCat(R"({"keys":[],"pad":")", std::string(300 * 1024, 'a'), R"("})");
  const std::string huge_json =
      absl::StrCat(R"({"keys":[],"pad":")", std::string(2 * 1024 * 1024, 'a'), R"("})");
  struct Case {
    const char* name;
    int status;
    std::string body;
    std::string content_type;
    const char* reason;
  } cases[] = {
      {"500", 500, rotated, "application/json", "HTTP status 500"},
      {"404", 404, rotated, "application/json", "HTTP status 404"},
      {"html", 200, rotated, "text/html", "is not JSON"},
      {"not json", 200, "<html>login</html>", "application/json", "JWKS"},
      {"truncated", 200, rotated.substr(0, rotated.size() / 2), "application/json", "JWKS"},
      {"no usable key", 200, R"({"keys":[{"kty":"oct","k":"AAAA"}]})", "application/json", "JWKS"},
      {"not a key set", 200, R"({"issuer":"https://idp"})", "application/json", "JWKS"},
      {"over the parser limit", 200, big_json, "application/json", "256 KiB"},
      {"over 1 MiB", 200, huge_json, "application/json", "body limit"},
  };
  uint64_t failed = src->stats().reloads_failed;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    idp_->Serve(c.status, c.body, c.content_type);
    EXPECT_FALSE(src->ReloadOnDemand(good.get()));
    EXPECT_EQ(src->Current(), good);
    JwksSource::Stats st = src->stats();
    EXPECT_EQ(st.reloads_failed, ++failed);
    EXPECT_TRUE(absl::StrContains(st.last_error, c.reason)) << st.last_error.substr(0, 300);
    EXPECT_EQ(st.generation, 1u);
  }
  // And a good answer is taken again.
  idp_->Serve(200, rotated, "application/jwk-set+json; charset=utf-8");
  EXPECT_TRUE(src->ReloadOnDemand(good.get()));
  EXPECT_EQ(Kids(*src->Current()), std::vector<std::string>{"rsa-2"});
  EXPECT_EQ(src->stats().consecutive_failures, 0u);
}

TEST_F(JwksSourceTest, IssuerWithAnotherCaRefusedAndOldSetKept) {
  auto src = Create(Options(idp_->url()));
  ASSERT_TRUE(src);
  const std::shared_ptr<const Jwks> good = src->Current();
  // Someone else answers on the issuer's address, with a certificate from another CA.
  const uint16_t port = idp_->port();
  idp_->Stop();
  auto other = kt::MakeLoopbackServerPki("impostor");
  ASSERT_TRUE(other.ok());
  auto impostor = kt::JwksServer::Start(
      {.cert_pem = other->cert_pem, .key_pem = other->key_pem.Clone(), .port = port});
  ASSERT_TRUE(impostor.ok()) << impostor.status();
  (*impostor)->Serve(200, TestSigner::JwksJson({rsa2_.get()}));
  EXPECT_FALSE(src->ReloadOnDemand(good.get()));
  EXPECT_EQ(src->Current(), good);
  EXPECT_TRUE(absl::StrContains(src->stats().last_error, "certificate verification failed"))
      << src->stats().last_error;
  // The system trust store does not know the test CA either.
  JwksSource::Options system_store = Options((*impostor)->url());
  system_store.ca_file.clear();
  auto src2 = Create(system_store);
  ASSERT_TRUE(src2);
  EXPECT_EQ(src2->Current(), nullptr);
  EXPECT_TRUE(absl::StrContains(src2->stats().last_error, "certificate verification failed"));
}

TEST_F(JwksSourceTest, IssuerDownAtStartupThenUp) {
  LogCapture logs;
  const int port = kt::FreeLoopbackPort();
  ASSERT_GT(port, 0);
  auto src = Create(Options(absl::StrCat("https://127.0.0.1:", port, "/keys")));
  ASSERT_TRUE(src);  // not an error: the relay must start
  EXPECT_EQ(src->Current(), nullptr);
  EXPECT_FALSE(src->stats().loaded);
  EXPECT_NE(src->stats().last_error, "");
  EXPECT_TRUE(logs.Contains("relay.jwks_fetch_failed"));
  // The issuer comes up: the background retries (backoff) pick the keys up, nobody asks.
  auto idp = StartIdp(static_cast<uint16_t>(port));
  ASSERT_TRUE(idp);
  idp->Serve(200, TestSigner::JwksJson({rsa1_.get()}));
  EXPECT_TRUE(kt::WaitFor([&] { return src->Current() != nullptr; }, std::chrono::seconds(10)));
  EXPECT_GE(src->stats().reloads_failed, 1u);
  EXPECT_TRUE(logs.Contains("relay.jwks_loaded"));
}

TEST_F(JwksSourceTest, PeriodicRefresh) {
  JwksSource::Options o = Options(idp_->url());
  o.refresh = absl::Milliseconds(100);
  auto src = Create(o);
  ASSERT_TRUE(src);
  idp_->Serve(200, TestSigner::JwksJson({rsa2_.get()}));
  EXPECT_TRUE(
      kt::WaitFor([&] { return Kids(*src->Current()) == std::vector<std::string>{"rsa-2"}; },
                  std::chrono::seconds(10)));
  // An unchanged document is not installed again.
  const uint64_t generation = src->stats().generation;
  const int requests = idp_->requests();
  EXPECT_TRUE(
      kt::WaitFor([&] { return idp_->requests() >= requests + 3; }, std::chrono::seconds(10)));
  EXPECT_EQ(src->stats().generation, generation);
}

// The design: fetches run on the source's own thread; a request that needs the new key waits
// at most on_demand_wait, and the fetch completes in the background.
TEST_F(JwksSourceTest, SlowIssuerBoundsTheWait) {
  JwksSource::Options o = Options(idp_->url());
  o.on_demand_wait = absl::Milliseconds(200);
  auto src = Create(o);
  ASSERT_TRUE(src);
  const std::shared_ptr<const Jwks> before = src->Current();
  idp_->SetDelay(std::chrono::milliseconds(1000));
  idp_->Serve(200, TestSigner::JwksJson({rsa1_.get(), rsa2_.get()}));
  const absl::Time start = absl::Now();
  EXPECT_FALSE(src->ReloadOnDemand(before.get()));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(900));
  // Current() never waits for the fetch in flight.
  EXPECT_EQ(src->Current(), before);
  EXPECT_TRUE(kt::WaitFor([&] { return src->Current() != before; }, std::chrono::seconds(10)));
  EXPECT_EQ(Kids(*src->Current()), (std::vector<std::string>{"rsa-1", "rsa-2"}));
}

TEST_F(JwksSourceTest, StartupRefusals) {
  JwksSource::Options none;
  EXPECT_FALSE(JwksSource::Create(none).ok());
  JwksSource::Options both = Options(idp_->url());
  both.file = dir_.Sub("jwks.json");
  EXPECT_FALSE(JwksSource::Create(both).ok());
  JwksSource::Options http = Options("http://127.0.0.1:1/keys");
  EXPECT_TRUE(absl::IsInvalidArgument(JwksSource::Create(http).status()));
  // A CA file that is missing or holds no certificate is a configuration error, not an outage.
  JwksSource::Options ca = Options(idp_->url());
  ca.ca_file = dir_.Sub("missing.pem");
  auto s = JwksSource::Create(ca);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(absl::StrContains(s.status().message(), "oidc.jwks_ca_file")) << s.status();
  ASSERT_TRUE(WriteFileAtomic(dir_.Sub("empty.pem"), "not a certificate\n").ok());
  ca.ca_file = dir_.Sub("empty.pem");
  s = JwksSource::Create(ca);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(absl::StrContains(s.status().message(), "no PEM certificate")) << s.status();
}

// --- CertificateService with jwks_url
// --------------------------------------------------------------

class ServiceJwksUrlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = kt::MakeLoopbackServerPki("idp");
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
    ASSERT_TRUE(WriteFileAtomic(dir_.Sub("idp-ca.crt"), pki_.ca.certificate_pem).ok());
    idp_port_ = kt::FreeLoopbackPort();
    ASSERT_GT(idp_port_, 0);
    testing::RelayFixtureOptions opts;
    opts.jwks_url = absl::StrCat("https://127.0.0.1:", idp_port_, "/keys");
    opts.jwks_ca_file = "idp-ca.crt";
    auto fx = RelayFixture::Create(dir_.path(), opts);
    ASSERT_TRUE(fx.ok()) << fx.status();
    fx_ = std::move(*fx);
    auto config = LoadRelayConfigFile(fx_->config_path);
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    ASSERT_EQ(config_.oidc.jwks_url, opts.jwks_url);
    ASSERT_EQ(config_.oidc.jwks_ca_file, dir_.Sub("idp-ca.crt"));
    auto kc = RelayFixture::MakeCsr();
    ASSERT_TRUE(kc.ok());
    csr_ = std::move(*kc);
  }

  void StartIdp() {
    auto s = kt::JwksServer::Start({.cert_pem = pki_.cert_pem,
                                    .key_pem = pki_.key_pem.Clone(),
                                    .port = static_cast<uint16_t>(idp_port_)});
    ASSERT_TRUE(s.ok()) << s.status();
    idp_ = std::move(*s);
    idp_->Serve(200, TestSigner::JwksJson({fx_->rsa.get(), fx_->ec.get()}));
  }

  void CreateService() {
    auto service = CertificateService::Create(
        config_, AuditLog::ToSink([this](const std::string& line) { audit_.push_back(line); }));
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
  }

  RelayRequest PostCsr(const std::string& token) {
    RelayRequest r;
    r.method = "POST";
    r.target = "/v1/clusters/prod/certificates";
    r.content_type = "application/json";
    r.body = nlohmann::json({{"csr", csr_.csr_pem}}).dump();
    if (!token.empty()) r.authorization = "Bearer " + token;
    r.peer.address = "127.0.0.1:40000";
    return r;
  }
  RelayRequest PostWithClientCert(const std::string& cn) {
    RelayRequest r = PostCsr("");
    r.peer.cert_presented = true;
    r.peer.cert_verified = true;
    r.peer.cert_common_names = {cn};
    return r;
  }
  nlohmann::json LastAudit() {
    EXPECT_FALSE(audit_.empty());
    return audit_.empty() ? nlohmann::json() : nlohmann::json::parse(audit_.back());
  }

  kt::TempDir dir_;
  kt::LoopbackServerPki pki_;
  int idp_port_ = 0;
  std::unique_ptr<kt::JwksServer> idp_;
  std::unique_ptr<RelayFixture> fx_;
  RelayConfig config_;
  std::unique_ptr<CertificateService> service_;
  std::vector<std::string> audit_;
  RelayFixture::KeyAndCsr csr_;
};

TEST_F(ServiceJwksUrlTest, TokenSignedWithTheServedKeyAccepted) {
  StartIdp();
  CreateService();
  RelayResponse r = service_->Handle(PostCsr(fx_->Token(fx_->Claims("alice@example.com"))));
  EXPECT_EQ(r.status, 200) << r.body;
  r = service_->Handle(PostCsr(
      fx_->ec->Sign({{"alg", "ES256"}, {"kid", "ec-1"}}, fx_->Claims("alice@example.com"))));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(idp_->requests(), 1);  // fetched once at start-up, not per token
  bool described = false;
  for (const std::string& line : service_->Describe()) {
    if (absl::StrContains(line, "2 JWKS key(s) from https://127.0.0.1:")) described = true;
  }
  EXPECT_TRUE(described);
}

TEST_F(ServiceJwksUrlTest, KeyRotationAtTheIssuer) {
  StartIdp();
  CreateService();
  auto rotated = NewRsa("rsa-2");
  // The issuer publishes the new key and signs with it: the unknown kid triggers one refetch.
  idp_->Serve(200, TestSigner::JwksJson({fx_->rsa.get(), rotated.get()}));
  const std::string token =
      rotated->Sign({{"alg", "RS256"}, {"kid", "rsa-2"}}, fx_->Claims("alice@example.com"));
  RelayResponse r = service_->Handle(PostCsr(token));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(idp_->requests(), 2);
  // A second unknown kid right after: rate-limited (30 s), refused, no fetch.
  auto third = NewRsa("rsa-3");
  idp_->Serve(200, TestSigner::JwksJson({third.get()}));
  r = service_->Handle(
      PostCsr(third->Sign({{"alg", "RS256"}, {"kid", "rsa-3"}}, fx_->Claims("alice@example.com"))));
  EXPECT_EQ(r.status, 401);
  EXPECT_TRUE(absl::StrContains(r.body, "unknown kid")) << r.body;
  EXPECT_EQ(idp_->requests(), 2);
  // The issuer failing now changes nothing for tokens whose key the relay has.
  idp_->Serve(500, "{}");
  EXPECT_EQ(service_->Handle(PostCsr(token)).status, 200);
}

TEST_F(ServiceJwksUrlTest, IssuerDownAtStartup) {
  LogCapture logs;
  CreateService();  // the issuer is not listening: the relay starts anyway
  // Client-certificate users keep working.
  RelayResponse r = service_->Handle(PostWithClientCert("bob"));
  EXPECT_EQ(r.status, 200) << r.body;
  // OIDC fails closed, with a clear reason, audited.
  const std::string token = fx_->Token(fx_->Claims("alice@example.com"));
  r = service_->Handle(PostCsr(token));
  EXPECT_EQ(r.status, 401);
  EXPECT_TRUE(absl::StrContains(r.body, "signing keys (JWKS) have not been fetched")) << r.body;
  nlohmann::json a = LastAudit();
  EXPECT_EQ(a["decision"], "refused");
  EXPECT_EQ(a["status"], 401);
  EXPECT_EQ(a["auth"], "oidc");
  EXPECT_TRUE(absl::StrContains(a["reason"].get<std::string>(), "JWKS")) << a;
  bool described = false;
  for (const std::string& line : service_->Describe()) {
    if (absl::StrContains(line, "NOT LOADED")) described = true;
  }
  EXPECT_TRUE(described);

  // The issuer comes up: OIDC works without a restart (background retry with backoff).
  StartIdp();
  ASSERT_TRUE(kt::WaitFor([&] { return idp_->requests() > 0; }, std::chrono::seconds(30)));
  EXPECT_TRUE(kt::WaitFor([&] { return service_->Handle(PostCsr(token)).status == 200; },
                          std::chrono::seconds(30)));
  EXPECT_EQ(LastAudit()["decision"], "issued");
  // Logs said why, and never carried the token (nor any of its segments).
  EXPECT_TRUE(logs.Contains("relay.jwks_fetch_failed"));
  EXPECT_TRUE(logs.Contains("relay.jwks_loaded"));
  const std::string signature = token.substr(token.rfind('.') + 1);
  const std::string payload = token.substr(token.find('.') + 1, 40);
  for (const std::string& line : logs.Lines()) {
    EXPECT_FALSE(absl::StrContains(line, signature)) << line;
    EXPECT_FALSE(absl::StrContains(line, payload)) << line;
  }
  for (const std::string& line : audit_) {
    EXPECT_FALSE(absl::StrContains(line, signature)) << line;
    EXPECT_FALSE(absl::StrContains(line, payload)) << line;
  }
}

// --- the kshield-relay binary --------------------------------------------------------------------

TEST(RelayBinaryJwksUrlTest, IssuerDownAtStartupThenUp) {
  if (access(kRelay.c_str(), X_OK) != 0) GTEST_SKIP() << kRelay << " not built";
  kt::TempDir dir;
  auto pki = kt::MakeLoopbackServerPki("idp");
  ASSERT_TRUE(pki.ok());
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("idp-ca.crt"), pki->ca.certificate_pem).ok());
  const int idp_port = kt::FreeLoopbackPort();
  const int port = kt::FreeLoopbackPort();
  ASSERT_GT(idp_port, 0);
  ASSERT_GT(port, 0);
  testing::RelayFixtureOptions opts;
  opts.listen = absl::StrCat("127.0.0.1:", port);
  opts.jwks_url = absl::StrCat("https://127.0.0.1:", idp_port, "/keys");
  opts.jwks_ca_file = "idp-ca.crt";
  auto fx = RelayFixture::Create(dir.path(), opts);
  ASSERT_TRUE(fx.ok()) << fx.status();

  // check-config with the issuer down: the config is valid, the summary says the keys are not
  // loaded and why.
  std::string out;
  EXPECT_EQ(kt::RunCommand(kRelay + " check-config --config " + (*fx)->config_path + " 2>&1", &out),
            0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "NOT LOADED")) << out;

  const std::string log_path = dir.Sub("relay.log");
  kt::ChildProcess relay({kRelay, "--config", (*fx)->config_path}, log_path);
  ASSERT_TRUE(kt::WaitFor(
      [&] {
        return relay.running() &&
               kt::Https(port, (*fx)->tls_ca.certificate_pem, {.target = "/healthz"}).status == 200;
      },
      std::chrono::seconds(30)))
      << kt::ReadWholeFile(log_path);

  auto csr = RelayFixture::MakeCsr();
  ASSERT_TRUE(csr.ok());
  auto post = [&](const std::string& token, const RelayFixture::ClientCert* cert) {
    kt::HttpsRequest r;
    r.method = "POST";
    r.target = "/v1/clusters/prod/certificates";
    r.body = nlohmann::json({{"csr", csr->csr_pem}}).dump();
    r.headers["Content-Type"] = "application/json";
    if (!token.empty()) r.headers["Authorization"] = "Bearer " + token;
    if (cert != nullptr) {
      r.client_cert_pem = &cert->certificate_pem;
      r.client_key_pem = &cert->private_key_pem;
    }
    return kt::Https(port, (*fx)->tls_ca.certificate_pem, r);
  };
  auto bob = (*fx)->MakeClientCert("bob");
  ASSERT_TRUE(bob.ok());
  kt::HttpsResult r = post("", &*bob);
  EXPECT_EQ(r.status, 200) << r.error << r.body;
  const std::string token = (*fx)->Token((*fx)->Claims("alice@example.com"));
  r = post(token, nullptr);
  EXPECT_EQ(r.status, 401) << r.error << r.body;
  EXPECT_TRUE(absl::StrContains(r.body, "JWKS")) << r.body;

  auto idp = kt::JwksServer::Start({.cert_pem = pki->cert_pem,
                                    .key_pem = pki->key_pem.Clone(),
                                    .port = static_cast<uint16_t>(idp_port)});
  ASSERT_TRUE(idp.ok()) << idp.status();
  (*idp)->Serve(200, TestSigner::JwksJson({(*fx)->rsa.get()}));
  EXPECT_TRUE(
      kt::WaitFor([&] { return post(token, nullptr).status == 200; }, std::chrono::seconds(40)))
      << kt::ReadWholeFile(log_path);

  relay.Signal(SIGTERM);
  const int status = relay.Wait(std::chrono::seconds(20));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  const std::string log = kt::ReadWholeFile(log_path);
  EXPECT_TRUE(absl::StrContains(log, "relay.jwks_fetch_failed")) << log;
  EXPECT_TRUE(absl::StrContains(log, "relay.jwks_loaded")) << log;
  const std::string signature = token.substr(token.rfind('.') + 1);
  EXPECT_FALSE(absl::StrContains(log, signature));
  EXPECT_FALSE(absl::StrContains(kt::ReadWholeFile((*fx)->audit_path), signature));
  // Refused while the keys were missing, then issued: both audited.
  const std::string audit = kt::ReadWholeFile((*fx)->audit_path);
  EXPECT_TRUE(absl::StrContains(audit, "have not been fetched")) << audit;
  EXPECT_TRUE(absl::StrContains(audit, "\"user\":\"alice@example.com\"")) << audit;
}

}  // namespace
}  // namespace kshield::relay
