#include "tee/ratls_openssl.h"

#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "tee/quote/x509.h"

namespace kshield::tee {
namespace {

struct BioDeleter {
  void operator()(BIO* p) const { BIO_free(p); }
};

void FreeOptions(void* /*parent*/, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<RaTlsVerifyOptions*>(ptr);
}

int ExIndex() {
  static const int index =
      SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, &FreeOptions);
  return index;
}

// Replaces OpenSSL's whole chain verification (SSL_CTX_set_cert_verify_callback): only the leaf
// is looked at, and only its attestation evidence can make it trusted.
int VerifyCallback(X509_STORE_CTX* store, void* arg) {
  auto* options = static_cast<const RaTlsVerifyOptions*>(arg);
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  if (leaf == nullptr || options == nullptr) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  RaTlsVerdict v = VerifyRaTlsCertificate(leaf, *options);
  if (!v.status.ok()) {
    log::Warn("ratls.peer_refused",
              {{"reason", std::string(v.status.message())}, {"mrenclave", v.quote.mrenclave}});
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
  }
  return 1;
}

}  // namespace

absl::Status ConfigureRaTls(SSL_CTX* ctx, const RaTlsIdentity& identity, RaTlsVerifyOptions peer,
                            bool require_peer_certificate) {
  auto cert = quote::ParsePemCertificate(identity.certificate_pem);
  if (!cert.ok()) return cert.status();
  std::unique_ptr<BIO, BioDeleter> bio(
      BIO_new_mem_buf(identity.private_key_pem.UnsafeView().data(),
                      static_cast<int>(identity.private_key_pem.size())));
  quote::EvpPkeyPtr key(
      bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return absl::InvalidArgumentError("RA-TLS: the identity's private key does not parse");
  if (SSL_CTX_use_certificate(ctx, cert->get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    return absl::InvalidArgumentError("RA-TLS: certificate and key do not go together");
  }
  auto* owned = new RaTlsVerifyOptions(std::move(peer));
  if (SSL_CTX_set_ex_data(ctx, ExIndex(), owned) != 1) {
    delete owned;
    return absl::InternalError("RA-TLS: SSL_CTX_set_ex_data failed");
  }
  SSL_CTX_set_cert_verify_callback(ctx, &VerifyCallback, owned);
  SSL_CTX_set_verify(ctx,
                     SSL_VERIFY_PEER | (require_peer_certificate ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                                                 : 0),
                     nullptr);
  return absl::OkStatus();
}

}  // namespace kshield::tee
