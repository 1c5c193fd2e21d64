// kshield-kubectl daemon configuration: one YAML file (`kshield-kubectl daemon --config FILE`).
//
// The file holds no secret: credentials arrive later over the control socket (`login`, `import`)
// or come from files the user already has (the relay client key), read when needed and kept in
// SecretBytes only. Every key is optional except `clusters`; an unknown key is an error naming it.
//
//   listen_port: 16443            # loopback HTTPS port of the proxy; fixed so the generated
//                                 # kubeconfig stays valid across restarts (0 = any free port)
//   control_socket: /run/user/1000/kshield-kubectl.sock   # default: DefaultControlSocketPath()
//   token_ttl: 10m                # lifetime of the local tokens the exec plugin hands kubectl
//   audit_log: /home/alice/.local/state/kshield-kubectl/audit.log   # default "-" = stderr
//   log_level: info               # debug | info | warn | error
//   proxy_threads: 2
//   tee: none                     # none | sim | auto: RA-TLS evidence sent to the relay
//   tee_data_dir: ""              # sim only: where the simulated machine secret lives
//   relay:                        # needed when a cluster uses `credential: relay`
//     url: https://relay.corp.example:8443
//     ca_file: /etc/kshield/relay-ca.pem            # trust anchor for the relay's certificate
//     client_cert_file: ~/.corp/alice.crt           # optional: corporate mTLS identity...
//     client_key_file: ~/.corp/alice.key            #   ...and its key (read at each enrolment)
//     id_token_file: ""                             # optional: an OIDC ID token file re-read at
//                                                   # each enrolment (else `login --id-token-stdin`)
//     timeout: 15s
//   clusters:
//     - name: prod                 # [a-z0-9][a-z0-9._-]*, ≤ 63: the URL path /clusters/prod
//       server: https://10.0.0.1:6443
//       ca_file: /etc/kshield/prod-apiserver-ca.pem # the apiserver's trust anchor
//       tls_server_name: ""        # optional: verify this name instead of the URL host
//       credential: relay          # relay | imported | oidc
//       renew_before: 20m          # or "33%" of the certificate/token lifetime (default 33%)
//     - name: lab
//       credential: imported       # server / ca_file optional: taken from the imported kubeconfig
//     - name: sso
//       server: https://sso-cluster:6443
//       ca_file: /etc/kshield/sso-ca.pem
//       credential: oidc
//       oidc:
//         issuer: https://idp.example        # informational (logged, shown in status)
//         token_endpoint: https://idp.example/oauth2/token
//         client_id: kubectl
//         client_secret_file: ""             # optional, confidential clients only
//         ca_file: ""                        # optional trust for the token endpoint
//
// Loading validates everything once (ranges, URLs, names, cross-field rules); the daemon never
// re-checks these at run time.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kshield::kubectl {

enum class CredentialKind { kRelay, kImported, kOidc };
std::string_view CredentialKindName(CredentialKind kind);  // "relay" | "imported" | "oidc"

struct OidcClientConfig {
  std::string issuer;
  std::string token_endpoint;  // https URL
  std::string client_id;
  std::string client_secret_file;
  std::string ca_file;  // empty: the system trust store
};

// When to renew a credential: a fixed time before expiry, or a fraction of its lifetime.
struct RenewBefore {
  std::optional<absl::Duration> fixed;  // "20m"
  double fraction = 1.0 / 3;            // "33%" (used when `fixed` is unset)
  // The renewal instant for a credential valid over [not_before, not_after].
  absl::Time RenewAt(absl::Time not_before, absl::Time not_after) const;
};

struct ClusterConfig {
  std::string name;
  std::string server;  // https://host[:port][/prefix]; may be empty for `imported`
  std::string ca_file;
  std::string tls_server_name;
  CredentialKind credential = CredentialKind::kRelay;
  OidcClientConfig oidc;  // credential: oidc
  RenewBefore renew_before;
};

struct RelayConfig {
  std::string url;  // https://host[:port]
  std::string ca_file;
  std::string client_cert_file;
  std::string client_key_file;
  std::string id_token_file;
  absl::Duration timeout = absl::Seconds(15);
};

struct DaemonConfig {
  int listen_port = 16443;
  std::string control_socket;  // empty until load: DefaultControlSocketPath()
  absl::Duration token_ttl = absl::Minutes(10);
  std::string audit_log = "-";
  std::string log_level = "info";
  int proxy_threads = 2;
  std::string tee = "none";
  std::string tee_data_dir;
  std::optional<RelayConfig> relay;
  std::vector<ClusterConfig> clusters;

  const ClusterConfig* FindCluster(std::string_view name) const;
};

inline constexpr int kDefaultListenPort = 16443;

// Parses and validates a config document. Errors name the key (e.g. "clusters[1].server: ...").
absl::StatusOr<DaemonConfig> ParseDaemonConfig(std::string_view yaml);
// Reads (≤ 1 MiB) and parses `path`; errors are prefixed with the path.
absl::StatusOr<DaemonConfig> LoadDaemonConfig(const std::string& path);

// $XDG_RUNTIME_DIR/kshield-kubectl.sock when XDG_RUNTIME_DIR is set (absolute), else
// /tmp/kshield-kubectl-<uid>/kshield-kubectl.sock (the control server creates that directory
// 0700 and refuses one that another uid owns or others can enter).
std::string DefaultControlSocketPath();

// Cluster names are URL path segments and kubeconfig names: [a-z0-9][a-z0-9._-]{0,62}.
bool IsValidClusterName(std::string_view name);

// "https://host[:port][/path]" split into its parts, by the one URL parser (net/url.h, default
// rules): lower-case https only; no userinfo, query or fragment; host [A-Za-z0-9._-] or a bracketed
// IPv6 literal (a numeric-looking host must be a dotted-quad IPv4); port 1..65535; RFC 3986 path
// characters, no dot or empty segments (one trailing "/" is dropped); at most 4096 bytes.
struct HttpsUrl {
  std::string host;  // without brackets for IPv6
  uint16_t port = 443;
  std::string path;  // "" or "/prefix" (no trailing slash)
};
absl::StatusOr<HttpsUrl> ParseHttpsUrl(std::string_view url);

}  // namespace kshield::kubectl
