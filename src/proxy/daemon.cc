#include "proxy/daemon.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/status.h"
#include "crypto/x509.h"
#include "net/https_client.h"
#include "proxy/control.h"
#include "proxy/daemon_oidc.h"
#include "proxy/kubeconfig.h"
#include "proxy/proxy.h"
#include "proxy/token_store.h"
#include "tee/platform.h"
#include "tee/ratls.h"

namespace kshield::kubectl {

std::string Rfc3339(absl::Time t) {
  if (t == absl::InfiniteFuture() || t == absl::InfinitePast()) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

// One JSON line per proxied request, to stderr or an append-only 0600 file.
class AuditLog {
 public:
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& path) {
    if (path == "-") return std::unique_ptr<AuditLog>(new AuditLog(STDERR_FILENO, false));
    int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot open audit log ", path, ": ", ErrnoString(errno)));
    }
    return std::unique_ptr<AuditLog>(new AuditLog(fd, true));
  }
  ~AuditLog() {
    if (owned_) close(fd_);
  }
  // Called by every proxy I/O thread. On a regular file opened O_APPEND one write(2) of the whole
  // line is appended atomically, so the threads need no lock (a lock here was the proxy's only
  // cross-thread contention: a futex wake per request). A pipe or terminal (stderr) keeps the
  // lock, since writes longer than PIPE_BUF may interleave there.
  void Write(const std::string& line) {
    static constexpr char kNewline = '\n';
    iovec iov[2] = {{const_cast<char*>(line.data()), line.size()},
                    {const_cast<char*>(&kNewline), 1}};
    const int iovcnt = !line.empty() && line.back() == '\n' ? 1 : 2;
    const size_t total = line.size() + (iovcnt == 2 ? 1 : 0);
    std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
    if (!append_only_file_) lock.lock();
    ssize_t n;
    do {
      n = writev(fd_, iov, iovcnt);
    } while (n < 0 && errno == EINTR);
    if (n >= 0 && static_cast<size_t>(n) < total) {
      // Short write (disk full, or a pipe): finish under the lock, best effort.
      if (!lock.owns_lock()) lock.lock();
      std::string rest = line.substr(std::min(line.size(), static_cast<size_t>(n)));
      if (iovcnt == 2) rest.push_back(kNewline);
      (void)WriteAll(fd_, rest);
    }
  }

 private:
  AuditLog(int fd, bool owned) : fd_(fd), owned_(owned) {
    struct stat st;
    append_only_file_ = owned && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  }
  std::mutex mu_;
  int fd_;
  bool owned_;
  bool append_only_file_ = false;
};

struct ClusterRuntime {
  explicit ClusterRuntime(ClusterConfig c) : config(std::move(c)) {}
  const ClusterConfig config;
  std::string config_ca_pem;  // from ca_file; "" when the config has none (imported)
  SecretBytes oidc_client_secret;
  std::string oidc_ca_pem;

  absl::Mutex op_mu;  // serialises credential changes: login, renewal, import
  SecretBytes relay_id_token ABSL_GUARDED_BY(op_mu);  // from `login --id-token-*`

  // Guarded by Daemon::state_mu_.
  std::string state = "login required";
  std::string last_error;
  std::string source;  // "relay" | "client-certificate" | "token" | "oidc"
  std::string user;
  std::vector<std::string> groups;
  absl::Time not_before = absl::InfinitePast();
  absl::Time not_after = absl::InfinitePast();
  bool has_credential = false;
  absl::Time next_action = absl::InfiniteFuture();
  int failures = 0;
  uint64_t installs = 0;
  std::shared_ptr<OidcTokenSource> oidc;
};

namespace {

std::string LocalUserName() {
  const uid_t uid = geteuid();
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* result = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &result) == 0 && result != nullptr &&
      result->pw_name != nullptr) {
    return result->pw_name;
  }
  return absl::StrCat("uid:", uid);
}

absl::StatusOr<std::string> LoadCaFile(const std::string& path, std::string_view what) {
  absl::StatusOr<std::string> pem = ReadFileBounded(path, 1 << 20);
  if (!pem.ok()) return Annotate(pem.status(), absl::StrCat(AV(what), " ", path));
  absl::StatusOr<std::vector<std::string>> certs = crypto::SplitPemCertificates(*pem);
  if (!certs.ok()) return Annotate(certs.status(), absl::StrCat(AV(what), " ", path));
  if (certs->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(what), " ", path, " holds no PEM certificate"));
  }
  return pem;
}

// Reads a secret file (a key, a token) straight into protected memory.
absl::StatusOr<SecretBytes> ReadSecretFile(const std::string& path, bool trim) {
  absl::StatusOr<std::string> text = ReadFileBounded(path, 1 << 20);
  if (!text.ok()) return text.status();
  std::string_view v = *text;
  if (trim) {
    while (!v.empty() && absl::ascii_isspace(static_cast<unsigned char>(v.back()))) {
      v.remove_suffix(1);
    }
    while (!v.empty() && absl::ascii_isspace(static_cast<unsigned char>(v.front()))) {
      v.remove_prefix(1);
    }
  }
  SecretBytes out = SecretBytes::CopyFrom(v);
  OPENSSL_cleanse(text->data(), text->size());
  return out;
}

std::string MissingCredentialHint(const ClusterRuntime& c) {
  switch (c.config.credential) {
    case CredentialKind::kRelay:
      return absl::StrCat("run: kshield-kubectl login --cluster ", c.config.name);
    case CredentialKind::kImported:
      return "run: kshield-kubectl import KUBECONFIG";
    case CredentialKind::kOidc:
      return absl::StrCat("run: kshield-kubectl login --cluster ", c.config.name,
                          " --refresh-token-stdin");
  }
  return "";
}

std::string EnsureTrailingNewline(std::string s) {
  if (!s.empty() && s.back() != '\n') s.push_back('\n');
  return s;
}

absl::StatusOr<std::string> StringField(const nlohmann::json& j, const char* name,
                                        bool required) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) {
    if (required) {
      return absl::InvalidArgumentError(absl::StrCat("request field \"", name, "\" is required"));
    }
    return std::string();
  }
  if (!it->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat("request field \"", name, "\" must be a string"));
  }
  return it->get<std::string>();
}

}  // namespace

Daemon::Daemon(DaemonConfig config, DaemonOptions options)
    : config_(std::move(config)), options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(DaemonConfig config, DaemonOptions options) {
  std::unique_ptr<Daemon> d(new Daemon(std::move(config), std::move(options)));
  absl::Status s = d->Init();
  if (!s.ok()) {
    d->Stop();
    return s;
  }
  return d;
}

Daemon::~Daemon() { Stop(); }

absl::Status Daemon::Init() {
  local_user_ = LocalUserName();
  // 1. Everything the config points at, loaded and checked before anything listens.
  for (const ClusterConfig& cc : config_.clusters) {
    auto c = std::make_unique<ClusterRuntime>(cc);
    if (!cc.ca_file.empty()) {
      KSH_ASSIGN_OR_RETURN(c->config_ca_pem,
                           LoadCaFile(cc.ca_file, absl::StrCat("cluster ", cc.name, " ca_file")));
    }
    if (cc.credential == CredentialKind::kOidc) {
      if (!cc.oidc.client_secret_file.empty()) {
        absl::StatusOr<SecretBytes> secret = ReadSecretFile(cc.oidc.client_secret_file, true);
        if (!secret.ok()) {
          return Annotate(secret.status(),
                          absl::StrCat("cluster ", cc.name, " oidc.client_secret_file"));
        }
        c->oidc_client_secret = std::move(*secret);
      }
      if (!cc.oidc.ca_file.empty()) {
        KSH_ASSIGN_OR_RETURN(c->oidc_ca_pem, LoadCaFile(cc.oidc.ca_file,
                                                        absl::StrCat("cluster ", cc.name,
                                                                     " oidc.ca_file")));
      }
      c->state = "login required";
    } else if (cc.credential == CredentialKind::kImported) {
      c->state = "import required";
    }
    clusters_.emplace(cc.name, std::move(c));
  }
  if (config_.relay.has_value()) {
    KSH_ASSIGN_OR_RETURN(relay_ca_pem_, LoadCaFile(config_.relay->ca_file, "relay ca_file"));
  }
  if (config_.tee != "none") {
    tee::PlatformOptions po(config_.tee_data_dir);
    absl::StatusOr<std::unique_ptr<tee::Platform>> p = tee::MakePlatform(config_.tee, po);
    if (!p.ok()) return Annotate(p.status(), "tee");
    if ((*p)->name() != "none") platform_ = std::move(*p);
    log::Info("daemon.tee", {{"requested", config_.tee},
                             {"platform", platform_ ? std::string(platform_->name()) : "none"}});
  }

  // 2. The local CA exists only for this call: it issues the serving certificate, and its key is
  // cleared when `ca` goes out of scope, so nothing can mint another identity for 127.0.0.1.
  proxy::ProxyOptions po;
  {
    KSH_ASSIGN_OR_RETURN(
        crypto::CertificateAuthority ca,
        crypto::MakeSelfSignedCa({.common_name = absl::StrCat("kshield-kubectl local CA (",
                                                              local_user_, ")"),
                                  .validity = absl::Hours(24 * 365)}));
    KSH_ASSIGN_OR_RETURN(crypto::KeyPair server_key, crypto::GenerateEcP256Key());
    KSH_ASSIGN_OR_RETURN(po.server_cert_pem,
                         crypto::IssueCertificate(ca, server_key.public_key_pem,
                                                  {.common_name = "127.0.0.1",
                                                   .validity = absl::Hours(24 * 365),
                                                   .dns_names = {"localhost"},
                                                   .ip_addresses = {"127.0.0.1"},
                                                   .server_auth = true}));
    po.server_key_pem = std::move(server_key.private_key_pem);
    local_ca_pem_ = ca.certificate_pem;
  }

  // 3. Tokens, audit, proxy.
  tokens_ = std::make_unique<TokenStore>(
      TokenStore::Options{.ttl = config_.token_ttl, .user = local_user_});
  std::function<void(const std::string&)> sink = options_.audit_sink;
  if (!sink) {
    KSH_ASSIGN_OR_RETURN(audit_, AuditLog::Open(config_.audit_log));
    sink = [a = audit_.get()](const std::string& line) { a->Write(line); };
  }
  po.listen_address = "127.0.0.1";
  po.port = static_cast<uint16_t>(config_.listen_port);
  po.tokens = tokens_.get();
  po.audit = std::move(sink);
  po.threads = config_.proxy_threads;
  absl::StatusOr<std::unique_ptr<proxy::Proxy>> proxy = proxy::Proxy::Start(std::move(po));
  if (!proxy.ok()) {
    return Annotate(proxy.status(),
                    absl::StrCat("proxy on 127.0.0.1:", config_.listen_port,
                                 config_.listen_port != 0
                                     ? " (another daemon running? set listen_port)"
                                     : ""));
  }
  proxy_ = std::move(*proxy);

  // 4. The control socket, then the public CA file next to it.
  KSH_ASSIGN_OR_RETURN(control_,
                       ControlServer::Start({.path = config_.control_socket},
                                            [this](const nlohmann::json& r) {
                                              return HandleRequest(r);
                                            }));
  absl::Status ca_written = WriteFileAtomic(ca_file_path(), local_ca_pem_, 0644);
  if (!ca_written.ok()) {
    log::Warn("daemon.ca_file_not_written",
              {{"path", ca_file_path()}, {"reason", std::string(ca_written.message())}});
  }

  // 5. Renewals; relay clusters with a non-interactive identity enrol right away.
  renewal_thread_ = std::thread([this] { RenewalLoop(); });
  const bool relay_unattended =
      config_.relay.has_value() &&
      (!config_.relay->client_cert_file.empty() || !config_.relay->id_token_file.empty());
  std::vector<std::string> names;
  for (auto& [name, c] : clusters_) {
    names.push_back(name);
    if (c->config.credential == CredentialKind::kRelay && relay_unattended) {
      Schedule(c.get(), absl::Now());
    }
  }
  log::Info("daemon.started", {{"port", static_cast<int>(proxy_->port())},
                               {"control_socket", config_.control_socket},
                               {"clusters", absl::StrJoin(names, ",")},
                               {"user", local_user_},
                               {"mlock_ok", GetSecureMemoryStats().mlock_ok}});
  return absl::OkStatus();
}

void Daemon::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (control_) control_->Stop();
  {
    absl::MutexLock lock(&state_mu_);
    stopping_ = true;
    wake_.SignalAll();
  }
  if (renewal_thread_.joinable()) renewal_thread_.join();
  if (proxy_) proxy_->Stop();
  if (control_) {
    unlink(ca_file_path().c_str());
    log::Info("daemon.stopped", {});
  }
}

uint16_t Daemon::port() const { return proxy_ ? proxy_->port() : 0; }

ClusterRuntime* Daemon::Find(const std::string& name) const {
  auto it = clusters_.find(name);
  return it == clusters_.end() ? nullptr : it->second.get();
}

void Daemon::Schedule(ClusterRuntime* c, absl::Time at) {
  absl::MutexLock lock(&state_mu_);
  c->next_action = at;
  wake_.SignalAll();
}

absl::StatusOr<nlohmann::json> Daemon::HandleRequest(const nlohmann::json& request) {
  KSH_ASSIGN_OR_RETURN(std::string op, StringField(request, "op", true));
  if (op == "token") {
    KSH_ASSIGN_OR_RETURN(std::string cluster, StringField(request, "cluster", true));
    return IssueToken(cluster);
  }
  if (op == "kubeconfig") {
    nlohmann::json names = nlohmann::json::array();
    for (const ClusterConfig& c : config_.clusters) names.push_back(c.name);
    return nlohmann::json{{"ca_pem", local_ca_pem_},
                          {"ca_file", ca_file_path()},
                          {"port", port()},
                          {"clusters", names}};
  }
  if (op == "status") return Status();
  if (op == "login") {
    KSH_ASSIGN_OR_RETURN(std::string cluster, StringField(request, "cluster", true));
    KSH_ASSIGN_OR_RETURN(std::string id_token, StringField(request, "id_token", false));
    KSH_ASSIGN_OR_RETURN(std::string refresh_token, StringField(request, "refresh_token", false));
    absl::StatusOr<nlohmann::json> r = Login(cluster, id_token, refresh_token);
    OPENSSL_cleanse(id_token.data(), id_token.size());
    OPENSSL_cleanse(refresh_token.data(), refresh_token.size());
    return r;
  }
  if (op == "import") return Import(request);
  return absl::InvalidArgumentError(absl::StrCat("unknown op \"", op.substr(0, 32), "\""));
}

absl::StatusOr<nlohmann::json> Daemon::IssueToken(const std::string& cluster) {
  ClusterRuntime* c = Find(cluster);
  if (c == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown cluster \"", cluster.substr(0, 64), "\""));
  }
  {
    absl::MutexLock lock(&state_mu_);
    if (!c->has_credential || c->not_after <= absl::Now()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cluster ", cluster, " has no valid credential yet (", c->state,
                       c->last_error.empty() ? "" : ": " + c->last_error, "); ",
                       MissingCredentialHint(*c)));
    }
  }
  TokenStore::Issued t = tokens_->Issue(cluster);
  nlohmann::json out = {{"token", t.token}, {"expires", Rfc3339(t.expires)}};
  OPENSSL_cleanse(t.token.data(), t.token.size());
  return out;
}

// --- relay ---------------------------------------------------------------------------------------

absl::Status Daemon::EnrollRelay(ClusterRuntime* c) {
  const RelayConfig& relay = *config_.relay;
  // The caller's identity towards the relay: an ID token given to `login`, else the corporate
  // client certificate, else the ID token file.
  // One enrolment per cluster at a time (login vs. the renewal thread).
  absl::MutexLock enrol_lock(&c->op_mu);
  std::string client_cert;
  SecretBytes client_key, bearer;
  if (!c->relay_id_token.empty()) bearer = c->relay_id_token.Clone();
  if (bearer.empty() && !relay.client_cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadFileBounded(relay.client_cert_file, 1 << 20);
    if (!cert.ok()) return Annotate(cert.status(), "relay client_cert_file");
    client_cert = std::move(*cert);
    absl::StatusOr<SecretBytes> key = ReadSecretFile(relay.client_key_file, false);
    if (!key.ok()) return Annotate(key.status(), "relay client_key_file");
    client_key = std::move(*key);
  } else if (bearer.empty() && !relay.id_token_file.empty()) {
    absl::StatusOr<SecretBytes> token = ReadSecretFile(relay.id_token_file, true);
    if (!token.ok()) return Annotate(token.status(), "relay id_token_file");
    bearer = std::move(*token);
  }
  if (bearer.empty() && client_key.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no identity for the relay: run kshield-kubectl login --cluster ", c->config.name,
        " --id-token-stdin, or set relay.client_cert_file / relay.id_token_file"));
  }

  // The key the cluster certificate will certify: inside the RA-TLS identity when a TEE is in
  // use, so the relay can check that the key lives in the attested enclave.
  SecretBytes key;
  std::string evidence;
  if (platform_) {
    KSH_ASSIGN_OR_RETURN(tee::RaTlsIdentity id,
                         tee::MakeRaTlsIdentity(*platform_, {.common_name = "kshield-kubectl",
                                                             .validity = absl::Hours(1)}));
    key = std::move(id.private_key_pem);
    evidence = std::move(id.certificate_pem);
  } else {
    KSH_ASSIGN_OR_RETURN(crypto::KeyPair kp, crypto::GenerateEcP256Key());
    key = std::move(kp.private_key_pem);
  }
  KSH_ASSIGN_OR_RETURN(std::string csr, crypto::MakeCsr(key, "kshield-kubectl", {}));
  nlohmann::json body = {{"csr", csr}};
  if (!evidence.empty()) body["evidence_certificate"] = evidence;

  net::HttpsRequest req;
  req.method = "POST";
  req.url = absl::StrCat(relay.url, relay.url.back() == '/' ? "" : "/", "v1/clusters/",
                         c->config.name, "/certificates");
  req.ca_pem = relay_ca_pem_;
  req.content_type = "application/json";
  req.timeout = relay.timeout;
  if (!client_key.empty()) {
    req.client_cert_pem = &client_cert;
    req.client_key_pem = &client_key;
  }
  if (!bearer.empty()) req.bearer = &bearer;
  absl::StatusOr<net::HttpsResponse> resp = net::HttpsCall(req, body.dump());
  if (!resp.ok()) return Annotate(resp.status(), "relay");
  nlohmann::json j = nlohmann::json::parse(resp->body, nullptr, false);
  if (resp->status != 200) {
    std::string why = j.is_object() && j.contains("error") && j["error"].is_string()
                          ? j["error"].get<std::string>().substr(0, 200)
                          : absl::StrCat("HTTP ", resp->status);
    const std::string msg = absl::StrCat("relay refused the certificate request (HTTP ",
                                         resp->status, "): ", why);
    switch (resp->status) {
      case 400:
      case 413:
        return absl::InvalidArgumentError(msg);
      case 401:
        return absl::UnauthenticatedError(msg);
      case 403:
        return absl::PermissionDeniedError(msg);
      case 404:
        return absl::NotFoundError(msg);
      default:
        return absl::UnavailableError(msg);
    }
  }
  if (!j.is_object() || !j.contains("certificate") || !j["certificate"].is_string()) {
    return absl::DataLossError("relay answered 200 without a certificate");
  }
  const std::string cert = j["certificate"].get<std::string>();
  const std::string chain =
      j.contains("chain") && j["chain"].is_string() ? j["chain"].get<std::string>() : "";
  const std::string root =
      j.contains("root") && j["root"].is_string() ? j["root"].get<std::string>() : "";
  KSH_ASSIGN_OR_RETURN(crypto::CertInfo info, crypto::ParseCertificate(cert));
  if (!crypto::KeyMatchesPublicKey(key, info.public_key_pem)) {
    return absl::DataLossError("relay returned a certificate for another key");
  }
  const absl::Time now = absl::Now();
  if (info.not_after <= now) return absl::DataLossError("relay returned an expired certificate");
  if (!root.empty()) {
    absl::Status chain_ok = crypto::VerifyCertificateChain(cert, chain, root, now, "client");
    if (!chain_ok.ok()) return Annotate(chain_ok, "relay certificate does not chain to its root");
  }
  auto up = std::make_shared<proxy::Upstream>();
  up->server = c->config.server;
  up->ca_pem = c->config_ca_pem;
  up->tls_server_name = c->config.tls_server_name;
  up->client_cert_pem = EnsureTrailingNewline(cert) + chain;
  up->client_key_pem = std::move(key);
  KSH_RETURN_IF_ERROR(proxy::Proxy::CheckUpstream(*up));
  proxy_->SetUpstream(c->config.name, std::move(up));

  std::vector<std::string> groups;
  if (j.contains("groups") && j["groups"].is_array()) {
    for (const auto& g : j["groups"]) {
      if (g.is_string()) groups.push_back(g.get<std::string>());
    }
  }
  std::string user = j.contains("user") && j["user"].is_string() ? j["user"].get<std::string>()
                                                                 : info.common_name;
  const absl::Time renew_at = c->config.renew_before.RenewAt(info.not_before, info.not_after);
  uint64_t n;
  {
    absl::MutexLock lock(&state_mu_);
    c->has_credential = true;
    c->state = "ready";
    c->last_error.clear();
    c->source = "relay";
    c->user = user;
    c->groups = groups;
    c->not_before = info.not_before;
    c->not_after = info.not_after;
    c->failures = 0;
    c->next_action = renew_at;
    n = ++c->installs;
    wake_.SignalAll();
  }
  log::Info(n == 1 ? "relay.certificate_installed" : "relay.certificate_renewed",
            {{"cluster", c->config.name},
             {"user", user},
             {"groups", absl::StrJoin(groups, ",")},
             {"not_after", Rfc3339(info.not_after)},
             {"next_renewal", Rfc3339(renew_at)},
             {"fingerprint", info.sha256_fingerprint_hex},
             {"tee", platform_ ? std::string(platform_->name()) : "none"}});
  return absl::OkStatus();
}

// --- oidc ----------------------------------------------------------------------------------------

absl::Status Daemon::RefreshOidc(ClusterRuntime* c, bool install) {
  std::shared_ptr<OidcTokenSource> src;
  {
    absl::MutexLock lock(&state_mu_);
    src = c->oidc;
  }
  if (!src) return absl::FailedPreconditionError("no refresh token: " + MissingCredentialHint(*c));
  KSH_RETURN_IF_ERROR(src->Refresh());
  if (install) {
    auto up = std::make_shared<proxy::Upstream>();
    up->server = c->config.server;
    up->ca_pem = c->config_ca_pem;
    up->tls_server_name = c->config.tls_server_name;
    up->bearer_token = [src]() { return src->Current(); };
    KSH_RETURN_IF_ERROR(proxy::Proxy::CheckUpstream(*up));
    proxy_->SetUpstream(c->config.name, std::move(up));
  }
  const absl::Time renew_at = c->config.renew_before.RenewAt(src->issued_at(), src->expires());
  {
    absl::MutexLock lock(&state_mu_);
    c->has_credential = true;
    c->state = "ready";
    c->last_error.clear();
    c->source = "oidc";
    c->not_before = src->issued_at();
    c->not_after = src->expires();
    c->failures = 0;
    c->next_action = renew_at;
    ++c->installs;
    wake_.SignalAll();
  }
  log::Info("oidc.token_refreshed", {{"cluster", c->config.name},
                                     {"issuer", c->config.oidc.issuer},
                                     {"expires", Rfc3339(src->expires())},
                                     {"next_refresh", Rfc3339(renew_at)}});
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> Daemon::Login(const std::string& cluster, std::string_view id_token,
                                             std::string_view refresh_token) {
  ClusterRuntime* c = Find(cluster);
  if (c == nullptr) {
    return absl::NotFoundError(absl::StrCat("unknown cluster \"", cluster.substr(0, 64), "\""));
  }
  switch (c->config.credential) {
    case CredentialKind::kImported:
      return absl::FailedPreconditionError(absl::StrCat(
          "cluster ", cluster, " uses imported credentials: run kshield-kubectl import KUBECONFIG"));
    case CredentialKind::kRelay: {
      if (!refresh_token.empty()) {
        return absl::InvalidArgumentError("a refresh token is for credential: oidc clusters");
      }
      if (!id_token.empty()) {
        absl::MutexLock lock(&c->op_mu);
        c->relay_id_token = SecretBytes::CopyFrom(id_token);
      }
      absl::Status s = EnrollRelay(c);
      if (!s.ok()) {
        absl::MutexLock lock(&state_mu_);
        c->last_error = std::string(s.message());
        if (!c->has_credential) c->state = "login failed";
        log::Warn("relay.login_failed", {{"cluster", cluster}, {"reason", c->last_error}});
        return s;
      }
      break;
    }
    case CredentialKind::kOidc: {
      if (!id_token.empty()) {
        return absl::InvalidArgumentError(
            "an ID token is for relay clusters; oidc clusters take --refresh-token-stdin");
      }
      if (!refresh_token.empty()) {
        auto src = std::make_shared<OidcTokenSource>(
            c->config.oidc, SecretBytes::CopyFrom(refresh_token), c->oidc_client_secret.Clone(),
            c->oidc_ca_pem, absl::Seconds(15));
        absl::MutexLock lock(&state_mu_);
        c->oidc = std::move(src);
      }
      absl::Status s = RefreshOidc(c, /*install=*/true);
      if (!s.ok()) {
        absl::MutexLock lock(&state_mu_);
        c->last_error = std::string(s.message());
        if (!c->has_credential) c->state = "login failed";
        log::Warn("oidc.login_failed", {{"cluster", cluster}, {"reason", c->last_error}});
        return s;
      }
      break;
    }
  }
  absl::MutexLock lock(&state_mu_);
  return nlohmann::json{{"cluster", cluster},
                        {"user", c->user},
                        {"groups", c->groups},
                        {"not_after", Rfc3339(c->not_after)},
                        {"next_renewal", Rfc3339(c->next_action)}};
}

// --- renewal loop --------------------------------------------------------------------------------

void Daemon::RenewalLoop() {
  absl::MutexLock lock(&state_mu_);
  while (!stopping_) {
    ClusterRuntime* due = nullptr;
    absl::Time next = absl::InfiniteFuture();
    for (auto& [name, c] : clusters_) {
      if (c->next_action < next) {
        next = c->next_action;
        due = c.get();
      }
    }
    if (due == nullptr || next > absl::Now()) {
      wake_.WaitWithDeadline(&state_mu_, next);
      continue;
    }
    due->next_action = absl::InfiniteFuture();  // claimed; RunDue reschedules
    state_mu_.Unlock();
    RunDue(due);
    state_mu_.Lock();
  }
}

void Daemon::RunDue(ClusterRuntime* c) {
  absl::Status s;
  if (c->config.credential == CredentialKind::kRelay) {
    s = EnrollRelay(c);
  } else if (c->config.credential == CredentialKind::kOidc) {
    s = RefreshOidc(c, /*install=*/false);
  } else {
    return;
  }
  if (s.ok()) return;
  absl::MutexLock lock(&state_mu_);
  ++c->failures;
  c->last_error = std::string(s.message());
  const int shift = std::min(c->failures - 1, 10);
  absl::Duration backoff = std::min(options_.min_backoff * (1 << shift), options_.max_backoff);
  // Do not wait past the credential's expiry when it is still valid.
  absl::Time at = absl::Now() + backoff;
  if (c->has_credential && c->not_after > absl::Now() && at > c->not_after) {
    at = std::max(absl::Now() + options_.min_backoff, c->not_after - absl::Seconds(1));
  }
  if (s.code() == absl::StatusCode::kFailedPrecondition && !c->has_credential) {
    at = absl::InfiniteFuture();  // nothing to retry with until `login`
  }
  c->next_action = at;
  if (c->has_credential && c->not_after <= absl::Now()) {
    // The expired credential stays installed (the apiserver refuses it: fail closed), but no
    // new local token is handed out until a renewal or login succeeds.
    c->state = "expired";
    c->has_credential = false;
  }
  const bool relay = c->config.credential == CredentialKind::kRelay;
  log::Warn(relay ? (c->installs == 0 ? "relay.enrol_failed" : "relay.renewal_failed")
                  : "oidc.refresh_failed",
            {{"cluster", c->config.name},
             {"reason", c->last_error},
             {"failures", c->failures},
             {"retry_at", Rfc3339(at)},
             {"credential_valid_until", Rfc3339(c->not_after)}});
}

// --- import --------------------------------------------------------------------------------------

absl::StatusOr<nlohmann::json> Daemon::Import(const nlohmann::json& request) {
  KSH_ASSIGN_OR_RETURN(std::string text, StringField(request, "kubeconfig", true));
  KSH_ASSIGN_OR_RETURN(std::string base_dir, StringField(request, "base_dir", false));
  std::map<std::string, std::string> context_map;
  if (request.contains("cluster_map")) {
    const nlohmann::json& m = request["cluster_map"];
    if (!m.is_object()) return absl::InvalidArgumentError("cluster_map must be an object");
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (!it.value().is_string()) {
        return absl::InvalidArgumentError("cluster_map values must be strings");
      }
      context_map[it.key()] = it.value().get<std::string>();
    }
  }
  ImportOptions opts;
  opts.base_dir = base_dir;
  opts.read_file = [](const std::string& path) { return ReadFileBounded(path, 1 << 20); };
  absl::StatusOr<ParsedKubeconfig> parsed = ParseKubeconfig(text, opts);
  OPENSSL_cleanse(text.data(), text.size());
  if (!parsed.ok()) return parsed.status();
  std::vector<std::string> importable;
  for (const ClusterConfig& c : config_.clusters) {
    if (c.credential == CredentialKind::kImported) importable.push_back(c.name);
  }
  std::vector<std::string> notes;
  KSH_ASSIGN_OR_RETURN(std::vector<ImportTarget> targets,
                       SelectImports(*parsed, importable, context_map, &notes));

  // Build and check every upstream first: an import applies completely or not at all.
  struct Prepared {
    ClusterRuntime* c;
    const KubeconfigContext* ctx;
    std::shared_ptr<proxy::Upstream> up;
    std::string source, user;
    std::vector<std::string> groups;
    absl::Time not_before = absl::InfinitePast(), not_after = absl::InfiniteFuture();
  };
  std::vector<Prepared> prepared;
  const absl::Time now = absl::Now();
  for (const ImportTarget& t : targets) {
    Prepared p;
    p.c = Find(t.daemon_cluster);
    p.ctx = &parsed->contexts[t.context_index];
    const ClusterConfig& cc = p.c->config;
    const std::string where = absl::StrCat("context \"", p.ctx->context, "\" → cluster ", cc.name);
    p.up = std::make_shared<proxy::Upstream>();
    p.up->server = cc.server.empty() ? p.ctx->server : cc.server;
    if (!cc.server.empty() && !p.ctx->server.empty() && cc.server != p.ctx->server) {
      notes.push_back(absl::StrCat(where, ": using the configured server ", cc.server,
                                   " (the kubeconfig says ", p.ctx->server, ")"));
    }
    absl::StatusOr<HttpsUrl> url = ParseHttpsUrl(p.up->server);
    if (!url.ok()) return Annotate(url.status(), where);
    p.up->ca_pem = !p.c->config_ca_pem.empty() ? p.c->config_ca_pem : p.ctx->ca_pem;
    if (p.up->ca_pem.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": no CA for the apiserver (set ca_file in the daemon config or "
                 "certificate-authority-data in the kubeconfig)"));
    }
    p.up->tls_server_name =
        !cc.tls_server_name.empty() ? cc.tls_server_name : p.ctx->tls_server_name;
    if (!p.ctx->client_cert_pem.empty()) {
      absl::StatusOr<crypto::CertInfo> info = crypto::ParseCertificate(p.ctx->client_cert_pem);
      if (!info.ok()) return Annotate(info.status(), where + ": client-certificate");
      if (!crypto::KeyMatchesPublicKey(p.ctx->client_key_pem, info->public_key_pem)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": client-key does not match client-certificate"));
      }
      if (info->not_after <= now) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": the client certificate expired ",
                                                       Rfc3339(info->not_after)));
      }
      p.up->client_cert_pem = p.ctx->client_cert_pem;
      p.up->client_key_pem = p.ctx->client_key_pem.Clone();
      p.source = "client-certificate";
      p.user = info->common_name;
      p.groups = info->organizations;
      p.not_before = info->not_before;
      p.not_after = info->not_after;
    } else {
      auto token = std::make_shared<const SecretBytes>(p.ctx->token.Clone());
      p.up->bearer_token = [token]() -> absl::StatusOr<SecretBytes> { return token->Clone(); };
      p.source = "token";
    }
    absl::Status ok = proxy::Proxy::CheckUpstream(*p.up);
    if (!ok.ok()) return Annotate(ok, where);
    prepared.push_back(std::move(p));
  }
  nlohmann::json imported = nlohmann::json::array();
  for (Prepared& p : prepared) {
    absl::MutexLock op(&p.c->op_mu);
    proxy_->SetUpstream(p.c->config.name, p.up);
    {
      absl::MutexLock lock(&state_mu_);
      p.c->has_credential = true;
      p.c->state = "ready";
      p.c->last_error.clear();
      p.c->source = p.source;
      p.c->user = p.user;
      p.c->groups = p.groups;
      p.c->not_before = p.not_before;
      p.c->not_after = p.not_after;
      ++p.c->installs;
    }
    log::Info("import.installed", {{"cluster", p.c->config.name},
                                   {"context", p.ctx->context},
                                   {"kind", p.source},
                                   {"user", p.user},
                                   {"server", p.up->server},
                                   {"not_after", Rfc3339(p.not_after)}});
    nlohmann::json item = {{"cluster", p.c->config.name},
                           {"context", p.ctx->context},
                           {"kind", p.source},
                           {"server", p.up->server}};
    if (!p.user.empty()) item["user"] = p.user;
    if (p.not_after != absl::InfiniteFuture()) item["not_after"] = Rfc3339(p.not_after);
    imported.push_back(std::move(item));
  }
  return nlohmann::json{{"imported", imported},
                        {"notes", notes},
                        {"referenced_files", parsed->referenced_files}};
}

// --- status --------------------------------------------------------------------------------------

nlohmann::json Daemon::Status() const {
  nlohmann::json clusters = nlohmann::json::array();
  absl::MutexLock lock(&state_mu_);
  for (const ClusterConfig& cc : config_.clusters) {
    const ClusterRuntime& c = *clusters_.at(cc.name);
    nlohmann::json item = {{"name", cc.name},
                           {"credential", std::string(CredentialKindName(cc.credential))},
                           {"state", c.state},
                           {"server", cc.server},
                           {"url", absl::StrCat("https://127.0.0.1:", port(), "/clusters/",
                                                cc.name)}};
    if (!c.source.empty()) item["source"] = c.source;
    if (!c.user.empty()) item["user"] = c.user;
    if (!c.groups.empty()) item["groups"] = c.groups;
    if (c.has_credential && c.not_after != absl::InfiniteFuture()) {
      item["not_after"] = Rfc3339(c.not_after);
    }
    if (c.next_action != absl::InfiniteFuture()) item["next_renewal"] = Rfc3339(c.next_action);
    if (!c.last_error.empty()) item["last_error"] = c.last_error;
    item["renewals"] = c.installs > 0 ? c.installs - 1 : 0;
    clusters.push_back(std::move(item));
  }
  return nlohmann::json{{"port", port()},
                        {"control_socket", config_.control_socket},
                        {"user", local_user_},
                        {"tee", platform_ ? std::string(platform_->name()) : "none"},
                        {"live_tokens", tokens_ ? tokens_->live_count() : 0},
                        {"clusters", clusters}};
}

}  // namespace kshield::kubectl
