// kshield-relay configuration (YAML, --config). Unknown keys are errors naming the key; relative
// paths are relative to the config file's directory. Full reference: docs/relay.md.
//
//   listen: 0.0.0.0:8443
//   tls:
//     cert_file: tls.crt              # serving certificate (+ chain), PEM
//     key_file: tls.key               # its key, PEM, mode 0600
//     client_ca_file: corp-ca.pem     # optional: users may authenticate by a client certificate
//                                     #   chained to these CAs (user = subject CN)
//     client_groups_from_organization: false   # corporate groups = client-cert O= entries
//   oidc:                             # optional: users may authenticate by an OIDC ID token
//     issuer: https://idp.example.com
//     audience: kshield               # the relay's client id at the IdP
//     jwks_url: https://idp.example.com/oauth2/v1/keys   # the issuer's jwks_uri, fetched over
//                                     #   HTTPS at start, every jwks_refresh, and on a new kid
//     jwks_ca_file: idp-ca.pem        # optional: trust anchors for jwks_url (default: system)
//     jwks_refresh: 1h                # 1m..24h
//     # or, instead of jwks_url: jwks_file: idp-jwks.json (re-read when a token names a new kid)
//     username_claim: email           # default email (email_verified must not be false)
//     groups_claim: groups            # corporate groups, matched by "group:<name>" policy rules
//     clock_skew: 60s
//     max_token_bytes: 16384
//   root_ca:
//     cert_file: root.crt             # the global root (its key stays offline)
//   clusters:
//     - name: prod
//       ca: {cert_file: prod-ca.crt, key_file: prod-ca.key}   # intermediate CA under the root
//       max_ttl: 1h                   # default 1h, at most 24h
//       require_tee: false            # true: the CSR key must come with RA-TLS evidence
//   attestation:                      # required when a cluster has require_tee
//     root_file: intel-sgx-root.pem   # pinned attestation root
//     policy_file: attest-policy.yaml # tee/quote/policy.h format (mrenclave / mrsigner / ...)
//   policy_file: relay-policy.yaml    # relay/policy.h
//   audit_log: /var/log/kshield/relay-audit.log   # "-" = stdout
//   log_level: info
//   threads: 2
//   max_connections: 256
//   request_timeout: 10s              # TLS handshake, and reading one request, each
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kshield::relay {

struct OidcConfig {
  bool enabled = false;  // true when the `oidc:` section is present
  std::string issuer;
  std::string audience;
  // Exactly one of jwks_file / jwks_url (relay/jwks_source.h says how each is kept fresh).
  std::string jwks_file;
  std::string jwks_url;      // https:// only
  std::string jwks_ca_file;  // jwks_url's trust anchors (PEM); empty: the system trust store
  absl::Duration jwks_refresh = absl::Hours(1);  // jwks_url only
  std::string username_claim = "email";
  std::string groups_claim = "groups";
  absl::Duration clock_skew = absl::Seconds(60);
  size_t max_token_bytes = 16 * 1024;
};

struct ClusterConfig {
  std::string name;
  std::string ca_cert_file;
  std::string ca_key_file;
  absl::Duration max_ttl = absl::Hours(1);
  bool require_tee = false;
};

struct RelayConfig {
  std::string listen = "0.0.0.0:8443";
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string client_ca_file;  // empty: no client-certificate authentication
  bool client_groups_from_organization = false;
  OidcConfig oidc;
  std::string root_ca_file;
  std::vector<ClusterConfig> clusters;
  std::string attestation_root_file;
  std::string attestation_policy_file;
  std::string policy_file;
  std::string audit_log = "-";
  std::string log_level = "info";
  int threads = 2;
  size_t max_connections = 256;
  absl::Duration request_timeout = absl::Seconds(10);
};

inline constexpr absl::Duration kMaxCertificateTtl = absl::Hours(24);
inline constexpr absl::Duration kMinCertificateTtl = absl::Minutes(1);
inline constexpr absl::Duration kMinJwksRefresh = absl::Minutes(1);
inline constexpr absl::Duration kMaxJwksRefresh = absl::Hours(24);

// Parses and validates the config text (no file is opened). `base_dir` resolves relative paths.
// Errors name the key: `clusters[1].ca.key_file: missing`.
absl::StatusOr<RelayConfig> ParseRelayConfig(std::string_view yaml, const std::string& base_dir);
absl::StatusOr<RelayConfig> LoadRelayConfigFile(const std::string& path);

// "1h", "30m", "90s", "1h30m", or a bare number of seconds. Positive and finite.
absl::StatusOr<absl::Duration> ParseConfigDuration(std::string_view text);

// Cluster names are DNS-label-like: [a-z0-9]([-a-z0-9._]*[a-z0-9])?, at most 63 characters.
bool IsValidClusterName(std::string_view name);

}  // namespace kshield::relay
