#include "tee/quote/x509.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include <climits>
#include <cstring>

#include "common/status.h"

namespace kshield::tee::quote {
namespace {

struct BioDeleter {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct StoreDeleter {
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
};
struct StoreCtxDeleter {
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
};
struct StackDeleter {
  void operator()(STACK_OF(X509) * p) const { sk_X509_free(p); }  // does not free the certs
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct EcdsaSigDeleter {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};
struct BnDeleter {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

// Input larger than this is not a certificate chain we expect (Intel chains are ~4 KB).
constexpr size_t kMaxPemSize = 64 * 1024;

BioPtr MemBio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

bool SelfIssued(X509* cert) {
  return X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)) == 0;
}

}  // namespace

absl::StatusOr<X509Ptr> ParsePemCertificate(std::string_view pem) {
  if (pem.empty() || pem.size() > kMaxPemSize) {
    return absl::InvalidArgumentError("certificate PEM is empty or too large");
  }
  BioPtr bio = MemBio(pem);
  if (!bio) return absl::ResourceExhaustedError("BIO_new_mem_buf failed");
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!cert) return absl::InvalidArgumentError("not a PEM certificate");
  return cert;
}

absl::StatusOr<std::vector<X509Ptr>> ParsePemChain(std::string_view pem) {
  while (!pem.empty() && pem.back() == '\0') pem.remove_suffix(1);
  if (pem.empty()) return absl::InvalidArgumentError("PCK certificate chain is empty");
  if (pem.size() > kMaxPemSize) {
    return absl::InvalidArgumentError("certificate chain of " + std::to_string(pem.size()) +
                                      " bytes is too large");
  }
  BioPtr bio = MemBio(pem);
  if (!bio) return absl::ResourceExhaustedError("BIO_new_mem_buf failed");
  std::vector<X509Ptr> chain;
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) {
      const unsigned long err = ERR_peek_last_error();
      ERR_clear_error();
      // End of input is "no start line"; anything else is a malformed certificate.
      if (ERR_GET_REASON(err) != PEM_R_NO_START_LINE) {
        return absl::InvalidArgumentError("certificate " + std::to_string(chain.size()) +
                                          " of the chain is not a valid PEM certificate");
      }
      break;
    }
    if (chain.size() == kMaxChainCertificates) {
      return absl::InvalidArgumentError("certificate chain has more than " +
                                        std::to_string(kMaxChainCertificates) + " certificates");
    }
    chain.push_back(std::move(cert));
  }
  if (chain.empty()) return absl::InvalidArgumentError("no PEM certificate in the chain");
  return chain;
}

absl::StatusOr<X509CrlPtr> ParseDerCrl(std::string_view der) {
  if (der.empty() || der.size() > 4 * 1024 * 1024 || der.size() > LONG_MAX) {
    return absl::InvalidArgumentError("CRL is empty or too large");
  }
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  X509CrlPtr crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  if (!crl) return absl::InvalidArgumentError("not a DER CRL");
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return absl::InvalidArgumentError("CRL has trailing bytes after its DER encoding");
  }
  return crl;
}

absl::Status VerifyChain(const std::vector<X509Ptr>& chain, X509* root,
                         const std::vector<X509_CRL*>& crls, absl::Time at) {
  if (chain.empty()) return absl::InvalidArgumentError("empty certificate chain");
  if (root == nullptr) return absl::InvalidArgumentError("no pinned root certificate");
  std::unique_ptr<X509_STORE, StoreDeleter> store(X509_STORE_new());
  std::unique_ptr<STACK_OF(X509), StackDeleter> untrusted(sk_X509_new_null());
  std::unique_ptr<X509_STORE_CTX, StoreCtxDeleter> ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx) return absl::ResourceExhaustedError("out of memory");
  if (X509_STORE_add_cert(store.get(), root) != 1) {
    ERR_clear_error();
    return absl::InternalError("cannot add the pinned root to the trust store");
  }
  for (X509_CRL* crl : crls) {
    if (X509_STORE_add_crl(store.get(), crl) != 1) {
      ERR_clear_error();
      return absl::InternalError("cannot add a CRL to the trust store");
    }
  }
  // Intermediates only: a self-issued certificate from the untrusted input (the quote's copy of
  // a root) must never complete the chain; only the pinned root may.
  for (size_t i = 1; i < chain.size(); ++i) {
    if (SelfIssued(chain[i].get())) continue;
    if (sk_X509_push(untrusted.get(), chain[i].get()) <= 0) {
      return absl::ResourceExhaustedError("out of memory");
    }
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), untrusted.get()) != 1) {
    ERR_clear_error();
    return absl::InternalError("X509_STORE_CTX_init failed");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, absl::ToTimeT(at));
  if (!crls.empty()) {
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  }
  const int ok = X509_verify_cert(ctx.get());
  if (ok != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    const int depth = X509_STORE_CTX_get_error_depth(ctx.get());
    X509* bad = X509_STORE_CTX_get_current_cert(ctx.get());
    std::string who = bad != nullptr ? SubjectCommonName(bad) : std::string("?");
    ERR_clear_error();
    return absl::PermissionDeniedError("certificate chain does not verify to the pinned root: " +
                                       std::string(X509_verify_cert_error_string(err)) +
                                       " (depth " + std::to_string(depth) + ", " + who + ", at " +
                                       Rfc3339(at) + ")");
  }
  // Belt and braces: the chain OpenSSL built must end at exactly the pinned root.
  STACK_OF(X509)* built = X509_STORE_CTX_get0_chain(ctx.get());
  const int n = built != nullptr ? sk_X509_num(built) : 0;
  if (n < 2 || X509_cmp(sk_X509_value(built, n - 1), root) != 0) {
    return absl::PermissionDeniedError("certificate chain does not end at the pinned root");
  }
  return absl::OkStatus();
}

absl::StatusOr<EvpPkeyPtr> P256KeyFromRaw(std::string_view xy) {
  if (xy.size() != 64) return absl::InvalidArgumentError("a raw P-256 key is 64 bytes");
  unsigned char point[65];
  point[0] = 0x04;  // uncompressed SEC1 point
  std::memcpy(point + 1, xy.data(), 64);
  char group[] = "prime256v1";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
      OSSL_PARAM_construct_end(),
  };
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params) != 1 || raw == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("attestation key is not a valid P-256 point");
  }
  return EvpPkeyPtr(raw);
}

bool VerifyEcdsaP256Sha256(EVP_PKEY* key, std::string_view data, std::string_view raw_signature) {
  if (key == nullptr || raw_signature.size() != 64) return false;
  const auto* rs = reinterpret_cast<const unsigned char*>(raw_signature.data());
  std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> sig(ECDSA_SIG_new());
  std::unique_ptr<BIGNUM, BnDeleter> r(BN_bin2bn(rs, 32, nullptr));
  std::unique_ptr<BIGNUM, BnDeleter> s(BN_bin2bn(rs + 32, 32, nullptr));
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r.get(), s.get()) != 1) {
    ERR_clear_error();
    return false;
  }
  r.release();  // owned by sig now
  s.release();
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(sig.get(), &der);
  if (der_len <= 0) {
    ERR_clear_error();
    return false;
  }
  std::unique_ptr<unsigned char, void (*)(unsigned char*)> der_owner(
      der, [](unsigned char* p) { OPENSSL_free(p); });
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> md(EVP_MD_CTX_new());
  const bool ok =
      md && EVP_DigestVerifyInit(md.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
      EVP_DigestVerify(md.get(), der, static_cast<size_t>(der_len),
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  ERR_clear_error();
  return ok;
}

std::string SubjectCommonName(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  const int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  if (data == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                     static_cast<size_t>(ASN1_STRING_length(data)));
}

std::string SubjectOneLine(X509* cert) {
  char buf[512];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof(buf));
  return buf;
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

}  // namespace kshield::tee::quote
