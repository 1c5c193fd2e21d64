// KmsServer — kshield-kms assembled: TEE platform, key provider, keyset, health monitor, the KMS
// socket (v2 + v1beta1), the admin socket and the HTTP endpoint (/healthz /readyz /metrics).
//
//   KSH_ASSIGN_OR_RETURN(auto server, KmsServer::Start(config, metrics::Registry::Default()));
//   ...wait for SIGTERM...
//   server->Shutdown();   // stop accepting, drain in-flight calls, remove sockets
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "kms/config.h"
#include "metrics/registry.h"

namespace kshield::kms {

class KmsServer {
 public:
  virtual ~KmsServer() = default;
  static absl::StatusOr<std::unique_ptr<KmsServer>> Start(const KmsConfig& config,
                                                          metrics::Registry& registry);
  // Stops accepting, lets in-flight calls finish within config.shutdown_grace, removes the
  // sockets. Idempotent.
  virtual void Shutdown() = 0;
  // "127.0.0.1:8787" (actual port), or empty when HTTP is off.
  virtual std::string http_address() const = 0;
  virtual std::string primary_key_id() const = 0;
  virtual std::string tee_platform() const = 0;
};

// The EncryptionConfiguration snippet that points kube-apiserver at `socket` (KMS v2).
std::string EncryptionConfigSnippet(const std::string& socket);

inline constexpr char kKshieldVersion[] = "0.1.0";

}  // namespace kshield::kms
