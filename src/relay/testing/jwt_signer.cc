#include "relay/testing/jwt_signer.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <ctime>

#include "relay/base64url.h"

namespace kshield::relay::testing {
namespace {

std::string BnBytes(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) return "";
  std::string out(static_cast<size_t>(BN_num_bytes(bn)), '\0');
  BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  BN_free(bn);
  return out;
}

}  // namespace

TestSigner::TestSigner(std::string kid, EVP_PKEY* key, bool is_ec)
    : kid_(std::move(kid)), key_(key), is_ec_(is_ec) {}
TestSigner::~TestSigner() { EVP_PKEY_free(key_); }

absl::StatusOr<std::unique_ptr<TestSigner>> TestSigner::Rsa(std::string kid, int bits) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(bits));
  if (!key) return absl::InternalError("RSA keygen");
  return std::unique_ptr<TestSigner>(new TestSigner(std::move(kid), key, false));
}

absl::StatusOr<std::unique_ptr<TestSigner>> TestSigner::Ec(std::string kid) {
  EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (!key) return absl::InternalError("EC keygen");
  return std::unique_ptr<TestSigner>(new TestSigner(std::move(kid), key, true));
}

nlohmann::json TestSigner::PublicJwk() const {
  nlohmann::json jwk;
  if (is_ec_) {
    unsigned char pub[65];
    size_t len = 0;
    EVP_PKEY_get_octet_string_param(key_, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len);
    std::string point(reinterpret_cast<char*>(pub), len);  // 04 || x || y
    jwk = {{"kty", "EC"},
           {"crv", "P-256"},
           {"x", Base64UrlEncode(point.substr(1, 32))},
           {"y", Base64UrlEncode(point.substr(33, 32))}};
  } else {
    jwk = {{"kty", "RSA"},
           {"n", Base64UrlEncode(BnBytes(key_, OSSL_PKEY_PARAM_RSA_N))},
           {"e", Base64UrlEncode(BnBytes(key_, OSSL_PKEY_PARAM_RSA_E))}};
  }
  if (!kid_.empty()) jwk["kid"] = kid_;
  return jwk;
}

std::string TestSigner::JwksJson(const std::vector<const TestSigner*>& signers) {
  nlohmann::json keys = nlohmann::json::array();
  for (const TestSigner* s : signers) keys.push_back(s->PublicJwk());
  return nlohmann::json{{"keys", keys}}.dump();
}

std::string TestSigner::SignSegments(std::string_view header_b64, std::string_view payload_b64,
                                     bool der_signature) const {
  const std::string input = std::string(header_b64) + "." + std::string(payload_b64);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key_);
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                 input.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(input.data()), input.size());
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  if (is_ec_ && !der_signature) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(sig.data());
    ECDSA_SIG* es = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
    std::string raw(64, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(es), reinterpret_cast<unsigned char*>(raw.data()), 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32);
    ECDSA_SIG_free(es);
    sig = raw;
  }
  return input + "." + Base64UrlEncode(sig);
}

std::string TestSigner::Sign(const nlohmann::json& header, const nlohmann::json& payload,
                             bool der_signature) const {
  return SignSegments(Base64UrlEncode(header.dump()), Base64UrlEncode(payload.dump()),
                      der_signature);
}

std::string TestSigner::SignHs256(const nlohmann::json& header, const nlohmann::json& payload,
                                  std::string_view secret) {
  const std::string input = Base64UrlEncode(header.dump()) + "." + Base64UrlEncode(payload.dump());
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + Base64UrlEncode(std::string_view(reinterpret_cast<char*>(mac), len));
}

std::string TestSigner::PublicKeyPem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key_);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

nlohmann::json StandardClaims(std::string_view issuer, std::string_view audience,
                              std::string_view email, std::vector<std::string> groups) {
  const int64_t now = static_cast<int64_t>(time(nullptr));
  return {{"iss", issuer},  {"aud", audience},        {"sub", "user-" + std::string(email)},
          {"email", email}, {"email_verified", true}, {"groups", groups},
          {"iat", now},     {"exp", now + 600}};
}

}  // namespace kshield::relay::testing
