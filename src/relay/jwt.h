// OIDC ID tokens: compact JWS (RFC 7515) with a JSON claims set (RFC 7519), verified against the
// issuer's JWKS (jwks.h).
//
// What is accepted — everything else is refused, fail closed:
//  - exactly three base64url segments (no padding), at most `max_token_bytes` in all; the
//    header and payload are JSON objects without duplicate keys;
//  - header "alg" RS256 (RSASSA-PKCS1-v1_5 + SHA-256) or ES256 (ECDSA P-256 + SHA-256, signature
//    = raw r ‖ s, 64 bytes: a DER signature is refused). "none", HS256 and every other value are
//    refused before any key is looked at; "crit" is refused (no extension is understood);
//    "typ", when present, must be "JWT"; "jku" / "jwk" / "x5u" / "x5c" are ignored (keys only
//    ever come from the configured JWKS);
//  - the key: the JWKS entry named by "kid" (or the only key for the alg when there is no kid)
//    and of the alg's type (an RSA key is never used as an HMAC secret);
//  - claims, checked only after the signature verified: "iss" equal to the configured issuer;
//    "aud" a string or an array of strings containing the configured audience; "exp" required,
//    now ≤ exp + skew; "nbf" if present, nbf ≤ now + skew; "iat" if present, iat ≤ now + skew.
//    Times are JSON numbers (seconds since the epoch).
// Every refusal is Unauthenticated with a short reason naming the check; no message quotes the
// token or a claim value.
//
//   JwtVerifyOptions opts{.issuer = "https://idp.example.com", .audience = "kshield"};
//   KSH_ASSIGN_OR_RETURN(VerifiedJwt jwt, VerifyJwt(token, jwks, opts));
//   KSH_ASSIGN_OR_RETURN(std::string user, jwt.StringClaim("email"));
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "relay/jwks.h"

namespace kshield::relay {

inline constexpr size_t kDefaultMaxTokenBytes = 16 * 1024;

struct JwtVerifyOptions {
  std::string issuer;    // required: exact match of "iss"
  std::string audience;  // required: must be in "aud"
  absl::Duration clock_skew = absl::Seconds(60);
  size_t max_token_bytes = kDefaultMaxTokenBytes;
  absl::Time now = absl::InfinitePast();  // InfinitePast: absl::Now()
};

// The structure of a token, signature not checked (for VerifyJwt and the fuzz target).
struct ParsedJwt {
  JwtAlg alg = JwtAlg::kRs256;
  std::string kid;            // empty when the header has none
  nlohmann::json header;      // object
  nlohmann::json claims;      // object
  std::string signing_input;  // "<header b64>.<payload b64>", the bytes that are signed
  std::string signature;      // decoded signature bytes
};

// Unauthenticated for anything that is not a well-formed RS256 / ES256 compact JWS.
absl::StatusOr<ParsedJwt> ParseJwt(std::string_view token,
                                   size_t max_token_bytes = kDefaultMaxTokenBytes);

struct VerifiedJwt {
  JwtAlg alg = JwtAlg::kRs256;
  std::string kid;
  nlohmann::json claims;  // object; iss / aud / exp / nbf / iat already checked
  absl::Time expires_at;

  // A claim that must be a non-empty string (Unauthenticated otherwise).
  absl::StatusOr<std::string> StringClaim(std::string_view name) const;
  // A claim that is a string or an array of strings; an absent claim is an empty list.
  // At most `max_items` entries (Unauthenticated beyond).
  absl::StatusOr<std::vector<std::string>> StringListClaim(std::string_view name,
                                                           size_t max_items = 256) const;
  // True when the claim is present and is the JSON boolean `false` or not a boolean.
  bool ClaimPresentAndNotTrue(std::string_view name) const;
};

// Parses, verifies the signature with `jwks`, then checks the claims (see the file comment).
// NotFound-like key lookup failures are reported as Unauthenticated too; the message starts with
// "token: unknown kid" for a kid the JWKS lacks, so a caller can reload its JWKS and retry.
absl::StatusOr<VerifiedJwt> VerifyJwt(std::string_view token, const Jwks& jwks,
                                      const JwtVerifyOptions& options);

// True when a VerifyJwt error means the JWKS had no key with the token's kid.
bool IsUnknownKidError(const absl::Status& status);

}  // namespace kshield::relay
