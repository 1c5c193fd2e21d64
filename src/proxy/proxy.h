// Proxy: the data path of kshield-kubectl. A loopback HTTPS listener that forwards
// https://127.0.0.1:<port>/clusters/<name>/<rest> to <server>/<rest> of cluster <name>, with that
// cluster's credential, after checking the caller's local token.
//
//   ProxyOptions o;
//   o.server_cert_pem = local_ca_issued_cert;   // the daemon's in-memory local CA
//   o.server_key_pem = std::move(server_key);
//   o.tokens = &token_store;                    // must outlive the Proxy
//   o.audit = [](const std::string& line) { audit_log.Write(line); };
//   KSH_ASSIGN_OR_RETURN(std::unique_ptr<Proxy> proxy, Proxy::Start(std::move(o)));
//   proxy->SetUpstream("prod", std::make_shared<const Upstream>(std::move(prod)));
//   ... kubectl --server https://127.0.0.1:<proxy->port()>/clusters/prod ...
//
// Promises:
//  - Only a request carrying a live local token for its cluster (Authorization: Bearer, or the
//    WebSocket bearer subprotocol entry) is forwarded; otherwise 401 with a Kubernetes Status body.
//    Unknown cluster: 404. Malformed route (see http_filter.h ParseRoute): 400. Upstream
//    unreachable, TLS verification failed, or an unusable Upstream: 502; no response header from
//    the upstream within response_header_timeout: 504.
//  - The upstream's certificate is verified against Upstream::ca_pem only (no system roots), with a
//    host-name / IP check against tls_server_name or the URL host; any failure fails the request.
//  - The client's Authorization, Proxy-Authorization, Impersonate-*, X-Remote-* headers and the
//    bearer entry of Sec-WebSocket-Protocol never reach the upstream; hop-by-hop headers are
//    handled per RFC 9110 (http_filter.h SanitizeRequestHeaders).
//  - Request and response bodies are streamed in bounded chunks, never buffered whole: a watch or
//    `logs -f` chunk reaches the client as soon as it arrives. Streaming responses have no idle
//    timeout; only the client's request head (60 s) and the upstream's connect / response head
//    have deadlines.
//  - HTTP/1.1 upgrades (WebSocket, SPDY/3.1) answered 101 are spliced both ways until either side
//    closes.
//  - Upstream connections are kept alive in a pool per cluster; SetUpstream / RemoveUpstream drop
//    the cluster's pool, so the next request uses the new credential on a new connection.
//  - One JSON audit line per request through ProxyOptions::audit (fields: ts, user, cluster,
//    method, verb, path (no query), status, bytes_in, bytes_out, duration_ms, audit_id). Nothing
//    the proxy logs or audits contains a token, a key, or a query string.
//
// Thread safety: every public method may be called from any thread except the proxy's own I/O
// threads (not from LocalTokenValidator::Validate or the audit callback).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/secret.h"

namespace kshield::proxy {

// One cluster's apiserver and the credential to present to it. Immutable once shared.
struct Upstream {
  std::string server;           // "https://host[:port][/prefix]"; host may be [IPv6]
  std::string ca_pem;           // trust anchor(s) for the apiserver's certificate (required)
  std::string tls_server_name;  // optional: the name to verify (and send as SNI) instead of host
  std::string client_cert_pem;  // client certificate (+ chain), together with
  SecretBytes client_key_pem;   //   its private key (PEM); OR
  // a bearer token source, called once per upstream request (its owner caches and refreshes).
  std::function<absl::StatusOr<SecretBytes>()> bearer_token;
};

// Implemented by the daemon's token store. Called on the proxy's I/O threads, concurrently: must
// be thread-safe and quick.
class LocalTokenValidator {
 public:
  virtual ~LocalTokenValidator() = default;
  // The local user name when `token` is a live local token issued for `cluster`; else an error.
  virtual absl::StatusOr<std::string> Validate(std::string_view cluster,
                                               std::string_view token) const = 0;
};

struct ProxyOptions {
  std::string listen_address = "127.0.0.1";  // a loopback address; anything else is refused
  uint16_t port = 0;                         // 0 = pick a free port
  std::string server_cert_pem;               // issued by the daemon's in-memory local CA
  SecretBytes server_key_pem;
  const LocalTokenValidator* tokens = nullptr;  // required; must outlive the Proxy
  // One JSON line per request; called on I/O threads, concurrently (must be thread-safe).
  std::function<void(const std::string& json_line)> audit;
  int threads = 2;  // 1..64 I/O threads

  // Tunables (defaults suit kubectl; tests shorten them).
  std::chrono::milliseconds client_header_timeout = std::chrono::seconds(60);  // TLS + request head
  std::chrono::milliseconds upstream_connect_timeout = std::chrono::seconds(15);  // TCP + TLS
  std::chrono::milliseconds response_header_timeout = std::chrono::seconds(120);
  size_t max_header_bytes = 64 * 1024;  // request head from the client / response head upstream
  size_t max_connections = 1024;        // client connections at once; more are closed at accept
  size_t max_idle_per_cluster = 64;     // pooled idle upstream connections per cluster
};

class Proxy {
 public:
  // Binds, loads the serving identity, starts the I/O threads. InvalidArgument for a non-loopback
  // address, a missing validator, an unusable certificate/key; Unavailable when the bind fails.
  static absl::StatusOr<std::unique_ptr<Proxy>> Start(ProxyOptions options);

  // Checks what SetUpstream would otherwise only discover on the next request: the URL (https
  // only), the CA bundle, the client certificate and key (matching), or the token source.
  static absl::Status CheckUpstream(const Upstream& upstream);

  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;
  ~Proxy();  // Stop()

  uint16_t port() const;

  // Adds or replaces cluster `cluster` (renewal). The cluster's pooled connections are dropped;
  // requests in flight finish on their old connection. An Upstream that fails CheckUpstream is
  // installed as "broken": its requests get 502 (fail closed) and a warning is logged.
  void SetUpstream(const std::string& cluster, std::shared_ptr<const Upstream> upstream);
  void RemoveUpstream(const std::string& cluster);

  // Stops accepting, closes every connection, joins the I/O threads. Idempotent.
  void Stop();

 private:
  class Impl;
  explicit Proxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kshield::proxy
