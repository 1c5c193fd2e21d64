// net::ParseHttpsUrl: one valid URL, then one field (scheme, user info, host, port, path, query,
// fragment, length) mutated at a time.
#include "net/url.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"

namespace kshield::net {
namespace {

// scheme | authority (host:port) | path | query
constexpr char kScheme[] = "https://";
constexpr char kHost[] = "kube.example.com";
constexpr char kPort[] = ":6443";
constexpr char kPath[] = "/k8s/clusters/c-1";
constexpr char kQuery[] = "?watch=1&x=%2F";

struct Fields {
  std::string scheme = kScheme;
  std::string userinfo;  // with its '@'
  std::string host = kHost;
  std::string port = kPort;
  std::string path = kPath;
  std::string query = kQuery;
  std::string fragment;
  std::string Url() const { return scheme + userinfo + host + port + path + query + fragment; }
};

constexpr HttpsUrlRules kWithQuery{.allow_query = true};

TEST(ParseHttpsUrlTest, TheValidUrl) {
  absl::StatusOr<ParsedHttpsUrl> u = ParseHttpsUrl(Fields().Url(), kWithQuery);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "kube.example.com");
  EXPECT_FALSE(u->bracketed);
  EXPECT_FALSE(u->ip_literal);
  EXPECT_EQ(u->port, 6443);
  EXPECT_EQ(u->port_text, "6443");
  EXPECT_EQ(u->authority, "kube.example.com:6443");
  EXPECT_EQ(u->path, "/k8s/clusters/c-1");
  EXPECT_TRUE(u->has_query);
  EXPECT_EQ(u->query, "watch=1&x=%2F");
  EXPECT_EQ(u->Target(), "/k8s/clusters/c-1?watch=1&x=%2F");
  EXPECT_EQ(u->PathPrefix(), "/k8s/clusters/c-1");
  // The same URL is refused where no query is allowed (the default).
  absl::StatusOr<ParsedHttpsUrl> strict = ParseHttpsUrl(Fields().Url());
  ASSERT_FALSE(strict.ok());
  EXPECT_TRUE(absl::StrContains(strict.status().message(), "no query or fragment"))
      << strict.status();
}

// A mutation that is accepted, and what it changes.
struct Accepted {
  std::string name;
  Fields f;
  HttpsUrlRules rules = kWithQuery;
  std::string host, port_text, authority, path, target, prefix;
  int port = 0;
  bool bracketed = false, ip = false;
};

TEST(ParseHttpsUrlTest, AcceptedMutations) {
  std::vector<Accepted> cases;
  auto add = [&](std::string name, auto mutate, auto expect) {
    Accepted a;
    a.name = std::move(name);
    mutate(a.f);
    a.host = kHost;
    a.port = 6443;
    a.port_text = "6443";
    a.path = kPath;
    a.prefix = kPath;
    expect(a);
    if (a.authority.empty()) a.authority = a.f.host + a.f.port;
    if (a.target.empty()) a.target = (a.path.empty() ? "/" : a.path) + a.f.query;
    cases.push_back(std::move(a));
  };
  // scheme
  add(
      "scheme any case", [](Fields& f) { f.scheme = "HtTpS://"; },
      [](Accepted& a) { a.rules.any_case_scheme = true; });
  // host
  add(
      "IPv4", [](Fields& f) { f.host = "10.0.0.1"; },
      [](Accepted& a) { a.host = "10.0.0.1", a.ip = true; });
  add(
      "IPv6", [](Fields& f) { f.host = "[2001:db8::1]"; },
      [](Accepted& a) { a.host = "2001:db8::1", a.ip = a.bracketed = true; });
  add(
      "IPv6 loopback", [](Fields& f) { f.host = "[::1]"; },
      [](Accepted& a) { a.host = "::1", a.ip = a.bracketed = true; });
  add(
      "IPv4-mapped IPv6", [](Fields& f) { f.host = "[::ffff:10.0.0.1]"; },
      [](Accepted& a) { a.host = "::ffff:10.0.0.1", a.ip = a.bracketed = true; });
  add(
      "single label", [](Fields& f) { f.host = "localhost"; },
      [](Accepted& a) { a.host = "localhost"; });
  add(
      "mixed case, digits, '-', '_'", [](Fields& f) { f.host = "Kube-1_a.Example.COM"; },
      [](Accepted& a) { a.host = "Kube-1_a.Example.COM"; });
  add(
      "numeric label but not the last", [](Fields& f) { f.host = "10.example"; },
      [](Accepted& a) { a.host = "10.example"; });
  add(
      "253-byte host", [](Fields& f) { f.host = std::string(249, 'a') + ".com"; },
      [](Accepted& a) { a.host = std::string(249, 'a') + ".com"; });
  // port
  add(
      "no port", [](Fields& f) { f.port = ""; },
      [](Accepted& a) { a.port = 443, a.port_text = ""; });
  add(
      "port 1", [](Fields& f) { f.port = ":1"; },
      [](Accepted& a) { a.port = 1, a.port_text = "1"; });
  add(
      "port 65535", [](Fields& f) { f.port = ":65535"; },
      [](Accepted& a) { a.port = 65535, a.port_text = "65535"; });
  add(
      "leading zero", [](Fields& f) { f.port = ":06443"; },
      [](Accepted& a) { a.port_text = "06443"; });
  // path
  add(
      "no path", [](Fields& f) { f.path = "", f.query = ""; },
      [](Accepted& a) { a.path = "", a.prefix = "", a.target = "/"; });
  add(
      "root path", [](Fields& f) { f.path = "/"; },
      [](Accepted& a) { a.path = "/", a.prefix = ""; });
  add(
      "trailing slash", [](Fields& f) { f.path = "/a/b/"; },
      [](Accepted& a) { a.path = "/a/b/", a.prefix = "/a/b"; });
  add(
      "every pchar", [](Fields& f) { f.path = "/aZ09-._~!$&'()*+,;=:@%2F%c3%A9"; },
      [](Accepted& a) { a.path = a.prefix = "/aZ09-._~!$&'()*+,;=:@%2F%c3%A9"; });
  add(
      "dots inside a segment", [](Fields& f) { f.path = "/a.b/...c/..d"; },
      [](Accepted& a) { a.path = a.prefix = "/a.b/...c/..d"; });
  add(
      "'...' segment", [](Fields& f) { f.path = "/a/..."; },
      [](Accepted& a) { a.path = a.prefix = "/a/..."; });
  // query
  add(
      "empty query", [](Fields& f) { f.query = "?"; }, [](Accepted&) {});
  add(
      "'/' and '?' in the query", [](Fields& f) { f.query = "?a=/b?c"; }, [](Accepted&) {});
  add(
      "no query, default rules", [](Fields& f) { f.query = ""; },
      [](Accepted& a) { a.rules = {}; });

  for (const Accepted& c : cases) {
    SCOPED_TRACE(c.name + ": " + c.f.Url());
    absl::StatusOr<ParsedHttpsUrl> u = ParseHttpsUrl(c.f.Url(), c.rules);
    ASSERT_TRUE(u.ok()) << u.status();
    EXPECT_EQ(u->host, c.host);
    EXPECT_EQ(u->bracketed, c.bracketed);
    EXPECT_EQ(u->ip_literal, c.ip);
    EXPECT_EQ(u->port, c.port);
    EXPECT_EQ(u->port_text, c.port_text);
    EXPECT_EQ(u->authority, c.authority);
    EXPECT_EQ(u->path, c.path);
    EXPECT_EQ(u->Target(), c.target);
    EXPECT_EQ(u->PathPrefix(), c.prefix);
  }
}

struct Refused {
  std::string name;
  Fields f;
  std::string why;  // in the message
  HttpsUrlRules rules = kWithQuery;
};

TEST(ParseHttpsUrlTest, RefusedMutations) {
  std::vector<Refused> cases;
  auto add = [&](std::string name, auto mutate, std::string why, HttpsUrlRules rules = kWithQuery) {
    Refused r{std::move(name), Fields(), std::move(why), rules};
    mutate(r.f);
    cases.push_back(std::move(r));
  };
  // scheme
  for (const char* s : {"http://", "ftp://", "https:/", "https:", "", "https//", "httpss://",
                        "HTTPS://", "Https://", "//"}) {
    add(
        std::string("scheme ") + s, [s](Fields& f) { f.scheme = s; }, "must start with https://");
  }
  add(
      "upper-case scheme, any case but no query", [](Fields& f) { f.scheme = "HTTPS://"; },
      "no query", HttpsUrlRules{.any_case_scheme = true});
  add(
      "http, any case", [](Fields& f) { f.scheme = "HTTP://"; }, "must start with https://",
      HttpsUrlRules{.allow_query = true, .any_case_scheme = true});
  // user info
  for (const char* s : {"user@", "u:p@", "@", ":@"}) {
    add(
        std::string("user info ") + s, [s](Fields& f) { f.userinfo = s; }, "no user info");
  }
  // host
  add(
      "empty host", [](Fields& f) { f.host = ""; }, "empty host");
  add(
      "empty host, no port", [](Fields& f) { f.host = "", f.port = ""; }, "empty host");
  add(
      "unclosed [", [](Fields& f) { f.host = "[::1"; }, "unclosed [");
  add(
      "junk after ]", [](Fields& f) { f.host = "[::1]x"; }, "junk after ]");
  add(
      "empty brackets", [](Fields& f) { f.host = "[]"; }, "empty host");
  add(
      "name in brackets", [](Fields& f) { f.host = "[kube]"; }, "not an IPv6 address");
  add(
      "IPv4 in brackets", [](Fields& f) { f.host = "[127.0.0.1]"; }, "not an IPv6 address");
  add(
      "zone id", [](Fields& f) { f.host = "[fe80::1%25eth0]"; }, "not an IPv6 address");
  add(
      "IPvFuture", [](Fields& f) { f.host = "[v1.x]"; }, "not an IPv6 address");
  add(
      "IPv6 without brackets", [](Fields& f) { f.host = "::1"; }, "IPv6 hosts need [ ]");
  add(
      "IPv6 without brackets, no port", [](Fields& f) { f.host = "2001:db8::1", f.port = ""; },
      "IPv6 hosts need [ ]");
  add(
      "space", [](Fields& f) { f.host = "a b"; }, "control character, space or non-ASCII");
  add(
      "tab", [](Fields& f) { f.host = "a\tb"; }, "control character, space or non-ASCII");
  add(
      "NUL", [](Fields& f) { f.host = std::string("a\0b", 3); },
      "control character, space or non-ASCII");
  add(
      "DEL", [](Fields& f) { f.host = "a\x7f"; }, "control character, space or non-ASCII");
  add(
      "non-ASCII", [](Fields& f) { f.host = "h\xc3\xa9st"; },
      "control character, space or non-ASCII");
  for (const char* h : {"a%41", "a!b", "a~b", "a=b", "a*b", "a\\b", "a[b", "a]b", "a'b"}) {
    add(
        std::string("host ") + h, [h](Fields& f) { f.host = h; }, "not allowed in a host");
  }
  add(
      "leading dot", [](Fields& f) { f.host = ".example.com"; }, "empty label");
  add(
      "trailing dot", [](Fields& f) { f.host = "example.com."; }, "empty label");
  add(
      "double dot", [](Fields& f) { f.host = "example..com"; }, "empty label");
  for (const char* h : {"127.1", "2130706433", "0x7f.0.0.1", "1.2.3.256", "1.2.3.4.5", "01.2.3.4",
                        "example.0x1F", "example.1", "0"}) {
    add(
        std::string("numeric host ") + h, [h](Fields& f) { f.host = h; }, "dotted-quad IPv4");
  }
  add(
      "254-byte host", [](Fields& f) { f.host = std::string(250, 'a') + ".com"; }, "too long");
  // port
  add(
      "empty port", [](Fields& f) { f.port = ":"; }, "empty port");
  add(
      "empty port after ]", [](Fields& f) { f.host = "[::1]", f.port = ":"; }, "empty port");
  for (const char* p : {":0", ":00000", ":65536", ":99999", ":123456", ":000443", ":+443", ":-1",
                        ":0x1f", ":443a", ":1e3"}) {
    add(
        std::string("port ") + p, [p](Fields& f) { f.port = p; }, "bad port");
  }
  add(
      "two ports", [](Fields& f) { f.port = ":1:2"; }, "IPv6 hosts need [ ]");
  // path
  add(
      "space in path", [](Fields& f) { f.path = "/a b"; }, "control character");
  add(
      "control in path", [](Fields& f) { f.path = "/a\x01"; }, "control character");
  add(
      "non-ASCII in path", [](Fields& f) { f.path = "/\xc3\xa9"; }, "control character");
  for (const char* p : {"/a%", "/a%2", "/a%zz", "/a%2g", "/%%41"}) {
    add(
        std::string("path ") + p, [p](Fields& f) { f.path = p; }, "bad percent-encoding");
  }
  for (const char* p :
       {"/a\"b", "/a<b", "/a>b", "/a\\b", "/a^b", "/a`b", "/a{b", "/a|b", "/a}b", "/a[b", "/a]b"}) {
    add(
        std::string("path ") + p, [p](Fields& f) { f.path = p; }, "not allowed");
  }
  for (const char* p :
       {"/..", "/.", "/a/../b", "/a/./b", "/a/..", "/a/%2e%2E", "/a/.%2e/b", "/%2E"}) {
    add(
        std::string("path ") + p, [p](Fields& f) { f.path = p; }, "\".\" or \"..\" segment");
  }
  for (const char* p : {"//", "//a", "/a//b", "/a///"}) {
    add(
        std::string("path ") + p, [p](Fields& f) { f.path = p; }, "empty segment");
  }
  // query
  add(
      "query, default rules", [](Fields&) {}, "no query or fragment", HttpsUrlRules{});
  add(
      "empty query, default rules", [](Fields& f) { f.query = "?"; }, "no query or fragment",
      HttpsUrlRules{});
  add(
      "query without a path", [](Fields& f) { f.path = ""; }, "a query needs a path");
  add(
      "bad escape in query", [](Fields& f) { f.query = "?a=%z1"; }, "query: bad percent");
  add(
      "'[' in query", [](Fields& f) { f.query = "?a[0]=1"; }, "query: character");
  add(
      "space in query", [](Fields& f) { f.query = "?a= 1"; }, "control character");
  // fragment
  add(
      "fragment", [](Fields& f) { f.fragment = "#x"; }, "no fragment");
  add(
      "empty fragment", [](Fields& f) { f.fragment = "#"; }, "no fragment");
  add(
      "fragment, no query", [](Fields& f) { f.query = "", f.fragment = "#x"; }, "no fragment");
  add(
      "fragment, default rules", [](Fields& f) { f.query = "", f.fragment = "#x"; },
      "no query or fragment", HttpsUrlRules{});
  add(
      "fragment right after the host",
      [](Fields& f) { f.port = f.path = f.query = "", f.fragment = "#x"; }, "no fragment");
  // length
  add(
      "over 4096 bytes", [](Fields& f) { f.path = "/" + std::string(4096, 'a'); },
      "longer than 4096 bytes");

  for (const Refused& c : cases) {
    SCOPED_TRACE(c.name + ": " + c.f.Url());
    absl::StatusOr<ParsedHttpsUrl> u = ParseHttpsUrl(c.f.Url(), c.rules);
    ASSERT_FALSE(u.ok()) << u->authority << " " << u->Target();
    EXPECT_TRUE(absl::IsInvalidArgument(u.status())) << u.status();
    EXPECT_TRUE(absl::StrContains(u.status().message(), c.why)) << u.status();
    EXPECT_TRUE(absl::StartsWith(u.status().message(), "\"")) << u.status();
    EXPECT_TRUE(absl::StrContains(u.status().message(), "is not a valid https URL"));
  }
}

TEST(ParseHttpsUrlTest, ExactlyTheLengthLimit) {
  const std::string base = "https://h/";
  const std::string url = base + std::string(kMaxHttpsUrlBytes - base.size(), 'a');
  ASSERT_EQ(url.size(), kMaxHttpsUrlBytes);
  EXPECT_TRUE(ParseHttpsUrl(url).ok());
  EXPECT_FALSE(ParseHttpsUrl(url + "a").ok());
}

// Messages quote scheme and authority only: no password, no path or query, no raw control byte.
TEST(ParseHttpsUrlTest, MessagesRevealNeitherSecretsNorRawBytes) {
  struct Case {
    std::string url;
    std::string absent;
  } cases[] = {
      {"https://alice:hunter2@relay.example/", "hunter2"},
      {"https://alice:hunter2@relay.example", "alice"},
      {"https://idp.example/token?client_secret=s3cr3t", "s3cr3t"},
      {"https://idp.example/s3cr3t/../x", "s3cr3t"},
      {"https://idp.example/a#s3cr3t", "s3cr3t"},
      {"https://idp.ex\nample/", "\n"},
      {"http://idp.example/s3cr3t", "s3cr3t"},
      {"https://" + std::string(300, 'a') + "/", std::string(201, 'a')},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ParsedHttpsUrl> u = ParseHttpsUrl(c.url);
    ASSERT_FALSE(u.ok()) << c.url;
    EXPECT_FALSE(absl::StrContains(u.status().message(), c.absent)) << u.status();
  }
  absl::StatusOr<ParsedHttpsUrl> u = ParseHttpsUrl("https://alice:pw@relay.example:8443/x");
  ASSERT_FALSE(u.ok());
  EXPECT_TRUE(absl::StrContains(u.status().message(), "\"https://***@relay.example:8443\""))
      << u.status();
  u = ParseHttpsUrl("https://ho\x01st/");
  ASSERT_FALSE(u.ok());
  EXPECT_TRUE(absl::StrContains(u.status().message(), "ho\\x01st")) << u.status();
}

}  // namespace
}  // namespace kshield::net
