// kshield's outbound HTTPS client, shared by kshield-kubectl's daemon (the CSR to kshield-relay,
// the refresh-token grant to an OIDC token endpoint) and kshield-relay (the OIDC issuer's JWKS).
// One request per connection ("Connection: close"), blocking, with one overall deadline.
//
// Security rules:
//  - the server certificate is verified against `ca_pem` (or the system trust store when empty)
//    with a host-name / IP check against the URL host; any failure fails the call;
//  - secrets (client key, bearer token, a form body carrying a refresh token) are passed as
//    SecretBytes / string_view and every buffer the request was serialised into is cleared;
//  - the response is bounded (max_response_bytes) and read by net::HttpResponseReader
//    (http_response.h: Beast's parser plus stricter framing rules), fed as TLS records arrive.
//
//   HttpsRequest r{.method = "POST", .url = "https://relay:8443/v1/clusters/prod/certificates",
//                  .ca_pem = relay_ca, .content_type = "application/json"};
//   r.bearer = &id_token;
//   KSH_ASSIGN_OR_RETURN(HttpsResponse resp, HttpsCall(r, body));
//
// Thread-safe: every call has its own TLS context and connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/secret.h"
#include "net/http_response.h"  // HttpsResponse

namespace kshield::net {

struct HttpsRequest {
  std::string method = "GET";
  std::string url;     // https://host[:port]/path[?query]
  std::string ca_pem;  // trust anchors; empty: system trust store
  std::string content_type;
  std::string accept = "application/json";
  // Sent as User-Agent. The default is the daemon's historical value; other callers set theirs.
  std::string user_agent = "kshield-kubectl";
  // Optional TLS client identity (corporate mTLS to the relay). Borrowed; must outlive the call.
  const std::string* client_cert_pem = nullptr;
  const SecretBytes* client_key_pem = nullptr;
  // Optional "Authorization: Bearer <token>". Borrowed.
  const SecretBytes* bearer = nullptr;
  absl::Duration timeout = absl::Seconds(15);
  size_t max_response_bytes = 1 << 20;
};

// Errors: InvalidArgument (bad URL / PEM), Unavailable (DNS, connect, TLS handshake or
// certificate verification failure — the message says which), DeadlineExceeded, and
// DataLoss for a malformed or oversized response. An HTTP error status is NOT an error here.
[[nodiscard]] absl::StatusOr<HttpsResponse> HttpsCall(const HttpsRequest& request,
                                                      std::string_view body = {});

// What HttpsCall makes of a URL: "https://[::1]:8443/a?b=c" → host "::1", port 8443,
// host_header "[::1]:8443", target "/a?b=c". The rules are net::ParseHttpsUrl's (url.h) with a
// query allowed: no other scheme, user info, fragment, empty host, unbracketed IPv6, bad port,
// space / control / non-ASCII byte... Callers use it to validate a configured URL once, at load,
// with the same rules the call applies.
struct HttpsUrlParts {
  std::string host;  // without brackets for IPv6
  uint16_t port = 443;
  std::string host_header;  // the authority as written (Host: header)
  std::string target;       // "/" when the URL has no path
};
[[nodiscard]] absl::StatusOr<HttpsUrlParts> SplitHttpsUrl(std::string_view url);

// application/x-www-form-urlencoded escaping of one value.
std::string FormEscape(std::string_view value);

}  // namespace kshield::net
