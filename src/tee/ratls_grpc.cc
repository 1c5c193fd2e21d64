#include "tee/ratls_grpc.h"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/crypto.h>

#include <string>

#include "common/log.h"

namespace kshield::tee {
namespace {

namespace gx = grpc::experimental;

class RaTlsCertificateVerifier final : public gx::ExternalCertificateVerifier {
 public:
  explicit RaTlsCertificateVerifier(RaTlsVerifyOptions options) : options_(std::move(options)) {}

  bool Verify(gx::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)> /*callback*/, grpc::Status* sync_status) override {
    const grpc::string_ref pem = request->peer_cert();
    if (pem.empty()) {
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                                  "RA-TLS: the peer presented no certificate");
      log::Warn("ratls.peer_refused", {{"reason", "no certificate"}});
      return true;
    }
    RaTlsVerdict v =
        VerifyRaTlsCertificatePem(std::string_view(pem.data(), pem.size()), options_);
    if (v.status.ok()) {
      *sync_status = grpc::Status::OK;
    } else {
      const std::string reason(v.status.message());
      log::Warn("ratls.peer_refused", {{"reason", reason}, {"mrenclave", v.quote.mrenclave}});
      *sync_status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED, reason);
    }
    return true;  // synchronous
  }

  void Cancel(gx::TlsCustomVerificationCheckRequest*) override {}

 private:
  RaTlsVerifyOptions options_;
};

std::shared_ptr<gx::CertificateProviderInterface> Provider(const RaTlsIdentity& identity) {
  // gRPC keeps its own copy of the key; ours is cleared right after handing it over.
  gx::IdentityKeyCertPair pair;
  pair.private_key = std::string(identity.private_key_pem.UnsafeStringView());
  pair.certificate_chain = identity.certificate_pem;
  auto provider = std::make_shared<gx::StaticDataCertificateProvider>(
      std::vector<gx::IdentityKeyCertPair>{pair});
  OPENSSL_cleanse(pair.private_key.data(), pair.private_key.size());
  return provider;
}

}  // namespace

std::shared_ptr<grpc::ServerCredentials> RaTlsServerCredentials(const RaTlsIdentity& identity,
                                                                RaTlsVerifyOptions peer) {
  gx::TlsServerCredentialsOptions options(Provider(identity));
  options.watch_identity_key_cert_pairs();
  options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  options.set_certificate_verifier(
      gx::ExternalCertificateVerifier::Create<RaTlsCertificateVerifier>(std::move(peer)));
  return gx::TlsServerCredentials(options);
}

std::shared_ptr<grpc::ChannelCredentials> RaTlsChannelCredentials(const RaTlsIdentity& identity,
                                                                  RaTlsVerifyOptions peer) {
  gx::TlsChannelCredentialsOptions options;
  options.set_certificate_provider(Provider(identity));
  options.watch_identity_key_cert_pairs();
  options.set_verify_server_certs(false);  // no CA chain: the quote vouches for the key
  options.set_check_call_host(false);
  options.set_certificate_verifier(
      gx::ExternalCertificateVerifier::Create<RaTlsCertificateVerifier>(std::move(peer)));
  return gx::TlsCredentials(options);
}

}  // namespace kshield::tee
