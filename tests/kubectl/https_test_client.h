// HttpsCall: one blocking HTTPS/1.1 request to 127.0.0.1:<port>, for tests that need to send
// exactly chosen headers (Impersonate-*, a forged Authorization, no credential at all) or to read
// the start of a streaming (watch) response. Test-only.
//
//   HttpsClientOptions tls{.ca_pem = pki.ca.certificate_pem, .client_cert_pem = alice.cert_pem,
//                          .client_key_pem = &alice.key_pem};
//   auto r = HttpsCall(api->port(), tls, {.target = "/version"});
//   ASSERT_TRUE(r.ok()) << r.status();
//   EXPECT_EQ(r->status, 200);
//   EXPECT_FALSE(r->Header("Audit-Id").empty());
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/secret.h"

namespace kshield::testing {

struct HttpsClientOptions {
  std::string ca_pem;                          // trust anchor; empty = do not verify the server
  std::string client_cert_pem;                 // optional client certificate (+ chain)
  const SecretBytes* client_key_pem = nullptr;  // its key (borrowed)
  std::string server_name = "127.0.0.1";       // SNI / name checked against the certificate
  std::chrono::milliseconds timeout{10000};    // whole exchange
};

struct HttpsRequest {
  std::string method = "GET";
  std::string target = "/";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Streaming responses: when set, the body is read piece by piece and the call returns (closing
  // the connection) as soon as this returns true for the body received so far.
  std::function<bool(const std::string& body_so_far)> stop_when;
};

struct HttpsResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string Header(std::string_view name) const;  // first value (case-insensitive), or ""
};

// A TLS handshake failure, a timeout or a connection error is an error status (Unavailable /
// DeadlineExceeded); any HTTP status is a successful result.
absl::StatusOr<HttpsResponse> HttpsCall(uint16_t port, const HttpsClientOptions& tls,
                                        const HttpsRequest& request);

}  // namespace kshield::testing
