#include "relay/service.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <map>
#include <optional>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/status.h"
#include "crypto/x509.h"
#include "relay/json_util.h"
#include "relay/jwks.h"
#include "relay/jwks_source.h"
#include "relay/jwt.h"
#include "relay/policy.h"
#include "tee/quote/policy.h"
#include "tee/ratls.h"

namespace kshield::relay {

namespace {

constexpr size_t kMaxPemFileBytes = 256 * 1024;
constexpr std::string_view kRoutePrefix = "/v1/clusters/";
constexpr std::string_view kRouteSuffix = "/certificates";

struct ClusterState {
  ClusterConfig config;
  crypto::CertificateAuthority ca;
  std::string chain_pem;  // the intermediate CA certificate(s) handed to clients
  absl::Time ca_not_after;
};

// A key file: 0600 / 0400 and ours (or root's, e.g. a Secret volume), opened, checked and read
// in one step straight into protected memory.
absl::StatusOr<SecretBytes> ReadKeyFile(const std::string& path, std::string_view what) {
  absl::StatusOr<SecretBytes> key = ReadPrivateFile(path, kMaxPemFileBytes);
  if (!key.ok()) return Annotate(key.status(), absl::StrCat(AV(what), " ", path));
  return key;
}

absl::StatusOr<std::string> ReadPemFile(const std::string& path, std::string_view what) {
  auto text = ReadFileBounded(path, kMaxPemFileBytes);
  if (!text.ok()) return Annotate(text.status(), absl::StrCat(AV(what), " ", path));
  return text;
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// Serial number of a PEM certificate, lower-case hex ("" on failure).
std::string SerialHex(std::string_view pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr, X509_free);
  std::string out;
  if (cert) {
    BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr);
    char* hex = bn ? BN_bn2hex(bn) : nullptr;
    if (hex) out = absl::AsciiStrToLower(hex);
    OPENSSL_free(hex);
    BN_free(bn);
  }
  ERR_clear_error();
  return out;
}

// True when two SubjectPublicKeyInfo PEMs hold the same key (whatever the point encoding).
bool SamePublicKey(std::string_view a_pem, std::string_view b_pem) {
  auto load = [](std::string_view pem) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
    return std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>(
        bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr, EVP_PKEY_free);
  };
  auto a = load(a_pem);
  auto b = load(b_pem);
  const bool same = a && b && EVP_PKEY_eq(a.get(), b.get()) == 1;
  ERR_clear_error();
  return same;
}

RelayResponse Json(int status, const nlohmann::json& body) {
  RelayResponse r;
  r.status = status;
  r.body = DumpJson(body) + "\n";
  return r;
}

RelayResponse Error(int status, std::string_view reason) {
  return Json(status, {{"error", std::string(reason)}});
}

}  // namespace

struct CertificateService::State {
  RelayConfig config;
  std::string root_pem;
  std::string root_fingerprint;
  std::map<std::string, ClusterState> clusters;
  Policy policy;
  std::unique_ptr<AuditLog> audit;

  // OIDC: the issuer's key set, from jwks_file or jwks_url (null without an oidc section).
  JwtVerifyOptions jwt_options;
  std::unique_ptr<JwksSource> jwks;

  // Attestation (clusters with require_tee).
  std::optional<tee::RaTlsVerifyOptions> attestation;
};

namespace {

struct Identity {
  std::string method;  // "oidc" | "client_cert"
  std::string user;
  std::vector<std::string> corporate_groups;
};

struct Outcome {
  AuditRecord audit;
  RelayResponse response;
};

absl::StatusOr<Identity> AuthenticateBearer(CertificateService::State& st,
                                            std::string_view authorization) {
  absl::string_view header = AV(authorization);
  if (!absl::StartsWithIgnoreCase(header, "bearer ")) {
    return absl::UnauthenticatedError("unsupported Authorization scheme (want Bearer)");
  }
  header.remove_prefix(7);
  const std::string token(absl::StripAsciiWhitespace(header));
  if (!st.config.oidc.enabled) {
    return absl::UnauthenticatedError("bearer tokens are not accepted (oidc is not configured)");
  }
  // jwks_url before the first successful fetch: no keys, fail closed (after one bounded,
  // rate-limited attempt to get them).
  std::shared_ptr<const Jwks> keys = st.jwks->Current();
  if (keys == nullptr && st.jwks->ReloadOnDemand(nullptr)) keys = st.jwks->Current();
  if (keys == nullptr) {
    return absl::UnauthenticatedError(
        "OIDC unavailable: the issuer's signing keys (JWKS) have not been fetched yet");
  }
  auto jwt = VerifyJwt(token, *keys, st.jwt_options);
  // The issuer may have rotated keys: fetch / re-read once (rate-limited) and try again.
  if (!jwt.ok() && IsUnknownKidError(jwt.status()) && st.jwks->ReloadOnDemand(keys.get())) {
    keys = st.jwks->Current();
    jwt = VerifyJwt(token, *keys, st.jwt_options);
  }
  if (!jwt.ok()) return absl::UnauthenticatedError(jwt.status().message());
  Identity id;
  id.method = "oidc";
  KSH_ASSIGN_OR_RETURN(id.user, jwt->StringClaim(st.config.oidc.username_claim));
  // As kube-apiserver does: an email username must not be explicitly unverified.
  if (st.config.oidc.username_claim == "email" && jwt->ClaimPresentAndNotTrue("email_verified")) {
    return absl::UnauthenticatedError("token: email_verified is not true");
  }
  KSH_ASSIGN_OR_RETURN(id.corporate_groups, jwt->StringListClaim(st.config.oidc.groups_claim));
  return id;
}

absl::StatusOr<Identity> AuthenticateClientCert(const CertificateService::State& st,
                                                const PeerInfo& peer) {
  if (st.config.client_ca_file.empty()) {
    return absl::UnauthenticatedError("no credentials: send Authorization: Bearer <OIDC ID token>");
  }
  if (!peer.cert_presented) {
    return absl::UnauthenticatedError(
        "no credentials: present a client certificate or an OIDC bearer token");
  }
  if (!peer.cert_verified) {
    return absl::UnauthenticatedError(
        absl::StrCat("client certificate not trusted: ", peer.cert_error));
  }
  if (peer.cert_common_names.size() != 1 || peer.cert_common_names[0].empty()) {
    return absl::UnauthenticatedError("client certificate must have exactly one subject CN");
  }
  Identity id;
  id.method = "client_cert";
  id.user = peer.cert_common_names[0];
  if (st.config.client_groups_from_organization) id.corporate_groups = peer.cert_organizations;
  return id;
}

// The cluster name of a certificates route, or nullopt when `path` is not one.
std::optional<std::string> CertificatesRoute(std::string_view path) {
  if (!absl::StartsWith(AV(path), AV(kRoutePrefix)) ||
      !absl::EndsWith(AV(path), AV(kRouteSuffix))) {
    return std::nullopt;
  }
  if (path.size() <= kRoutePrefix.size() + kRouteSuffix.size()) return std::nullopt;
  std::string_view name =
      path.substr(kRoutePrefix.size(), path.size() - kRoutePrefix.size() - kRouteSuffix.size());
  if (name.find('/') != std::string_view::npos) return std::nullopt;
  return std::string(name);
}

// A printable, bounded version of text from outside, for audit lines.
std::string Printable(std::string_view s, size_t max = 128) {
  std::string out;
  for (unsigned char c : s.substr(0, max)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  return out;
}

void Refuse(Outcome* o, int status, std::string_view reason) {
  o->audit.decision = "refused";
  o->audit.status = status;
  o->audit.reason = std::string(reason);
  o->response = Error(status, reason);
  if (status == 401) {
    o->response.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"kshield-relay\"");
  }
}

void IssueCertificate(CertificateService::State& st, const RelayRequest& req,
                      const std::string& cluster_name, Outcome* o) {
  if (req.method != "POST") {
    Refuse(o, 405, "method not allowed (use POST)");
    o->response.headers.emplace_back("Allow", "POST");
    return;
  }
  if (req.body_too_large) return Refuse(o, 413, "request body larger than 64 KiB");

  // 1. Who is asking. A bearer token, when sent, is the identity (no fall-back).
  absl::StatusOr<Identity> id = !req.authorization.empty()
                                    ? AuthenticateBearer(st, req.authorization)
                                    : AuthenticateClientCert(st, req.peer);
  o->audit.auth =
      !req.authorization.empty() ? "oidc" : (req.peer.cert_presented ? "client_cert" : "none");
  if (!id.ok()) return Refuse(o, 401, SV(id.status().message()));
  o->audit.user = Printable(id->user, kMaxNameLength);

  // 2. For which cluster.
  auto cluster_it = st.clusters.find(cluster_name);
  if (cluster_it == st.clusters.end()) {
    return Refuse(o, 404, absl::StrCat("unknown cluster \"", Printable(cluster_name, 64), "\""));
  }
  const ClusterState& cluster = cluster_it->second;

  // 3. The request body.
  absl::string_view content_type = AV(req.content_type);
  content_type = content_type.substr(0, content_type.find(';'));
  if (!absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(content_type), "application/json")) {
    return Refuse(o, 400, "Content-Type must be application/json");
  }
  auto body = ParseStrictJson(req.body, 4);
  if (!body.ok()) return Refuse(o, 400, absl::StrCat("body: ", body.status().message()));
  if (!body->is_object()) return Refuse(o, 400, "body: not a JSON object");
  auto csr_it = body->find("csr");
  if (csr_it == body->end() || !csr_it->is_string()) {
    return Refuse(o, 400, "body: \"csr\" missing or not a string");
  }
  auto csr = crypto::ParseAndVerifyCsr(csr_it->get_ref<const std::string&>());
  if (!csr.ok()) return Refuse(o, 400, SV(csr.status().message()));
  absl::Duration ttl = cluster.config.max_ttl;
  if (auto t = body->find("ttl_seconds"); t != body->end()) {
    if (!t->is_number_integer() || t->get<int64_t>() < absl::ToInt64Seconds(kMinCertificateTtl)) {
      return Refuse(o, 400, "body: \"ttl_seconds\" must be an integer of at least 60");
    }
    if (t->get<int64_t>() < absl::ToInt64Seconds(ttl)) ttl = absl::Seconds(t->get<int64_t>());
  }

  // 4. Policy (also refuses system:* users and groups).
  auto groups = st.policy.GroupsFor(id->user, id->corporate_groups, cluster_name);
  if (!groups.ok()) return Refuse(o, 403, SV(groups.status().message()));
  o->audit.groups = *groups;

  // 5. TEE evidence.
  o->audit.tee = "not_required";
  if (cluster.config.require_tee) {
    auto ev = body->find("evidence_certificate");
    if (ev == body->end() || !ev->is_string() || ev->get_ref<const std::string&>().empty()) {
      return Refuse(o, 403, "cluster requires TEE evidence: \"evidence_certificate\" missing");
    }
    const std::string& evidence = ev->get_ref<const std::string&>();
    tee::RaTlsVerdict verdict = tee::VerifyRaTlsCertificatePem(evidence, *st.attestation);
    if (!verdict.status.ok()) {
      o->audit.tee = "refused";
      return Refuse(o, 403, absl::StrCat("TEE evidence refused: ", verdict.status.message()));
    }
    auto evidence_cert = crypto::ParseCertificate(evidence);
    if (!evidence_cert.ok() || !SamePublicKey(evidence_cert->public_key_pem, csr->public_key_pem)) {
      o->audit.tee = "refused";
      return Refuse(o, 403, "TEE evidence is for another key than the CSR's");
    }
    o->audit.tee = "verified";
  }

  // 6. Sign.
  crypto::CertSpec spec;
  spec.common_name = id->user;
  spec.organizations = *groups;
  spec.validity = ttl;
  spec.client_auth = true;
  auto leaf = crypto::IssueCertificate(cluster.ca, csr->public_key_pem, spec);
  if (!leaf.ok()) {
    log::Error("relay.sign_failed",
               {{"cluster", cluster_name}, {"reason", std::string(leaf.status().message())}});
    return Refuse(o, 500, "signing failed");
  }
  auto info = crypto::ParseCertificate(*leaf);
  if (!info.ok()) return Refuse(o, 500, "issued certificate does not parse");

  o->audit.decision = "issued";
  o->audit.status = 200;
  o->audit.serial = SerialHex(*leaf);
  o->audit.fingerprint_sha256 = info->sha256_fingerprint_hex;
  o->audit.not_after = Rfc3339(info->not_after);
  o->response = Json(200, {{"certificate", *leaf},
                           {"chain", cluster.chain_pem},
                           {"root", st.root_pem},
                           {"not_after", o->audit.not_after},
                           {"user", id->user},
                           {"groups", *groups}});
}

}  // namespace

CertificateService::CertificateService(std::unique_ptr<State> state) : state_(std::move(state)) {}
CertificateService::~CertificateService() = default;

absl::StatusOr<std::unique_ptr<CertificateService>> CertificateService::Create(
    const RelayConfig& config, std::unique_ptr<AuditLog> audit) {
  auto st = std::make_unique<State>();
  st->config = config;
  st->audit = std::move(audit);
  const absl::Time now = absl::Now();

  // The global root: one self-signed CA certificate.
  KSH_ASSIGN_OR_RETURN(std::string root_file,
                       ReadPemFile(config.root_ca_file, "root_ca.cert_file"));
  auto roots = crypto::SplitPemCertificates(root_file);
  if (!roots.ok() || roots->size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("root_ca.cert_file ", config.root_ca_file,
                                                   ": must hold exactly one PEM certificate"));
  }
  st->root_pem = (*roots)[0];
  auto root_info = crypto::ParseCertificate(st->root_pem);
  if (!root_info.ok() || !root_info->is_ca) {
    return absl::InvalidArgumentError(
        absl::StrCat("root_ca.cert_file ", config.root_ca_file, ": not a CA certificate"));
  }
  st->root_fingerprint = root_info->sha256_fingerprint_hex;
  if (root_info->not_after < now) {
    return absl::FailedPreconditionError(
        absl::StrCat("root_ca.cert_file ", config.root_ca_file, ": expired"));
  }

  // Each cluster's intermediate CA.
  std::set<std::string> cluster_names;
  for (const ClusterConfig& c : config.clusters) {
    const std::string where = absl::StrCat("cluster \"", c.name, "\": ");
    ClusterState cs;
    cs.config = c;
    KSH_ASSIGN_OR_RETURN(std::string bundle, ReadPemFile(c.ca_cert_file, where + "ca.cert_file"));
    auto certs = crypto::SplitPemCertificates(bundle);
    if (!certs.ok() || certs->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "ca.cert_file ", c.ca_cert_file, ": no PEM certificate"));
    }
    // The CA certificate first, then any further intermediates; a copy of the root is dropped.
    std::string intermediates;
    for (size_t i = 0; i < certs->size(); ++i) {
      auto info = crypto::ParseCertificate((*certs)[i]);
      if (!info.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(where, "ca.cert_file ", c.ca_cert_file,
                                                       ": certificate ", i, ": ",
                                                       info.status().message()));
      }
      if (info->sha256_fingerprint_hex == st->root_fingerprint) continue;
      absl::StrAppend(&cs.chain_pem, (*certs)[i]);
      if (i > 0) absl::StrAppend(&intermediates, (*certs)[i]);
    }
    cs.ca.certificate_pem = (*certs)[0];
    auto ca_info = crypto::ParseCertificate(cs.ca.certificate_pem);
    if (!ca_info.ok() || !ca_info->is_ca ||
        ca_info->sha256_fingerprint_hex == st->root_fingerprint) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "ca.cert_file ", c.ca_cert_file,
          ": the first certificate must be the cluster's intermediate CA (CA:TRUE, not the root)"));
    }
    cs.ca_not_after = ca_info->not_after;
    if (absl::Status s =
            crypto::VerifyCertificateChain(cs.ca.certificate_pem, intermediates, st->root_pem, now);
        !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, "ca.cert_file ", c.ca_cert_file, ": does not chain to the root: ", s.message()));
    }
    KSH_ASSIGN_OR_RETURN(cs.ca.private_key_pem, ReadKeyFile(c.ca_key_file, where + "ca.key_file"));
    if (!crypto::KeyMatchesPublicKey(cs.ca.private_key_pem, ca_info->public_key_pem)) {
      return absl::InvalidArgumentError(absl::StrCat(where, "ca.key_file ", c.ca_key_file,
                                                     ": is not the key of ca.cert_file ",
                                                     c.ca_cert_file));
    }
    if (cs.ca_not_after < now + c.max_ttl) {
      log::Warn("relay.cluster_ca_expiring",
                {{"cluster", c.name}, {"not_after", Rfc3339(cs.ca_not_after)}});
    }
    cluster_names.insert(c.name);
    st->clusters.emplace(c.name, std::move(cs));
  }

  KSH_ASSIGN_OR_RETURN(st->policy, Policy::LoadFile(config.policy_file, cluster_names));

  if (config.oidc.enabled) {
    st->jwt_options.issuer = config.oidc.issuer;
    st->jwt_options.audience = config.oidc.audience;
    st->jwt_options.clock_skew = config.oidc.clock_skew;
    st->jwt_options.max_token_bytes = config.oidc.max_token_bytes;
    // A file must load now; a URL that cannot be fetched yet only disables OIDC until it can.
    KSH_ASSIGN_OR_RETURN(st->jwks, JwksSource::Create(JwksSource::OptionsFor(config.oidc)));
  }

  if (!config.attestation_root_file.empty()) {
    tee::RaTlsVerifyOptions opts;
    KSH_ASSIGN_OR_RETURN(opts.root_pem,
                         ReadPemFile(config.attestation_root_file, "attestation.root_file"));
    auto root = crypto::ParseCertificate(opts.root_pem);
    if (!root.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "attestation.root_file ", config.attestation_root_file, ": not a PEM certificate"));
    }
    auto policy = tee::quote::LoadPolicyFile(config.attestation_policy_file);
    if (!policy.ok()) {
      return Annotate(policy.status(), "attestation.policy_file " + config.attestation_policy_file);
    }
    opts.policy = std::move(*policy);
    st->attestation = std::move(opts);
  }

  if (st->audit == nullptr) {
    KSH_ASSIGN_OR_RETURN(st->audit, AuditLog::Open(config.audit_log));
  }
  return std::unique_ptr<CertificateService>(new CertificateService(std::move(st)));
}

RelayResponse CertificateService::Handle(const RelayRequest& req) {
  std::string_view path = req.target;
  path = path.substr(0, path.find_first_of("?#"));
  if (path == "/healthz") {
    if (req.method != "GET" && req.method != "HEAD") {
      RelayResponse r = Error(405, "method not allowed (use GET)");
      r.headers.emplace_back("Allow", "GET, HEAD");
      return r;
    }
    RelayResponse r;
    r.content_type = "text/plain; charset=utf-8";
    r.body = "ok\n";
    return r;
  }
  std::optional<std::string> cluster = CertificatesRoute(path);
  if (!cluster) return Error(404, "not found");

  Outcome o;
  o.audit.peer = req.peer.address;
  o.audit.cluster = Printable(*cluster, 64);
  o.audit.auth = "none";
  IssueCertificate(*state_, req, *cluster, &o);

  // The audit line comes first: no certificate leaves without it.
  if (absl::Status s = state_->audit->Write(o.audit); !s.ok()) {
    log::Error("relay.audit_failed", {{"reason", std::string(s.message())}});
    return Error(500, "audit log unavailable");
  }
  if (o.audit.decision == "issued") {
    log::Info("relay.issued", {{"user", o.audit.user},
                               {"cluster", o.audit.cluster},
                               {"auth", o.audit.auth},
                               {"serial", o.audit.serial},
                               {"not_after", o.audit.not_after}});
  } else {
    log::Info("relay.refused", {{"status", o.audit.status},
                                {"user", o.audit.user},
                                {"cluster", o.audit.cluster},
                                {"auth", o.audit.auth},
                                {"reason", o.audit.reason}});
  }
  return o.response;
}

std::vector<std::string> CertificateService::Describe() const {
  std::vector<std::string> out;
  State& st = *state_;
  if (st.config.oidc.enabled) {
    const JwksSource::Stats jwks = st.jwks->stats();
    const std::string keys =
        jwks.loaded ? absl::StrCat(jwks.keys, " JWKS key(s) from ", st.jwks->source())
                    : absl::StrCat("JWKS from ", st.jwks->source(), " NOT LOADED (",
                                   jwks.last_error, "; OIDC requests refused until it is)");
    const std::string refresh =
        st.config.oidc.jwks_url.empty()
            ? ""
            : absl::StrCat(", refreshed every ", absl::FormatDuration(st.config.oidc.jwks_refresh));
    out.push_back(absl::StrCat("oidc: issuer ", st.config.oidc.issuer, ", audience ",
                               st.config.oidc.audience, ", ", keys, refresh, ", username claim ",
                               st.config.oidc.username_claim));
  }
  if (!st.config.client_ca_file.empty()) {
    out.push_back(absl::StrCat("client certificates: CAs in ", st.config.client_ca_file));
  }
  for (const auto& [name, c] : st.clusters) {
    out.push_back(absl::StrCat("cluster ", name, ": max_ttl ",
                               absl::FormatDuration(c.config.max_ttl),
                               c.config.require_tee ? ", requires TEE evidence" : "",
                               ", CA valid until ", Rfc3339(c.ca_not_after)));
  }
  out.push_back(
      absl::StrCat("policy: ", st.policy.rules().size(), " rule(s) from ", st.config.policy_file));
  out.push_back(absl::StrCat("audit log: ", st.config.audit_log));
  return out;
}

}  // namespace kshield::relay
