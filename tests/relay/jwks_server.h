// Test-only: an OIDC issuer's jwks_uri endpoint — an HTTPS server on 127.0.0.1 that answers
// every request with what the test set last (status, Content-Type, body), so a test can rotate
// keys, break the document, answer 500, or stop answering at all.
//
//   auto pki = MakeLoopbackServerPki("idp");
//   auto idp = JwksServer::Start({.cert_pem = pki->cert_pem, .key_pem = pki->key_pem.Clone()});
//   (*idp)->Serve(200, TestSigner::JwksJson({signer.get()}));
//   ... oidc.jwks_url = (*idp)->url(), oidc.jwks_ca_file = <pki->ca.certificate_pem> ...
//
// One thread accepts and serves connections one at a time (one request per connection,
// "Connection: close"). Start() binds `port` (0 = a free one) with SO_REUSEADDR, so a test can
// pick a port, configure the relay with it, and only start the server later (issuer down at
// start-up). Start() ignores SIGPIPE in the process (a client that stops reading an oversized
// body must not kill the test).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/secret.h"
#include "crypto/x509.h"

namespace kshield::testing {

// A CA and a serving certificate for 127.0.0.1 (SAN IP) issued by it.
struct LoopbackServerPki {
  crypto::CertificateAuthority ca;
  std::string cert_pem;
  SecretBytes key_pem;
};
absl::StatusOr<LoopbackServerPki> MakeLoopbackServerPki(const std::string& name);

struct JwksServerOptions {
  std::string cert_pem;
  SecretBytes key_pem;
  uint16_t port = 0;
};

class JwksServer {
 public:
  static absl::StatusOr<std::unique_ptr<JwksServer>> Start(JwksServerOptions options);
  ~JwksServer();  // Stop()
  JwksServer(const JwksServer&) = delete;
  JwksServer& operator=(const JwksServer&) = delete;

  uint16_t port() const;
  std::string url() const;  // "https://127.0.0.1:<port>/keys"

  // What every following request gets.
  void Serve(int status, std::string body, std::string content_type = "application/json");
  // Waits this long before answering (interrupted by Stop).
  void SetDelay(std::chrono::milliseconds delay);

  int requests() const;                    // requests answered or being answered
  std::vector<std::string> heads() const;  // request line + headers of each request, in order
  void Stop();                             // closes the listener, joins the thread; idempotent

  class Impl;

 private:
  explicit JwksServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kshield::testing
