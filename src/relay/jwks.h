// JSON Web Key Sets (RFC 7517) holding the OIDC issuer's signature keys, for VerifyJwt (jwt.h).
//
// Accepted keys (RFC 7518 §6):
//   {"kty":"RSA","kid":"k1","n":"<base64url>","e":"<base64url>"}      → RS256, 2048..8192 bits
//   {"kty":"EC","kid":"k2","crv":"P-256","x":"<32 bytes>","y":"<32 bytes>"}  → ES256
// Optional "use" must be "sig" and optional "alg" must be the one the key type implies
// (RS256 / ES256) when present.
//
// A key that is not usable is skipped, with the reason in Jwks::skipped (unknown or symmetric
// "kty", other curves or algorithms, RSA under 2048 bits, wrong coordinate sizes, a point not on
// the curve, private-key members present, "use" other than "sig"). A "kid" that appears more
// than once is ambiguous: every key with it is skipped. A document with no usable key at all is
// an error, so a misconfigured issuer fails at start-up rather than at the first login.
//
//   KSH_ASSIGN_OR_RETURN(Jwks jwks, ParseJwks(file_contents));
//   for (const std::string& why : jwks.skipped) log::Warn("relay.jwks_key_skipped", {{"reason",
//   why}});
#pragma once

#include <openssl/types.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kshield::relay {

enum class JwtAlg { kRs256, kEs256 };

std::string_view JwtAlgName(JwtAlg alg);  // "RS256", "ES256"

struct Jwk {
  std::string kid;  // may be empty
  JwtAlg alg = JwtAlg::kRs256;
  int bits = 0;
  std::shared_ptr<EVP_PKEY> key;  // public key; shared read-only between threads
};

struct Jwks {
  std::vector<Jwk> keys;
  std::vector<std::string> skipped;  // one reason per key left out (no key material in them)

  // The key for a token header: with a `kid`, the key with that kid (NotFound when there is none,
  // PermissionDenied when its type does not match `alg`); without one, the only key for `alg`
  // (NotFound when there are none or several).
  absl::StatusOr<const Jwk*> Find(std::string_view kid, JwtAlg alg) const;
};

inline constexpr size_t kMaxJwksBytes = 256 * 1024;
inline constexpr size_t kMaxJwksKeys = 64;

// InvalidArgument for a document that is not a JWKS or has no usable key.
absl::StatusOr<Jwks> ParseJwks(std::string_view json);

}  // namespace kshield::relay
