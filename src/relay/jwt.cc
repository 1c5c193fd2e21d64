#include "relay/jwt.h"

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <cmath>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "relay/base64url.h"
#include "relay/json_util.h"

namespace kshield::relay {
namespace {

constexpr std::string_view kUnknownKid = "token: unknown kid";

absl::Status Refuse(std::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat("token: ", AV(why)));
}

absl::StatusOr<nlohmann::json> DecodeSegment(std::string_view b64, std::string_view what) {
  auto raw = Base64UrlDecode(b64);
  if (!raw.ok()) return Refuse(absl::StrCat(AV(what), " is not base64url"));
  auto json = ParseStrictJson(*raw, 8);
  if (!json.ok())
    return Refuse(absl::StrCat(AV(what), " is not valid JSON (", json.status().message(), ")"));
  if (!json->is_object()) return Refuse(absl::StrCat(AV(what), " is not a JSON object"));
  return json;
}

// ES256 signatures are raw r ‖ s (RFC 7518 §3.4); OpenSSL verifies DER ECDSA-Sig-Value.
absl::StatusOr<std::string> RawEcdsaToDer(std::string_view raw) {
  if (raw.size() != 64) return Refuse("ES256 signature is not 64 bytes (r || s)");
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(ECDSA_SIG_new(), ECDSA_SIG_free);
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return absl::InternalError("ECDSA_SIG");
  }
  unsigned char* der = nullptr;
  const int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) return absl::InternalError("i2d_ECDSA_SIG");
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

absl::Status VerifySignature(const ParsedJwt& jwt, const Jwk& key) {
  std::string sig = jwt.signature;
  if (jwt.alg == JwtAlg::kEs256) {
    KSH_ASSIGN_OR_RETURN(sig, RawEcdsaToDer(jwt.signature));
  } else if (jwt.signature.size() != static_cast<size_t>((key.bits + 7) / 8)) {
    return Refuse("RS256 signature length does not match the key");
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  // EVP_DigestVerifyInit with the key's own type: an RSA key verifies PKCS#1 v1.5 (OpenSSL's
  // default padding for RSA), an EC key ECDSA. The key type was matched to alg by Jwks::Find.
  const bool ok =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.key.get()) == 1 &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(jwt.signing_input.data()),
                       jwt.signing_input.size()) == 1;
  ERR_clear_error();
  if (!ok) return Refuse("signature does not verify");
  return absl::OkStatus();
}

// A NumericDate claim (RFC 7519 §2): absent → nullopt-like (returns false in *present).
absl::StatusOr<absl::Time> TimeClaim(const nlohmann::json& claims, const char* name,
                                     bool* present) {
  auto it = claims.find(name);
  *present = it != claims.end();
  if (!*present) return absl::InfinitePast();
  double seconds = 0;
  if (it->is_number_integer()) {
    seconds = static_cast<double>(it->get<int64_t>());
  } else if (it->is_number_unsigned()) {
    seconds = static_cast<double>(it->get<uint64_t>());
  } else if (it->is_number_float()) {
    seconds = it->get<double>();
  } else {
    return Refuse(absl::StrCat("\"", name, "\" is not a number"));
  }
  // Years 0..9999 are plenty; this also rejects NaN and infinities.
  if (!(seconds >= 0 && seconds < 253402300800.0)) {
    return Refuse(absl::StrCat("\"", name, "\" is out of range"));
  }
  return absl::FromUnixSeconds(static_cast<int64_t>(std::floor(seconds)));
}

}  // namespace

absl::StatusOr<ParsedJwt> ParseJwt(std::string_view token, size_t max_token_bytes) {
  if (token.empty()) return Refuse("empty");
  if (token.size() > max_token_bytes) return Refuse("larger than the maximum token size");
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Refuse("not a compact JWS (want exactly three segments)");
  }
  ParsedJwt out;
  KSH_ASSIGN_OR_RETURN(out.header, DecodeSegment(token.substr(0, dot1), "header"));

  // The algorithm decides everything else; check it before touching keys or claims.
  auto alg = out.header.find("alg");
  if (alg == out.header.end() || !alg->is_string()) return Refuse("header has no \"alg\"");
  const std::string& alg_name = alg->get_ref<const std::string&>();
  if (alg_name == "RS256") {
    out.alg = JwtAlg::kRs256;
  } else if (alg_name == "ES256") {
    out.alg = JwtAlg::kEs256;
  } else {
    return Refuse("alg is not RS256 or ES256");
  }
  if (out.header.contains("crit")) return Refuse("header has \"crit\" (no extension is supported)");
  if (auto typ = out.header.find("typ"); typ != out.header.end()) {
    if (!typ->is_string() || !absl::EqualsIgnoreCase(typ->get_ref<const std::string&>(), "JWT")) {
      return Refuse("typ is not JWT");
    }
  }
  if (auto kid = out.header.find("kid"); kid != out.header.end()) {
    if (!kid->is_string()) return Refuse("kid is not a string");
    out.kid = kid->get<std::string>();
  }

  KSH_ASSIGN_OR_RETURN(out.claims,
                       DecodeSegment(token.substr(dot1 + 1, dot2 - dot1 - 1), "payload"));
  auto sig = Base64UrlDecode(token.substr(dot2 + 1));
  if (!sig.ok()) return Refuse("signature is not base64url");
  if (sig->empty()) return Refuse("signature is empty");
  out.signature = std::move(*sig);
  out.signing_input = std::string(token.substr(0, dot2));
  return out;
}

absl::StatusOr<VerifiedJwt> VerifyJwt(std::string_view token, const Jwks& jwks,
                                      const JwtVerifyOptions& options) {
  if (options.issuer.empty() || options.audience.empty()) {
    return absl::FailedPreconditionError("token verification needs an issuer and an audience");
  }
  KSH_ASSIGN_OR_RETURN(ParsedJwt jwt, ParseJwt(token, options.max_token_bytes));
  auto key = jwks.Find(jwt.kid, jwt.alg);
  if (!key.ok()) {
    if (absl::IsNotFound(key.status()) && !jwt.kid.empty()) {
      return absl::UnauthenticatedError(AV(kUnknownKid));
    }
    return Refuse(SV(key.status().message()));
  }
  KSH_RETURN_IF_ERROR(VerifySignature(jwt, **key));

  const nlohmann::json& c = jwt.claims;
  auto iss = c.find("iss");
  if (iss == c.end() || !iss->is_string() || iss->get_ref<const std::string&>() != options.issuer) {
    return Refuse("iss is not the configured issuer");
  }
  auto aud = c.find("aud");
  bool aud_ok = false;
  if (aud != c.end() && aud->is_string()) {
    aud_ok = aud->get_ref<const std::string&>() == options.audience;
  } else if (aud != c.end() && aud->is_array()) {
    for (const auto& a : *aud) {
      if (!a.is_string()) return Refuse("aud array holds a non-string");
      if (a.get_ref<const std::string&>() == options.audience) aud_ok = true;
    }
  }
  if (!aud_ok) return Refuse("aud does not contain the configured audience");

  const absl::Time now = options.now == absl::InfinitePast() ? absl::Now() : options.now;
  const absl::Duration skew = options.clock_skew;
  bool present = false;
  KSH_ASSIGN_OR_RETURN(absl::Time exp, TimeClaim(c, "exp", &present));
  if (!present) return Refuse("no \"exp\"");
  if (now > exp + skew) return Refuse("expired");
  KSH_ASSIGN_OR_RETURN(absl::Time nbf, TimeClaim(c, "nbf", &present));
  if (present && nbf > now + skew) return Refuse("not valid yet (nbf)");
  KSH_ASSIGN_OR_RETURN(absl::Time iat, TimeClaim(c, "iat", &present));
  if (present && iat > now + skew) return Refuse("issued in the future (iat)");

  VerifiedJwt out;
  out.alg = jwt.alg;
  out.kid = std::move(jwt.kid);
  out.claims = std::move(jwt.claims);
  out.expires_at = exp;
  return out;
}

bool IsUnknownKidError(const absl::Status& status) {
  return absl::IsUnauthenticated(status) && SV(status.message()) == kUnknownKid;
}

absl::StatusOr<std::string> VerifiedJwt::StringClaim(std::string_view name) const {
  auto it = claims.find(std::string(name));
  if (it == claims.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
    return absl::UnauthenticatedError(
        absl::StrCat("token: claim \"", AV(name), "\" missing or not a non-empty string"));
  }
  return it->get<std::string>();
}

absl::StatusOr<std::vector<std::string>> VerifiedJwt::StringListClaim(std::string_view name,
                                                                      size_t max_items) const {
  std::vector<std::string> out;
  auto it = claims.find(std::string(name));
  if (it == claims.end()) return out;
  const auto bad = [&] {
    return absl::UnauthenticatedError(
        absl::StrCat("token: claim \"", AV(name), "\" is not a string or a list of strings"));
  };
  if (it->is_string()) {
    out.push_back(it->get<std::string>());
    return out;
  }
  if (!it->is_array()) return bad();
  if (it->size() > max_items) {
    return absl::UnauthenticatedError(
        absl::StrCat("token: claim \"", AV(name), "\" has more than ", max_items, " entries"));
  }
  for (const auto& v : *it) {
    if (!v.is_string()) return bad();
    out.push_back(v.get<std::string>());
  }
  return out;
}

bool VerifiedJwt::ClaimPresentAndNotTrue(std::string_view name) const {
  auto it = claims.find(std::string(name));
  return it != claims.end() && !(it->is_boolean() && it->get<bool>());
}

}  // namespace kshield::relay
