// The daemon's outbound HTTPS calls: the CSR to kshield-relay and the refresh-token grant to an
// OIDC token endpoint. One request per connection ("Connection: close"), blocking, with one
// overall deadline.
//
// Security rules:
//  - the server certificate is verified against `ca_pem` (or the system trust store when empty)
//    with a host-name / IP check against the URL host; any failure fails the call;
//  - secrets (client key, bearer token, a form body carrying a refresh token) are passed as
//    SecretBytes / string_view and every buffer the request was serialised into is cleared;
//  - the response is bounded (max_response_bytes) and parsed with Beast's parser (chunked too).
//
//   HttpsRequest r{.method = "POST", .url = "https://relay:8443/v1/clusters/prod/certificates",
//                  .ca_pem = relay_ca, .content_type = "application/json"};
//   r.bearer = &id_token;
//   KSH_ASSIGN_OR_RETURN(HttpsResponse resp, HttpsCall(r, body));
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/secret.h"

namespace kshield::kubectl {

struct HttpsRequest {
  std::string method = "GET";
  std::string url;  // https://host[:port]/path[?query]
  std::string ca_pem;  // trust anchors; empty: system trust store
  std::string content_type;
  std::string accept = "application/json";
  // Optional TLS client identity (corporate mTLS to the relay). Borrowed; must outlive the call.
  const std::string* client_cert_pem = nullptr;
  const SecretBytes* client_key_pem = nullptr;
  // Optional "Authorization: Bearer <token>". Borrowed.
  const SecretBytes* bearer = nullptr;
  absl::Duration timeout = absl::Seconds(15);
  size_t max_response_bytes = 1 << 20;
};

struct HttpsResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

// Errors: InvalidArgument (bad URL / PEM), Unavailable (DNS, connect, TLS handshake or
// certificate verification failure — the message says which), DeadlineExceeded, and
// DataLoss for a malformed or oversized response. An HTTP error status is NOT an error here.
absl::StatusOr<HttpsResponse> HttpsCall(const HttpsRequest& request, std::string_view body = {});

// application/x-www-form-urlencoded escaping of one value.
std::string FormEscape(std::string_view value);

}  // namespace kshield::kubectl
