// The test apiserver itself: HTTPS with client certificates or tokens, discovery, Secrets,
// watch streaming, Audit-Id, request recording, the SPDY/3.1 exec / portforward echo; and the
// real kubectl talking to it directly (get, get -o json, get -w, exec, version, refused without a
// certificate).
#include "kubectl/test_apiserver.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kubectl/https_test_client.h"
#include "kubectl/kubectl_fixture.h"
#include "kubectl/upgrade_test_client.h"
#include "nlohmann/json.hpp"
#include "support/process.h"

namespace kshield::testing {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

const std::regex kUuid("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");

class TestApiserverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = MakeClusterPki("east");
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
    auto api = StartApiserver(pki_, "east", {"token-for-bob"});
    ASSERT_TRUE(api.ok()) << api.status();
    api_ = std::move(*api);
    auto alice = MakeClientCert(pki_.ca, "alice", {"dev", "ops"});
    ASSERT_TRUE(alice.ok()) << alice.status();
    alice_ = std::move(*alice);
  }

  HttpsClientOptions AliceTls() const {
    return {.ca_pem = pki_.ca.certificate_pem,
            .client_cert_pem = alice_.cert_pem,
            .client_key_pem = &alice_.key_pem};
  }
  HttpsClientOptions NoCertTls() const { return {.ca_pem = pki_.ca.certificate_pem}; }

  HttpsResponse Get(const HttpsClientOptions& tls, const std::string& target,
                    std::vector<std::pair<std::string, std::string>> headers = {}) {
    auto r = HttpsCall(api_->port(), tls, {.target = target, .headers = std::move(headers)});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : HttpsResponse{};
  }

  ClusterPki pki_;
  std::unique_ptr<TestApiserver> api_;
  ClientCert alice_;
};

TEST_F(TestApiserverTest, ServesDiscoveryWithAuditIds) {
  HttpsResponse version = Get(AliceTls(), "/version");
  EXPECT_EQ(version.status, 200);
  json v = json::parse(version.body);
  EXPECT_EQ(v["major"], "1");
  EXPECT_EQ(v["minor"], "32");
  EXPECT_EQ(v["kshieldTestApiserver"], "east");

  HttpsResponse api = Get(AliceTls(), "/api");
  EXPECT_EQ(api.status, 200);
  EXPECT_EQ(json::parse(api.body)["kind"], "APIVersions");
  HttpsResponse apis = Get(AliceTls(), "/apis");
  EXPECT_EQ(apis.status, 200);
  EXPECT_EQ(json::parse(apis.body)["kind"], "APIGroupList");

  HttpsResponse v1 = Get(AliceTls(), "/api/v1");
  ASSERT_EQ(v1.status, 200);
  std::set<std::string> names;
  const json resource_list = json::parse(v1.body);
  for (const auto& r : resource_list["resources"]) names.insert(r["name"].get<std::string>());
  EXPECT_TRUE(names.count("secrets"));
  EXPECT_TRUE(names.count("pods/exec"));

  std::set<std::string> ids;
  for (const HttpsResponse* r : {&version, &api, &apis, &v1}) {
    std::string id = r->Header("Audit-Id");
    EXPECT_TRUE(std::regex_match(id, kUuid)) << id;
    ids.insert(id);
    EXPECT_EQ(r->Header("X-Kshield-Test-Apiserver"), "east");
  }
  EXPECT_EQ(ids.size(), 4u) << "Audit-Id must be fresh per response";
}

TEST_F(TestApiserverTest, RequiresClientCertificateOrToken) {
  HttpsResponse none = Get(NoCertTls(), "/api/v1/namespaces/default/secrets");
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(json::parse(none.body)["reason"], "Unauthorized");
  EXPECT_TRUE(std::regex_match(none.Header("Audit-Id"), kUuid));

  HttpsResponse bad_token = Get(NoCertTls(), "/api/v1/namespaces/default/secrets",
                                {{"Authorization", "Bearer not-a-token"}});
  EXPECT_EQ(bad_token.status, 401);

  HttpsResponse token = Get(NoCertTls(), "/api/v1/namespaces/default/secrets",
                            {{"Authorization", "Bearer token-for-bob"}});
  EXPECT_EQ(token.status, 200);

  HttpsResponse cert = Get(AliceTls(), "/api/v1/namespaces/default/secrets");
  EXPECT_EQ(cert.status, 200);

  // A client certificate from another CA does not get through the handshake.
  auto other = MakeClusterPki("other");
  ASSERT_TRUE(other.ok());
  auto mallory = MakeClientCert(other->ca, "alice");
  ASSERT_TRUE(mallory.ok());
  auto r = HttpsCall(api_->port(),
                     {.ca_pem = pki_.ca.certificate_pem,
                      .client_cert_pem = mallory->cert_pem,
                      .client_key_pem = &mallory->key_pem},
                     {.target = "/version"});
  EXPECT_FALSE(r.ok() && r->status == 200) << "foreign client certificate accepted";

  std::vector<RecordedRequest> recs = api_->requests();
  ASSERT_GE(recs.size(), 4u);
  EXPECT_EQ(recs[0].user, "");
  EXPECT_EQ(recs[0].status, 401);
  EXPECT_EQ(recs[1].status, 401);
  EXPECT_EQ(recs[2].user, "token-for-bob");
  EXPECT_EQ(recs[2].status, 200);
  EXPECT_EQ(recs[3].user, "alice");
  EXPECT_EQ(recs[3].groups, (std::vector<std::string>{"dev", "ops"}));
}

TEST_F(TestApiserverTest, RecordsEveryRequestWithHeaders) {
  HttpsResponse r = Get(AliceTls(), "/api/v1/namespaces/default/secrets/s1?x=1",
                        {{"Impersonate-User", "root"}, {"X-Remote-User", "admin"}});
  std::vector<RecordedRequest> recs = api_->requests();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].audit_id, r.Header("Audit-Id"));
  EXPECT_EQ(recs[0].client_cert_pem, alice_.cert_pem);
  EXPECT_EQ(recs[0].method, "GET");
  EXPECT_EQ(recs[0].target, "/api/v1/namespaces/default/secrets/s1?x=1");
  EXPECT_EQ(recs[0].user, "alice");
  EXPECT_EQ(HeaderValues(recs[0], "impersonate-user"), std::vector<std::string>{"root"});
  EXPECT_EQ(HeaderValues(recs[0], "X-REMOTE-USER"), std::vector<std::string>{"admin"});
  EXPECT_EQ(api_->request_count(), 1u);
  api_->ClearRequests();
  EXPECT_TRUE(api_->requests().empty());
}

TEST_F(TestApiserverTest, SecretsGetListTableAndErrors) {
  HttpsResponse list = Get(AliceTls(), "/api/v1/namespaces/default/secrets");
  ASSERT_EQ(list.status, 200);
  json l = json::parse(list.body);
  EXPECT_EQ(l["kind"], "SecretList");
  ASSERT_EQ(l["items"].size(), 3u);
  EXPECT_EQ(l["items"][0]["metadata"]["labels"]["kshield.test/apiserver"], "east");

  HttpsResponse one = Get(AliceTls(), "/api/v1/namespaces/default/secrets/s2");
  ASSERT_EQ(one.status, 200);
  json s = json::parse(one.body);
  std::string value;
  ASSERT_TRUE(absl::Base64Unescape(s["data"]["value"].get<std::string>(), &value));
  EXPECT_EQ(value, "value-of-s2");

  HttpsResponse table = Get(AliceTls(), "/api/v1/namespaces/kube-system/secrets",
                            {{"Accept", "application/json;as=Table;v=v1;g=meta.k8s.io"}});
  ASSERT_EQ(table.status, 200);
  json t = json::parse(table.body);
  EXPECT_EQ(t["kind"], "Table");
  ASSERT_EQ(t["rows"].size(), 1u);
  EXPECT_EQ(t["rows"][0]["cells"][0], "ks1");

  EXPECT_EQ(json::parse(Get(AliceTls(), "/api/v1/namespaces/empty/secrets").body)["items"].size(),
            0u);
  EXPECT_EQ(Get(AliceTls(), "/api/v1/namespaces/default/secrets/nope").status, 404);
  EXPECT_EQ(Get(AliceTls(), "/no/such/path").status, 404);
  auto del = HttpsCall(api_->port(), AliceTls(),
                       {.method = "DELETE", .target = "/api/v1/namespaces/default/secrets/s1"});
  ASSERT_TRUE(del.ok());
  EXPECT_EQ(del->status, 403);
  // Exec without an upgrade is refused, not hung.
  EXPECT_EQ(Get(AliceTls(), "/api/v1/namespaces/default/pods/p/exec?command=echo").status, 400);
}

TEST_F(TestApiserverTest, WatchStreamsAddedThenModified) {
  auto r = HttpsCall(api_->port(), AliceTls(),
                     {.target = "/api/v1/namespaces/default/secrets?watch=true",
                      .stop_when = [](const std::string& body) {
                        return absl::StrContains(body, "MODIFIED") &&
                               std::count(body.begin(), body.end(), '\n') >= 5;
                      }});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(std::regex_match(r->Header("Audit-Id"), kUuid));
  EXPECT_TRUE(absl::EqualsIgnoreCase(r->Header("Transfer-Encoding"), "chunked"));
  std::vector<std::string> lines = absl::StrSplit(r->body, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 5u);
  std::vector<std::string> types;
  for (const auto& line : lines) types.push_back(json::parse(line)["type"].get<std::string>());
  EXPECT_EQ(types[0], "ADDED");
  EXPECT_EQ(types[1], "ADDED");
  EXPECT_EQ(types[2], "ADDED");
  EXPECT_EQ(types[3], "MODIFIED");
  json first_modified = json::parse(lines[3]);
  EXPECT_EQ(first_modified["object"]["kind"], "Secret");
  EXPECT_GT(std::stoll(first_modified["object"]["metadata"]["resourceVersion"].get<std::string>()),
            1000);

  // timeoutSeconds ends the stream cleanly.
  auto timed = HttpsCall(api_->port(), AliceTls(),
                         {.target = "/api/v1/namespaces/default/secrets?watch=1&timeoutSeconds=1"
                                    "&resourceVersion=5000"});
  ASSERT_TRUE(timed.ok()) << timed.status();
  EXPECT_EQ(timed->status, 200);
  EXPECT_THAT(timed->body, Not(HasSubstr("ADDED")));  // resourceVersion given: no replay
}

TEST_F(TestApiserverTest, StopEndsOpenWatchStreams) {
  std::thread watcher([&] {
    auto r = HttpsCall(api_->port(), AliceTls(),
                       {.target = "/api/v1/namespaces/default/secrets?watch=true",
                        .stop_when = [](const std::string&) { return false; }});
    (void)r;  // ends with an error or a truncated body once the server stops
  });
  ASSERT_TRUE(WaitFor([&] { return api_->request_count() == 1; }, std::chrono::seconds(5)));
  auto start = std::chrono::steady_clock::now();
  api_->Stop();
  watcher.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_FALSE(HttpsCall(api_->port(), AliceTls(), {.target = "/version"}).ok());
  api_->Stop();  // idempotent
}

// ---- SPDY/3.1 exec / portforward: negotiation, 101, raw echo ---------------------------------

class TestApiserverSpdyTest : public TestApiserverTest {
 protected:
  UpgradeTlsOptions AliceUpgradeTls() const {
    return {.ca_pem = pki_.ca.certificate_pem,
            .client_cert_pem = alice_.cert_pem,
            .client_key_pem = &alice_.key_pem};
  }
  static std::vector<std::pair<std::string, std::string>> Spdy(
      std::vector<std::pair<std::string, std::string>> extra) {
    std::vector<std::pair<std::string, std::string>> h = {{"Connection", "Upgrade"},
                                                          {"Upgrade", "SPDY/3.1"}};
    h.insert(h.end(), extra.begin(), extra.end());
    return h;
  }
  std::optional<RecordedRequest> Ended(const std::string& audit_id) {
    return api_->WaitForEndedStream(audit_id, std::chrono::seconds(10));
  }
};

TEST_F(TestApiserverSpdyTest, ExecNegotiatesLikeKubeAndEchoesEveryByte) {
  UpgradeClient c(api_->port(), AliceUpgradeTls());
  // Offers in two header instances, one a comma-separated list: the first acceptable offer wins.
  const std::string early = std::string("\0\xff\x80\x03", 4) + "early";
  auto r = c.Open(
      UpgradeRequestHead("POST", "/api/v1/namespaces/default/pods/p1/exec?command=sh&stdin=true",
                         Spdy({{"X-Stream-Protocol-Version", "v9.bogus, v3.channel.k8s.io"},
                               {"X-Stream-Protocol-Version", "v4.channel.k8s.io"},
                               {"Content-Length", "0"}})),
      early);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 101) << r->body;
  EXPECT_EQ(r->Values("Upgrade"), std::vector<std::string>{"SPDY/3.1"});
  EXPECT_EQ(r->Values("Connection"), std::vector<std::string>{"Upgrade"});
  EXPECT_EQ(r->Values("X-Stream-Protocol-Version"), std::vector<std::string>{"v3.channel.k8s.io"});
  EXPECT_EQ(r->Header("X-Kshield-Test-Apiserver"), "east");
  const std::string audit_id = r->Header("Audit-Id");
  EXPECT_TRUE(std::regex_match(audit_id, kUuid)) << audit_id;
  EXPECT_EQ(api_->open_streams(), 1u);

  // Bytes sent with the head come back first, then everything else, unchanged.
  auto first = c.Exchange({}, early.size());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, early);
  std::string big(200 * 1024, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131 + 7) & 0xff);
  auto echoed = c.Exchange({big.substr(0, 65537), big.substr(65537)}, big.size());
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_TRUE(*echoed == big);

  std::vector<RecordedRequest> recs = api_->requests();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].method, "POST");
  EXPECT_EQ(recs[0].target, "/api/v1/namespaces/default/pods/p1/exec?command=sh&stdin=true");
  EXPECT_EQ(recs[0].user, "alice");
  EXPECT_EQ(recs[0].status, 101);
  EXPECT_EQ(recs[0].audit_id, audit_id);
  EXPECT_EQ(HeaderValues(recs[0], "X-Stream-Protocol-Version"),
            (std::vector<std::string>{"v9.bogus, v3.channel.k8s.io", "v4.channel.k8s.io"}));
  EXPECT_FALSE(recs[0].stream_closed) << "still open";

  ASSERT_TRUE(c.Shutdown().ok());
  std::optional<RecordedRequest> ended = Ended(audit_id);
  ASSERT_TRUE(ended.has_value()) << "the echo stream did not end when the client closed";
  EXPECT_EQ(ended->stream_bytes_in, early.size() + big.size());
  EXPECT_EQ(ended->stream_bytes_out, early.size() + big.size());
  EXPECT_EQ(api_->open_streams(), 0u);
}

TEST_F(TestApiserverSpdyTest, PortForwardAndGreeting) {
  api_.reset();
  TestApiserverOptions o;
  o.server_cert_pem = pki_.server_cert_pem;
  o.server_key_pem = pki_.server_key_pem.Clone();
  o.client_ca_pem = pki_.ca.certificate_pem;
  o.name = "greeter";
  o.spdy_greeting = std::string("hello\0\xff", 7);
  auto api = TestApiserver::Start(std::move(o));
  ASSERT_TRUE(api.ok()) << api.status();
  api_ = std::move(*api);
  UpgradeClient c(api_->port(), AliceUpgradeTls());
  auto r = c.Open(UpgradeRequestHead("GET", "/api/v1/namespaces/team-a/pods/web/portforward",
                                     Spdy({{"X-Stream-Protocol-Version", "portforward.k8s.io"}})));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 101) << r->body;
  EXPECT_EQ(r->Header("X-Stream-Protocol-Version"), "portforward.k8s.io");
  auto greeting = c.Exchange({}, 7);
  ASSERT_TRUE(greeting.ok()) << greeting.status();
  EXPECT_EQ(*greeting, std::string("hello\0\xff", 7));
  auto echoed = c.Exchange({"abc"}, 3);
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(*echoed, "abc");
  c.Abort();
  std::optional<RecordedRequest> ended = Ended(r->Header("Audit-Id"));
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->stream_bytes_in, 3u);
  EXPECT_EQ(ended->stream_bytes_out, 10u);
}

TEST_F(TestApiserverSpdyTest, RefusalsAreNotUpgraded) {
  struct Case {
    const char* name;
    std::string method;
    std::string target;
    std::vector<std::pair<std::string, std::string>> headers;
    int status;
  };
  const std::string exec = "/api/v1/namespaces/default/pods/p1/exec";
  const std::string pf = "/api/v1/namespaces/default/pods/p1/portforward";
  const std::vector<Case> cases = {
      {"no version offered", "POST", exec, Spdy({}), 400},
      {"no acceptable version", "POST", exec,
       Spdy({{"X-Stream-Protocol-Version", "v5.channel.k8s.io"}}), 403},
      {"exec version on portforward", "POST", pf,
       Spdy({{"X-Stream-Protocol-Version", "v4.channel.k8s.io"}}), 403},
      {"PUT", "PUT", exec, Spdy({{"X-Stream-Protocol-Version", "v4.channel.k8s.io"}}), 405},
      {"portforward without upgrade",
       "POST",
       pf,
       {{"X-Stream-Protocol-Version", "portforward.k8s.io"}},
       400},
      {"Upgrade without Connection: Upgrade",
       "POST",
       exec,
       {{"Upgrade", "SPDY/3.1"}, {"X-Stream-Protocol-Version", "v4.channel.k8s.io"}},
       400},
  };
  for (const Case& k : cases) {
    UpgradeClient c(api_->port(), AliceUpgradeTls());
    auto r = c.Open(UpgradeRequestHead(k.method, k.target, k.headers));
    ASSERT_TRUE(r.ok()) << k.name << ": " << r.status();
    EXPECT_EQ(r->status, k.status) << k.name << ": " << r->body;
    EXPECT_TRUE(r->Values("Upgrade").empty()) << k.name;
    if (k.status == 403) {
      EXPECT_THAT(r->body, HasSubstr("unable to negotiate protocol")) << k.name;
      EXPECT_FALSE(r->Values("X-Accepted-Stream-Protocol-Versions").empty()) << k.name;
    }
  }
  EXPECT_EQ(api_->open_streams(), 0u);
  for (const RecordedRequest& r : api_->requests()) EXPECT_NE(r.status, 101) << r.target;
}

TEST_F(TestApiserverSpdyTest, RequiresAClientCertificateOrTokenLikeEveryRoute) {
  const std::string target = "/api/v1/namespaces/default/pods/p1/exec";
  const auto headers = Spdy({{"X-Stream-Protocol-Version", "v4.channel.k8s.io"}});
  {
    UpgradeClient c(api_->port(), {.ca_pem = pki_.ca.certificate_pem});
    auto r = c.Open(UpgradeRequestHead("POST", target, headers), "sneaky");
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 401);
    EXPECT_EQ(json::parse(r->body)["reason"], "Unauthorized");
  }
  {
    auto with_token = headers;
    with_token.emplace_back("Authorization", "Bearer token-for-bob");
    UpgradeClient c(api_->port(), {.ca_pem = pki_.ca.certificate_pem});
    auto r = c.Open(UpgradeRequestHead("POST", target, with_token));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 101);
    EXPECT_TRUE(c.Shutdown().ok());
  }
  std::vector<RecordedRequest> recs = api_->requests();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].status, 401);
  EXPECT_EQ(recs[0].user, "");
  EXPECT_EQ(recs[0].stream_bytes_in, 0u);
  EXPECT_EQ(recs[1].status, 101);
  EXPECT_EQ(recs[1].user, "token-for-bob");
}

// kube-apiserver's --client-ca-file semantics: an intermediate cluster CA under a shared root
// trusts its own leaves only, not those of a sibling intermediate.
TEST(TestApiserverTrust, IntermediateClientCaIsAnAnchor) {
  auto root = crypto::MakeSelfSignedCa({.common_name = "global root"});
  ASSERT_TRUE(root.ok());
  auto east_ca = crypto::MakeIntermediateCa(*root, {.common_name = "east ca", .is_ca = true});
  auto west_ca = crypto::MakeIntermediateCa(*root, {.common_name = "west ca", .is_ca = true});
  ASSERT_TRUE(east_ca.ok() && west_ca.ok());
  auto serving = MakeClusterPki("east");
  ASSERT_TRUE(serving.ok());
  TestApiserverOptions o;
  o.server_cert_pem = serving->server_cert_pem;
  o.server_key_pem = serving->server_key_pem.Clone();
  o.client_ca_pem = east_ca->certificate_pem;
  auto api = TestApiserver::Start(std::move(o));
  ASSERT_TRUE(api.ok()) << api.status();
  auto east_alice = MakeClientCert(*east_ca, "alice", {"dev"});
  auto west_alice = MakeClientCert(*west_ca, "alice", {"dev"});
  ASSERT_TRUE(east_alice.ok() && west_alice.ok());
  // The client sends leaf + its intermediate, as the daemon does with a relay-issued chain.
  auto call = [&](const ClientCert& c, const std::string& chain) {
    return HttpsCall((*api)->port(),
                     {.ca_pem = serving->ca.certificate_pem,
                      .client_cert_pem = c.cert_pem + chain,
                      .client_key_pem = &c.key_pem},
                     {.target = "/api/v1/namespaces/default/secrets/s1"});
  };
  auto ok = call(*east_alice, east_ca->certificate_pem);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->status, 200);
  auto refused = call(*west_alice, west_ca->certificate_pem);
  EXPECT_FALSE(refused.ok() && refused->status == 200) << "sibling intermediate accepted";
}

TEST(TestApiserverStart, RefusesBadConfiguration) {
  auto pki = MakeClusterPki("x");
  ASSERT_TRUE(pki.ok());
  TestApiserverOptions no_auth;
  no_auth.server_cert_pem = pki->server_cert_pem;
  no_auth.server_key_pem = pki->server_key_pem.Clone();
  EXPECT_EQ(TestApiserver::Start(std::move(no_auth)).status().code(),
            absl::StatusCode::kInvalidArgument);
  TestApiserverOptions bad_key;
  bad_key.server_cert_pem = pki->server_cert_pem;
  bad_key.server_key_pem = SecretBytes::CopyFrom(std::string_view("not a key"));
  bad_key.client_ca_pem = pki->ca.certificate_pem;
  EXPECT_EQ(TestApiserver::Start(std::move(bad_key)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TestApiserverBinary, ServesUntilSigterm) {
  TempDir dir;
  auto pki = MakeClusterPki("bin");
  ASSERT_TRUE(pki.ok());
  {
    std::ofstream(dir.Sub("cert.pem")) << pki->server_cert_pem;
    std::ofstream(dir.Sub("key.pem")) << pki->server_key_pem.UnsafeStringView();
    std::ofstream(dir.Sub("ca.pem")) << pki->ca.certificate_pem;
    std::ofstream(dir.Sub("tokens")) << "\n  tok-1  \ntok-2\n";
  }
  const std::string bin = std::string(KSHIELD_TEST_BIN_DIR) + "/kshield-test-apiserver";
  ChildProcess p({bin, "--cert", dir.Sub("cert.pem"), "--key", dir.Sub("key.pem"), "--client-ca",
                  dir.Sub("ca.pem"), "--token-file", dir.Sub("tokens"), "--name", "bin-east"},
                 dir.Sub("out.log"));
  std::smatch m;
  std::string log;
  const std::regex listening("listening 127\\.0\\.0\\.1:([0-9]+)\n");
  ASSERT_TRUE(WaitFor(
      [&] {
        log = ReadWholeFile(dir.Sub("out.log"));
        return std::regex_search(log, m, listening);
      },
      std::chrono::seconds(10)))
      << log;
  const uint16_t port = static_cast<uint16_t>(std::stoi(m[1]));
  auto r = HttpsCall(port, {.ca_pem = pki->ca.certificate_pem},
                     {.target = "/version", .headers = {{"Authorization", "Bearer tok-2"}}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->Header("X-Kshield-Test-Apiserver"), "bin-east");
  p.Signal(SIGTERM);
  int st = p.Wait(std::chrono::seconds(10));
  ASSERT_NE(st, -1);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

// ---- the real kubectl, directly against the test apiserver --------------------------------

class KubectlDirectTest : public TestApiserverTest {
 protected:
  void SetUp() override {
    if (!HaveKubectl()) GTEST_SKIP() << "kubectl not installed at " << kKubectl;
    TestApiserverTest::SetUp();
    if (HasFatalFailure()) return;
    home_ = dir_.Sub("home");
    std::filesystem::create_directories(home_);
    kubeconfig_ = dir_.Sub("kubeconfig");
    ASSERT_TRUE(WriteKubeconfig(kubeconfig_, {{.name = "east",
                                               .server = api_->url(),
                                               .ca_pem = pki_.ca.certificate_pem,
                                               .client_cert_pem = alice_.cert_pem,
                                               .client_key_pem = alice_.key_pem.UnsafeStringView(),
                                               .namespace_name = "default"}})
                    .ok());
  }
  int Kubectl(const std::string& args, std::string* out) {
    return RunKubectl(home_, kubeconfig_, args, out);
  }

  TempDir dir_;
  std::string home_;
  std::string kubeconfig_;
};

TEST_F(KubectlDirectTest, GetSecretsListsSeeds) {
  std::string out;
  ASSERT_EQ(Kubectl("get secrets -n default", &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("NAME"));
  for (const char* name : {"s1", "s2", "s3"}) EXPECT_THAT(out, HasSubstr(name));
  ASSERT_EQ(Kubectl("get secrets -n kube-system", &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("ks1"));
  EXPECT_THAT(out, Not(HasSubstr("s2")));
  bool saw_list = false;
  for (const RecordedRequest& r : api_->requests()) {
    EXPECT_EQ(r.user, "alice");
    if (absl::StartsWith(r.target, "/api/v1/namespaces/default/secrets")) saw_list = true;
  }
  EXPECT_TRUE(saw_list);
}

TEST_F(KubectlDirectTest, GetSecretAsJson) {
  std::string out;
  ASSERT_EQ(Kubectl("get secret s1 -o json", &out), 0) << out;
  json s = json::parse(out);
  EXPECT_EQ(s["metadata"]["name"], "s1");
  std::string value;
  ASSERT_TRUE(absl::Base64Unescape(s["data"]["value"].get<std::string>(), &value));
  EXPECT_EQ(value, "value-of-s1");
  ASSERT_NE(Kubectl("get secret missing", &out), 0);
  EXPECT_THAT(out, HasSubstr("not found"));
}

TEST_F(KubectlDirectTest, VersionReportsServer) {
  std::string out;
  ASSERT_EQ(Kubectl("version -o json", &out), 0) << out;
  // kubectl may print warnings before the JSON; parse from the first brace.
  json v = json::parse(out.substr(out.find('{')));
  EXPECT_EQ(v["serverVersion"]["gitVersion"], "v1.32.0");
}

TEST_F(KubectlDirectTest, WatchPrintsEventsUntilKilled) {
  const std::string log = dir_.Sub("watch.log");
  ChildProcess watch({"/usr/bin/env", "-u", "KUBECONFIG", "HOME=" + home_, kKubectl,
                      "--kubeconfig", kubeconfig_, "get", "secrets", "-w", "--output-watch-events"},
                     log);
  std::string text;
  ASSERT_TRUE(WaitFor(
      [&] {
        text = ReadWholeFile(log);
        size_t modified = 0;
        for (size_t p = 0; (p = text.find("MODIFIED", p)) != std::string::npos; ++p) ++modified;
        return modified >= 2;
      },
      std::chrono::seconds(20)))
      << text;
  EXPECT_TRUE(watch.running()) << "the watch must stay open";
  watch.Signal(SIGKILL);
  watch.Wait(std::chrono::seconds(5));
  EXPECT_THAT(text, HasSubstr("ADDED"));
  EXPECT_THAT(text, HasSubstr("s1"));
  bool saw_watch = false;
  for (const RecordedRequest& r : api_->requests()) {
    if (absl::StrContains(r.target, "watch=true")) saw_watch = true;
  }
  EXPECT_TRUE(saw_watch);
}

TEST_F(KubectlDirectTest, ExecEchoesOverWebSocket) {
  std::string out;
  ASSERT_EQ(Kubectl("exec pod1 -- echo hi", &out), 0) << out;
  EXPECT_EQ(out, "hi\n");
  ASSERT_EQ(Kubectl("exec pod1 -- hostname", &out), 0) << out;
  EXPECT_EQ(out, "pod1.default.east\n");
  ASSERT_EQ(RunKubectl(home_, kubeconfig_, "exec -i pod1 -- cat", &out, "stdin travels both ways",
                       /*with_stdin=*/true),
            0)
      << out;
  EXPECT_EQ(out, "stdin travels both ways");
  EXPECT_EQ(Kubectl("exec pod1 -- false", &out), 1) << out;

  bool saw_upgrade = false;
  for (const RecordedRequest& r : api_->requests()) {
    if (!absl::StrContains(r.target, "/exec?")) continue;
    EXPECT_EQ(r.status, 101);
    EXPECT_THAT(HeaderValues(r, "Sec-WebSocket-Protocol"),
                ::testing::Contains(HasSubstr("v5.channel.k8s.io")));
    saw_upgrade = true;
  }
  EXPECT_TRUE(saw_upgrade);
}

TEST_F(KubectlDirectTest, NoClientCertificateIsUnauthorized) {
  const std::string no_cert = dir_.Sub("kubeconfig-nocert");
  ASSERT_TRUE(WriteKubeconfig(no_cert, {{.name = "east",
                                         .server = api_->url(),
                                         .ca_pem = pki_.ca.certificate_pem}})
                  .ok());
  std::string out;
  EXPECT_NE(RunKubectl(home_, no_cert, "get secrets -n default", &out), 0) << out;
  EXPECT_THAT(out, Not(HasSubstr("s1")));
  const std::string bad_token = dir_.Sub("kubeconfig-badtoken");
  ASSERT_TRUE(WriteKubeconfig(bad_token, {{.name = "east",
                                           .server = api_->url(),
                                           .ca_pem = pki_.ca.certificate_pem,
                                           .token = "wrong"}})
                  .ok());
  EXPECT_NE(RunKubectl(home_, bad_token, "get secrets -n default", &out), 0) << out;
  EXPECT_THAT(out, HasSubstr("You must be logged in to the server"));
  std::vector<RecordedRequest> recs = api_->requests();
  ASSERT_FALSE(recs.empty());
  for (const RecordedRequest& r : recs) EXPECT_EQ(r.status, 401) << r.target;
}

}  // namespace
}  // namespace kshield::testing
