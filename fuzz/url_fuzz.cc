// Fuzz target: the https URL parser (src/net/url.h: ParseHttpsUrl), which reads the URLs of the
// daemon config, an imported kubeconfig's `server`, the relay's `oidc.jwks_url` and every
// net::HttpsCall. Input: byte 0 picks the rules (bit 0 allow_query, bit 1 any_case_scheme), the
// rest is the URL. Seeds: fuzz/corpus/url_fuzz/. Invariants:
//  - success: the URL is ≤ kMaxHttpsUrlBytes of printable ASCII and rebuilds exactly from
//    scheme + authority + path + "?query"; authority = host (bracketed iff `bracketed`) +
//    ":port_text"; port = port_text as a number in 1..65535 (443 without one); a bracketed host
//    is an IPv6 literal, an ip_literal unbracketed host a dotted quad, any other host has a
//    non-numeric last label; the path is "" or '/'-led with no dot or inner empty segment; no
//    query without allow_query, no '#' at all; the parse is stable: the canonical form
//    (lower-case scheme), and "https://" + authority + PathPrefix(), parse again to the same parts;
//    stricter rules accepting the input imply the looser ones do, with the same parts;
//  - failure: InvalidArgument with a bounded, printable message starting with a quote.
// fuzz-libs: kshield_url
// fuzz-sources: src/net/url.cc
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "net/url.h"

namespace n = kshield::net;

namespace {

bool SameParts(const n::ParsedHttpsUrl& a, const n::ParsedHttpsUrl& b) {
  return a.host == b.host && a.bracketed == b.bracketed && a.ip_literal == b.ip_literal &&
         a.port_text == b.port_text && a.port == b.port && a.authority == b.authority &&
         a.path == b.path && a.has_query == b.has_query && a.query == b.query;
}

bool AllDigits(std::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return !s.empty();
}

// "." or ".." once %2e / %2E are read as '.'.
bool IsDotSegment(std::string_view seg) {
  std::string decoded;
  for (size_t i = 0; i < seg.size(); ++i) {
    if (seg.substr(i, 3) == "%2e" || seg.substr(i, 3) == "%2E") {
      decoded.push_back('.');
      i += 2;
    } else {
      decoded.push_back(seg[i]);
    }
  }
  return decoded == "." || decoded == "..";
}

void CheckSuccess(std::string_view url, n::HttpsUrlRules rules, const n::ParsedHttpsUrl& u) {
  FUZZ_CHECK(url.size() <= n::kMaxHttpsUrlBytes);
  for (char c : url) FUZZ_CHECK(c > 0x20 && c < 0x7f);
  FUZZ_CHECK(url.find('#') == std::string_view::npos);
  FUZZ_CHECK(url.find('@') == std::string_view::npos || url.find('@') > 8 + u.authority.size());
  // Rebuilds exactly.
  std::string rebuilt = std::string(url.substr(0, 8)) + u.authority + u.path;
  if (u.has_query) rebuilt += "?" + u.query;
  FUZZ_CHECK(rebuilt == url);
  if (!rules.any_case_scheme) FUZZ_CHECK(url.substr(0, 8) == "https://");
  // Authority and port.
  const std::string host = u.bracketed ? "[" + u.host + "]" : u.host;
  FUZZ_CHECK(u.authority == (u.port_text.empty() ? host : host + ":" + u.port_text));
  if (u.port_text.empty()) {
    FUZZ_CHECK(u.port == 443);
  } else {
    FUZZ_CHECK(AllDigits(u.port_text) && u.port_text.size() <= 5);
    FUZZ_CHECK(std::stoi(u.port_text) == u.port && u.port >= 1);
  }
  // Host.
  FUZZ_CHECK(!u.host.empty());
  unsigned char buf[16];
  if (u.bracketed) {
    FUZZ_CHECK(u.ip_literal && inet_pton(AF_INET6, u.host.c_str(), buf) == 1);
  } else {
    FUZZ_CHECK(u.host.size() <= 253);
    FUZZ_CHECK(u.host.find(':') == std::string::npos);
    FUZZ_CHECK(u.ip_literal == (inet_pton(AF_INET, u.host.c_str(), buf) == 1));
    if (!u.ip_literal) {
      const std::string last = u.host.substr(u.host.rfind('.') + 1);
      FUZZ_CHECK(!AllDigits(last));
    }
  }
  // Path and query.
  FUZZ_CHECK(!u.has_query || rules.allow_query);
  FUZZ_CHECK(u.query.empty() || u.has_query);
  FUZZ_CHECK(u.path.empty() || u.path[0] == '/');
  FUZZ_CHECK(u.path.find('?') == std::string::npos);
  if (!u.path.empty()) {
    const std::string segs = u.path.substr(1);
    size_t start = 0;
    while (true) {
      const size_t slash = segs.find('/', start);
      const std::string seg = segs.substr(start, slash - start);
      FUZZ_CHECK(!IsDotSegment(seg));
      if (slash == std::string::npos) break;
      FUZZ_CHECK(!seg.empty());
      start = slash + 1;
    }
  }
  const std::string target = u.Target();
  FUZZ_CHECK(!target.empty() && target[0] == '/');
  const std::string prefix = u.PathPrefix();
  FUZZ_CHECK(prefix.empty() || (prefix[0] == '/' && prefix.back() != '/'));
  FUZZ_CHECK(u.path.compare(0, prefix.size(), prefix) == 0);
  // Stable.
  const std::string canonical = "https://" + std::string(url.substr(8));
  absl::StatusOr<n::ParsedHttpsUrl> again = n::ParseHttpsUrl(canonical, rules);
  FUZZ_CHECK(again.ok() && SameParts(*again, u));
  absl::StatusOr<n::ParsedHttpsUrl> base = n::ParseHttpsUrl("https://" + u.authority + prefix);
  FUZZ_CHECK(base.ok() && base->host == u.host && base->port == u.port &&
             base->authority == u.authority && base->path == prefix);
  // Looser rules accept what stricter ones do.
  absl::StatusOr<n::ParsedHttpsUrl> loose =
      n::ParseHttpsUrl(url, {.allow_query = true, .any_case_scheme = true});
  FUZZ_CHECK(loose.ok() && SameParts(*loose, u));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const n::HttpsUrlRules rules{.allow_query = (data[0] & 1) != 0,
                               .any_case_scheme = (data[0] & 2) != 0};
  const std::string_view url(reinterpret_cast<const char*>(data) + 1, size - 1);
  absl::StatusOr<n::ParsedHttpsUrl> u = n::ParseHttpsUrl(url, rules);
  if (u.ok()) {
    CheckSuccess(url, rules, *u);
    return 0;
  }
  FUZZ_CHECK(u.status().code() == absl::StatusCode::kInvalidArgument);
  const std::string_view msg(u.status().message().data(), u.status().message().size());
  FUZZ_CHECK(!msg.empty() && msg[0] == '"' && msg.size() <= 1200);
  for (char c : msg) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
  return 0;
}
