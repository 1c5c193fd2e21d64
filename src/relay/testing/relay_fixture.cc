#include "relay/testing/relay_fixture.h"

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "crypto/sha256.h"

namespace kshield::relay::testing {
namespace {

constexpr char kDefaultPolicy[] = R"(identities:
  - identity: alice@example.com
    clusters: [prod, secure]
    groups: [developers]
  - identity: "group:sre"
    clusters: ["*"]
    groups: [sre]
  - identity: bob
    clusters: [prod]
    groups: [ops]
)";

absl::Status Write(const std::string& dir, const std::string& name, std::string_view text) {
  return WriteFileAtomic(dir + "/" + name, text, 0600);
}

}  // namespace

absl::StatusOr<std::unique_ptr<RelayFixture>> RelayFixture::Create(
    const std::string& dir, const RelayFixtureOptions& options) {
  auto fx = std::make_unique<RelayFixture>();
  fx->dir = dir;
  fx->config_path = dir + "/relay.yaml";
  fx->audit_path = dir + "/" + options.audit_log;

  KSH_ASSIGN_OR_RETURN(
      fx->root, crypto::MakeSelfSignedCa(
                    {.common_name = "kshield test global root", .validity = absl::Hours(240)}));
  KSH_RETURN_IF_ERROR(Write(dir, "root.crt", fx->root.certificate_pem));
  for (const char* cluster : {"prod", "staging", "secure"}) {
    KSH_ASSIGN_OR_RETURN(crypto::CertificateAuthority ca,
                         crypto::MakeIntermediateCa(
                             fx->root, {.common_name = absl::StrCat("kshield ", cluster, " CA"),
                                        .validity = absl::Hours(120),
                                        .path_len = 0}));
    KSH_RETURN_IF_ERROR(Write(dir, absl::StrCat(cluster, "-ca.crt"), ca.certificate_pem));
    KSH_RETURN_IF_ERROR(
        Write(dir, absl::StrCat(cluster, "-ca.key"), ca.private_key_pem.UnsafeStringView()));
  }

  KSH_ASSIGN_OR_RETURN(fx->tls_ca,
                       crypto::MakeSelfSignedCa({.common_name = "kshield test TLS CA"}));
  KSH_RETURN_IF_ERROR(Write(dir, "tls-ca.crt", fx->tls_ca.certificate_pem));
  KSH_ASSIGN_OR_RETURN(crypto::KeyPair tls_key, crypto::GenerateEcP256Key());
  KSH_ASSIGN_OR_RETURN(std::string tls_cert,
                       crypto::IssueCertificate(fx->tls_ca, tls_key.public_key_pem,
                                                {.common_name = "relay.kshield.test",
                                                 .dns_names = {"localhost"},
                                                 .ip_addresses = {"127.0.0.1"},
                                                 .server_auth = true}));
  KSH_RETURN_IF_ERROR(Write(dir, "tls.crt", tls_cert));
  KSH_RETURN_IF_ERROR(Write(dir, "tls.key", tls_key.private_key_pem.UnsafeStringView()));

  KSH_ASSIGN_OR_RETURN(fx->corp_ca, crypto::MakeSelfSignedCa({.common_name = "Example Corp CA"}));
  KSH_RETURN_IF_ERROR(Write(dir, "corp-ca.crt", fx->corp_ca.certificate_pem));

  KSH_ASSIGN_OR_RETURN(fx->rsa, TestSigner::Rsa("rsa-1"));
  KSH_ASSIGN_OR_RETURN(fx->ec, TestSigner::Ec("ec-1"));
  KSH_RETURN_IF_ERROR(Write(dir, "jwks.json", TestSigner::JwksJson({fx->rsa.get(), fx->ec.get()})));

  tee::PlatformOptions sim_opts{dir + "/sim"};
  sim_opts.sim_identity = "kshield-relay-test";
  sim_opts.sim_debug = false;
  KSH_RETURN_IF_ERROR(MakeDirs(dir + "/sim"));
  KSH_ASSIGN_OR_RETURN(fx->sim, tee::SimPlatform::New(sim_opts));
  KSH_RETURN_IF_ERROR(Write(dir, "sim-root.pem", fx->sim->RootCaPem()));
  KSH_RETURN_IF_ERROR(Write(dir, "attest-policy.yaml",
                            absl::StrCat("mrsigner: [", crypto::HexEncode(fx->sim->mrsigner()),
                                         "]\nallow_debug: false\n")));

  KSH_RETURN_IF_ERROR(Write(dir, "policy.yaml",
                            options.policy_yaml.empty() ? kDefaultPolicy : options.policy_yaml));

  std::string jwks_source = "jwks_file: jwks.json";
  if (!options.jwks_url.empty()) {
    jwks_source = absl::StrCat("jwks_url: \"", options.jwks_url, "\"");
    if (!options.jwks_ca_file.empty()) {
      absl::StrAppend(&jwks_source, "\n  jwks_ca_file: ", options.jwks_ca_file);
    }
  }
  const std::string config = absl::StrCat(R"(listen: ")", options.listen, R"("
tls:
  cert_file: tls.crt
  key_file: tls.key
  client_ca_file: corp-ca.crt
oidc:
  issuer: )",
                                          fx->issuer, R"(
  audience: )",
                                          fx->audience, R"(
  )",
                                          jwks_source, R"(
  groups_claim: groups
root_ca:
  cert_file: root.crt
clusters:
  - name: prod
    ca: {cert_file: prod-ca.crt, key_file: prod-ca.key}
  - name: staging
    ca: {cert_file: staging-ca.crt, key_file: staging-ca.key}
    max_ttl: 30m
  - name: secure
    ca: {cert_file: secure-ca.crt, key_file: secure-ca.key}
    require_tee: true
attestation:
  root_file: sim-root.pem
  policy_file: attest-policy.yaml
policy_file: policy.yaml
audit_log: )",
                                          options.audit_log, "\n");
  KSH_RETURN_IF_ERROR(Write(dir, "relay.yaml", config));
  return fx;
}

nlohmann::json RelayFixture::Claims(const std::string& email,
                                    std::vector<std::string> groups) const {
  return StandardClaims(issuer, audience, email, std::move(groups));
}

std::string RelayFixture::Token(const nlohmann::json& claims) const {
  return rsa->Sign({{"alg", "RS256"}, {"typ", "JWT"}, {"kid", "rsa-1"}}, claims);
}

absl::StatusOr<RelayFixture::ClientCert> RelayFixture::MakeClientCert(
    const std::string& cn, const crypto::CertificateAuthority* issuer_ca) const {
  KSH_ASSIGN_OR_RETURN(crypto::KeyPair kp, crypto::GenerateEcP256Key());
  ClientCert out;
  KSH_ASSIGN_OR_RETURN(out.certificate_pem,
                       crypto::IssueCertificate(issuer_ca ? *issuer_ca : corp_ca, kp.public_key_pem,
                                                {.common_name = cn, .client_auth = true}));
  out.private_key_pem = std::move(kp.private_key_pem);
  return out;
}

absl::StatusOr<RelayFixture::KeyAndCsr> RelayFixture::MakeCsr(const std::string& cn) {
  KeyAndCsr out;
  KSH_ASSIGN_OR_RETURN(out.key, crypto::GenerateEcP256Key());
  KSH_ASSIGN_OR_RETURN(out.csr_pem,
                       crypto::MakeCsr(out.key.private_key_pem, cn, {"system:masters"}));
  return out;
}

}  // namespace kshield::relay::testing
