// The proxy data path over real sockets, against the test apiserver (tests/kubectl): forwarding
// with the upstream client certificate or token, 401 / 404 / 400 / 502 answers, streaming of a
// watch, WebSocket exec through the proxy, SPDY/3.1 upgrades spliced byte-exact both ways (the
// test apiserver echoes raw bytes after its 101), header hygiene as seen by the upstream,
// credential replacement, audit lines, and the real kubectl through the proxy (skipped when
// absent).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl/ssl_stream.hpp"
#include "boost/beast/websocket.hpp"
#include "common/testing/temp_dir.h"
#include "crypto/x509.h"
#include "gtest/gtest.h"
#include "kubectl/kubectl_fixture.h"
#include "kubectl/test_apiserver.h"
#include "kubectl/upgrade_test_client.h"
#include "nlohmann/json.hpp"
#include "proxy/proxy.h"
#include "support/process.h"

namespace kshield::proxy {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using testing::ClientCert;
using testing::ClusterPki;
using testing::HeaderValues;
using testing::RecordedRequest;
using testing::TestApiserver;

constexpr uint64_t kNoBodyLimit = std::numeric_limits<uint64_t>::max();  // see proxy.cc
constexpr char kAliceToken[] = "local-token-alice-7f3a9c";
constexpr char kWestToken[] = "local-token-west-11aa";
constexpr char kUpstreamToken[] = "upstream-oidc-token-5b2e";

// The daemon's token store stands behind this interface; here a fixed table.
class TableTokens : public LocalTokenValidator {
 public:
  void Add(std::string token, std::string cluster, std::string user) {
    std::lock_guard<std::mutex> l(mu_);
    table_[token] = {std::move(cluster), std::move(user)};
  }
  absl::StatusOr<std::string> Validate(std::string_view cluster,
                                       std::string_view token) const override {
    std::lock_guard<std::mutex> l(mu_);
    auto it = table_.find(std::string(token));
    if (it == table_.end() || it->second.first != cluster) {
      return absl::UnauthenticatedError("unknown token");
    }
    return it->second.second;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> table_;
};

struct Reply {
  int status = 0;
  http::fields headers;
  std::string body;
  std::string Header(std::string_view name) const {
    auto it = headers.find(beast::string_view(name.data(), name.size()));
    return it == headers.end() ? "" : std::string(it->value());
  }
};

// A small HTTPS/1.1 client with deadlines (async operations run with io_context::run_for), one
// keep-alive connection per object. Verifies the proxy's certificate against the local CA.
class Client {
 public:
  Client(uint16_t port, const std::string& ca_pem) : port_(port), ctx_(ssl::context::tls_client) {
    ctx_.add_certificate_authority(net::buffer(ca_pem));
    ctx_.set_verify_mode(ssl::verify_peer);
  }

  beast::error_code Connect(std::chrono::milliseconds timeout = 10s) {
    stream_.emplace(ioc_, ctx_);
    SSL_set1_host(stream_->native_handle(), "127.0.0.1");
    beast::error_code ec;
    stream_->next_layer().connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port_), ec);
    if (ec) return ec;
    return Run([&](auto h) { stream_->async_handshake(ssl::stream_base::client, h); }, timeout);
  }

  absl::StatusOr<Reply> Do(std::string method, std::string target,
                           std::vector<std::pair<std::string, std::string>> headers = {},
                           std::string body = "", bool chunked = false,
                           std::chrono::milliseconds timeout = 15s) {
    if (!stream_) {
      if (beast::error_code ec = Connect(); ec) {
        return absl::UnavailableError("connect: " + ec.message());
      }
    }
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, absl::StrCat("127.0.0.1:", port_));
    for (auto& [k, v] : headers) req.insert(k, v);
    if (!body.empty() || method == "POST" || method == "PUT") {
      req.body() = std::move(body);
      if (chunked) {
        req.chunked(true);
      } else {
        req.prepare_payload();
      }
    }
    beast::error_code ec = Run([&](auto h) { http::async_write(*stream_, req, h); }, timeout);
    if (ec) return absl::UnavailableError("write: " + ec.message());
    std::optional<http::response_parser<http::string_body>> parser;
    for (;;) {  // interim answers (100 Continue) are skipped
      parser.emplace();
      parser->body_limit(64 * 1024 * 1024);
      if (method == "HEAD") parser->skip(true);
      ec = Run([&](auto h) { http::async_read(*stream_, buf_, *parser, h); }, timeout);
      if (ec) return absl::UnavailableError("read: " + ec.message());
      const unsigned code = parser->get().result_int();
      if (code < 100 || code >= 200 || code == 101) break;
      ++interim_responses_;
    }
    auto& p = *parser;
    Reply r;
    r.status = p.get().result_int();
    r.headers = p.get().base();
    r.body = p.get().body();
    if (!p.get().keep_alive()) stream_.reset();
    return r;
  }

  // Sends a GET and reads the response head, leaving the body to ReadSome().
  absl::StatusOr<int> StartStream(std::string target,
                                  std::vector<std::pair<std::string, std::string>> headers,
                                  std::chrono::milliseconds timeout = 10s) {
    if (!stream_) {
      if (beast::error_code ec = Connect(); ec) return absl::UnavailableError(ec.message());
    }
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    for (auto& [k, v] : headers) req.insert(k, v);
    beast::error_code ec = Run([&](auto h) { http::async_write(*stream_, req, h); }, timeout);
    if (ec) return absl::UnavailableError(ec.message());
    stream_parser_.emplace();
    stream_parser_->body_limit(kNoBodyLimit);
    ec = Run([&](auto h) { http::async_read_header(*stream_, buf_, *stream_parser_, h); }, timeout);
    if (ec) return absl::UnavailableError(ec.message());
    return static_cast<int>(stream_parser_->get().result_int());
  }
  // Appends whatever body bytes arrive next (at least one) to `out`; false on error/timeout/end.
  bool ReadSome(std::string* out, std::chrono::milliseconds timeout) {
    if (stream_parser_->is_done()) return false;
    char chunk[4096];
    auto& body = stream_parser_->get().body();
    body.data = chunk;
    body.size = sizeof(chunk);
    beast::error_code ec =
        Run([&](auto h) { http::async_read_some(*stream_, buf_, *stream_parser_, h); }, timeout);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) return false;
    out->append(chunk, sizeof(chunk) - body.size);
    return true;
  }
  bool StreamDone() const { return stream_parser_ && stream_parser_->is_done(); }
  int interim_responses() const { return interim_responses_; }

  void Close() { stream_.reset(); }

  net::io_context& ioc() { return ioc_; }
  ssl::context& ctx() { return ctx_; }

  // Runs one async operation started by `start(handler)` for at most `timeout`.
  template <class Start>
  beast::error_code Run(Start&& start, std::chrono::milliseconds timeout) {
    beast::error_code result;
    bool done = false;
    start([&](beast::error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    ioc_.restart();
    ioc_.run_for(timeout);
    if (!done) {
      if (stream_) {
        beast::error_code ignored;
        stream_->next_layer().close(ignored);
      }
      ioc_.restart();
      ioc_.run_for(2s);
      stream_.reset();
      return net::error::timed_out;
    }
    return result;
  }

 private:
  uint16_t port_;
  net::io_context ioc_;
  ssl::context ctx_;
  std::optional<beast::ssl_stream<tcp::socket>> stream_;
  beast::flat_buffer buf_;
  std::optional<http::response_parser<http::buffer_body>> stream_parser_;
  int interim_responses_ = 0;
};

std::string BearerEntry(std::string_view token) {
  std::string b64;
  absl::WebSafeBase64Escape(absl::string_view(token.data(), token.size()), &b64);
  return absl::StrCat("base64url.bearer.authorization.k8s.io.", b64);
}

class ProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = testing::MakeClusterPki("east");
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
    auto api = testing::StartApiserver(pki_, "east", {kUpstreamToken}, 200ms);
    ASSERT_TRUE(api.ok()) << api.status();
    api_ = std::move(*api);
    auto alice = testing::MakeClientCert(pki_.ca, "alice", {"dev"});
    ASSERT_TRUE(alice.ok()) << alice.status();
    alice_ = std::move(*alice);
    auto bob = testing::MakeClientCert(pki_.ca, "bob", {"ops"});
    ASSERT_TRUE(bob.ok()) << bob.status();
    bob_ = std::move(*bob);

    auto local_ca = crypto::MakeSelfSignedCa({.common_name = "kshield local CA"});
    ASSERT_TRUE(local_ca.ok()) << local_ca.status();
    local_ca_ = std::move(*local_ca);
    auto kp = crypto::GenerateEcP256Key();
    ASSERT_TRUE(kp.ok()) << kp.status();
    auto cert = crypto::IssueCertificate(
        local_ca_, kp->public_key_pem,
        {.common_name = "127.0.0.1", .ip_addresses = {"127.0.0.1"}, .server_auth = true});
    ASSERT_TRUE(cert.ok()) << cert.status();

    server_cert_pem_ = *cert;
    server_key_pem_ = std::move(kp->private_key_pem);
    tokens_.Add(kAliceToken, "east", "alice-local");
    tokens_.Add(kWestToken, "west", "alice-local");
    StartProxy();
  }

  // (Re)starts the proxy, with `tweak` applied to the options, and points "east" at api_.
  void StartProxy(const std::function<void(ProxyOptions&)>& tweak = nullptr) {
    proxy_.reset();
    ProxyOptions o;
    o.server_cert_pem = server_cert_pem_;
    o.server_key_pem = server_key_pem_.Clone();
    o.tokens = &tokens_;
    o.audit = [this](const std::string& line) {
      std::lock_guard<std::mutex> l(audit_mu_);
      audit_.push_back(line);
    };
    o.threads = 2;
    if (tweak) tweak(o);
    auto proxy = Proxy::Start(std::move(o));
    ASSERT_TRUE(proxy.ok()) << proxy.status();
    proxy_ = std::move(*proxy);
    proxy_->SetUpstream("east", CertUpstream(alice_));
  }

  std::shared_ptr<const Upstream> CertUpstream(const ClientCert& c, std::string server = "") {
    auto u = std::make_shared<Upstream>();
    u->server = server.empty() ? api_->url() : server;
    u->ca_pem = pki_.ca.certificate_pem;
    u->client_cert_pem = c.cert_pem;
    u->client_key_pem = c.key_pem.Clone();
    return u;
  }

  std::unique_ptr<Client> NewClient() {
    return std::make_unique<Client>(proxy_->port(), local_ca_.certificate_pem);
  }

  std::vector<std::pair<std::string, std::string>> Auth(const char* token = kAliceToken) {
    return {{"Authorization", absl::StrCat("Bearer ", token)}};
  }

  std::vector<std::string> AuditLines() {
    std::lock_guard<std::mutex> l(audit_mu_);
    return audit_;
  }
  // Waits until at least `n` audit lines exist (a request is audited after its last byte).
  bool WaitForAudit(size_t n) {
    return testing::WaitFor(
        [&] {
          std::lock_guard<std::mutex> l(audit_mu_);
          return audit_.size() >= n;
        },
        10s);
  }

  ClusterPki pki_;
  std::unique_ptr<TestApiserver> api_;
  ClientCert alice_;
  ClientCert bob_;
  crypto::CertificateAuthority local_ca_;
  std::string server_cert_pem_;
  SecretBytes server_key_pem_;
  TableTokens tokens_;
  std::mutex audit_mu_;
  std::vector<std::string> audit_;
  std::unique_ptr<Proxy> proxy_;
};

TEST_F(ProxyTest, ForwardsGetWithTheUpstreamClientCertificate) {
  auto c = NewClient();
  auto r = c->Do("GET", "/clusters/east/api/v1/namespaces/default/secrets", Auth());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200) << r->body;
  json list = json::parse(r->body);
  EXPECT_EQ(list["kind"], "SecretList");
  EXPECT_FALSE(r->Header("Audit-Id").empty());
  EXPECT_EQ(r->Header("X-Kshield-Test-Apiserver"), "east");

  std::vector<RecordedRequest> reqs = api_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].user, "alice");
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[0].target, "/api/v1/namespaces/default/secrets");
  EXPECT_EQ(HeaderValues(reqs[0], "Host"),
            std::vector<std::string>{absl::StrCat("127.0.0.1:", api_->port())});

  // Keep-alive: more requests on the same client connection, query strings kept.
  for (int i = 0; i < 20; ++i) {
    auto again =
        c->Do("GET", "/clusters/east/api/v1/namespaces/default/secrets/s1?pretty=1", Auth());
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->status, 200);
  }
  EXPECT_EQ(api_->requests().back().target, "/api/v1/namespaces/default/secrets/s1?pretty=1");
}

TEST_F(ProxyTest, RefusesRequestsWithoutAValidLocalToken) {
  const std::vector<std::vector<std::pair<std::string, std::string>>> bad = {
      {},
      {{"Authorization", "Bearer not-a-token"}},
      {{"Authorization", absl::StrCat("Bearer ", kWestToken)}},  // issued for another cluster
      {{"Authorization", "Basic YWxpY2U6cHc="}},
      {{"Authorization", absl::StrCat("Bearer ", kAliceToken)}, {"Authorization", "Bearer other"}},
      {{"Sec-WebSocket-Protocol", "v5.channel.k8s.io"}},
  };
  for (const auto& headers : bad) {
    auto c = NewClient();
    auto r = c->Do("GET", "/clusters/east/api/v1/namespaces/default/secrets", headers);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 401);
    json status = json::parse(r->body);
    EXPECT_EQ(status["kind"], "Status");
    EXPECT_EQ(status["reason"], "Unauthorized");
    EXPECT_EQ(status["code"], 401);
    EXPECT_EQ(r->Header("Content-Type"), "application/json");
  }
  EXPECT_EQ(api_->request_count(), 0u) << "nothing may reach the upstream";
}

TEST_F(ProxyTest, UnknownClusterIs404AndBadRouteIs400) {
  auto c = NewClient();
  auto r = c->Do("GET", "/clusters/nowhere/api/v1/namespaces/default/secrets", Auth());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(json::parse(r->body)["reason"], "NotFound");

  for (std::string target :
       {"/api/v1/namespaces/default/secrets", "/clusters/east/api/v1/namespaces/../secrets",
        "/clusters/east/api/v1/namespaces/default%2Fsecrets", "/clusters/../api"}) {
    auto b = c->Do("GET", target, Auth());
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(b->status, 400) << target;
    EXPECT_EQ(json::parse(b->body)["reason"], "BadRequest") << target;
  }
  EXPECT_EQ(api_->request_count(), 0u);

  proxy_->RemoveUpstream("east");
  auto gone = c->Do("GET", "/clusters/east/api", Auth());
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(gone->status, 404);
}

TEST_F(ProxyTest, UnreachableOrUntrustedUpstreamIs502) {
  auto c = NewClient();
  // Nothing listens there.
  proxy_->SetUpstream("east", CertUpstream(alice_, absl::StrCat("https://127.0.0.1:",
                                                                testing::FreeLoopbackPort())));
  auto down = c->Do("GET", "/clusters/east/api", Auth());
  ASSERT_TRUE(down.ok()) << down.status();
  EXPECT_EQ(down->status, 502) << down->body;
  EXPECT_EQ(json::parse(down->body)["kind"], "Status");

  // The apiserver's certificate does not chain to ca_pem: fail closed.
  auto other_ca = crypto::MakeSelfSignedCa({.common_name = "someone else"});
  ASSERT_TRUE(other_ca.ok());
  auto wrong_ca = std::make_shared<Upstream>();
  wrong_ca->server = api_->url();
  wrong_ca->ca_pem = other_ca->certificate_pem;
  wrong_ca->client_cert_pem = alice_.cert_pem;
  wrong_ca->client_key_pem = alice_.key_pem.Clone();
  EXPECT_TRUE(Proxy::CheckUpstream(*wrong_ca).ok());
  proxy_->SetUpstream("east", wrong_ca);
  auto untrusted = c->Do("GET", "/clusters/east/api", Auth());
  ASSERT_TRUE(untrusted.ok()) << untrusted.status();
  EXPECT_EQ(untrusted->status, 502);
  EXPECT_TRUE(absl::StrContains(untrusted->body, "certificate")) << untrusted->body;

  // Right CA, wrong name (the certificate is for 127.0.0.1 / localhost).
  auto wrong_name = std::make_shared<Upstream>();
  wrong_name->server = api_->url();
  wrong_name->ca_pem = pki_.ca.certificate_pem;
  wrong_name->tls_server_name = "apiserver.other.example";
  wrong_name->client_cert_pem = alice_.cert_pem;
  wrong_name->client_key_pem = alice_.key_pem.Clone();
  proxy_->SetUpstream("east", wrong_name);
  auto mismatch = c->Do("GET", "/clusters/east/api", Auth());
  ASSERT_TRUE(mismatch.ok()) << mismatch.status();
  EXPECT_EQ(mismatch->status, 502);

  // A DNS name that the certificate carries works.
  auto by_name = std::make_shared<Upstream>();
  by_name->server = absl::StrCat("https://localhost:", api_->port());
  by_name->ca_pem = pki_.ca.certificate_pem;
  by_name->client_cert_pem = alice_.cert_pem;
  by_name->client_key_pem = alice_.key_pem.Clone();
  proxy_->SetUpstream("east", by_name);
  auto ok = c->Do("GET", "/clusters/east/api", Auth());
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->status, 200) << ok->body;

  // An unusable Upstream (key does not match the certificate) is refused by CheckUpstream and
  // answered 502 when installed anyway.
  auto broken = std::make_shared<Upstream>();
  broken->server = api_->url();
  broken->ca_pem = pki_.ca.certificate_pem;
  broken->client_cert_pem = alice_.cert_pem;
  broken->client_key_pem = bob_.key_pem.Clone();
  EXPECT_FALSE(Proxy::CheckUpstream(*broken).ok());
  proxy_->SetUpstream("east", broken);
  auto b = c->Do("GET", "/clusters/east/api", Auth());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->status, 502);

  auto http_url = std::make_shared<Upstream>(
      Upstream{.server = "http://127.0.0.1:1", .ca_pem = pki_.ca.certificate_pem});
  EXPECT_FALSE(Proxy::CheckUpstream(*http_url).ok());
}

TEST_F(ProxyTest, WatchEventsArriveWhileTheStreamIsOpen) {
  auto c = NewClient();
  // The upstream keeps the watch open for 30 s and sends a MODIFIED event every 200 ms.
  auto status = c->StartStream(
      "/clusters/east/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=30", Auth());
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(*status, 200);
  const auto start = Clock::now();
  std::string body;
  while (!absl::StrContains(body, "\"MODIFIED\"")) {
    ASSERT_TRUE(c->ReadSome(&body, 10s)) << "no watch event within 10 s; got: " << body;
    ASSERT_LT(Clock::now() - start, 10s);
  }
  EXPECT_TRUE(absl::StrContains(body, "\"ADDED\""));
  EXPECT_FALSE(c->StreamDone()) << "events must arrive before the upstream ends the stream";
  // Each event is a JSON line.
  size_t nl = body.find('\n');
  ASSERT_NE(nl, std::string::npos);
  json first = json::parse(body.substr(0, nl));
  EXPECT_EQ(first["type"], "ADDED");
  c->Close();

  ASSERT_TRUE(WaitForAudit(1));
  json line = json::parse(AuditLines().back());
  EXPECT_EQ(line["verb"], "watch");
  EXPECT_EQ(line["path"], "/api/v1/namespaces/default/secrets");
  EXPECT_GT(line["bytes_out"].get<uint64_t>(), 0u);
}

TEST_F(ProxyTest, CredentialAndImpersonationHeadersNeverReachTheUpstream) {
  auto c = NewClient();
  auto r = c->Do("GET", "/clusters/east/api/v1/namespaces/default/secrets",
                 {{"Authorization", absl::StrCat("Bearer ", kAliceToken)},
                  {"Impersonate-User", "system:admin"},
                  {"Impersonate-Group", "system:masters"},
                  {"impersonate-uid", "0"},
                  {"Impersonate-Extra-scopes", "all"},
                  {"X-Remote-User", "system:admin"},
                  {"X-Remote-Group", "system:masters"},
                  {"x-remote-extra-foo", "bar"},
                  {"Proxy-Authorization", "Basic eDp5"},
                  {"Connection", "X-Hop-Secret"},
                  {"X-Hop-Secret", "1"},
                  {"Accept", "application/json"}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  std::vector<RecordedRequest> reqs = api_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].user, "alice");
  for (const auto& [name, value] : reqs[0].headers) {
    std::string lower = absl::AsciiStrToLower(name);
    EXPECT_FALSE(absl::StartsWith(lower, "impersonate-")) << name;
    EXPECT_FALSE(absl::StartsWith(lower, "x-remote-")) << name;
    EXPECT_NE(lower, "authorization") << name;
    EXPECT_NE(lower, "proxy-authorization") << name;
    EXPECT_NE(lower, "x-hop-secret") << name;
    EXPECT_FALSE(absl::StrContains(value, kAliceToken)) << name;
  }
  EXPECT_EQ(HeaderValues(reqs[0], "Accept"), std::vector<std::string>{"application/json"});
}

// Runs a WebSocket exec of `cat` through the proxy: stdin "hello" must come back on stdout.
TEST_F(ProxyTest, WebSocketExecThroughTheProxyWithTheBearerSubprotocol) {
  net::io_context ioc;
  ssl::context ctx(ssl::context::tls_client);
  ctx.add_certificate_authority(net::buffer(local_ca_.certificate_pem));
  ctx.set_verify_mode(ssl::verify_peer);
  websocket::stream<beast::ssl_stream<tcp::socket>> ws(ioc, ctx);
  SSL_set1_host(ws.next_layer().native_handle(), "127.0.0.1");
  beast::get_lowest_layer(ws).connect(
      tcp::endpoint(net::ip::make_address("127.0.0.1"), proxy_->port()));
  ws.next_layer().handshake(ssl::stream_base::client);
  ws.set_option(websocket::stream_base::decorator([](websocket::request_type& req) {
    // No Authorization header: the local token rides in the subprotocol list, like a browser.
    req.set(http::field::sec_websocket_protocol,
            absl::StrCat(BearerEntry(kAliceToken), ", v5.channel.k8s.io, v4.channel.k8s.io"));
  }));
  // Bound every blocking call: a hung proxy must fail the test, not stall it.
  std::atomic<bool> finished{false};
  std::thread watchdog([&] {
    auto until = Clock::now() + 20s;
    while (!finished && Clock::now() < until) std::this_thread::sleep_for(10ms);
    if (!finished) {
      beast::error_code ig;
      beast::get_lowest_layer(ws).shutdown(tcp::socket::shutdown_both, ig);
    }
  });
  websocket::response_type res;
  beast::error_code ec;
  ws.handshake(res, "127.0.0.1",
               "/clusters/east/api/v1/namespaces/default/pods/pod1/exec?command=cat&stdin=true"
               "&stdout=true&stderr=true",
               ec);
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_EQ(std::string(res[http::field::sec_websocket_protocol]), "v5.channel.k8s.io");
  EXPECT_FALSE(std::string(res["Audit-Id"]).empty());
  ws.binary(true);
  std::string stdin_msg = std::string(1, '\0') + "hello through kshield";
  ws.write(net::buffer(stdin_msg), ec);
  ASSERT_FALSE(ec) << ec.message();
  beast::flat_buffer buf;
  ws.read(buf, ec);
  ASSERT_FALSE(ec) << ec.message();
  std::string out = beast::buffers_to_string(buf.data());
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0], 1) << "stdout channel";
  EXPECT_EQ(out.substr(1), "hello through kshield");
  // v5: close stdin; the exec ends with a Success status on channel 3 and a normal close.
  std::string close_stdin = std::string(1, '\xff') + std::string(1, '\0');
  ws.write(net::buffer(close_stdin), ec);
  ASSERT_FALSE(ec) << ec.message();
  buf.clear();
  ws.read(buf, ec);
  ASSERT_FALSE(ec) << ec.message();
  std::string status = beast::buffers_to_string(buf.data());
  ASSERT_FALSE(status.empty());
  EXPECT_EQ(status[0], 3);
  EXPECT_EQ(json::parse(status.substr(1))["status"], "Success");
  buf.clear();
  ws.read(buf, ec);
  EXPECT_EQ(ec, websocket::error::closed) << ec.message();
  finished = true;
  watchdog.join();

  std::vector<RecordedRequest> reqs = api_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].user, "alice");
  EXPECT_EQ(reqs[0].status, 101);
  for (const auto& [name, value] : reqs[0].headers) {
    EXPECT_FALSE(absl::StrContains(value, "base64url.bearer")) << name << ": " << value;
    EXPECT_FALSE(absl::StrContains(value, BearerEntry(kAliceToken).substr(38))) << name;
    EXPECT_NE(absl::AsciiStrToLower(name), "authorization");
  }
  EXPECT_EQ(HeaderValues(reqs[0], "Sec-WebSocket-Protocol"),
            std::vector<std::string>{"v5.channel.k8s.io, v4.channel.k8s.io"});

  ASSERT_TRUE(WaitForAudit(1));
  json line = json::parse(AuditLines().back());
  EXPECT_EQ(line["verb"], "connect");
  EXPECT_EQ(line["status"], 101);
  EXPECT_GT(line["bytes_in"].get<uint64_t>(), 0u);
  EXPECT_GT(line["bytes_out"].get<uint64_t>(), 0u);
}

TEST_F(ProxyTest, SetUpstreamReplacesTheCredentialForTheNextRequest) {
  auto c = NewClient();
  auto first = c->Do("GET", "/clusters/east/api", Auth());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->status, 200);
  EXPECT_EQ(api_->requests().back().user, "alice");

  proxy_->SetUpstream("east", CertUpstream(bob_));           // e.g. a renewed certificate
  auto second = c->Do("GET", "/clusters/east/api", Auth());  // same client connection
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->status, 200);
  EXPECT_EQ(api_->requests().back().user, "bob");
  EXPECT_EQ(api_->requests().back().groups, std::vector<std::string>{"ops"});
}

TEST_F(ProxyTest, BearerTokenUpstream) {
  auto u = std::make_shared<Upstream>();
  u->server = api_->url();
  u->ca_pem = pki_.ca.certificate_pem;
  std::atomic<int> calls{0};
  u->bearer_token = [&calls]() -> absl::StatusOr<SecretBytes> {
    ++calls;
    return SecretBytes::CopyFrom(std::string_view(kUpstreamToken));
  };
  ASSERT_TRUE(Proxy::CheckUpstream(*u).ok());
  proxy_->SetUpstream("east", u);
  auto c = NewClient();
  auto r = c->Do("GET", "/clusters/east/api/v1/namespaces/default/secrets", Auth());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  std::vector<RecordedRequest> reqs = api_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].user, kUpstreamToken);
  EXPECT_EQ(HeaderValues(reqs[0], "Authorization"),
            std::vector<std::string>{absl::StrCat("Bearer ", kUpstreamToken)});
  EXPECT_GE(calls.load(), 1);

  // A failing token source fails closed.
  auto failing = std::make_shared<Upstream>();
  failing->server = api_->url();
  failing->ca_pem = pki_.ca.certificate_pem;
  failing->bearer_token = []() -> absl::StatusOr<SecretBytes> {
    return absl::UnavailableError("refresh failed");
  };
  proxy_->SetUpstream("east", failing);
  auto f = c->Do("GET", "/clusters/east/api", Auth());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->status, 502);
  EXPECT_EQ(api_->requests().size(), 1u);
}

TEST_F(ProxyTest, RequestBodiesAreForwarded) {
  auto c = NewClient();
  std::string body(200 * 1024, 'x');  // several relay chunks
  auto r = c->Do("POST", "/clusters/east/api/v1/namespaces/default/secrets", Auth(), body);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 403);  // the test apiserver refuses writes; the proxy relays that
  EXPECT_EQ(json::parse(r->body)["kind"], "Status");
  ASSERT_TRUE(WaitForAudit(1));
  json line = json::parse(AuditLines().back());
  EXPECT_EQ(line["verb"], "create");
  EXPECT_EQ(line["status"], 403);
  EXPECT_EQ(line["bytes_in"], body.size());
  // The connection stays usable.
  auto after = c->Do("GET", "/clusters/east/api", Auth());
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->status, 200);
}

TEST_F(ProxyTest, AuditLinesAreJsonWithEveryField) {
  auto c = NewClient();
  auto ok =
      c->Do("GET", "/clusters/east/api/v1/namespaces/default/secrets?labelSelector=x%3Dy", Auth());
  ASSERT_TRUE(ok.ok());
  auto denied = c->Do("GET", "/clusters/east/api/v1/namespaces/default/secrets/s1");
  ASSERT_TRUE(denied.ok());
  auto missing = c->Do("DELETE", "/clusters/nowhere/api/v1/namespaces/default/secrets/s1", Auth());
  ASSERT_TRUE(missing.ok());
  ASSERT_TRUE(WaitForAudit(3));
  std::vector<std::string> lines = AuditLines();
  ASSERT_EQ(lines.size(), 3u);
  std::vector<json> parsed;
  for (const std::string& l : lines) {
    EXPECT_EQ(l.find('\n'), std::string::npos);
    EXPECT_FALSE(absl::StrContains(l, kAliceToken));
    EXPECT_FALSE(absl::StrContains(l, "labelSelector"));
    json j = json::parse(l);
    for (const char* f : {"ts", "user", "cluster", "method", "verb", "path", "audit_id"}) {
      EXPECT_TRUE(j.contains(f) && j[f].is_string()) << f << " in " << l;
    }
    for (const char* f : {"status", "bytes_in", "bytes_out", "duration_ms"}) {
      EXPECT_TRUE(j.contains(f) && j[f].is_number()) << f << " in " << l;
    }
    parsed.push_back(j);
  }
  EXPECT_EQ(parsed[0]["user"], "alice-local");
  EXPECT_EQ(parsed[0]["cluster"], "east");
  EXPECT_EQ(parsed[0]["method"], "GET");
  EXPECT_EQ(parsed[0]["verb"], "list");
  EXPECT_EQ(parsed[0]["path"], "/api/v1/namespaces/default/secrets");
  EXPECT_EQ(parsed[0]["status"], 200);
  EXPECT_EQ(parsed[0]["audit_id"], ok->Header("Audit-Id"));
  EXPECT_EQ(parsed[0]["bytes_out"], ok->body.size());
  EXPECT_TRUE(absl::EndsWith(parsed[0]["ts"].get<std::string>(), "Z"));
  EXPECT_EQ(parsed[1]["status"], 401);
  EXPECT_EQ(parsed[1]["user"], "");
  EXPECT_EQ(parsed[1]["verb"], "get");
  EXPECT_EQ(parsed[2]["status"], 404);
  EXPECT_EQ(parsed[2]["verb"], "delete");
  EXPECT_EQ(parsed[2]["cluster"], "nowhere");
}

TEST_F(ProxyTest, StopEndsOpenStreams) {
  auto c = NewClient();
  auto status = c->StartStream(
      "/clusters/east/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=60", Auth());
  ASSERT_TRUE(status.ok()) << status.status();
  std::string body;
  ASSERT_TRUE(c->ReadSome(&body, 10s));
  const auto start = Clock::now();
  proxy_->Stop();
  EXPECT_LT(Clock::now() - start, 5s);
  // The client sees its stream end (error or EOF) rather than hanging.
  std::string more;
  while (c->ReadSome(&more, 5s)) {
  }
  EXPECT_LT(Clock::now() - start, 10s);
}

TEST_F(ProxyTest, ChunkedBodiesExpectContinueAndHead) {
  auto c = NewClient();
  std::string body(100 * 1024, 'y');
  auto chunked = c->Do("POST", "/clusters/east/api/v1/namespaces/default/secrets", Auth(), body,
                       /*chunked=*/true);
  ASSERT_TRUE(chunked.ok()) << chunked.status();
  EXPECT_EQ(chunked->status, 403);
  RecordedRequest rec = api_->requests().back();
  EXPECT_EQ(HeaderValues(rec, "Transfer-Encoding"), std::vector<std::string>{"chunked"});

  // Expect: 100-continue is answered by the proxy and not forwarded.
  std::vector<std::pair<std::string, std::string>> headers = Auth();
  headers.emplace_back("Expect", "100-continue");
  auto expect = c->Do("POST", "/clusters/east/api/v1/namespaces/default/secrets", headers, "{}");
  ASSERT_TRUE(expect.ok()) << expect.status();
  EXPECT_EQ(expect->status, 403);
  EXPECT_EQ(c->interim_responses(), 1);
  EXPECT_TRUE(HeaderValues(api_->requests().back(), "Expect").empty());

  // HEAD: the answer's head only; the connection stays in step.
  auto head = c->Do("HEAD", "/clusters/east/api/v1/namespaces/default/secrets/s1", Auth());
  ASSERT_TRUE(head.ok()) << head.status();
  EXPECT_TRUE(head->body.empty());
  auto after = c->Do("GET", "/clusters/east/api/v1/namespaces/default/secrets/s1", Auth());
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->status, 200);
  EXPECT_EQ(json::parse(after->body)["metadata"]["name"], "s1");
}

// ---- SPDY/3.1 upgrades (kubectl's SPDY exec / port-forward transport) -----------------------
// The test apiserver negotiates X-Stream-Protocol-Version, answers 101 and then echoes raw bytes
// without SPDY framing: the proxy is protocol-blind after a 101, so what these tests prove is that
// every byte goes both ways, unchanged, concurrently, and that the upgrade request itself is
// authenticated and cleaned like any other.

constexpr char kSpdyExecTarget[] =
    "/clusters/east/api/v1/namespaces/default/pods/pod1/exec?command=cat&container=main"
    "&stdin=true&stdout=true";
constexpr char kSpdyExecPath[] = "/api/v1/namespaces/default/pods/pod1/exec";

using Headers = std::vector<std::pair<std::string, std::string>>;

// What client-go's SPDY executor sends: POST, one X-Stream-Protocol-Version header per version.
Headers SpdyExecHeaders(std::optional<std::string> token = kAliceToken) {
  Headers h;
  if (token) h.emplace_back("Authorization", absl::StrCat("Bearer ", *token));
  h.emplace_back("Connection", "Upgrade");
  h.emplace_back("Upgrade", "SPDY/3.1");
  h.emplace_back("X-Stream-Protocol-Version", "v4.channel.k8s.io");
  h.emplace_back("X-Stream-Protocol-Version", "v3.channel.k8s.io");
  h.emplace_back("X-Stream-Protocol-Version", "v2.channel.k8s.io");
  h.emplace_back("X-Stream-Protocol-Version", "channel.k8s.io");
  h.emplace_back("User-Agent", "kubectl/v1.32.4 (linux/amd64) kubernetes/test");
  h.emplace_back("Content-Length", "0");
  return h;
}

// "" when equal; else where two byte strings first differ (gtest would print megabytes).
std::string Diff(const std::string& want, const std::string& got) {
  if (want == got) return "";
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  return absl::StrCat("sizes ", want.size(), " / ", got.size(), ", first difference at byte ", i);
}

// `n` pseudo-random bytes (every value occurs for n ≥ a few KiB), reproducible by seed.
std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

class SpdyProxyTest : public ProxyTest {
 protected:
  std::unique_ptr<testing::UpgradeClient> NewUpgradeClient() {
    return std::make_unique<testing::UpgradeClient>(
        proxy_->port(), testing::UpgradeTlsOptions{.ca_pem = local_ca_.certificate_pem});
  }
  // The recorded upstream request answered with `audit_id`, once its echo stream has ended.
  std::optional<RecordedRequest> EndedStream(const std::string& audit_id) {
    return api_->WaitForEndedStream(audit_id, 10s);
  }
  // The audit line of the request answered with `audit_id` (waits for it).
  std::optional<json> AuditFor(const std::string& audit_id) {
    std::optional<json> found;
    testing::WaitFor(
        [&] {
          for (const std::string& l : AuditLines()) {
            json j = json::parse(l);
            if (j["audit_id"] == audit_id) {
              found = j;
              return true;
            }
          }
          return false;
        },
        10s);
    return found;
  }
};

TEST_F(SpdyProxyTest, SpdyExecIsSplicedAndBinaryBytesComeBackOneByOne) {
  auto c = NewUpgradeClient();
  auto r = c->Open(testing::UpgradeRequestHead("POST", kSpdyExecTarget, SpdyExecHeaders()));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 101) << r->body;
  EXPECT_EQ(r->Values("Upgrade"), std::vector<std::string>{"SPDY/3.1"});
  EXPECT_EQ(r->Values("Connection"), std::vector<std::string>{"Upgrade"});
  EXPECT_EQ(r->Values("X-Stream-Protocol-Version"), std::vector<std::string>{"v4.channel.k8s.io"});
  EXPECT_EQ(r->Header("X-Kshield-Test-Apiserver"), "east");
  const std::string audit_id = r->Header("Audit-Id");
  ASSERT_FALSE(audit_id.empty());

  // What reached the upstream: the upgrade and every version offer, in order; no credential.
  std::vector<RecordedRequest> reqs = api_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].target, std::string(kSpdyExecTarget).substr(strlen("/clusters/east")));
  EXPECT_EQ(reqs[0].user, "alice");
  EXPECT_EQ(reqs[0].status, 101);
  EXPECT_EQ(HeaderValues(reqs[0], "Upgrade"), std::vector<std::string>{"SPDY/3.1"});
  EXPECT_EQ(HeaderValues(reqs[0], "Connection"), std::vector<std::string>{"Upgrade"});
  EXPECT_EQ(HeaderValues(reqs[0], "X-Stream-Protocol-Version"),
            (std::vector<std::string>{"v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                                      "channel.k8s.io"}));
  EXPECT_TRUE(HeaderValues(reqs[0], "Authorization").empty());

  // Each piece must come back before the next is sent: a proxy that holds one direction back
  // (until more bytes, or the end) fails here by timeout. Raw bytes only: NUL, 0xFF, every byte
  // value, things that look like HTTP, a SPDY control frame head, pieces past one TLS record.
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
  const std::vector<std::string> pieces = {
      std::string(1, '\0'),
      std::string(1, '\xff'),
      all_bytes,
      std::string(1000, '\0'),
      std::string(1000, '\xff'),
      "\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
      "GET /clusters/east/api HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
      std::string("\x80\x03\x00\x01\x01\x00\x00\x0a\x00\x00\x00\x01\x00\x00", 14),
      RandomBytes(4093, 1),
      RandomBytes(16385, 2),
  };
  uint64_t total = 0;
  for (size_t i = 0; i < pieces.size(); ++i) {
    auto echoed = c->Exchange({pieces[i]}, pieces[i].size(), 10s);
    ASSERT_TRUE(echoed.ok()) << "piece " << i << ": " << echoed.status();
    EXPECT_EQ(Diff(pieces[i], *echoed), "") << "piece " << i;
    total += pieces[i].size();
  }
  EXPECT_EQ(api_->open_streams(), 1u);

  // A clean close (close_notify) by the client ends the upstream stream too.
  EXPECT_TRUE(c->Shutdown().ok());
  std::optional<RecordedRequest> ended = EndedStream(audit_id);
  ASSERT_TRUE(ended.has_value()) << "the upstream stream did not end after the client closed";
  EXPECT_EQ(ended->stream_bytes_in, total);
  EXPECT_EQ(ended->stream_bytes_out, total);
  EXPECT_TRUE(testing::WaitFor([&] { return api_->open_streams() == 0; }, 10s));

  std::optional<json> line = AuditFor(audit_id);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ((*line)["method"], "POST");
  EXPECT_EQ((*line)["verb"], "connect");
  EXPECT_EQ((*line)["path"], kSpdyExecPath);
  EXPECT_EQ((*line)["status"], 101);
  EXPECT_EQ((*line)["user"], "alice-local");
  EXPECT_EQ((*line)["cluster"], "east");
  EXPECT_EQ((*line)["bytes_in"], total);
  EXPECT_EQ((*line)["bytes_out"], total);
  for (const std::string& l : AuditLines()) {
    EXPECT_FALSE(absl::StrContains(l, kAliceToken));
    EXPECT_FALSE(absl::StrContains(l, "command=cat")) << "no query string in the audit";
  }
}

TEST_F(SpdyProxyTest, SpdyMegabyteBothWaysAtOnceInOddPieces) {
  auto c = NewUpgradeClient();
  auto r = c->Open(testing::UpgradeRequestHead("POST", kSpdyExecTarget, SpdyExecHeaders()));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 101) << r->body;
  const std::string audit_id = r->Header("Audit-Id");

  constexpr size_t kTotal = 1024 * 1024;
  const std::string payload = RandomBytes(kTotal, 42);
  const std::vector<size_t> sizes = {1, 3, 17, 255, 4093, 16385, 7, 65521, 12289, 999, 131071};
  std::vector<std::string> pieces;
  for (size_t off = 0, i = 0; off < kTotal; ++i) {
    const size_t n = std::min(sizes[i % sizes.size()], kTotal - off);
    pieces.push_back(payload.substr(off, n));
    off += n;
  }
  // Written and read concurrently; the echo is only complete if the proxy moves both directions
  // while the client is still writing (nothing is closed until everything came back).
  bool early_echo = false;
  const auto start = Clock::now();
  auto echoed = c->Exchange(pieces, kTotal, 60s, &early_echo);
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(Diff(payload, *echoed), "");
  std::printf(
      "1 MiB echoed through the proxy in %lld ms in %zu pieces; echo began before the "
      "last write: %s\n",
      static_cast<long long>(
          std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count()),
      pieces.size(), early_echo ? "yes" : "no");

  c->Abort();  // the client vanishes without close_notify: the upstream stream must still end
  std::optional<RecordedRequest> ended = EndedStream(audit_id);
  ASSERT_TRUE(ended.has_value()) << "the upstream stream did not end after the client closed";
  EXPECT_EQ(ended->stream_bytes_in, kTotal);
  EXPECT_EQ(ended->stream_bytes_out, kTotal);
  std::optional<json> line = AuditFor(audit_id);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ((*line)["status"], 101);
  EXPECT_EQ((*line)["verb"], "connect");
  EXPECT_EQ((*line)["bytes_in"], kTotal);
  EXPECT_EQ((*line)["bytes_out"], kTotal);
}

TEST_F(SpdyProxyTest, BytesPipelinedWithTheRequestHeadArriveAfterThe101) {
  auto c = NewUpgradeClient();
  const std::string head = testing::UpgradeRequestHead("POST", kSpdyExecTarget, SpdyExecHeaders());
  // In the same TLS record as the head: a SPDY client may send its first frames at once.
  std::string early =
      std::string("\x80\x03\x00\x04", 4) + std::string(3, '\0') + "\xff\xfe" + RandomBytes(3000, 7);
  ASSERT_LE(head.size() + early.size(), 16384u) << "must fit one TLS record";
  auto r = c->Open(head, early);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 101) << r->body;
  const std::string audit_id = r->Header("Audit-Id");
  auto first = c->Exchange({}, early.size());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(Diff(early, *first), "");
  const std::string more = RandomBytes(777, 8);
  auto second = c->Exchange({more}, more.size());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(Diff(more, *second), "");

  c->Abort();
  std::optional<RecordedRequest> ended = EndedStream(audit_id);
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->stream_bytes_in, early.size() + more.size());
  std::optional<json> line = AuditFor(audit_id);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ((*line)["bytes_in"], early.size() + more.size());
  EXPECT_EQ((*line)["bytes_out"], early.size() + more.size());
}

TEST_F(SpdyProxyTest, UpstreamBytesSentWithThe101ReachTheClient) {
  // The apiserver writes its first bytes in the same TLS record as the 101 head.
  const std::string greeting =
      std::string("\x80\x03\x00\x04\x00\x00\x00\x0cgreeting", 16) + std::string(1, '\0') + "\xff";
  testing::TestApiserverOptions o;
  o.server_cert_pem = pki_.server_cert_pem;
  o.server_key_pem = pki_.server_key_pem.Clone();
  o.client_ca_pem = pki_.ca.certificate_pem;
  o.name = "greeter";
  o.spdy_greeting = greeting;
  auto greeter = TestApiserver::Start(std::move(o));
  ASSERT_TRUE(greeter.ok()) << greeter.status();
  proxy_->SetUpstream("east", CertUpstream(alice_, (*greeter)->url()));

  auto c = NewUpgradeClient();
  auto r = c->Open(testing::UpgradeRequestHead("POST", kSpdyExecTarget, SpdyExecHeaders()));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 101) << r->body;
  EXPECT_EQ(r->Header("X-Kshield-Test-Apiserver"), "greeter");
  const std::string audit_id = r->Header("Audit-Id");
  auto got = c->Exchange({}, greeting.size());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Diff(greeting, *got), "");
  auto echo = c->Exchange({"ping"}, 4);
  ASSERT_TRUE(echo.ok()) << echo.status();
  EXPECT_EQ(*echo, "ping");
  EXPECT_TRUE(c->Shutdown().ok());
  std::optional<json> line = AuditFor(audit_id);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ((*line)["bytes_in"], 4u);
  EXPECT_EQ((*line)["bytes_out"], greeting.size() + 4);
}

TEST_F(SpdyProxyTest, SpdyPortForwardIsSplicedToo) {
  auto c = NewUpgradeClient();
  auto r = c->Open(testing::UpgradeRequestHead(
      "POST", "/clusters/east/api/v1/namespaces/default/pods/pod1/portforward",
      {{"Authorization", absl::StrCat("Bearer ", kAliceToken)},
       {"Connection", "Upgrade"},
       {"Upgrade", "SPDY/3.1"},
       {"X-Stream-Protocol-Version", "portforward.k8s.io"},
       {"Content-Length", "0"}}));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 101) << r->body;
  EXPECT_EQ(r->Header("X-Stream-Protocol-Version"), "portforward.k8s.io");
  const std::string audit_id = r->Header("Audit-Id");
  const std::string data = RandomBytes(20000, 3);
  auto echoed = c->Exchange({data.substr(0, 9999), data.substr(9999)}, data.size());
  ASSERT_TRUE(echoed.ok()) << echoed.status();
  EXPECT_EQ(Diff(data, *echoed), "");
  EXPECT_TRUE(c->Shutdown().ok());
  std::optional<json> line = AuditFor(audit_id);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ((*line)["verb"], "connect");
  EXPECT_EQ((*line)["path"], "/api/v1/namespaces/default/pods/pod1/portforward");
  EXPECT_EQ((*line)["status"], 101);
  EXPECT_EQ((*line)["bytes_in"], data.size());
  EXPECT_EQ((*line)["bytes_out"], data.size());
}

TEST_F(SpdyProxyTest, SpdyUpgradeWithoutAValidLocalTokenIs401AndReachesNothing) {
  const std::vector<std::optional<std::string>> tokens = {std::nullopt, "not-a-token",
                                                          kWestToken};  // kWest: other cluster
  for (const auto& token : tokens) {
    auto c = NewUpgradeClient();
    auto r = c->Open(testing::UpgradeRequestHead("POST", kSpdyExecTarget, SpdyExecHeaders(token)),
                     std::string("\0\xff early", 8));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 401) << token.value_or("(none)");
    EXPECT_EQ(json::parse(r->body)["reason"], "Unauthorized");
    EXPECT_TRUE(r->Values("Upgrade").empty());
  }
  EXPECT_EQ(api_->request_count(), 0u) << "nothing may reach the upstream";
  EXPECT_EQ(api_->open_streams(), 0u);
  ASSERT_TRUE(WaitForAudit(tokens.size()));
  for (const std::string& l : AuditLines()) {
    json j = json::parse(l);
    EXPECT_EQ(j["status"], 401);
    EXPECT_EQ(j["verb"], "connect");
    EXPECT_EQ(j["bytes_in"], 0);
  }
}

TEST_F(SpdyProxyTest, SpdyUpgradeCredentialHeadersNeverReachTheUpstream) {
  Headers h = SpdyExecHeaders();
  for (std::pair<std::string, std::string> forged :
       std::vector<std::pair<std::string, std::string>>{
           {"Impersonate-User", "system:admin"},
           {"Impersonate-Group", "system:masters"},
           {"Impersonate-Uid", "0"},
           {"Impersonate-Extra-scopes", "all"},
           {"X-Remote-User", "system:admin"},
           {"X-Remote-Group", "system:masters"},
           {"Proxy-Authorization", "Basic eDp5"},
           {"Sec-WebSocket-Protocol", BearerEntry(kAliceToken)}}) {
    h.push_back(std::move(forged));
  }
  auto check = [&](const std::string& want_user, std::vector<std::string> want_authorization) {
    api_->ClearRequests();
    auto c = NewUpgradeClient();
    auto r = c->Open(testing::UpgradeRequestHead("POST", kSpdyExecTarget, h));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->status, 101) << r->body;
    auto echoed = c->Exchange({"x"}, 1);
    ASSERT_TRUE(echoed.ok()) << echoed.status();
    EXPECT_TRUE(c->Shutdown().ok());
    std::vector<RecordedRequest> reqs = api_->requests();
    ASSERT_EQ(reqs.size(), 1u);
    EXPECT_EQ(reqs[0].user, want_user);
    EXPECT_EQ(HeaderValues(reqs[0], "Authorization"), want_authorization);
    for (const auto& [name, value] : reqs[0].headers) {
      const std::string lower = absl::AsciiStrToLower(name);
      EXPECT_FALSE(absl::StartsWith(lower, "impersonate-")) << name;
      EXPECT_FALSE(absl::StartsWith(lower, "x-remote-")) << name;
      EXPECT_NE(lower, "proxy-authorization") << name;
      EXPECT_NE(lower, "sec-websocket-protocol") << name;
      EXPECT_FALSE(absl::StrContains(value, kAliceToken)) << name;
    }
    EXPECT_EQ(HeaderValues(reqs[0], "Upgrade"), std::vector<std::string>{"SPDY/3.1"});
    EXPECT_EQ(HeaderValues(reqs[0], "X-Stream-Protocol-Version").size(), 4u);
  };
  check("alice", {});  // client-certificate upstream: no Authorization at all
  auto u = std::make_shared<Upstream>();
  u->server = api_->url();
  u->ca_pem = pki_.ca.certificate_pem;
  u->bearer_token = []() -> absl::StatusOr<SecretBytes> {
    return SecretBytes::CopyFrom(std::string_view(kUpstreamToken));
  };
  proxy_->SetUpstream("east", u);
  check(kUpstreamToken, {absl::StrCat("Bearer ", kUpstreamToken)});  // only the cluster's token
}

TEST_F(SpdyProxyTest, UpgradeAnsweredWithoutA101IsRelayedAndNothingIsSpliced) {
  // The apiserver ignores the upgrade of a discovery GET and answers 200 on a kept-alive
  // connection; the bytes the client sent after the head must go nowhere.
  auto c = NewUpgradeClient();
  Headers h = SpdyExecHeaders();
  h.pop_back();  // no Content-Length on a GET
  auto r = c->Open(testing::UpgradeRequestHead("GET", "/clusters/east/api", h),
                   std::string("\0\xffnot for the upstream", 22));
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(json::parse(r->body)["kind"], "APIVersions");
  EXPECT_TRUE(r->Values("Upgrade").empty());
  EXPECT_TRUE(absl::EqualsIgnoreCase(r->Header("Connection"), "close")) << r->Header("Connection");
  const std::string audit_id = r->Header("Audit-Id");
  auto rest = c->ReadUntilClosed(5s);
  ASSERT_TRUE(rest.ok()) << "the proxy must close after a refused upgrade: " << rest.status();
  EXPECT_EQ(*rest, "") << "nothing may be spliced";
  std::vector<RecordedRequest> reqs = api_->requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].target, "/api");
  EXPECT_EQ(HeaderValues(reqs[0], "Upgrade"), std::vector<std::string>{"SPDY/3.1"});
  EXPECT_EQ(reqs[0].status, 200);
  EXPECT_FALSE(reqs[0].stream_closed);
  EXPECT_EQ(api_->open_streams(), 0u);
  std::optional<json> line = AuditFor(audit_id);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ((*line)["status"], 200);
  EXPECT_EQ((*line)["verb"], "connect");  // VerbOf names any allowed upgrade request "connect"
  EXPECT_EQ((*line)["bytes_in"], 0);
  EXPECT_EQ((*line)["bytes_out"], r->body.size());

  // A refused negotiation (403, with the accepted versions) and a missing version (400) are
  // relayed the same way.
  auto c403 = NewUpgradeClient();
  auto refused = c403->Open(
      testing::UpgradeRequestHead("POST", kSpdyExecTarget,
                                  {{"Authorization", absl::StrCat("Bearer ", kAliceToken)},
                                   {"Connection", "Upgrade"},
                                   {"Upgrade", "SPDY/3.1"},
                                   {"X-Stream-Protocol-Version", "v5.channel.k8s.io"},
                                   {"Content-Length", "0"}}));
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_EQ(refused->status, 403);
  EXPECT_EQ(refused->Values("X-Accepted-Stream-Protocol-Versions"),
            (std::vector<std::string>{"v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                                      "channel.k8s.io"}));
  EXPECT_TRUE(absl::StrContains(refused->body, "unable to negotiate protocol")) << refused->body;
  auto after403 = c403->ReadUntilClosed(5s);
  ASSERT_TRUE(after403.ok()) << after403.status();
  EXPECT_EQ(*after403, "");

  auto c400 = NewUpgradeClient();
  auto missing = c400->Open(
      testing::UpgradeRequestHead("POST", kSpdyExecTarget,
                                  {{"Authorization", absl::StrCat("Bearer ", kAliceToken)},
                                   {"Connection", "Upgrade"},
                                   {"Upgrade", "SPDY/3.1"},
                                   {"Content-Length", "0"}}));
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_EQ(missing->status, 400);
  EXPECT_EQ(api_->open_streams(), 0u);
}

// Only "websocket" and "SPDY/3.1" (alone, with Connection: Upgrade) are upgrades for the proxy
// (http_filter.h IsAllowedUpgrade). Anything else is forwarded as a plain request without its
// hop-by-hop upgrade headers, and the client connection stays HTTP.
TEST_F(ProxyTest, UnsupportedUpgradesAreForwardedAsPlainRequests) {
  struct Case {
    const char* name;
    std::vector<std::pair<std::string, std::string>> headers;
  };
  const std::vector<Case> cases = {
      {"h2c",
       {{"Connection", "Upgrade, HTTP2-Settings"},
        {"Upgrade", "h2c"},
        {"HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"}}},
      {"SPDY/3.1 without Connection: Upgrade", {{"Upgrade", "SPDY/3.1"}}},
      {"a list", {{"Connection", "Upgrade"}, {"Upgrade", "SPDY/3.1, h2c"}}},
      {"SPDY/3", {{"Connection", "Upgrade"}, {"Upgrade", "SPDY/3"}}},
  };
  auto c = NewClient();
  size_t audited = 0;
  for (const Case& k : cases) {
    std::vector<std::pair<std::string, std::string>> h = Auth();
    h.insert(h.end(), k.headers.begin(), k.headers.end());
    h.emplace_back("X-Stream-Protocol-Version", "v4.channel.k8s.io");
    auto r = c->Do("POST", "/clusters/east/api/v1/namespaces/default/pods/pod1/exec?command=ls", h);
    ASSERT_TRUE(r.ok()) << k.name << ": " << r.status();
    // The test apiserver refuses exec without an upgrade; the refusal is relayed.
    EXPECT_EQ(r->status, 400) << k.name << ": " << r->body;
    RecordedRequest rec = api_->requests().back();
    EXPECT_EQ(rec.status, 400) << k.name;
    EXPECT_TRUE(HeaderValues(rec, "Upgrade").empty()) << k.name;
    EXPECT_TRUE(HeaderValues(rec, "Connection").empty()) << k.name;
    EXPECT_TRUE(HeaderValues(rec, "HTTP2-Settings").empty()) << k.name;
    EXPECT_EQ(HeaderValues(rec, "X-Stream-Protocol-Version"),
              std::vector<std::string>{"v4.channel.k8s.io"})
        << k.name;
    ASSERT_TRUE(WaitForAudit(++audited));
    json line = json::parse(AuditLines().back());
    EXPECT_EQ(line["verb"], "create") << k.name << ": not an upgrade, so not \"connect\"";
    EXPECT_EQ(line["status"], 400) << k.name;
    // The same client connection still speaks HTTP.
    auto plain = c->Do("GET", "/clusters/east/api", Auth());
    ASSERT_TRUE(plain.ok()) << k.name << ": " << plain.status();
    EXPECT_EQ(plain->status, 200) << k.name;
    ASSERT_TRUE(WaitForAudit(++audited));
  }
  EXPECT_EQ(api_->open_streams(), 0u);
}

TEST_F(ProxyTest, RestartedUpstreamIsReachedOnAFreshConnection) {
  auto c = NewClient();
  auto first = c->Do("GET", "/clusters/east/api", Auth());
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->status, 200);
  // The pooled connection dies with the server; a new server takes the same port.
  const uint16_t port = api_->port();
  api_.reset();
  testing::TestApiserverOptions o;
  o.server_cert_pem = pki_.server_cert_pem;
  o.server_key_pem = pki_.server_key_pem.Clone();
  o.client_ca_pem = pki_.ca.certificate_pem;
  o.name = "east-again";
  o.port = port;
  auto again = TestApiserver::Start(std::move(o));
  ASSERT_TRUE(again.ok()) << again.status();
  api_ = std::move(*again);
  for (int i = 0; i < 3; ++i) {
    auto r = c->Do("GET", "/clusters/east/api", Auth());
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(r->Header("X-Kshield-Test-Apiserver"), "east-again");
  }
}

TEST_F(ProxyTest, DeadlinesOnHeadsButNotOnQuietStreams) {
  StartProxy([](ProxyOptions& o) {
    o.client_header_timeout = 400ms;
    o.upstream_connect_timeout = 400ms;
    o.response_header_timeout = 400ms;
  });
  // A client that connects and says nothing is dropped.
  {
    net::io_context ioc;
    tcp::socket s(ioc);
    s.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), proxy_->port()));
    const auto start = Clock::now();
    char b;
    beast::error_code ec;
    s.read_some(net::buffer(&b, 1), ec);  // returns when the proxy closes
    EXPECT_TRUE(ec) << "expected the connection to be closed";
    EXPECT_LT(Clock::now() - start, 5s);
  }
  // An upstream that accepts TCP but never speaks TLS: 504 after the connect deadline.
  {
    net::io_context ioc;
    tcp::acceptor silent(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    proxy_->SetUpstream("mute", CertUpstream(alice_, absl::StrCat("https://127.0.0.1:",
                                                                  silent.local_endpoint().port())));
    tokens_.Add("mute-token", "mute", "alice-local");
    auto c = NewClient();
    const auto start = Clock::now();
    auto r = c->Do("GET", "/clusters/mute/api", Auth("mute-token"));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 504) << r->body;
    EXPECT_LT(Clock::now() - start, 5s);
  }
  // A watch quiet for much longer than every deadline above keeps streaming.
  auto slow = testing::StartApiserver(pki_, "slow", {}, 1500ms);
  ASSERT_TRUE(slow.ok()) << slow.status();
  proxy_->SetUpstream("east", CertUpstream(alice_, (*slow)->url()));
  auto c = NewClient();
  auto status = c->StartStream(
      "/clusters/east/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=30", Auth());
  ASSERT_TRUE(status.ok()) << status.status();
  ASSERT_EQ(*status, 200);
  std::string body;
  int modified = 0;
  while (modified < 2) {
    ASSERT_TRUE(c->ReadSome(&body, 10s)) << "stream ended or stalled; got: " << body;
    modified = 0;
    for (size_t pos = body.find("\"MODIFIED\""); pos != std::string::npos;
         pos = body.find("\"MODIFIED\"", pos + 1)) {
      ++modified;
    }
  }
  EXPECT_FALSE(c->StreamDone());
}

TEST_F(ProxyTest, ServerPathPrefixIsKept) {
  proxy_->SetUpstream("east", CertUpstream(alice_, api_->url() + "/k8s/clusters/c-1/"));
  auto c = NewClient();
  auto r = c->Do("GET", "/clusters/east/api/v1/namespaces/default/secrets?limit=1", Auth());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 404);  // the test apiserver has no such prefix; the target is what counts
  EXPECT_EQ(api_->requests().back().target,
            "/k8s/clusters/c-1/api/v1/namespaces/default/secrets?limit=1");
}

TEST_F(ProxyTest, CheckUpstreamValidatesServerUrls) {
  auto with = [&](std::string server) {
    Upstream u;
    u.server = std::move(server);
    u.ca_pem = pki_.ca.certificate_pem;
    u.client_cert_pem = alice_.cert_pem;
    u.client_key_pem = alice_.key_pem.Clone();
    return Proxy::CheckUpstream(u);
  };
  for (std::string ok : {"https://127.0.0.1:6443", "https://[::1]:6443/prefix", "https://[::1]",
                         "https://kube.example.com", "HTTPS://kube.example.com:443/",
                         "https://10.0.0.1/k8s/clusters/c-1"}) {
    EXPECT_TRUE(with(ok).ok()) << ok << ": " << with(ok);
  }
  for (std::string bad : {"http://127.0.0.1:6443", "https://", "https:///api", "127.0.0.1:6443",
                          "https://user:pw@host", "https://host:0", "https://host:65536",
                          "https://host:abc", "https://host:", "https://[::1", "https://[host]:1",
                          "https://[127.0.0.1]:1", "https://host/?q=1", "https://host/#x",
                          "https://host:1:2", "https://ho st", "https://h\xc3\xa9st"}) {
    absl::Status s = with(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad << ": " << s;
  }
  Upstream no_ca;
  no_ca.server = "https://127.0.0.1:6443";
  no_ca.client_cert_pem = alice_.cert_pem;
  no_ca.client_key_pem = alice_.key_pem.Clone();
  EXPECT_FALSE(Proxy::CheckUpstream(no_ca).ok());
  Upstream no_credential;
  no_credential.server = "https://127.0.0.1:6443";
  no_credential.ca_pem = pki_.ca.certificate_pem;
  EXPECT_FALSE(Proxy::CheckUpstream(no_credential).ok());
  Upstream cert_without_key = std::move(no_credential);
  cert_without_key.client_cert_pem = alice_.cert_pem;
  EXPECT_FALSE(Proxy::CheckUpstream(cert_without_key).ok());
}

TEST(ProxyStartTest, RefusesBadOptions) {
  TableTokens tokens;
  auto ca = crypto::MakeSelfSignedCa({.common_name = "ca"});
  ASSERT_TRUE(ca.ok());
  auto kp = crypto::GenerateEcP256Key();
  ASSERT_TRUE(kp.ok());
  auto cert = crypto::IssueCertificate(*ca, kp->public_key_pem,
                                       {.common_name = "127.0.0.1", .server_auth = true});
  ASSERT_TRUE(cert.ok());
  auto make = [&] {
    ProxyOptions o;
    o.server_cert_pem = *cert;
    o.server_key_pem = kp->private_key_pem.Clone();
    o.tokens = &tokens;
    return o;
  };
  {
    ProxyOptions o = make();
    o.listen_address = "0.0.0.0";
    EXPECT_EQ(Proxy::Start(std::move(o)).status().code(), absl::StatusCode::kInvalidArgument);
  }
  {
    ProxyOptions o = make();
    o.tokens = nullptr;
    EXPECT_EQ(Proxy::Start(std::move(o)).status().code(), absl::StatusCode::kInvalidArgument);
  }
  {
    ProxyOptions o = make();
    o.server_key_pem = ca->private_key_pem.Clone();  // not the certificate's key
    EXPECT_EQ(Proxy::Start(std::move(o)).status().code(), absl::StatusCode::kInvalidArgument);
  }
  {
    ProxyOptions o = make();
    o.listen_address = "::1";
    auto p = Proxy::Start(std::move(o));
    // IPv6 loopback may be unavailable in a container; then the bind fails, which is fine.
    if (p.ok()) {
      EXPECT_NE((*p)->port(), 0);
    }
  }
  {
    ProxyOptions o = make();
    auto p = Proxy::Start(std::move(o));
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_NE((*p)->port(), 0);
  }
}

// The real kubectl, configured with a static token for the proxy (the daemon uses an exec
// plugin instead; the data path is the same).
TEST_F(ProxyTest, RealKubectlGetWatchAndExecThroughTheProxy) {
  if (!testing::HaveKubectl()) GTEST_SKIP() << "kubectl not installed at " << testing::kKubectl;
  testing::TempDir dir;
  const std::string kubeconfig = dir.Sub("kubeconfig");
  ASSERT_TRUE(testing::WriteKubeconfig(
                  kubeconfig,
                  {{.name = "east",
                    .server = absl::StrCat("https://127.0.0.1:", proxy_->port(), "/clusters/east"),
                    .ca_pem = local_ca_.certificate_pem,
                    .token = kAliceToken,
                    .namespace_name = "default"}})
                  .ok());
  std::string out;
  ASSERT_EQ(testing::RunKubectl(dir.path(), kubeconfig, "get secrets", &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "s1")) << out;
  ASSERT_EQ(testing::RunKubectl(dir.path(), kubeconfig, "exec pod1 -- echo hi from exec", &out), 0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "hi from exec")) << out;
  // get -w: the first events must be printed while the watch is still open.
  std::string cmd = absl::StrCat(testing::KubectlEnv(dir.path()), "timeout 6 ", testing::kKubectl,
                                 " --kubeconfig '", kubeconfig,
                                 "' get secrets -w --output-watch-events </dev/null");
  testing::RunCommand(cmd, &out);
  EXPECT_TRUE(absl::StrContains(out, "MODIFIED")) << out;

  for (const RecordedRequest& r : api_->requests()) {
    EXPECT_EQ(r.user, "alice") << r.target;
    EXPECT_TRUE(HeaderValues(r, "Authorization").empty()) << r.target;
  }
  ASSERT_TRUE(WaitForAudit(3));
  for (const std::string& l : AuditLines()) EXPECT_FALSE(absl::StrContains(l, kAliceToken));
}

}  // namespace
}  // namespace kshield::proxy
