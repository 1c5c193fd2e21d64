// The one parser of the https URLs kshield-kubectl and kshield-relay are configured with: an
// apiserver (`clusters[].server`, an imported kubeconfig's `server`), the relay (`relay.url`), an
// OIDC token endpoint, an issuer's JWKS URL. Every caller (net::SplitHttpsUrl / HttpsCall, the
// daemon config, the kubectl proxy's upstream) applies these same rules.
//
//   https://host[:port][/path][?query]        (RFC 3986 §3, restricted)
//
//   KSH_ASSIGN_OR_RETURN(ParsedHttpsUrl u,
//                        ParseHttpsUrl("https://[::1]:6443/k8s/c-1/", {.allow_query = false}));
//   // u.host "::1", u.bracketed, u.ip_literal, u.port 6443, u.port_text "6443",
//   // u.authority "[::1]:6443", u.path "/k8s/c-1/", u.PathPrefix() "/k8s/c-1",
//   // u.Target() "/k8s/c-1/"
//
// Accepted, and nothing else (InvalidArgument otherwise):
//  - at most kMaxHttpsUrlBytes bytes of printable ASCII (0x21..0x7e: no space, control byte or
//    non-ASCII);
//  - the scheme "https://" (lower case; "HTTPS://" etc. only with `any_case_scheme`);
//  - no user info ('@' in the authority), no fragment ('#') anywhere;
//  - host: a bracketed IPv6 literal ("[::1]"; no zone id, no IPv4 in brackets), or a name of
//    [A-Za-z0-9._-] (≤ 253 bytes, no empty label, so no leading / trailing / doubled dot) whose
//    last label, when numeric ("1", "0x1f"), makes it a dotted-quad IPv4 literal that must parse
//    as one ("10.0.0.1"; never "127.1", "2130706433", "0x7f.0.0.1", "1.2.3.256");
//  - port: 1 to 5 decimal digits, 1..65535 ("https://h:" and "https://h:0" are refused);
//  - path: "" or '/'-led, of RFC 3986 pchar (unreserved, sub-delims, ':', '@', %HH) and '/', with
//    no "." / ".." segment (also when written %2e) and no empty segment but a trailing one
//    ("/a/" is fine, "//a" and "/a//b" are not);
//  - query (only with `allow_query`, and only after a path: "https://h/?q", never "https://h?q"):
//    pchar, '/' and '?'.
// Error messages quote only the scheme and authority (user info replaced by "***"), never the
// path or query, and escape what they quote.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace kshield::net {

inline constexpr size_t kMaxHttpsUrlBytes = 4096;

struct HttpsUrlRules {
  // "?query" after a path (the JWKS URL, HTTP calls). Off: a '?' is refused.
  bool allow_query = false;
  // The scheme in any case (RFC 3986 §3.1): the kubectl proxy's upstream, which also takes a
  // kubeconfig's server as written. Off: "https://" only.
  bool any_case_scheme = false;
};

struct ParsedHttpsUrl {
  std::string host;         // without brackets
  bool bracketed = false;   // written "[...]": always an IPv6 literal
  bool ip_literal = false;  // an IPv6 literal or a dotted-quad IPv4 literal (never a DNS name)
  std::string port_text;    // as written ("06443" stays so); "" when the URL has no port
  uint16_t port = 443;
  std::string authority;  // host[:port] exactly as written: the Host header
  std::string path;       // as written: "" or starting with '/'
  bool has_query = false;
  std::string query;  // after the '?' (may be empty: "https://h/?")

  // The HTTP request-target: the path ("/" when empty), then "?query" when there is one.
  std::string Target() const;
  // The path without trailing '/': "" for no path or "/", "/a/b" for "/a/b/".
  std::string PathPrefix() const;
};

[[nodiscard]] absl::StatusOr<ParsedHttpsUrl> ParseHttpsUrl(std::string_view url,
                                                           HttpsUrlRules rules = {});

}  // namespace kshield::net
