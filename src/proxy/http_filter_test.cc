#include "proxy/http_filter.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kshield::proxy {
namespace {

namespace http = boost::beast::http;

std::string Str(boost::beast::string_view v) { return std::string(v.data(), v.size()); }

// All values of header `name` in `f`, in order.
std::vector<std::string> Values(const http::fields& f, std::string_view name) {
  std::vector<std::string> out;
  auto range = f.equal_range(boost::beast::string_view(name.data(), name.size()));
  for (auto it = range.first; it != range.second; ++it) out.push_back(Str(it->value()));
  return out;
}

bool Has(const http::fields& f, std::string_view name) { return !Values(f, name).empty(); }

std::string B64Url(std::string_view s) {
  std::string out;
  absl::WebSafeBase64Escape(absl::string_view(s.data(), s.size()), &out);
  return out;
}

// --- routing
// ---------------------------------------------------------------------------------------

TEST(ParseRouteTest, ValidTargets) {
  struct Case {
    std::string target, cluster, path, query;
  };
  const std::vector<Case> cases = {
      {"/clusters/prod/api/v1/namespaces/default/pods", "prod", "/api/v1/namespaces/default/pods",
       ""},
      {"/clusters/prod/api/v1/pods?watch=true&resourceVersion=5", "prod", "/api/v1/pods",
       "watch=true&resourceVersion=5"},
      {"/clusters/prod", "prod", "/", ""},
      {"/clusters/prod/", "prod", "/", ""},
      {"/clusters/prod?timeout=32s", "prod", "/", "timeout=32s"},
      {"/clusters/my-cluster_1.example/apis/apps/v1/", "my-cluster_1.example", "/apis/apps/v1/",
       ""},
      // Percent-encoding other than of '/', '\', '.', NUL is fine in the path; the query is
      // forwarded verbatim whatever it encodes.
      {"/clusters/c/api/v1/namespaces/a%3Ab/pods", "c", "/api/v1/namespaces/a%3Ab/pods", ""},
      {"/clusters/c/api?labelSelector=a%2Fb%3D..", "c", "/api", "labelSelector=a%2Fb%3D.."},
      {"/clusters/c/api/v1/x..y/.hidden/a.", "c", "/api/v1/x..y/.hidden/a.", ""},
      {"/clusters/" + std::string(253, 'a') + "/api", std::string(253, 'a'), "/api", ""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Route> r = ParseRoute(c.target);
    ASSERT_TRUE(r.ok()) << c.target << ": " << r.status();
    EXPECT_EQ(r->cluster, c.cluster) << c.target;
    EXPECT_EQ(r->path, c.path) << c.target;
    EXPECT_EQ(r->query, c.query) << c.target;
  }
}

// One valid target, mutated one field at a time; every mutation must be refused.
TEST(ParseRouteTest, MutationsOfOneValidTargetAreRefused) {
  const std::string valid = "/clusters/prod/api/v1/namespaces/default/secrets/s1";
  ASSERT_TRUE(ParseRoute(valid).ok());
  const std::vector<std::pair<std::string, std::string>> mutations = {
      {"empty name", "/clusters//api/v1/namespaces/default/secrets/s1"},
      {"name only slash", "/clusters/"},
      {"name ..", "/clusters/../api/v1/namespaces/default/secrets/s1"},
      {"name .", "/clusters/./api/v1/namespaces/default/secrets/s1"},
      {"name with encoded slash", "/clusters/pr%2Fod/api/v1/namespaces/default/secrets/s1"},
      {"name with space", "/clusters/pr od/api/v1/namespaces/default/secrets/s1"},
      {"name with colon", "/clusters/pr:od/api/v1/namespaces/default/secrets/s1"},
      {"name overlong", "/clusters/" + std::string(254, 'p') + "/api/v1"},
      {"prefix missing slash", "/clustersprod/api/v1/namespaces/default/secrets/s1"},
      {"prefix singular", "/cluster/prod/api/v1/namespaces/default/secrets/s1"},
      {"prefix case", "/Clusters/prod/api/v1/namespaces/default/secrets/s1"},
      {"no prefix", "/api/v1/namespaces/default/secrets/s1"},
      {"absolute form", "https://127.0.0.1/clusters/prod/api/v1"},
      {"empty", ""},
      {"dotdot segment", "/clusters/prod/api/v1/namespaces/../secrets/s1"},
      {"dotdot at end", "/clusters/prod/api/v1/namespaces/default/secrets/.."},
      {"dot segment", "/clusters/prod/api/v1/./namespaces/default/secrets/s1"},
      {"encoded slash lower", "/clusters/prod/api/v1/namespaces/default%2fsecrets/s1"},
      {"encoded slash upper", "/clusters/prod/api/v1/namespaces/default%2Fsecrets/s1"},
      {"encoded backslash", "/clusters/prod/api/v1/namespaces/default%5Csecrets/s1"},
      {"encoded dot", "/clusters/prod/api/v1/namespaces/%2e%2e/secrets/s1"},
      {"encoded dot upper", "/clusters/prod/api/v1/namespaces/%2E/secrets/s1"},
      {"encoded NUL", "/clusters/prod/api/v1/namespaces/default%00/secrets/s1"},
      {"malformed percent", "/clusters/prod/api/v1/namespaces/default%zz/secrets/s1"},
      {"truncated percent", "/clusters/prod/api/v1/namespaces/default/secrets/s1%2"},
      {"raw backslash", "/clusters/prod/api/v1/namespaces\\default/secrets/s1"},
      {"empty segment", "/clusters/prod/api//v1/namespaces/default/secrets/s1"},
      {"fragment", "/clusters/prod/api/v1/namespaces/default/secrets/s1#x"},
      {"control byte", "/clusters/prod/api/v1/namespaces/default/secrets/s1\x01"},
      {"DEL byte", "/clusters/prod/api/v1/namespaces/default/secrets/s1\x7f"},
      {"non-ASCII", "/clusters/prod/api/v1/namespaces/d\xc3\xa9/secrets/s1"},
      {"space", "/clusters/prod/api/v1/namespaces/default/secrets/s 1"},
      {"overlong target", valid + "?q=" + std::string(kMaxTargetBytes, 'x')},
  };
  for (const auto& [what, target] : mutations) {
    absl::StatusOr<Route> r = ParseRoute(target);
    EXPECT_FALSE(r.ok()) << what << ": " << target;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << what;
    }
  }
}

TEST(ParseRouteTest, ErrorsDoNotEchoTheTarget) {
  absl::StatusOr<Route> r = ParseRoute("/clusters/prod/api/secret-token-value/..");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(std::string(r.status().message()).find("secret-token-value"), std::string::npos);
}

TEST(ClusterNameTest, Rules) {
  EXPECT_TRUE(IsValidClusterName("a"));
  EXPECT_TRUE(IsValidClusterName("Prod-EU_1.example"));
  EXPECT_TRUE(IsValidClusterName("..a"));
  EXPECT_TRUE(IsValidClusterName(std::string(253, 'x')));
  EXPECT_FALSE(IsValidClusterName(""));
  EXPECT_FALSE(IsValidClusterName("."));
  EXPECT_FALSE(IsValidClusterName(".."));
  EXPECT_FALSE(IsValidClusterName(std::string(254, 'x')));
  EXPECT_FALSE(IsValidClusterName("a/b"));
  EXPECT_FALSE(IsValidClusterName("a%2Fb"));
  EXPECT_FALSE(IsValidClusterName("a b"));
}

// --- credentials
// -----------------------------------------------------------------------------------

TEST(BearerTest, AuthorizationValues) {
  EXPECT_EQ(BearerFromAuthorization("Bearer abc.def"), "abc.def");
  EXPECT_EQ(BearerFromAuthorization("bearer abc"), "abc");
  EXPECT_EQ(BearerFromAuthorization("BEARER   abc"), "abc");
  EXPECT_EQ(BearerFromAuthorization("  Bearer abc  "), "abc");
  EXPECT_EQ(BearerFromAuthorization("Basic YWxhZGRpbjpvcGVuc2VzYW1l"), std::nullopt);
  EXPECT_EQ(BearerFromAuthorization("Bearer"), std::nullopt);
  EXPECT_EQ(BearerFromAuthorization("Bearer "), std::nullopt);
  EXPECT_EQ(BearerFromAuthorization("Bearerabc"), std::nullopt);
  EXPECT_EQ(BearerFromAuthorization("Bearer a b"), std::nullopt);
  EXPECT_EQ(BearerFromAuthorization("Bearer a\x01"), std::nullopt);
  EXPECT_EQ(BearerFromAuthorization(""), std::nullopt);
}

TEST(WebSocketProtocolsTest, Lists) {
  const std::string bearer = std::string(kWebSocketBearerPrefix) + B64Url("tok-123");
  struct Case {
    std::string value;
    std::string forwarded;
    std::optional<std::string> token;
    bool malformed;
  };
  const std::vector<Case> cases = {
      {"v5.channel.k8s.io", "v5.channel.k8s.io", std::nullopt, false},
      {"v5.channel.k8s.io, v4.channel.k8s.io", "v5.channel.k8s.io, v4.channel.k8s.io", std::nullopt,
       false},
      {bearer + ", v5.channel.k8s.io", "v5.channel.k8s.io", "tok-123", false},
      {"v5.channel.k8s.io," + bearer + ",v4.channel.k8s.io", "v5.channel.k8s.io, v4.channel.k8s.io",
       "tok-123", false},
      {bearer, "", "tok-123", false},
      // The prefix is matched case-insensitively (so that no case variant slips through).
      {"Base64URL.Bearer.Authorization.K8S.IO." + B64Url("tok-123") + ",v5.channel.k8s.io",
       "v5.channel.k8s.io", "tok-123", false},
      {"  v5.channel.k8s.io\t,\t" + bearer + "  ", "v5.channel.k8s.io", "tok-123", false},
      {"", "", std::nullopt, false},
      // Malformed lists.
      {"v5.channel.k8s.io,,v4.channel.k8s.io", "v5.channel.k8s.io, v4.channel.k8s.io", std::nullopt,
       true},
      {",v5.channel.k8s.io", "v5.channel.k8s.io", std::nullopt, true},
      {"v5.channel.k8s.io,", "v5.channel.k8s.io", std::nullopt, true},
      {"v5 channel", "", std::nullopt, true},
      {"v5.channel.k8s.io;q=1", "", std::nullopt, true},
      {std::string(kWebSocketBearerPrefix), "", std::nullopt, true},
      {std::string(kWebSocketBearerPrefix) + "!!!!", "", std::nullopt, true},
      {bearer + "," + std::string(kWebSocketBearerPrefix) + B64Url("other"), "", "tok-123", true},
      {std::string(kWebSocketBearerPrefix) + B64Url("has space"), "", std::nullopt, true},
  };
  for (const Case& c : cases) {
    WebSocketProtocols p = ParseWebSocketProtocols(c.value);
    EXPECT_EQ(p.malformed, c.malformed) << c.value;
    if (!c.malformed) {
      EXPECT_EQ(p.forwarded, c.forwarded) << c.value;
      EXPECT_EQ(p.bearer_token, c.token) << c.value;
    }
  }
}

TEST(ExtractLocalTokenTest, Sources) {
  const std::string proto_entry = std::string(kWebSocketBearerPrefix) + B64Url("ws-token");
  {
    http::fields f;
    f.set(http::field::authorization, "Bearer local-1");
    EXPECT_EQ(ExtractLocalToken(f).value_or("<error>"), "local-1");
  }
  {
    http::fields f;
    f.set(http::field::sec_websocket_protocol, proto_entry + ", v5.channel.k8s.io");
    EXPECT_EQ(ExtractLocalToken(f).value_or("<error>"), "ws-token");
  }
  {
    // Split over two header lines.
    http::fields f;
    f.insert(http::field::sec_websocket_protocol, "v5.channel.k8s.io");
    f.insert(http::field::sec_websocket_protocol, proto_entry);
    EXPECT_EQ(ExtractLocalToken(f).value_or("<error>"), "ws-token");
  }
  {
    http::fields f;
    f.set(http::field::authorization, "Bearer ws-token");
    f.set(http::field::sec_websocket_protocol, proto_entry);
    EXPECT_EQ(ExtractLocalToken(f).value_or("<error>"), "ws-token");
  }
  const std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>>
      refused = {
          {"none", {}},
          {"basic", {{"Authorization", "Basic YTpi"}}},
          {"empty bearer", {{"Authorization", "Bearer "}}},
          {"two authorization", {{"Authorization", "Bearer a"}, {"authorization", "Bearer a"}}},
          {"conflicting", {{"Authorization", "Bearer a"}, {"Sec-WebSocket-Protocol", proto_entry}}},
          {"malformed protocols",
           {{"Authorization", "Bearer a"}, {"Sec-WebSocket-Protocol", "v5,,v4"}}},
          {"protocols without bearer", {{"Sec-WebSocket-Protocol", "v5.channel.k8s.io"}}},
      };
  for (const auto& [what, headers] : refused) {
    http::fields f;
    for (const auto& [k, v] : headers) f.insert(k, v);
    absl::StatusOr<std::string> t = ExtractLocalToken(f);
    EXPECT_FALSE(t.ok()) << what;
    if (!t.ok()) {
      EXPECT_EQ(t.status().code(), absl::StatusCode::kUnauthenticated) << what;
      EXPECT_EQ(std::string(t.status().message()).find("ws-token"), std::string::npos);
    }
  }
}

// --- header hygiene
// ----------------------------------------------------------------------------------

TEST(SanitizeRequestHeadersTest, StripsEveryCredentialAndHopByHopHeader) {
  const std::vector<std::string> stripped = {
      "Authorization",
      "authorization",
      "AUTHORIZATION",
      "Proxy-Authorization",
      "Impersonate-User",
      "impersonate-user",
      "Impersonate-Group",
      "IMPERSONATE-GROUP",
      "Impersonate-Uid",
      "Impersonate-Extra-scopes",
      "impersonate-extra-reason",
      "X-Remote-User",
      "x-remote-user",
      "X-Remote-Group",
      "X-REMOTE-GROUP",
      "X-Remote-Extra-Scopes",
      "x-remote-extra-foo",
      "Connection",
      "Keep-Alive",
      "Proxy-Connection",
      "TE",
      "te",
      "Trailer",
      "Upgrade",
      "Expect",
  };
  const std::vector<std::pair<std::string, std::string>> kept = {
      {"Accept", "application/json"},
      {"User-Agent", "kubectl/v1.32"},
      {"Content-Type", "application/json"},
      {"Content-Length", "12"},
      {"X-Custom", "1"},
      {"Audit-Id", "abc"},
      {"Impersonate", "not-a-prefix-match"},  // only Impersonate-* is an impersonation header
      {"X-Remote", "also-not"},
      {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
  };
  for (const std::string& name : stripped) {
    for (bool upgrade : {false, true}) {
      http::fields f;
      for (const auto& [k, v] : kept) f.insert(k, v);
      f.insert(name, "evil");
      SanitizeRequestHeaders(f, upgrade);
      std::vector<std::string> values = Values(f, name);
      for (const std::string& v : values) {
        EXPECT_NE(v, "evil") << name << " upgrade=" << upgrade;
      }
      for (const auto& [k, v] : kept) {
        EXPECT_EQ(Values(f, k), std::vector<std::string>{v}) << k << " after " << name;
      }
    }
  }
}

TEST(SanitizeRequestHeadersTest, RepeatedCredentialHeadersAllGo) {
  http::fields f;
  f.insert("Impersonate-User", "a");
  f.insert("Impersonate-User", "b");
  f.insert("impersonate-group", "system:masters");
  f.insert("Authorization", "Bearer x");
  f.insert("authorization", "Bearer y");
  f.insert("X-Remote-Group", "system:masters");
  f.insert("Accept", "*/*");
  SanitizeRequestHeaders(f, false);
  int count = 0;
  for (auto it = f.begin(); it != f.end(); ++it) ++count;
  EXPECT_EQ(count, 1);
  EXPECT_TRUE(Has(f, "Accept"));
}

TEST(SanitizeRequestHeadersTest, ConnectionListedHeadersExceptFraming) {
  http::fields f;
  f.insert("Connection", "X-Foo, content-length , Transfer-Encoding,host");
  f.insert("Connection", "x-bar");
  f.insert("X-Foo", "1");
  f.insert("X-Bar", "2");
  f.insert("X-Baz", "3");
  f.insert("Content-Length", "5");
  f.insert("Transfer-Encoding", "chunked");
  f.insert("Host", "127.0.0.1");
  SanitizeRequestHeaders(f, false);
  EXPECT_FALSE(Has(f, "Connection"));
  EXPECT_FALSE(Has(f, "X-Foo"));
  EXPECT_FALSE(Has(f, "X-Bar"));
  EXPECT_TRUE(Has(f, "X-Baz"));
  EXPECT_TRUE(Has(f, "Content-Length"));
  EXPECT_TRUE(Has(f, "Transfer-Encoding"));
  EXPECT_TRUE(Has(f, "Host"));
}

TEST(SanitizeRequestHeadersTest, UpgradeKeepsUpgradeAndConnectionOnly) {
  http::fields f;
  f.insert("Connection", "Upgrade, X-Foo");
  f.insert("Upgrade", "websocket");
  f.insert("X-Foo", "1");
  f.insert("Keep-Alive", "timeout=5");
  f.insert("Sec-WebSocket-Version", "13");
  SanitizeRequestHeaders(f, true);
  EXPECT_EQ(Values(f, "Connection"), std::vector<std::string>{"Upgrade"});
  EXPECT_EQ(Values(f, "Upgrade"), std::vector<std::string>{"websocket"});
  EXPECT_FALSE(Has(f, "X-Foo"));
  EXPECT_FALSE(Has(f, "Keep-Alive"));
  EXPECT_TRUE(Has(f, "Sec-WebSocket-Version"));

  http::fields g;
  g.insert("Connection", "Upgrade");
  g.insert("Upgrade", "SPDY/3.1");
  SanitizeRequestHeaders(g, false);  // not an allowed upgrade: plain request
  EXPECT_FALSE(Has(g, "Connection"));
  EXPECT_FALSE(Has(g, "Upgrade"));
}

TEST(SanitizeRequestHeadersTest, WebSocketBearerEntryRemoved) {
  const std::string entry = std::string(kWebSocketBearerPrefix) + B64Url("local-tok");
  {
    http::fields f;
    f.insert("Sec-WebSocket-Protocol", entry + ", v5.channel.k8s.io, v4.channel.k8s.io");
    SanitizeRequestHeaders(f, true);
    EXPECT_EQ(Values(f, "Sec-WebSocket-Protocol"),
              std::vector<std::string>{"v5.channel.k8s.io, v4.channel.k8s.io"});
  }
  {
    http::fields f;
    f.insert("sec-websocket-protocol", "v5.channel.k8s.io");
    f.insert("Sec-WebSocket-Protocol", entry);
    SanitizeRequestHeaders(f, true);
    EXPECT_EQ(Values(f, "Sec-WebSocket-Protocol"), std::vector<std::string>{"v5.channel.k8s.io"});
  }
  {
    http::fields f;
    f.insert("Sec-WebSocket-Protocol", entry);
    SanitizeRequestHeaders(f, true);
    EXPECT_FALSE(Has(f, "Sec-WebSocket-Protocol"));
  }
  {
    // Malformed lists are dropped whole.
    http::fields f;
    f.insert("Sec-WebSocket-Protocol", "v5.channel.k8s.io,," + entry);
    SanitizeRequestHeaders(f, true);
    EXPECT_FALSE(Has(f, "Sec-WebSocket-Protocol"));
  }
  {
    http::fields f;
    f.insert("Sec-WebSocket-Protocol", "v5.channel.k8s.io");
    SanitizeRequestHeaders(f, true);
    EXPECT_EQ(Values(f, "Sec-WebSocket-Protocol"), std::vector<std::string>{"v5.channel.k8s.io"});
  }
}

TEST(SanitizeResponseHeadersTest, HopByHop) {
  http::fields f;
  f.insert("Connection", "keep-alive, X-Hop");
  f.insert("Keep-Alive", "timeout=90");
  f.insert("X-Hop", "1");
  f.insert("Proxy-Authenticate", "Basic");
  f.insert("Transfer-Encoding", "chunked");
  f.insert("Audit-Id", "a-1");
  f.insert("Content-Type", "application/json");
  f.insert("Upgrade", "websocket");
  SanitizeResponseHeaders(f, false);
  EXPECT_FALSE(Has(f, "Connection"));
  EXPECT_FALSE(Has(f, "Keep-Alive"));
  EXPECT_FALSE(Has(f, "X-Hop"));
  EXPECT_FALSE(Has(f, "Proxy-Authenticate"));
  EXPECT_FALSE(Has(f, "Upgrade"));
  EXPECT_TRUE(Has(f, "Transfer-Encoding"));
  EXPECT_TRUE(Has(f, "Audit-Id"));
  EXPECT_TRUE(Has(f, "Content-Type"));

  http::fields g;
  g.insert("Connection", "Upgrade");
  g.insert("Upgrade", "websocket");
  g.insert("Sec-WebSocket-Accept", "x");
  g.insert("Sec-WebSocket-Protocol", "v5.channel.k8s.io");
  SanitizeResponseHeaders(g, true);
  EXPECT_EQ(Values(g, "Connection"), std::vector<std::string>{"Upgrade"});
  EXPECT_EQ(Values(g, "Upgrade"), std::vector<std::string>{"websocket"});
  EXPECT_TRUE(Has(g, "Sec-WebSocket-Accept"));
  EXPECT_TRUE(Has(g, "Sec-WebSocket-Protocol"));
}

TEST(UpgradeTest, AllowedProtocols) {
  EXPECT_TRUE(IsAllowedUpgrade("websocket"));
  EXPECT_TRUE(IsAllowedUpgrade("WebSocket"));
  EXPECT_TRUE(IsAllowedUpgrade("SPDY/3.1"));
  EXPECT_TRUE(IsAllowedUpgrade("spdy/3.1"));
  EXPECT_FALSE(IsAllowedUpgrade("h2c"));
  EXPECT_FALSE(IsAllowedUpgrade("websocket, h2c"));
  EXPECT_FALSE(IsAllowedUpgrade(""));
}

// --- verbs, status bodies
// ----------------------------------------------------------------------------

TEST(VerbTest, LikeTheApiserver) {
  struct Case {
    std::string method, path, query;
    bool upgrade;
    std::string verb;
  };
  const std::vector<Case> cases = {
      {"GET", "/api/v1/namespaces/default/secrets", "", false, "list"},
      {"GET", "/api/v1/namespaces/default/secrets/s1", "", false, "get"},
      {"GET", "/api/v1/namespaces/default/secrets", "watch=true", false, "watch"},
      {"GET", "/api/v1/namespaces/default/secrets", "resourceVersion=1&watch=1", false, "watch"},
      {"GET", "/api/v1/namespaces/default/secrets", "watch=false", false, "list"},
      {"GET", "/api/v1/watch/namespaces/default/secrets", "", false, "watch"},
      {"GET", "/api/v1/secrets", "", false, "list"},
      {"GET", "/api/v1/namespaces", "", false, "list"},
      {"GET", "/api/v1/namespaces/default", "", false, "get"},
      {"GET", "/apis/apps/v1/namespaces/default/deployments/d", "", false, "get"},
      {"GET", "/apis/apps/v1/deployments", "", false, "list"},
      {"GET", "/api/v1/namespaces/default/pods/p/log", "follow=true", false, "get"},
      {"HEAD", "/api/v1/namespaces/default/secrets/s1", "", false, "get"},
      {"POST", "/api/v1/namespaces/default/secrets", "", false, "create"},
      {"PUT", "/api/v1/namespaces/default/secrets/s1", "", false, "update"},
      {"PATCH", "/api/v1/namespaces/default/secrets/s1", "", false, "patch"},
      {"DELETE", "/api/v1/namespaces/default/secrets/s1", "", false, "delete"},
      {"DELETE", "/api/v1/namespaces/default/secrets", "", false, "deletecollection"},
      {"GET", "/api/v1/namespaces/default/pods/p/exec", "command=sh", true, "connect"},
      {"POST", "/api/v1/namespaces/default/pods/p/portforward", "", true, "connect"},
      {"GET", "/version", "", false, "get"},
      {"GET", "/api", "", false, "get"},
      {"GET", "/api/v1", "", false, "get"},
      {"GET", "/apis/apps/v1", "", false, "get"},
      {"GET", "/healthz", "", false, "get"},
      {"POST", "/version", "", false, "post"},
      {"OPTIONS", "/api/v1/pods", "", false, "options"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(VerbOf(c.method, c.path, c.query, c.upgrade), c.verb)
        << c.method << " " << c.path << "?" << c.query;
  }
}

TEST(WatchQueryTest, BoolForms) {
  for (std::string q : {"watch=true", "watch=1", "watch=t", "watch=T", "watch=TRUE", "watch=True",
                        "a=b&watch=true", "watch=true&a=b"}) {
    EXPECT_TRUE(QueryRequestsWatch(q)) << q;
  }
  for (std::string q : {"", "watch", "watch=", "watch=false", "watch=yes", "xwatch=true",
                        "watchx=true", "a=watch=true"}) {
    EXPECT_FALSE(QueryRequestsWatch(q)) << q;
  }
}

TEST(StatusJsonTest, IsAKubernetesStatus) {
  nlohmann::json j = nlohmann::json::parse(StatusJson(401, "Unauthorized", "Unauthorized \"x\"\n"));
  EXPECT_EQ(j["kind"], "Status");
  EXPECT_EQ(j["apiVersion"], "v1");
  EXPECT_EQ(j["status"], "Failure");
  EXPECT_EQ(j["reason"], "Unauthorized");
  EXPECT_EQ(j["message"], "Unauthorized \"x\"\n");
  EXPECT_EQ(j["code"], 401);
  EXPECT_TRUE(j["metadata"].is_object());
}

TEST(PrintableTest, ReplacesAndTruncates) {
  EXPECT_EQ(PrintableTruncated("a\x01\xff"
                               "b",
                               10),
            "a??b");
  EXPECT_EQ(PrintableTruncated("abcdef", 3), "abc");
}

}  // namespace
}  // namespace kshield::proxy
