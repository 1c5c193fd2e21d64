// OidcTokenSource: an OIDC ID token kept fresh with a refresh token, both only in memory.
//
// Used by clusters with `credential: oidc` (the ID token is the apiserver bearer token, as the
// Kubernetes OIDC authenticator expects). The refresh token arrives through
// `kshield-kubectl login --cluster NAME --refresh-token-stdin`; Refresh() runs the RFC 6749 §6
// refresh_token grant against the token endpoint, keeps a rotated refresh token when the IdP
// returns one, and learns the ID token's lifetime from its `exp` / `iat` claims (the signature is
// the apiserver's business, not ours), falling back to `expires_in`.
//
//   OidcTokenSource src(cluster.oidc, std::move(refresh_token), std::move(client_secret), ca);
//   KSH_RETURN_IF_ERROR(src.Refresh());
//   upstream.bearer_token = [&src] { return src.Current(); };
//
// Thread-safe. No token or secret appears in an error message or log line.
#pragma once

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/secret.h"
#include "proxy/config.h"

namespace kshield::kubectl {

class OidcTokenSource {
 public:
  OidcTokenSource(OidcClientConfig config, SecretBytes refresh_token, SecretBytes client_secret,
                  std::string token_endpoint_ca_pem, absl::Duration timeout);

  // One refresh_token grant. On failure the current ID token (if any) stays in use.
  absl::Status Refresh();
  // A copy of the current ID token; FailedPrecondition when there is none or it has expired.
  absl::StatusOr<SecretBytes> Current() const;
  absl::Time issued_at() const;
  absl::Time expires() const;

 private:
  const OidcClientConfig config_;
  const SecretBytes client_secret_;
  const std::string ca_pem_;
  const absl::Duration timeout_;
  absl::Mutex refresh_mu_;  // one grant at a time (a rotated refresh token is single-use)
  mutable absl::Mutex mu_;
  SecretBytes refresh_token_ ABSL_GUARDED_BY(mu_);
  SecretBytes id_token_ ABSL_GUARDED_BY(mu_);
  absl::Time issued_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time expires_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// The `exp` and `iat` claims of a JWT (unverified; for scheduling only). NotFound without exp.
struct JwtTimes {
  absl::Time issued_at = absl::InfinitePast();
  absl::Time expires = absl::InfinitePast();
};
absl::StatusOr<JwtTimes> ReadJwtTimes(std::string_view jwt);

}  // namespace kshield::kubectl
