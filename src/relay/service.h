// CertificateService: the relay's request logic, independent of the network (relay.h feeds it
// requests that arrived over TLS, with what the handshake proved about the client).
//
// POST /v1/clusters/{cluster}/certificates, body {"csr": PEM, "evidence_certificate": PEM?,
// "ttl_seconds": N?}:
//   1. authenticate: `Authorization: Bearer <ID token>` (OIDC, jwt.h) when present — a bad token
//      is 401, never a fall-back to the certificate; otherwise a TLS client certificate that
//      verified against tls.client_ca_file (user = its single subject CN); otherwise 401;
//   2. the cluster must be one the relay serves (404);
//   3. the body: JSON object, "csr" a PEM PKCS#10 whose self-signature verifies (400);
//   4. policy (policy.h): the groups the user gets on the cluster; none, or any system:* user or
//      group → 403;
//   5. clusters with require_tee: "evidence_certificate" must be an RA-TLS certificate that
//      verifies to the pinned attestation root and meets the attestation policy, and its public
//      key must be the CSR's public key (403 otherwise);
//   6. sign: CN = user, O = groups, clientAuth, validity = min(max_ttl, ttl_seconds) (never past
//      the cluster CA's own notAfter), by the cluster's intermediate CA;
//   7. one audit line (audit.h) — written before the certificate is returned; if it cannot be
//      written the answer is 500 and no certificate leaves the relay.
// Every outcome of that route, including 401 / 404 / 405 / 413, gets its audit line.
// GET /healthz → 200 "ok". Anything else → 404.
//
// Thread-safe: Handle() runs concurrently on the server's I/O threads.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "relay/audit.h"
#include "relay/config.h"

namespace kshield::relay {

// What the TLS handshake established about the client.
struct PeerInfo {
  std::string address;                          // "ip:port"
  bool cert_presented = false;                  // the client sent a certificate
  bool cert_verified = false;                   // ... and it chained to tls.client_ca_file
  std::string cert_error;                       // why it did not verify (OpenSSL's text)
  std::vector<std::string> cert_common_names;   // subject CN entries of the leaf
  std::vector<std::string> cert_organizations;  // subject O entries of the leaf
};

struct RelayRequest {
  std::string method;         // "GET", "POST", ...
  std::string target;         // path + optional query
  std::string authorization;  // the Authorization header ("" when absent)
  std::string content_type;
  std::string body;
  bool body_too_large = false;  // the server stopped reading at the body limit
  PeerInfo peer;
};

struct RelayResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

inline constexpr size_t kMaxRequestBodyBytes = 64 * 1024;

class CertificateService {
 public:
  // Reads and checks every file the config names: the root, each cluster CA (a CA certificate
  // chaining to the root, its key 0600 and matching), the JWKS, the policy, the attestation root
  // and policy. Errors name the file and the problem.
  static absl::StatusOr<std::unique_ptr<CertificateService>> Create(
      const RelayConfig& config, std::unique_ptr<AuditLog> audit);
  ~CertificateService();

  RelayResponse Handle(const RelayRequest& request);

  // One line per cluster / authentication method, for `kshield-relay check-config` and the
  // start-up log.
  std::vector<std::string> Describe() const;

  struct State;

 private:
  explicit CertificateService(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace kshield::relay
