// Daemon: the control plane of `kshield-kubectl daemon`. It owns everything secret and wires the
// pieces together:
//
//   local CA (in memory) ──issues──> 127.0.0.1 server certificate ──> proxy::Proxy (data path)
//   TokenStore (local tokens for the exec plugin) ──validates──> proxy::Proxy
//   per cluster, one credential, installed with Proxy::SetUpstream:
//     relay     a P-256 key made here (inside the TEE's RA-TLS identity when tee != none), a CSR
//               POSTed to kshield-relay, the issued certificate; renewed before expiry with a new
//               key each time (the old certificate keeps serving until the new one is installed;
//               failures retry with exponential backoff, 5 s .. 5 min)
//     imported  the client certificate + key or token of an existing kubeconfig (`import`)
//     oidc      an ID token refreshed with a refresh token (`login --refresh-token-stdin`)
//   ControlServer (0600 unix socket, same uid only) ──> HandleRequest()
//
// What is on disk: nothing secret. The daemon writes only the local CA's public certificate
// (ca_file_path(), for `kubeconfig --ca-path`) and the audit log (no tokens, no query strings).
// The local CA's private key is dropped once the server certificate is issued.
//
//   KSH_ASSIGN_OR_RETURN(DaemonConfig config, LoadDaemonConfig(path));
//   KSH_ASSIGN_OR_RETURN(std::unique_ptr<Daemon> d, Daemon::Start(std::move(config)));
//   ... wait for SIGTERM ...
//   d->Stop();
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "proxy/config.h"

namespace kshield::tee {
class Platform;
}
namespace kshield::proxy {
class Proxy;
}

namespace kshield::kubectl {

class ControlServer;
class TokenStore;
class AuditLog;
struct ClusterRuntime;

struct DaemonOptions {
  // Where audit lines go; unset: DaemonConfig::audit_log ("-" = stderr, else a file, 0600).
  std::function<void(const std::string& line)> audit_sink;
  // Retry backoff bounds (tests shorten them).
  absl::Duration min_backoff = absl::Seconds(5);
  absl::Duration max_backoff = absl::Minutes(5);
};

class Daemon {
 public:
  // Loads the CA files the config names, makes the local CA and serving identity, starts the
  // proxy on 127.0.0.1:listen_port and the control socket, then enrols relay clusters that have a
  // non-interactive identity (client_cert_file or id_token_file) in the background.
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(DaemonConfig config,
                                                       DaemonOptions options = {});
  ~Daemon();  // Stop()
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Control socket, renewal thread, then the proxy. Idempotent.
  void Stop();

  uint16_t port() const;
  const std::string& local_ca_pem() const { return local_ca_pem_; }
  const std::string& control_socket() const { return config_.control_socket; }
  // "<control_socket>.ca.pem": the local CA certificate (public), rewritten at each start.
  std::string ca_file_path() const { return config_.control_socket + ".ca.pem"; }

  // The control protocol (control.h): ops "token", "kubeconfig", "login", "import", "status".
  absl::StatusOr<nlohmann::json> HandleRequest(const nlohmann::json& request);

  // (Re)enrols a relay cluster now; an empty `id_token` uses the configured identity.
  absl::StatusOr<nlohmann::json> Login(const std::string& cluster, std::string_view id_token,
                                       std::string_view refresh_token);
  nlohmann::json Status() const;

 private:
  Daemon(DaemonConfig config, DaemonOptions options);
  absl::Status Init();

  absl::StatusOr<nlohmann::json> IssueToken(const std::string& cluster);
  absl::StatusOr<nlohmann::json> Import(const nlohmann::json& request);
  absl::Status EnrollRelay(ClusterRuntime* c);
  absl::Status RefreshOidc(ClusterRuntime* c, bool install);
  void RenewalLoop();
  void RunDue(ClusterRuntime* c);
  void Schedule(ClusterRuntime* c, absl::Time at);
  ClusterRuntime* Find(const std::string& name) const;

  const DaemonConfig config_;
  const DaemonOptions options_;
  std::string local_user_;
  std::string local_ca_pem_;
  std::string relay_ca_pem_;
  std::unique_ptr<tee::Platform> platform_;  // null when tee is none (or auto found none)
  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<TokenStore> tokens_;
  std::unique_ptr<proxy::Proxy> proxy_;
  std::unique_ptr<ControlServer> control_;
  std::map<std::string, std::unique_ptr<ClusterRuntime>> clusters_;  // fixed after Init()

  mutable absl::Mutex state_mu_;
  absl::CondVar wake_;
  bool stopping_ ABSL_GUARDED_BY(state_mu_) = false;
  std::thread renewal_thread_;
  bool stopped_ = false;
};

// RFC 3339 UTC ("2025-01-02T03:04:05Z").
std::string Rfc3339(absl::Time t);

}  // namespace kshield::kubectl
