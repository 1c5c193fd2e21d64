#include "tee/ratls.h"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "crypto/sha256.h"
#include "tee/quote/x509.h"
#include "tee/ratls_evidence.h"

namespace kshield::tee {
namespace {

struct BioDeleter {
  void operator()(BIO* p) const { BIO_free(p); }
};

absl::Status AddCustomExtension(X509* cert, const char* oid, std::string_view value) {
  ASN1_OBJECT* obj = OBJ_txt2obj(oid, 1);
  ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
  X509_EXTENSION* ext = nullptr;
  bool ok = obj && os &&
            ASN1_OCTET_STRING_set(os, reinterpret_cast<const unsigned char*>(value.data()),
                                  static_cast<int>(value.size())) == 1;
  if (ok) ext = X509_EXTENSION_create_by_OBJ(nullptr, obj, 0, os);
  ok = ok && ext && X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  ASN1_OCTET_STRING_free(os);
  ASN1_OBJECT_free(obj);
  if (!ok) return absl::InternalError(absl::StrCat("adding extension ", oid));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RaTlsIdentity> MakeRaTlsIdentity(Platform& platform, const RaTlsOptions& options) {
  quote::EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return absl::InternalError("RA-TLS: P-256 key generation failed");
  quote::X509Ptr cert(X509_new());
  if (!cert) return absl::InternalError("RA-TLS: X509_new failed");
  X509* c = cert.get();
  X509_NAME* name = X509_get_subject_name(c);
  bool ok = X509_set_version(c, 2) && ASN1_INTEGER_set(X509_get_serialNumber(c), 1) &&
            X509_gmtime_adj(X509_getm_notBefore(c), -3600) &&
            X509_gmtime_adj(X509_getm_notAfter(c),
                            static_cast<long>(absl::ToInt64Seconds(options.validity))) &&
            X509_NAME_add_entry_by_txt(
                name, "CN", MBSTRING_UTF8,
                reinterpret_cast<const unsigned char*>(options.common_name.c_str()), -1, -1, 0) &&
            X509_set_issuer_name(c, name) && X509_set_pubkey(c, key.get());
  if (!ok) return absl::InternalError("RA-TLS: building the certificate failed");
  KSH_ASSIGN_OR_RETURN(std::string spki_hash, SpkiSha256(c));

  if (options.dice_extension) {
    const std::string claims = EncodeClaims(spki_hash);
    KSH_ASSIGN_OR_RETURN(std::string quote,
                         platform.Quote(crypto::Sha256(claims) + std::string(32, '\0')));
    KSH_RETURN_IF_ERROR(AddCustomExtension(c, kTcgDiceTaggedEvidenceOid,
                                           EncodeDiceTaggedEvidence(quote, claims)));
  }
  if (options.legacy_extension) {
    KSH_ASSIGN_OR_RETURN(std::string quote, platform.Quote(spki_hash + std::string(32, '\0')));
    KSH_RETURN_IF_ERROR(AddCustomExtension(c, kGramineLegacyQuoteOid, quote));
  }
  if (X509_sign(c, key.get(), EVP_sha256()) <= 0) {
    return absl::InternalError("RA-TLS: signing the certificate failed");
  }

  RaTlsIdentity id;
  std::unique_ptr<BIO, BioDeleter> cert_bio(BIO_new(BIO_s_mem()));
  std::unique_ptr<BIO, BioDeleter> key_bio(BIO_new(BIO_s_secmem()));
  if (!cert_bio || !key_bio || PEM_write_bio_X509(cert_bio.get(), c) != 1 ||
      PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) !=
          1) {
    return absl::InternalError("RA-TLS: PEM encoding failed");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(cert_bio.get(), &data);
  id.certificate_pem.assign(data, static_cast<size_t>(len));
  len = BIO_get_mem_data(key_bio.get(), &data);
  id.private_key_pem = SecretBytes::CopyFrom(std::string_view(data, static_cast<size_t>(len)));
  unsigned char* der = nullptr;
  const int der_len = i2d_X509(c, &der);
  if (der_len <= 0) return absl::InternalError("RA-TLS: DER encoding failed");
  id.certificate_der.assign(reinterpret_cast<char*>(der), static_cast<size_t>(der_len));
  OPENSSL_free(der);
  return id;
}

RaTlsVerdict VerifyRaTlsCertificate(X509* cert, const RaTlsVerifyOptions& options) {
  RaTlsVerdict verdict;
  auto evidence = ExtractCertEvidence(cert);
  if (!evidence.ok()) {
    verdict.status = absl::PermissionDeniedError(
        absl::StrCat("RA-TLS: ", evidence.status().message()));
    return verdict;
  }
  quote::VerifyOptions vo;
  vo.root_pem = options.root_pem;
  vo.at = options.at;
  vo.collateral = options.collateral;
  verdict.quote = quote::VerifyQuote(evidence->quote, vo);
  if (verdict.quote.quote.has_value()) {
    const auto& q = *verdict.quote.quote;
    const auto& rd = q.tee == quote::TeeType::kSgx ? q.sgx.report_data : q.td.report_data;
    absl::Status b = CheckBinding(
        *evidence, std::string_view(reinterpret_cast<const char*>(rd.data()), rd.size()));
    verdict.binding_ok = b.ok();
    if (!b.ok()) verdict.quote.errors.push_back(std::string(b.message()));
  }
  if (!verdict.quote.ok()) {
    verdict.status = absl::PermissionDeniedError(
        absl::StrCat("RA-TLS: ", verdict.quote.errors.empty() ? "quote did not verify"
                                                              : verdict.quote.errors.front()));
    return verdict;
  }
  if (!verdict.binding_ok) {
    verdict.status = absl::PermissionDeniedError("RA-TLS: evidence does not bind the key");
    return verdict;
  }
  if (options.policy.has_value()) {
    absl::Status p = quote::CheckPolicy(*options.policy, verdict.quote);
    if (!p.ok()) {
      verdict.status = absl::PermissionDeniedError(absl::StrCat("RA-TLS: ", p.message()));
      return verdict;
    }
  }
  verdict.status = absl::OkStatus();
  return verdict;
}

RaTlsVerdict VerifyRaTlsCertificatePem(std::string_view pem, const RaTlsVerifyOptions& options) {
  auto cert = quote::ParsePemCertificate(pem);
  if (!cert.ok()) {
    RaTlsVerdict v;
    v.status = absl::PermissionDeniedError(
        absl::StrCat("RA-TLS: peer certificate: ", cert.status().message()));
    return v;
  }
  return VerifyRaTlsCertificate(cert->get(), options);
}

}  // namespace kshield::tee
