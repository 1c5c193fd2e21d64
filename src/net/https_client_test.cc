// The shared HTTPS client without a TLS peer: URL rules, refusals before any byte is sent, and
// the network failures a caller must tell apart. The full exchange (verification, status,
// bounded bodies) is exercised against real servers by the relay's JWKS tests
// (tests/relay/jwks_url_test.cc) and the daemon's integration tests.
#include "net/https_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/time/clock.h"
#include "support/process.h"

namespace kshield::net {
namespace {

TEST(SplitHttpsUrlTest, Parts) {
  absl::StatusOr<HttpsUrlParts> u = SplitHttpsUrl("https://[::1]:6443/a/b?c=d");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "::1");
  EXPECT_EQ(u->port, 6443);
  EXPECT_EQ(u->host_header, "[::1]:6443");
  EXPECT_EQ(u->target, "/a/b?c=d");
  u = SplitHttpsUrl("https://idp.example.com");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "idp.example.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->host_header, "idp.example.com");
  EXPECT_EQ(u->target, "/");
}

TEST(SplitHttpsUrlTest, Refusals) {
  for (const char* url :
       {"http://idp.example.com/jwks", "HTTPS://a/", "ftp://a", "https://", "https://:443/x",
        "https://a:/x", "https://a:0/x", "https://a:65536/x", "https://[::1/x",
        "https://::1:6443/x", "https://a b/x", "https://user@a/x", "https://a?x", "https://a/b c",
        "https://a/\x01", "https://a/\xc3\xa9", "https://[::1]x/"}) {
    absl::StatusOr<HttpsUrlParts> u = SplitHttpsUrl(url);
    EXPECT_TRUE(absl::IsInvalidArgument(u.status())) << url << ": " << u.status();
  }
}

TEST(HttpsCallTest, RefusedBeforeConnecting) {
  HttpsRequest r;
  r.url = "http://127.0.0.1:1/";
  EXPECT_TRUE(absl::IsInvalidArgument(HttpsCall(r).status()));
  r.url = "https://127.0.0.1:1/";
  r.ca_pem = "not a certificate";
  EXPECT_TRUE(absl::IsInvalidArgument(HttpsCall(r).status()));
  r.ca_pem.clear();
  r.user_agent = "x\r\nAuthorization: Bearer injected";
  EXPECT_TRUE(absl::IsInvalidArgument(HttpsCall(r).status()));
}

TEST(HttpsCallTest, ConnectionRefusedIsUnavailable) {
  const int port = testing::FreeLoopbackPort();
  ASSERT_GT(port, 0);
  HttpsRequest r;
  r.url = "https://127.0.0.1:" + std::to_string(port) + "/jwks";
  absl::StatusOr<HttpsResponse> resp = HttpsCall(r);
  ASSERT_FALSE(resp.ok());
  EXPECT_TRUE(absl::IsUnavailable(resp.status())) << resp.status();
}

// A peer that accepts TCP (the kernel completes the handshake from the backlog) but never
// speaks TLS: the call ends at its deadline, not later.
TEST(HttpsCallTest, SilentPeerHitsTheDeadline) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  socklen_t len = sizeof(a);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  HttpsRequest r;
  r.url = "https://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/jwks";
  r.timeout = absl::Milliseconds(300);
  const absl::Time start = absl::Now();
  absl::StatusOr<HttpsResponse> resp = HttpsCall(r);
  const absl::Duration took = absl::Now() - start;
  close(fd);
  ASSERT_FALSE(resp.ok());
  // Socket timeouts can wake a hair before the deadline; either way the call failed, in time.
  EXPECT_TRUE(absl::IsDeadlineExceeded(resp.status()) || absl::IsUnavailable(resp.status()))
      << resp.status();
  EXPECT_GE(took, absl::Milliseconds(250));
  EXPECT_LT(took, absl::Seconds(3));
}

TEST(FormEscapeTest, EscapesAllButUnreserved) {
  EXPECT_EQ(FormEscape("aZ09-._~"), "aZ09-._~");
  EXPECT_EQ(FormEscape("a b&c=d/+"), "a%20b%26c%3Dd%2F%2B");
  EXPECT_EQ(FormEscape(std::string("\x00\xff", 2)), "%00%FF");
}

}  // namespace
}  // namespace kshield::net
