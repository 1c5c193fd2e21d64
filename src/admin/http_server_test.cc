#include "admin/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "admin/handlers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/registry.h"

namespace kshield::admin {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr auto kClientTimeout = std::chrono::seconds(5);

// A deliberately dumb HTTP client over a raw socket, so the tests see exactly what goes on the
// wire. Every read is bounded by kClientTimeout so a server bug fails the test instead of hanging.
class RawClient {
 public:
  static std::optional<RawClient> Connect(int port, int family = AF_INET) {
    const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::nullopt;
    int rc;
    if (family == AF_INET) {
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(static_cast<uint16_t>(port));
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      rc = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    } else {
      sockaddr_in6 sa{};
      sa.sin6_family = AF_INET6;
      sa.sin6_port = htons(static_cast<uint16_t>(port));
      sa.sin6_addr = in6addr_loopback;
      rc = connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    }
    if (rc != 0) {
      close(fd);
      return std::nullopt;
    }
    return RawClient(fd);
  }

  RawClient(RawClient&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  RawClient& operator=(RawClient&&) = delete;
  ~RawClient() {
    if (fd_ >= 0) close(fd_);
  }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads more bytes into buffer_. Returns false on EOF, error or timeout.
  bool ReadMore() {
    pollfd pfd{fd_, POLLIN, 0};
    const int ready =
        poll(&pfd, 1, static_cast<int>(std::chrono::milliseconds(kClientTimeout).count()));
    if (ready <= 0) return false;
    char buf[4096];
    const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }

  // True once the server has closed the connection (EOF or reset) within the timeout.
  bool WaitClosed() {
    while (ReadMore()) {
    }
    pollfd pfd{fd_, POLLIN, 0};
    return poll(&pfd, 1, 0) == 1;  // Readable with nothing left = EOF / error.
  }

  struct Response {
    int status = 0;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
  };

  // Reads one response. `head` = the request was HEAD (Content-Length describes no body).
  std::optional<Response> ReadResponse(bool head = false) {
    size_t header_end;
    while ((header_end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!ReadMore()) return std::nullopt;
    }
    Response r;
    const std::string head_text = buffer_.substr(0, header_end);
    buffer_.erase(0, header_end + 4);
    std::vector<std::string> lines;
    for (size_t pos = 0; pos <= head_text.size();) {
      size_t eol = head_text.find("\r\n", pos);
      if (eol == std::string::npos) eol = head_text.size();
      lines.push_back(head_text.substr(pos, eol - pos));
      pos = eol + 2;
    }
    // "HTTP/1.1 200 OK"
    if (lines.empty() || lines[0].size() < 12 || !absl::StartsWith(lines[0], "HTTP/1.")) {
      return std::nullopt;
    }
    if (!absl::SimpleAtoi(lines[0].substr(9, 3), &r.status)) return std::nullopt;
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == std::string::npos) return std::nullopt;
      std::string value = lines[i].substr(colon + 1);
      r.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
          std::string(absl::StripAsciiWhitespace(value));
    }
    size_t length = 0;
    if (auto it = r.headers.find("content-length"); it != r.headers.end()) {
      if (!absl::SimpleAtoi(it->second, &length)) return std::nullopt;
    }
    if (head) length = 0;
    while (buffer_.size() < length) {
      if (!ReadMore()) return std::nullopt;
    }
    r.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    return r;
  }

 private:
  explicit RawClient(int fd) : fd_(fd) {}
  int fd_;
  std::string buffer_;
};

std::string Get(const std::string& path, const std::string& extra_headers = "") {
  return absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: localhost\r\n", extra_headers, "\r\n");
}

// Sends one request on a fresh connection and reads the response.
std::optional<RawClient::Response> RoundTrip(int port, std::string_view request,
                                             bool head = false) {
  auto client = RawClient::Connect(port);
  if (!client || !client->Send(request)) return std::nullopt;
  return client->ReadResponse(head);
}

// The server counts rejections in Registry::Default(); read them back from the exposition.
double RejectedCount(const std::string& reason) {
  const std::string text = metrics::Registry::Default().Render();
  const std::string key =
      absl::StrCat("kshield_admin_http_rejected_total{reason=\"", reason, "\"} ");
  const size_t pos = text.find(key);
  if (pos == std::string::npos) return 0;
  const size_t start = pos + key.size();
  double value = 0;
  if (!absl::SimpleAtod(text.substr(start, text.find('\n', start) - start), &value)) return -1;
  return value;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    registry_.Counter("kshield_test_probes_total", "Probes.").WithLabels().Inc(7);
    std::map<std::string, HttpHandler> routes = {
        {"/healthz", HealthHandler()},
        {"/readyz", HealthHandler([this] {
           return ready_ ? absl::OkStatus() : absl::UnavailableError("keyset not loaded");
         })},
        {"/metrics", MetricsHandler(registry_)},
    };
    HttpServerOptions options;
    options.threads = 2;
    auto server = HttpServer::Start("127.0.0.1:0", std::move(routes), options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_GT(server_->port(), 0);
  }

  int port() const { return server_->port(); }

  metrics::Registry registry_;
  std::atomic<bool> ready_{false};
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, AddressNamesTheBoundPort) {
  EXPECT_EQ(server_->address(), absl::StrCat("127.0.0.1:", port()));
}

TEST_F(HttpServerTest, ServesHealthz) {
  auto r = RoundTrip(port(), Get("/healthz"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok\n");
  EXPECT_EQ(r->headers["content-type"], "text/plain; charset=utf-8");
  EXPECT_EQ(r->headers["content-length"], "3");
}

TEST_F(HttpServerTest, ReadyzFollowsTheCheck) {
  auto r = RoundTrip(port(), Get("/readyz"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(r->body, "not ready: keyset not loaded\n");

  ready_ = true;
  r = RoundTrip(port(), Get("/readyz"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok\n");
}

TEST_F(HttpServerTest, ServesMetrics) {
  auto r = RoundTrip(port(), Get("/metrics"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(r->body,
            "# HELP kshield_test_probes_total Probes.\n"
            "# TYPE kshield_test_probes_total counter\n"
            "kshield_test_probes_total 7\n");
}

TEST_F(HttpServerTest, IgnoresQueryString) {
  auto r = RoundTrip(port(), Get("/healthz?verbose=1"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpServerTest, UnknownPathIs404) {
  const double before = RejectedCount("not_found");
  for (const char* path : {"/", "/nope", "/healthz/", "/HEALTHZ", "*"}) {
    auto r = RoundTrip(port(), Get(path));
    ASSERT_TRUE(r.has_value()) << path;
    EXPECT_EQ(r->status, 404) << path;
  }
  EXPECT_EQ(RejectedCount("not_found") - before, 5);
}

TEST_F(HttpServerTest, PostIs405AndConnectionStaysUsable) {
  auto client = RawClient::Connect(port());
  ASSERT_TRUE(client.has_value());
  ASSERT_TRUE(client->Send("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
                           Get("/healthz")));
  auto r = client->ReadResponse();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->headers["allow"], "GET, HEAD");
  r = client->ReadResponse();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);

  for (const char* method : {"PUT", "DELETE", "OPTIONS"}) {
    auto other = RoundTrip(port(), absl::StrCat(method, " /metrics HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(other.has_value()) << method;
    EXPECT_EQ(other->status, 405) << method;
  }
}

TEST_F(HttpServerTest, HeadSendsHeadersOnly) {
  auto client = RawClient::Connect(port());
  ASSERT_TRUE(client.has_value());
  ASSERT_TRUE(client->Send("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + Get("/healthz")));
  auto r = client->ReadResponse(/*head=*/true);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers["content-length"], "3");
  // If HEAD had carried a body, it would now be read as the start of the next response.
  r = client->ReadResponse();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok\n");
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto client = RawClient::Connect(port());
  ASSERT_TRUE(client.has_value());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(client->Send(Get(i % 2 ? "/metrics" : "/healthz")));
    auto r = client->ReadResponse();
    ASSERT_TRUE(r.has_value()) << i;
    EXPECT_EQ(r->status, 200);
  }
  // Pipelined: two requests in one write.
  ASSERT_TRUE(client->Send(Get("/healthz") + Get("/nope")));
  auto first = client->ReadResponse();
  auto second = client->ReadResponse();
  ASSERT_TRUE(first.has_value() && second.has_value());
  EXPECT_EQ(first->status, 200);
  EXPECT_EQ(second->status, 404);
}

TEST_F(HttpServerTest, ConnectionCloseIsHonoured) {
  auto client = RawClient::Connect(port());
  ASSERT_TRUE(client.has_value());
  ASSERT_TRUE(client->Send(Get("/healthz", "Connection: close\r\n")));
  auto r = client->ReadResponse();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(absl::AsciiStrToLower(r->headers["connection"]), "close");
  EXPECT_TRUE(client->WaitClosed());
}

TEST_F(HttpServerTest, Http10ClosesUnlessKeepAlive) {
  auto client = RawClient::Connect(port());
  ASSERT_TRUE(client.has_value());
  ASSERT_TRUE(client->Send("GET /healthz HTTP/1.0\r\n\r\n"));
  auto r = client->ReadResponse();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(client->WaitClosed());

  auto kept = RawClient::Connect(port());
  ASSERT_TRUE(kept.has_value());
  ASSERT_TRUE(kept->Send("GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  ASSERT_TRUE(kept->ReadResponse().has_value());
  ASSERT_TRUE(kept->Send("GET /healthz HTTP/1.0\r\n\r\n"));
  r = kept->ReadResponse();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

TEST_F(HttpServerTest, OversizeHeaderIs431OrClosed) {
  auto client = RawClient::Connect(port());
  ASSERT_TRUE(client.has_value());
  client->Send(Get("/healthz", absl::StrCat("X-Big: ", std::string(16 * 1024, 'a'), "\r\n")));
  auto r = client->ReadResponse();
  if (r.has_value()) {
    EXPECT_EQ(r->status, 431);
    EXPECT_EQ(absl::AsciiStrToLower(r->headers["connection"]), "close");
  }
  EXPECT_TRUE(client->WaitClosed());
  // The server is still fine.
  auto ok = RoundTrip(port(), Get("/healthz"));
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status, 200);
}

TEST_F(HttpServerTest, OversizeBodyIs413OrClosed) {
  auto client = RawClient::Connect(port());
  ASSERT_TRUE(client.has_value());
  client->Send(absl::StrCat("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
                            std::string(100000, 'b')));
  auto r = client->ReadResponse();
  if (r.has_value()) {
    EXPECT_EQ(r->status, 413);
  }
  EXPECT_TRUE(client->WaitClosed());
}

TEST_F(HttpServerTest, GarbageIs400AndClosed) {
  const double before = RejectedCount("bad_request");
  const std::vector<std::string> junks = {
      "NOT HTTP AT ALL\r\n\r\n",
      "GET /healthz HTTP/9.9\r\n\r\n",
      "GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n",
      "GET /healthz HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
      std::string("GET /\0 HTTP/1.1\r\n\r\n", 20),
  };
  for (const std::string& junk : junks) {
    auto client = RawClient::Connect(port());
    ASSERT_TRUE(client.has_value());
    ASSERT_TRUE(client->Send(junk));
    auto r = client->ReadResponse();
    ASSERT_TRUE(r.has_value()) << junk;
    EXPECT_EQ(r->status, 400) << junk;
    EXPECT_TRUE(client->WaitClosed()) << junk;
  }
  EXPECT_EQ(RejectedCount("bad_request") - before, 5);
}

TEST_F(HttpServerTest, PeerVanishingMidRequestIsHarmless) {
  for (int i = 0; i < 20; ++i) {
    auto client = RawClient::Connect(port());
    ASSERT_TRUE(client.has_value());
    client->Send("GET /metr");
  }  // Each client closes here.
  auto r = RoundTrip(port(), Get("/healthz"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServerLimitsTest, SlowClientIsCutOffAtTheReadTimeout) {
  HttpServerOptions options;
  options.io_timeout = std::chrono::milliseconds(300);
  auto server = HttpServer::Start("127.0.0.1:0", {{"/healthz", HealthHandler()}}, options);
  ASSERT_TRUE(server.ok()) << server.status();
  const double before = RejectedCount("timeout");

  auto client = RawClient::Connect((*server)->port());
  ASSERT_TRUE(client.has_value());
  const auto start = std::chrono::steady_clock::now();
  // Trickle a request that never completes; the deadline covers the whole request, so the
  // trickling does not keep the connection alive.
  bool closed = false;
  for (int i = 0; i < 40 && !closed; ++i) {
    closed = !client->Send("X");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // Pacing the peer, not syncing.
  }
  EXPECT_TRUE(client->WaitClosed());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(RejectedCount("timeout") - before, 1);

  // An idle keep-alive connection is closed too.
  auto idle = RawClient::Connect((*server)->port());
  ASSERT_TRUE(idle.has_value());
  ASSERT_TRUE(idle->Send(Get("/healthz")));
  ASSERT_TRUE(idle->ReadResponse().has_value());
  EXPECT_TRUE(idle->WaitClosed());
}

TEST(HttpServerLimitsTest, ExtraConnectionsAreClosedBeyondTheLimit) {
  HttpServerOptions options;
  options.max_connections = 1;
  auto server = HttpServer::Start("127.0.0.1:0", {{"/healthz", HealthHandler()}}, options);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();

  auto first = RawClient::Connect(port);
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(first->Send(Get("/healthz")));
  ASSERT_TRUE(first->ReadResponse().has_value());  // Now certainly accepted and counted.

  auto second = RawClient::Connect(port);
  ASSERT_TRUE(second.has_value());  // The kernel completes the handshake...
  second->Send(Get("/healthz"));
  EXPECT_FALSE(second->ReadResponse().has_value());  // ...but the server hangs up.

  ASSERT_TRUE(first->Send(Get("/healthz")));
  auto r = first->ReadResponse();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServerStartTest, HandlerStatusAndContentTypePassThrough) {
  auto server = HttpServer::Start(
      "127.0.0.1:0",
      {{"/teapot",
        [](const std::string& target) {
          return HttpResponse{418, "application/json", absl::StrCat("{\"path\":\"", target, "\"}")};
        }},
       {"/bogus",
        [](const std::string&) {
          return HttpResponse{42, "text/plain", "?"};
        }},
       {"/empty", [](const std::string&) {
          return HttpResponse{204, "text/plain", "dropped"};
        }}});
  ASSERT_TRUE(server.ok()) << server.status();
  auto r = RoundTrip((*server)->port(), Get("/teapot?x=1"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 418);
  EXPECT_EQ(r->headers["content-type"], "application/json");
  EXPECT_EQ(r->body, "{\"path\":\"/teapot\"}");

  r = RoundTrip((*server)->port(), Get("/bogus"));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 500);

  auto client = RawClient::Connect((*server)->port());
  ASSERT_TRUE(client.has_value());
  ASSERT_TRUE(client->Send(Get("/empty") + Get("/teapot")));
  r = client->ReadResponse();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->body, "");
  r = client->ReadResponse();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 418);
}

TEST(HttpServerStartTest, BindConflictNamesTheAddress) {
  auto first = HttpServer::Start("127.0.0.1:0", {{"/healthz", HealthHandler()}});
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string addr = (*first)->address();

  auto second = HttpServer::Start(addr, {{"/healthz", HealthHandler()}});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(addr));
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("address already in use"));
}

TEST(HttpServerStartTest, RejectsBadArguments) {
  const std::map<std::string, HttpHandler> routes = {{"/healthz", HealthHandler()}};
  for (const char* addr :
       {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:80a",
        "localhost:80", "::1:80", "[::1]80", "[127.0.0.1]:80", "[::1:80", ":80", "1.2.3:80"}) {
    auto server = HttpServer::Start(addr, routes);
    ASSERT_FALSE(server.ok()) << addr;
    EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument) << addr;
    EXPECT_THAT(std::string(server.status().message()), HasSubstr(addr)) << addr;
  }
  EXPECT_FALSE(HttpServer::Start("127.0.0.1:0", {{"healthz", HealthHandler()}}).ok());
  EXPECT_FALSE(HttpServer::Start("127.0.0.1:0", {{"/healthz", nullptr}}).ok());
  EXPECT_FALSE(HttpServer::Start("127.0.0.1:0", routes, 0).ok());
}

TEST(HttpServerStartTest, ServesIpv6Loopback) {
  auto server = HttpServer::Start("[::1]:0", {{"/healthz", HealthHandler()}});
  if (!server.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << server.status();
  EXPECT_EQ((*server)->address(), absl::StrCat("[::1]:", (*server)->port()));
  auto client = RawClient::Connect((*server)->port(), AF_INET6);
  ASSERT_TRUE(client.has_value());
  ASSERT_TRUE(client->Send(Get("/healthz")));
  auto r = client->ReadResponse();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServerStartTest, StopIsIdempotentAndReleasesThePort) {
  auto server = HttpServer::Start("127.0.0.1:0", {{"/healthz", HealthHandler()}}, 4);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  const std::string addr = (*server)->address();

  // An open keep-alive connection must not keep Stop() waiting.
  auto client = RawClient::Connect(port);
  ASSERT_TRUE(client.has_value());
  ASSERT_TRUE(client->Send(Get("/healthz")));
  ASSERT_TRUE(client->ReadResponse().has_value());

  (*server)->Stop();
  (*server)->Stop();
  EXPECT_TRUE(client->WaitClosed());
  EXPECT_FALSE(RawClient::Connect(port).has_value());

  // The port can be bound again right away.
  auto again = HttpServer::Start(addr, {{"/healthz", HealthHandler()}});
  ASSERT_TRUE(again.ok()) << again.status();
  server->reset();  // Destructor after Stop(): still fine.
}

TEST(HttpServerStartTest, ConcurrentClients) {
  auto server = HttpServer::Start("127.0.0.1:0", {{"/healthz", HealthHandler()}}, 2);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      auto client = RawClient::Connect(port);
      if (!client) return;
      for (int i = 0; i < 50; ++i) {
        if (!client->Send(Get("/healthz"))) return;
        auto r = client->ReadResponse();
        if (r && r->status == 200) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8 * 50);
}

}  // namespace
}  // namespace kshield::admin
