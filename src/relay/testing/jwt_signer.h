// Test-only: an OIDC issuer in a box. Holds an RSA-2048 or EC P-256 key, publishes it as a JWKS
// and signs arbitrary header / payload JSON into compact JWS tokens, so tests can build one valid
// token and mutate one field at a time.
//
//   auto rsa = TestSigner::Rsa("rsa-1");
//   std::string jwks = TestSigner::JwksJson({&*rsa});
//   std::string token = rsa->Sign({{"alg", "RS256"}, {"kid", "rsa-1"}}, claims);
#pragma once

#include <openssl/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace kshield::relay::testing {

class TestSigner {
 public:
  static absl::StatusOr<std::unique_ptr<TestSigner>> Rsa(std::string kid, int bits = 2048);
  static absl::StatusOr<std::unique_ptr<TestSigner>> Ec(std::string kid);
  ~TestSigner();

  const std::string& kid() const { return kid_; }
  bool is_ec() const { return is_ec_; }

  // The public JWK ({"kty", "kid", "n"/"e" or "crv"/"x"/"y"}).
  nlohmann::json PublicJwk() const;
  static std::string JwksJson(const std::vector<const TestSigner*>& signers);

  // base64url(header).base64url(payload).base64url(signature) with this key: RS256 (PKCS#1 v1.5)
  // for RSA, ES256 raw r||s for EC (`der_signature` = true: DER instead, which must be refused).
  std::string Sign(const nlohmann::json& header, const nlohmann::json& payload,
                   bool der_signature = false) const;
  // Signs exact segment texts (for non-JSON / odd encodings).
  std::string SignSegments(std::string_view header_b64, std::string_view payload_b64,
                           bool der_signature = false) const;
  // HS256 over header.payload with `secret` as the HMAC key (an attacker's token).
  static std::string SignHs256(const nlohmann::json& header, const nlohmann::json& payload,
                               std::string_view secret);
  // The public key as PEM (what an attacker would use as an HMAC secret).
  std::string PublicKeyPem() const;

 private:
  TestSigner(std::string kid, EVP_PKEY* key, bool is_ec);
  std::string kid_;
  EVP_PKEY* key_;
  bool is_ec_;
};

// A typical ID token claims set: iss, aud, sub, email, groups, iat = now, exp = now + 10 min.
nlohmann::json StandardClaims(std::string_view issuer, std::string_view audience,
                              std::string_view email, std::vector<std::string> groups = {});

}  // namespace kshield::relay::testing
