// Test-only: a complete relay setup in a directory — global root, per-cluster intermediate CAs,
// the relay's TLS identity, a corporate client CA, an OIDC issuer (RSA + EC keys, JWKS file), a
// sim-platform attestation root and policy, a relay policy and a config file tying them together.
//
//   auto fx = RelayFixture::Create(dir.path(), {});
//   auto service = CertificateService::Create(*LoadRelayConfigFile(fx->config_path), nullptr);
//   std::string token = fx->Token(fx->Claims("alice@example.com"));
//
// Clusters: "prod" (max_ttl 1h), "staging" (max_ttl 30m), "secure" (require_tee).
// Policy: alice@example.com → prod, secure as [developers]; group:sre → * as [sre];
//         bob → prod as [ops]; "eve@example.com" has no rule.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "crypto/x509.h"
#include "nlohmann/json.hpp"
#include "relay/testing/jwt_signer.h"
#include "tee/sim_platform.h"

namespace kshield::relay::testing {

struct RelayFixtureOptions {
  std::string listen = "127.0.0.1:0";
  std::string policy_yaml;  // empty: the default policy above
  std::string audit_log = "audit.log";
  // Non-empty: the config names the issuer's keys by `oidc.jwks_url` (with `oidc.jwks_ca_file`
  // when jwks_ca_file is set) instead of `jwks_file: jwks.json` (which is still written).
  std::string jwks_url;
  std::string jwks_ca_file;
};

class RelayFixture {
 public:
  static absl::StatusOr<std::unique_ptr<RelayFixture>> Create(const std::string& dir,
                                                              const RelayFixtureOptions& options);

  std::string dir;
  std::string config_path;
  std::string audit_path;
  std::string issuer = "https://idp.kshield.test";
  std::string audience = "kshield-relay";

  crypto::CertificateAuthority root;      // global root
  crypto::CertificateAuthority tls_ca;    // signs the relay's serving certificate
  crypto::CertificateAuthority corp_ca;   // corporate PKI for client certificates
  std::unique_ptr<TestSigner> rsa;        // kid "rsa-1"
  std::unique_ptr<TestSigner> ec;         // kid "ec-1"
  std::unique_ptr<tee::SimPlatform> sim;  // the daemon's simulated TEE

  // Standard claims for `email` (groups claim as given).
  nlohmann::json Claims(const std::string& email, std::vector<std::string> groups = {}) const;
  // RS256 token with kid rsa-1.
  std::string Token(const nlohmann::json& claims) const;

  struct ClientCert {
    std::string certificate_pem;
    SecretBytes private_key_pem;
  };
  // A client certificate from the corporate CA (or from `issuer` when given).
  absl::StatusOr<ClientCert> MakeClientCert(
      const std::string& cn, const crypto::CertificateAuthority* issuer = nullptr) const;

  // A fresh P-256 key and a CSR for it.
  struct KeyAndCsr {
    crypto::KeyPair key;
    std::string csr_pem;
  };
  static absl::StatusOr<KeyAndCsr> MakeCsr(const std::string& cn = "ignored");
};

}  // namespace kshield::relay::testing
