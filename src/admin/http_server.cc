#include "admin/http_server.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "metrics/registry.h"
#include "net/tcp_server.h"

namespace kshield::admin {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr int kMaxThreads = 64;

// Process-wide counters, shared by every HttpServer in the process (normally one). Registered on
// first use so that starting several servers (tests) never registers twice.
struct AdminMetrics {
  metrics::CounterFamily& responses;
  metrics::Counter& bad_request;
  metrics::Counter& header_too_large;
  metrics::Counter& body_too_large;
  metrics::Counter& method_not_allowed;
  metrics::Counter& not_found;
  metrics::Counter& timeout;
  metrics::Counter& overloaded;
  metrics::Counter& handler_error;

  static const AdminMetrics& Get() {
    static const AdminMetrics* const m = [] {
      auto& registry = metrics::Registry::Default();
      auto& rejected =
          registry.Counter("kshield_admin_http_rejected_total",
                           "Admin HTTP requests or connections refused, by reason.", {"reason"});
      return new AdminMetrics{
          registry.Counter("kshield_admin_http_responses_total",
                           "Admin HTTP responses sent, by status code.", {"code"}),
          rejected.WithLabels({"bad_request"}),
          rejected.WithLabels({"header_too_large"}),
          rejected.WithLabels({"body_too_large"}),
          rejected.WithLabels({"method_not_allowed"}),
          rejected.WithLabels({"not_found"}),
          rejected.WithLabels({"timeout"}),
          rejected.WithLabels({"overloaded"}),
          rejected.WithLabels({"handler_error"}),
      };
    }();
    return *m;
  }
};

// State every connection needs; shared so it outlives the last session whatever the order of
// teardown.
struct Shared {
  std::map<std::string, HttpHandler> routes;
  HttpServerOptions options;
  std::atomic<size_t> connections{0};
};

std::string ToString(beast::string_view s) { return std::string(s.data(), s.size()); }

bool IsHttpParseError(const beast::error_code& ec) {
  return &ec.category() == &http::make_error_code(http::error::bad_method).category();
}

// One TCP connection: read a request, answer it, repeat while keep-alive. All handlers of one
// session run on its io_context, which one thread runs (TcpServer), so they never overlap.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<Shared> shared)
      : stream_(std::move(socket)), shared_(std::move(shared)) {
    shared_->connections.fetch_add(1, std::memory_order_relaxed);
  }
  ~Session() { shared_->connections.fetch_sub(1, std::memory_order_relaxed); }

  void Start() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::ReadRequest, shared_from_this()));
  }

 private:
  void ReadRequest() {
    const HttpServerOptions& options = shared_->options;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
    parser_->body_limit(static_cast<std::uint64_t>(options.max_body_bytes));
    // One deadline for the whole request, so trickling bytes cannot extend it.
    stream_.expires_after(options.io_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t /*bytes*/) {
    const AdminMetrics& m = AdminMetrics::Get();
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted) return Close();
    if (ec == beast::error::timeout) {
      // The stream closed the socket already. An idle keep-alive connection is not an error, but
      // a half-received request is.
      if (parser_->got_some()) m.timeout.Inc();
      return;
    }
    if (ec == http::error::header_limit) {
      m.header_too_large.Inc();
      return SendError(431, "request header too large\n");
    }
    if (ec == http::error::body_limit) {
      m.body_too_large.Inc();
      return SendError(413, "request body too large\n");
    }
    if (ec == http::error::partial_message) return Close();  // Peer went away mid-request.
    if (IsHttpParseError(ec)) {
      m.bad_request.Inc();
      return SendError(400, "bad request\n");
    }
    if (ec) return Close();  // Connection reset and friends.
    Respond(parser_->get());
  }

  void Respond(const http::request<http::string_body>& req) {
    const AdminMetrics& m = AdminMetrics::Get();
    const bool head = req.method() == http::verb::head;
    HttpResponse out;
    if (req.method() != http::verb::get && !head) {
      m.method_not_allowed.Inc();
      out = {405, "text/plain; charset=utf-8", "method not allowed\n"};
    } else {
      std::string path = ToString(req.target());
      path = path.substr(0, path.find_first_of("?#"));
      auto route = shared_->routes.find(path);
      if (route == shared_->routes.end()) {
        m.not_found.Inc();
        out = {404, "text/plain; charset=utf-8", "not found\n"};
      } else {
        out = CallHandler(route->second, path);
      }
    }

    int status = out.status;
    if (status < 200 || status > 599) {
      m.handler_error.Inc();
      status = 500;
      out.body = "internal error\n";
    }
    res_ = {};
    res_.version(req.version());
    res_.result(static_cast<unsigned>(status));
    res_.set(http::field::server, "kshield");
    res_.set(http::field::cache_control, "no-store");
    res_.set("X-Content-Type-Options", "nosniff");
    if (status == 405) res_.set(http::field::allow, "GET, HEAD");
    res_.keep_alive(req.keep_alive());
    if (status != 204 && status != 304) {
      res_.set(http::field::content_type, out.content_type);
      res_.content_length(out.body.size());  // For HEAD too: the size GET would send.
      if (!head) res_.body() = std::move(out.body);
    }
    Send(status);
  }

  static HttpResponse CallHandler(const HttpHandler& handler, const std::string& path) {
    // Our handlers do not throw, but a std::function can (bad_alloc); keep the connection's
    // failure to this connection.
    try {
      return handler(path);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "admin http: handler for %s failed: %s\n", path.c_str(), e.what());
    } catch (...) {
      std::fprintf(stderr, "admin http: handler for %s failed\n", path.c_str());
    }
    AdminMetrics::Get().handler_error.Inc();
    return {500, "text/plain; charset=utf-8", "internal error\n"};
  }

  // Answers a request we could not parse, then closes the connection.
  void SendError(int status, std::string body) {
    res_ = {};
    res_.version(11);
    res_.result(static_cast<unsigned>(status));
    res_.set(http::field::server, "kshield");
    res_.set(http::field::content_type, "text/plain; charset=utf-8");
    res_.keep_alive(false);
    res_.body() = std::move(body);
    res_.content_length(res_.body().size());
    Send(status);
  }

  void Send(int status) {
    AdminMetrics::Get().responses.WithLabels({std::to_string(status)}).Inc();
    stream_.expires_after(shared_->options.io_timeout);
    http::async_write(
        stream_, res_,
        beast::bind_front_handler(&Session::OnWrite, shared_from_this(), res_.need_eof()));
  }

  void OnWrite(bool close, beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return;  // Write failed or timed out: the connection is done.
    if (close) return Close();
    ReadRequest();
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    // The socket itself closes when the last handler lets go of this session.
  }

  beast::tcp_stream stream_;
  const std::shared_ptr<Shared> shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
};

struct ListenAddress {
  net::ip::address ip;
  unsigned short port = 0;
};

absl::StatusOr<ListenAddress> ParseListenAddress(const std::string& addr) {
  const auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "admin http: bad listen address \"", addr,
        "\": ", absl::string_view(why.data(), why.size()), " (want IPV4:PORT or [IPV6]:PORT)"));
  };
  std::string host;
  std::string port;
  if (!addr.empty() && addr[0] == '[') {
    const size_t close = addr.find("]:");
    if (close == std::string::npos) return invalid("missing \"]:\"");
    host = addr.substr(1, close - 1);
    port = addr.substr(close + 2);
  } else {
    const size_t colon = addr.rfind(':');
    if (colon == std::string::npos) return invalid("missing port");
    host = addr.substr(0, colon);
    port = addr.substr(colon + 1);
    if (host.find(':') != std::string::npos) return invalid("IPv6 addresses need brackets");
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535) {
    return invalid("port must be a number from 0 to 65535");
  }
  ListenAddress out;
  boost::system::error_code ec;
  out.ip = net::ip::make_address(host, ec);
  if (ec || host.empty()) return invalid("host is not an IP address");
  if (out.ip.is_v6() != (addr[0] == '[')) return invalid("IPv6 addresses need brackets");
  out.port = static_cast<unsigned short>(std::stoul(port));
  return out;
}

std::string FormatEndpoint(const tcp::endpoint& endpoint) {
  const std::string ip = endpoint.address().to_string();
  return endpoint.address().is_v6() ? absl::StrCat("[", ip, "]:", endpoint.port())
                                    : absl::StrCat(ip, ":", endpoint.port());
}

}  // namespace

// The listener, the I/O threads and their contexts live in TcpServer: one io_context per thread,
// connections dealt round-robin. A session's handlers all run on its context's single thread, so
// a session needs no strand.
class HttpServer::Impl {
 public:
  explicit Impl(std::unique_ptr<kshield::net::TcpServer> server) : server_(std::move(server)) {}
  ~Impl() { Stop(); }

  void Stop() { server_->Stop(); }

 private:
  const std::unique_ptr<kshield::net::TcpServer> server_;
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen_addr, std::map<std::string, HttpHandler> routes, int threads) {
  HttpServerOptions options;
  options.threads = threads;
  return Start(listen_addr, std::move(routes), options);
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const std::string& listen_addr, std::map<std::string, HttpHandler> routes,
    const HttpServerOptions& options) {
  absl::StatusOr<ListenAddress> listen = ParseListenAddress(listen_addr);
  if (!listen.ok()) return listen.status();
  for (const auto& [path, handler] : routes) {
    if (path.empty() || path[0] != '/' || path.find_first_of("?#") != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("admin http: route \"", path, "\" must be a path starting with /"));
    }
    if (handler == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("admin http: route ", path, " has no handler"));
    }
  }
  if (options.threads < 1 || options.threads > kMaxThreads) {
    return absl::InvalidArgumentError(
        absl::StrCat("admin http: threads must be 1..", kMaxThreads, ", got ", options.threads));
  }
  if (options.io_timeout <= std::chrono::milliseconds(0) || options.max_header_bytes == 0 ||
      options.max_connections == 0) {
    return absl::InvalidArgumentError("admin http: timeouts and limits must be positive");
  }
  AdminMetrics::Get();  // Register the counters now, not on the first request.

  auto shared = std::make_shared<Shared>();
  shared->routes = std::move(routes);
  shared->options = options;
  kshield::net::TcpServerOptions server_options;
  server_options.threads = options.threads;
  server_options.max_connections = options.max_connections;
  server_options.accept_backoff = std::chrono::milliseconds(50);
  server_options.log_prefix = "admin_http";
  server_options.error_prefix = "admin http: ";
  absl::StatusOr<std::unique_ptr<kshield::net::TcpServer>> server = kshield::net::TcpServer::Listen(
      tcp::endpoint(listen->ip, listen->port), std::move(server_options),
      [shared](tcp::socket socket, net::io_context& /*ioc*/, size_t /*io_index*/) {
        std::make_shared<Session>(std::move(socket), shared)->Start();
      },
      [shared] { return shared->connections.load(std::memory_order_relaxed); },
      [] { AdminMetrics::Get().overloaded.Inc(); });
  if (!server.ok()) return server.status();
  absl::Status running = (*server)->Run();
  if (!running.ok()) return running;
  const tcp::endpoint bound = (*server)->endpoint();
  return std::unique_ptr<HttpServer>(new HttpServer(std::make_unique<Impl>(std::move(*server)),
                                                    bound.port(), FormatEndpoint(bound)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl, int port, std::string address)
    : impl_(std::move(impl)), port_(port), address_(std::move(address)) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() { impl_->Stop(); }

}  // namespace kshield::admin
