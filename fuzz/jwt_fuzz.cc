// Fuzz target: OIDC ID token parsing and verification (relay/jwt.h) — the compact-JWS splitter,
// base64url, the strict JSON reader, the alg / kid / typ / crit header rules, signature
// verification (RS256, ES256 raw r||s → DER) and the claim checks, all fed by a bearer token from
// an unauthenticated client. Seeds: fuzz/corpus/jwt_fuzz/ (valid RS256 and ES256 tokens for the
// fixed JWKS below, signed once with keys that were then thrown away).
// Invariants:
//  - ParseJwt success: three segments, alg RS256/ES256, the signing input is the token up to the
//    last '.', header and claims are JSON objects, the signature is not empty;
//  - VerifyJwt success implies ParseJwt success, a kid/alg that the JWKS holds, iss / aud as
//    configured, and exp no earlier than now - skew;
//  - every failure is Unauthenticated with a bounded, printable message.
// fuzz-libs: kshield_relay_jwt
// fuzz-sources: src/relay/base64url.cc src/relay/json_util.cc src/relay/jwks.cc src/relay/jwt.cc
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "relay/jwks.h"
#include "relay/jwt.h"

namespace r = kshield::relay;

namespace {

constexpr const char kJwks[] =
    R"J({"keys":[{"kty":"RSA","kid":"rsa-1","use":"sig","alg":"RS256","n":"sWfUMr6MUUVZB)J"
    R"J(dhVUP2HpL2tPd8Xpyxmvp7P9rFJUEk_W9Isv_2J5zGrAsDQsawRtuyaGntqsDLJFlDuDzq9YF1txrPkY)J"
    R"J(a-Ex9Zhy-ZWgoFkA6Hk2TSLGcgJ0sY8yomWhn3y04FjZl6bTgKUhX1cs6EtxHfbAMUQrpqATX7wtemkB)J"
    R"J(HINUCJyOMMnTrlDLHmGOGpVrb--qa9FQ8kiM3TLQuFeQYkact0dvzD_E-tDEItg8NbHub0w34kRg8Ru_)J"
    R"J(mOSxE2SxsKIbakj8vjOKI_gO3D4o-zorryYU4n8nZuEaBPvKoSlg9NHyo0xcxTCsqWKP8ew1Rea8JVBd)J"
    R"J(p9Hhm5Xhw","e":"AQAB"},{"kty":"EC","kid":"ec-1","crv":"P-256","x":"GVG8TplkgkjyC)J"
    R"J(eNMjN8P3kIWHL6OmJK-CT7RTMK3VYw","y":"PITAAG44oHjnucqCFvwjQLpu46pGHRHkRUtfRr6vliI)J"
    R"J("}]})J";

const r::Jwks& Keys() {
  static const r::Jwks* const jwks = [] {
    auto parsed = r::ParseJwks(kJwks);
    FUZZ_CHECK(parsed.ok() && parsed->keys.size() == 2);
    return new r::Jwks(std::move(*parsed));
  }();
  return *jwks;
}

void CheckError(const absl::Status& s) {
  FUZZ_CHECK(s.code() == absl::StatusCode::kUnauthenticated);
  const std::string msg(s.message());
  FUZZ_CHECK(!msg.empty() && msg.size() <= 200);
  for (unsigned char c : msg) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view token(reinterpret_cast<const char*>(data), size);

  auto parsed = r::ParseJwt(token);
  if (parsed.ok()) {
    FUZZ_CHECK(parsed->header.is_object() && parsed->claims.is_object());
    FUZZ_CHECK(!parsed->signature.empty());
    FUZZ_CHECK(token.substr(0, parsed->signing_input.size()) == parsed->signing_input);
    FUZZ_CHECK(token.find('.', parsed->signing_input.size() + 1) == std::string_view::npos);
  } else {
    CheckError(parsed.status());
  }

  r::JwtVerifyOptions opts;
  opts.issuer = "https://idp.example.com";
  opts.audience = "kshield";
  opts.now = absl::FromUnixSeconds(1700001000);  // inside the seeds' validity
  auto verified = r::VerifyJwt(token, Keys(), opts);
  if (verified.ok()) {
    FUZZ_CHECK(parsed.ok());
    FUZZ_CHECK(verified->alg == parsed->alg);
    FUZZ_CHECK(Keys().Find(verified->kid, verified->alg).ok());
    FUZZ_CHECK(verified->claims.at("iss") == opts.issuer);
    FUZZ_CHECK(verified->expires_at + opts.clock_skew >= opts.now);
    (void)verified->StringClaim("email");
    (void)verified->StringListClaim("groups");
  } else if (!absl::IsUnauthenticated(verified.status())) {
    FUZZ_CHECK(false);
  } else {
    CheckError(verified.status());
  }
  return 0;
}
