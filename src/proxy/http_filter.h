// Pure request/response rules of the kshield-kubectl proxy data path (no I/O): the
// `/clusters/<name>/...` route parser, local-token extraction, header hygiene, the apiserver-style
// verb of a request, and the Kubernetes Status body of an error. Everything here takes bytes a
// local client (or an apiserver) sent, so nothing asserts: bad input is a status or a "malformed"
// flag. proxy.cc is the only production caller; fuzz/proxy_headers_fuzz.cc drives it directly.
//
//   KSH_ASSIGN_OR_RETURN(Route r, ParseRoute("/clusters/prod/api/v1/pods?watch=true"));
//   // r.cluster == "prod", r.path == "/api/v1/pods", r.query == "watch=true"
//   KSH_ASSIGN_OR_RETURN(std::string token, ExtractLocalToken(request));   // 401 on error
//   SanitizeRequestHeaders(request, /*upgrade=*/false);  // Authorization, Impersonate-*, ... gone
//
// Header names compare case-insensitively everywhere (Beast's fields do).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "boost/beast/http/fields.hpp"

namespace kshield::proxy {

// Longest request-target accepted (path + query). Longer: 414 from the proxy.
inline constexpr size_t kMaxTargetBytes = 16 * 1024;
// Longest cluster name (a DNS subdomain's limit).
inline constexpr size_t kMaxClusterNameBytes = 253;

// A proxied request-target, split.
struct Route {
  std::string cluster;  // a valid cluster name (IsValidClusterName)
  std::string path;     // the path to send upstream: "/" followed by the rest ("/" when empty)
  std::string query;    // the query string without '?', verbatim (may be empty)
};

// `name` is 1..253 bytes of [A-Za-z0-9._-], not "." or "..".
bool IsValidClusterName(std::string_view name);

// Parses an origin-form target "/clusters/<name>[/<rest>][?<query>]". InvalidArgument (with a
// reason, never echoing more than the cluster name) for: another prefix, an invalid name, a rest
// not starting with '/', a "." or ".." segment, an empty segment other than a trailing one, a
// percent-encoded '/', '\', '.', or NUL (any case), a raw '\', '#', space, control or non-ASCII
// byte, or a target longer than kMaxTargetBytes.
absl::StatusOr<Route> ParseRoute(std::string_view target);

// The token of an Authorization value "Bearer <token>" (scheme case-insensitive, one or more
// spaces); nullopt for another scheme, an empty token, or a token with whitespace or controls.
std::optional<std::string_view> BearerFromAuthorization(std::string_view value);

// The WebSocket subprotocol entry Kubernetes uses to carry a bearer token (browsers cannot set
// Authorization): "base64url.bearer.authorization.k8s.io.<base64url(token), no padding>".
inline constexpr std::string_view kWebSocketBearerPrefix = "base64url.bearer.authorization.k8s.io.";

struct WebSocketProtocols {
  std::string forwarded;                    // the other entries, in order, joined by ", "
  std::optional<std::string> bearer_token;  // the decoded token of the (single) bearer entry
  bool malformed = false;  // an empty entry, a non-token character, a bad base64url token, or
                           // more than one bearer entry; the caller refuses the request
};

// Parses a Sec-WebSocket-Protocol value (all header instances joined with ","): a comma-separated
// list of tokens with optional whitespace around each.
WebSocketProtocols ParseWebSocketProtocols(std::string_view value);

// The local token of a request: from "Authorization: Bearer <token>" (kubectl's exec plugin) or,
// failing that, from the WebSocket bearer subprotocol entry. Unauthenticated (fixed messages, no
// token in them) when there is none, when Authorization is not a single Bearer value, when the
// subprotocol list is malformed, or when both carry different tokens.
absl::StatusOr<std::string> ExtractLocalToken(const boost::beast::http::fields& request);

// True for the protocols we pass through an HTTP/1.1 Upgrade: "websocket" and "SPDY/3.1" (the
// Upgrade value must be exactly one of them, case-insensitive).
bool IsAllowedUpgrade(std::string_view upgrade_value);

// Removes, in place, everything the upstream must not see from the client:
//  - credentials: Authorization, Proxy-Authorization, every Impersonate-* and X-Remote-* header,
//    and the bearer entry of Sec-WebSocket-Protocol (the header is dropped when nothing remains);
//  - hop-by-hop headers (RFC 9110 §7.6.1): Connection and every header it lists, Keep-Alive,
//    Proxy-Connection, TE, Trailer, Upgrade; also Expect (the proxy answers 100-continue itself).
//    Content-Length, Transfer-Encoding and Host are never removed because Connection lists them
//    (message framing must not change; Transfer-Encoding is re-applied by the serializer).
// With `upgrade` set and an allowed Upgrade value (IsAllowedUpgrade), "Connection: Upgrade" and
// that Upgrade value are put back.
void SanitizeRequestHeaders(boost::beast::http::fields& request, bool upgrade);

// Hop-by-hop hygiene for an upstream response (same list, plus Proxy-Authenticate). With
// `upgrade` (a 101 answer to an upgrade), Connection: Upgrade and Upgrade are kept.
void SanitizeResponseHeaders(boost::beast::http::fields& response, bool upgrade);

// True when the query has watch=<true> in the forms the apiserver's bool parsing accepts
// (1, t, T, true, TRUE, True).
bool QueryRequestsWatch(std::string_view query);

// The verb the apiserver's RequestInfo would name: for resource paths (/api/v1/..., /apis/g/v/...)
// get, list, watch, create, update, patch, delete, deletecollection; "connect" for an HTTP upgrade
// (exec / attach / port-forward streams); for anything else the lower-cased method.
std::string VerbOf(std::string_view method, std::string_view path, std::string_view query,
                   bool upgrade);

// A Kubernetes Status object (kind Status, apiVersion v1, status Failure) as a JSON body.
std::string StatusJson(int code, std::string_view reason, std::string_view message);

// `s` with every byte outside printable ASCII replaced by '?', cut to `max` bytes (for a path in
// an audit line or an error message).
std::string PrintableTruncated(std::string_view s, size_t max);

}  // namespace kshield::proxy
