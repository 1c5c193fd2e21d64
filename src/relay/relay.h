// RelayServer: kshield-relay's HTTPS listener (Boost.Beast over OpenSSL). It terminates TLS,
// records what the client certificate proved (PeerInfo), reads one bounded request at a time and
// hands it to CertificateService (service.h).
//
//   KSH_ASSIGN_OR_RETURN(RelayConfig config, LoadRelayConfigFile(path));
//   KSH_ASSIGN_OR_RETURN(auto service, CertificateService::Create(config, nullptr));
//   KSH_ASSIGN_OR_RETURN(auto server, RelayServer::Start(config, std::move(service)));
//   ... server->Stop();
//
// TLS: 1.2 or 1.3 only; the serving chain and key from tls.cert_file / tls.key_file (0600). With
// tls.client_ca_file the server asks for a client certificate but does not require one
// ("optional verify"): the handshake completes either way, and a certificate that does not chain
// to those CAs (purpose sslclient, depth ≤ 5) only counts as "presented, not verified" — the
// request then needs a bearer token. No system trust store is ever loaded for clients.
//
// Limits: request line + headers ≤ 8 KiB + the maximum token size (431), body ≤ 64 KiB (413),
// the TLS handshake and each request must complete within request_timeout (then the connection
// is closed), at most max_connections connections (extra ones are closed at accept).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "relay/config.h"
#include "relay/service.h"

namespace kshield::relay {

class RelayServer {
 public:
  // Binds config.listen ("0.0.0.0:8443", "127.0.0.1:0", "[::1]:8443") and starts serving.
  static absl::StatusOr<std::unique_ptr<RelayServer>> Start(
      const RelayConfig& config, std::shared_ptr<CertificateService> service);
  // Builds the TLS context the server would use (reads and checks the TLS files), without
  // listening: `kshield-relay check-config`.
  static absl::Status CheckTls(const RelayConfig& config);

  ~RelayServer();  // Stop()
  uint16_t port() const;
  // Stops accepting, closes connections, joins the I/O threads. Idempotent.
  void Stop();

  class Impl;

 private:
  explicit RelayServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kshield::relay
