#include "relay/jwks.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "relay/base64url.h"
#include "relay/json_util.h"

namespace kshield::relay {
namespace {

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct BldFree {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct CtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

constexpr int kMinRsaBits = 2048;
constexpr int kMaxRsaBits = 8192;

absl::Status Skip(std::string_view why) { return absl::InvalidArgumentError(AV(why)); }

// A base64url member of a JWK, decoded.
absl::StatusOr<std::string> B64Member(const nlohmann::json& jwk, const char* name) {
  auto it = jwk.find(name);
  if (it == jwk.end() || !it->is_string()) {
    return Skip(absl::StrCat("member \"", name, "\" missing or not a string"));
  }
  auto decoded = Base64UrlDecode(it->get_ref<const std::string&>());
  if (!decoded.ok()) return Skip(absl::StrCat("member \"", name, "\" is not base64url"));
  return decoded;
}

// EVP_PKEY_fromdata + a public-key check (the point is on the curve / the modulus is sane).
absl::StatusOr<std::shared_ptr<EVP_PKEY>> FromData(const char* type, OSSL_PARAM_BLD* bld) {
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld));
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1 || !raw) {
    ERR_clear_error();
    return Skip("key parameters rejected by OpenSSL");
  }
  std::shared_ptr<EVP_PKEY> key(raw, EVP_PKEY_free);
  std::unique_ptr<EVP_PKEY_CTX, CtxFree> check(EVP_PKEY_CTX_new_from_pkey(nullptr, raw, nullptr));
  if (!check || EVP_PKEY_public_check(check.get()) != 1) {
    ERR_clear_error();
    return Skip("public key check failed");
  }
  return key;
}

absl::StatusOr<Jwk> RsaKey(const nlohmann::json& jwk) {
  KSH_ASSIGN_OR_RETURN(std::string n, B64Member(jwk, "n"));
  KSH_ASSIGN_OR_RETURN(std::string e, B64Member(jwk, "e"));
  BnPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()),
                       nullptr));
  BnPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()),
                       nullptr));
  if (!bn_n || !bn_e) return absl::InternalError("BN_bin2bn");
  const int bits = BN_num_bits(bn_n.get());
  if (bits < kMinRsaBits)
    return Skip(absl::StrCat("RSA modulus of ", bits, " bits (minimum 2048)"));
  if (bits > kMaxRsaBits)
    return Skip(absl::StrCat("RSA modulus of ", bits, " bits (maximum 8192)"));
  // e: odd, at least 3, at most 64 bits (RFC 8017 allows more; no issuer uses it, and a huge
  // exponent makes verification slow).
  if (BN_num_bits(bn_e.get()) > 64 || !BN_is_odd(bn_e.get()) ||
      BN_cmp(bn_e.get(), BN_value_one()) <= 0) {
    return Skip("RSA public exponent is not acceptable");
  }
  std::unique_ptr<OSSL_PARAM_BLD, BldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    return absl::InternalError("OSSL_PARAM_BLD");
  }
  Jwk out;
  out.alg = JwtAlg::kRs256;
  out.bits = bits;
  KSH_ASSIGN_OR_RETURN(out.key, FromData("RSA", bld.get()));
  return out;
}

absl::StatusOr<Jwk> EcKey(const nlohmann::json& jwk) {
  auto crv = jwk.find("crv");
  if (crv == jwk.end() || !crv->is_string()) return Skip("EC key without \"crv\"");
  if (crv->get_ref<const std::string&>() != "P-256") return Skip("EC curve is not P-256");
  KSH_ASSIGN_OR_RETURN(std::string x, B64Member(jwk, "x"));
  KSH_ASSIGN_OR_RETURN(std::string y, B64Member(jwk, "y"));
  // RFC 7518 §6.2.1.2: each coordinate is exactly the field size (32 bytes), leading zeros kept.
  if (x.size() != 32 || y.size() != 32) return Skip("EC coordinates are not 32 bytes each");
  std::string point = "\x04" + x + y;  // SEC 1 uncompressed point
  std::unique_ptr<OSSL_PARAM_BLD, BldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                       point.size()) != 1) {
    return absl::InternalError("OSSL_PARAM_BLD");
  }
  Jwk out;
  out.alg = JwtAlg::kEs256;
  out.bits = 256;
  KSH_ASSIGN_OR_RETURN(out.key, FromData("EC", bld.get()));
  return out;
}

absl::StatusOr<Jwk> OneKey(const nlohmann::json& jwk) {
  if (!jwk.is_object()) return Skip("not a JSON object");
  auto kty = jwk.find("kty");
  if (kty == jwk.end() || !kty->is_string()) return Skip("no \"kty\"");
  const std::string& type = kty->get_ref<const std::string&>();
  // A published private or symmetric key is a misconfiguration of the issuer; never use it.
  for (const char* secret : {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}) {
    if (jwk.contains(secret)) return Skip("contains private or symmetric key material");
  }
  if (auto use = jwk.find("use"); use != jwk.end()) {
    if (!use->is_string() || use->get_ref<const std::string&>() != "sig") {
      return Skip("\"use\" is not \"sig\"");
    }
  }
  Jwk out;
  if (type == "RSA") {
    KSH_ASSIGN_OR_RETURN(out, RsaKey(jwk));
  } else if (type == "EC") {
    KSH_ASSIGN_OR_RETURN(out, EcKey(jwk));
  } else {
    return Skip("kty is not RSA or EC");
  }
  if (auto alg = jwk.find("alg"); alg != jwk.end()) {
    if (!alg->is_string() || alg->get_ref<const std::string&>() != JwtAlgName(out.alg)) {
      return Skip(absl::StrCat("\"alg\" is not ", AV(JwtAlgName(out.alg))));
    }
  }
  if (auto kid = jwk.find("kid"); kid != jwk.end()) {
    if (!kid->is_string()) return Skip("\"kid\" is not a string");
    out.kid = kid->get<std::string>();
    if (out.kid.size() > 256) return Skip("\"kid\" longer than 256 characters");
  }
  return out;
}

// A kid for a message: printable ASCII only, bounded.
std::string PrintableKid(std::string_view kid) {
  std::string out;
  for (char c : kid.substr(0, 64)) out.push_back(c >= 0x20 && c < 0x7f && c != '"' ? c : '?');
  return out;
}

}  // namespace

std::string_view JwtAlgName(JwtAlg alg) { return alg == JwtAlg::kEs256 ? "ES256" : "RS256"; }

absl::StatusOr<const Jwk*> Jwks::Find(std::string_view kid, JwtAlg alg) const {
  if (!kid.empty()) {
    for (const Jwk& k : keys) {
      if (k.kid == kid) {
        if (k.alg != alg) {
          return absl::PermissionDeniedError("the key named by kid is not a key for this alg");
        }
        return &k;
      }
    }
    return absl::NotFoundError("no key with this kid in the JWKS");
  }
  const Jwk* found = nullptr;
  for (const Jwk& k : keys) {
    if (k.alg != alg) continue;
    if (found != nullptr) {
      return absl::NotFoundError("token has no kid and the JWKS has several keys for its alg");
    }
    found = &k;
  }
  if (found == nullptr) return absl::NotFoundError("no key for this alg in the JWKS");
  return found;
}

absl::StatusOr<Jwks> ParseJwks(std::string_view json) {
  if (json.size() > kMaxJwksBytes) return absl::InvalidArgumentError("JWKS: larger than 256 KiB");
  auto doc = ParseStrictJson(json, 8);
  if (!doc.ok()) return absl::InvalidArgumentError(absl::StrCat("JWKS: ", doc.status().message()));
  if (!doc->is_object()) return absl::InvalidArgumentError("JWKS: not a JSON object");
  auto keys = doc->find("keys");
  if (keys == doc->end() || !keys->is_array()) {
    return absl::InvalidArgumentError("JWKS: no \"keys\" array");
  }
  if (keys->size() > kMaxJwksKeys) return absl::InvalidArgumentError("JWKS: more than 64 keys");

  Jwks out;
  std::map<std::string, int> kid_count;
  std::vector<Jwk> parsed;
  for (size_t i = 0; i < keys->size(); ++i) {
    auto key = OneKey((*keys)[i]);
    if (!key.ok()) {
      out.skipped.push_back(absl::StrCat("key ", i, ": ", key.status().message()));
      continue;
    }
    if (!key->kid.empty()) ++kid_count[key->kid];
    parsed.push_back(std::move(*key));
  }
  for (Jwk& k : parsed) {
    if (!k.kid.empty() && kid_count[k.kid] > 1) {
      out.skipped.push_back(
          absl::StrCat("kid \"", PrintableKid(k.kid), "\": appears more than once (ambiguous)"));
      continue;
    }
    out.keys.push_back(std::move(k));
  }
  if (out.keys.empty()) {
    std::string why = "JWKS: no usable RS256 / ES256 key";
    if (!out.skipped.empty()) absl::StrAppend(&why, " (", out.skipped.front(), ")");
    return absl::InvalidArgumentError(why);
  }
  return out;
}

}  // namespace kshield::relay
