// HttpServer: a small HTTP/1.1 server for the admin endpoints (/healthz, /readyz, /metrics).
//
//   std::map<std::string, HttpHandler> routes = {
//       {"/healthz", HealthHandler()},
//       {"/readyz", HealthHandler([&] { return keys.Ready(); })},
//       {"/metrics", MetricsHandler()},
//   };
//   KSH_ASSIGN_OR_RETURN(auto server, HttpServer::Start("127.0.0.1:9102", std::move(routes)));
//   ...
//   server->Stop();  // or let it go out of scope
//
// Promises:
//  - GET and HEAD only (anything else: 405 with "Allow: GET, HEAD"); a path not in `routes`: 404;
//    the query string is stripped before the lookup.
//  - Everything the peer sends is untrusted: request headers are capped (431 and close), bodies are
//    capped (413 and close), malformed requests get 400 and close, and a request that is not
//    complete within the read timeout (slow client, idle keep-alive) has its connection closed.
//    Network errors only ever end the connection they happened on.
//  - Keep-alive per HTTP/1.1 (and HTTP/1.0 "Connection: keep-alive"); "Connection: close" honoured.
//  - At most `max_connections` connections at once; extra ones are closed right after accept.
//  - Every rejection is counted in Registry::Default() as
//    kshield_admin_http_rejected_total{reason=...}; every response as
//    kshield_admin_http_responses_total{code=...}.
//
// Handlers run on the server's I/O threads, so they should be quick and must not call Stop().
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace kshield::admin {

struct HttpResponse {
  int status = 200;  // 200..599; anything else is sent as 500. 204 and 304 are sent without body.
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// Called with the request path (no query string), e.g. "/metrics". Must be thread-safe when the
// server runs more than one thread.
using HttpHandler = std::function<HttpResponse(const std::string& target)>;

struct HttpServerOptions {
  int threads = 1;  // 1..64 I/O threads
  // Deadline for receiving one whole request (also how long an idle keep-alive connection lives)
  // and, separately, for sending one response.
  std::chrono::milliseconds io_timeout = std::chrono::seconds(10);
  size_t max_header_bytes = 8 * 1024;  // request line + headers
  size_t max_body_bytes = 16 * 1024;   // our routes take no body; this only bounds what we drain
  size_t max_connections = 128;
};

class HttpServer {
 public:
  // Binds `listen_addr` ("127.0.0.1:9102", "[::1]:9102"; port 0 picks a free port) and starts
  // serving. Errors: InvalidArgument for a malformed address or route table; for a bind failure an
  // error whose message names the address and the reason, e.g.
  // "admin http: cannot listen on 127.0.0.1:9102: address already in use".
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen_addr, std::map<std::string, HttpHandler> routes, int threads = 1);
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const std::string& listen_addr, std::map<std::string, HttpHandler> routes,
      const HttpServerOptions& options);

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  ~HttpServer();  // Calls Stop().

  // The bound port (the real one when started with port 0).
  int port() const { return port_; }
  // The bound address as "HOST:PORT" ("127.0.0.1:40123", "[::1]:40123").
  std::string address() const { return address_; }

  // Stops accepting, closes every connection and joins the I/O threads. Idempotent; safe to call
  // from any thread except the server's own (i.e. not from a handler).
  void Stop();

 private:
  class Impl;
  HttpServer(std::unique_ptr<Impl> impl, int port, std::string address);

  std::unique_ptr<Impl> impl_;
  const int port_;
  const std::string address_;
};

}  // namespace kshield::admin
