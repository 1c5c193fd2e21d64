#include "admin/http_server.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/strand.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "metrics/registry.h"

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
// session run on its strand.
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

absl::Status BindError(const std::string& addr, std::string_view step,
                       const boost::system::error_code& ec) {
  const std::string message = absl::StrCat("admin http: cannot listen on ", addr, ": ",
                                           absl::string_view(step.data(), step.size()), ": ",
                                           absl::AsciiStrToLower(ec.message()));
  if (ec == net::error::address_in_use) return absl::UnavailableError(message);
  if (ec == net::error::access_denied) return absl::PermissionDeniedError(message);
  if (ec == boost::system::errc::address_not_available) return absl::InvalidArgumentError(message);
  return absl::InternalError(message);
}

}  // namespace

class HttpServer::Impl {
 public:
  explicit Impl(std::shared_ptr<Shared> shared)
      : shared_(std::move(shared)),
        ioc_(std::make_unique<net::io_context>(shared_->options.threads)),
        work_(net::make_work_guard(*ioc_)),
        acceptor_(std::in_place, *ioc_),
        backoff_(std::in_place, *ioc_) {}

  ~Impl() { Stop(); }

  // Opens, binds and listens; returns the bound endpoint.
  absl::StatusOr<tcp::endpoint> Listen(const std::string& addr, const ListenAddress& listen) {
    const tcp::endpoint endpoint(listen.ip, listen.port);
    boost::system::error_code ec;
    acceptor_->open(endpoint.protocol(), ec);
    if (ec) return BindError(addr, "socket", ec);
    // Lets a restarted server rebind while old connections sit in TIME_WAIT; on Linux it does not
    // let two live listeners share a port.
    acceptor_->set_option(net::socket_base::reuse_address(true), ec);
    if (ec) return BindError(addr, "setsockopt", ec);
    acceptor_->bind(endpoint, ec);
    if (ec) return BindError(addr, "bind", ec);
    acceptor_->listen(net::socket_base::max_listen_connections, ec);
    if (ec) return BindError(addr, "listen", ec);
    const tcp::endpoint bound = acceptor_->local_endpoint(ec);
    if (ec) return BindError(addr, "getsockname", ec);
    return bound;
  }

  void Run() {
    Accept();
    for (int i = 0; i < shared_->options.threads; ++i) {
      threads_.emplace_back([this] { RunLoop(); });
    }
  }

  void Stop() {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (ioc_ == nullptr) return;
    ioc_->stop();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    // Close the listener first (it must not outlive the io_context), then destroy the context:
    // that destroys every pending handler and with it every session and its socket.
    acceptor_.reset();
    backoff_.reset();
    work_.reset();
    ioc_.reset();
  }

 private:
  void RunLoop() {
    for (;;) {
      try {
        ioc_->run();
        return;  // Stopped.
      } catch (const std::exception& e) {
        // Only a session's handler can get here; that session is gone, the rest keep running.
        std::fprintf(stderr, "admin http: unexpected exception: %s\n", e.what());
      }
    }
  }

  void Accept() {
    acceptor_->async_accept(net::make_strand(*ioc_),
                            beast::bind_front_handler(&Impl::OnAccept, this));
  }

  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) return;  // Stopping.
    if (ec) {
      // EMFILE, ENOBUFS, ...: retry shortly rather than spin on a failing accept.
      backoff_->expires_after(std::chrono::milliseconds(50));
      backoff_->async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec) Accept();
      });
      return;
    }
    if (shared_->connections.load(std::memory_order_relaxed) >= shared_->options.max_connections) {
      AdminMetrics::Get().overloaded.Inc();
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      std::make_shared<Session>(std::move(socket), shared_)->Start();
    }
    Accept();
  }

  const std::shared_ptr<Shared> shared_;
  std::mutex stop_mu_;
  std::unique_ptr<net::io_context> ioc_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_;
  std::optional<tcp::acceptor> acceptor_;
  std::optional<net::steady_timer> backoff_;
  std::vector<std::thread> threads_;
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

  // Asio reports setup failures (no epoll fd, no threads) by throwing; convert at this edge.
  try {
    auto shared = std::make_shared<Shared>();
    shared->routes = std::move(routes);
    shared->options = options;
    auto impl = std::make_unique<Impl>(std::move(shared));
    absl::StatusOr<tcp::endpoint> bound = impl->Listen(listen_addr, *listen);
    if (!bound.ok()) return bound.status();
    impl->Run();
    return std::unique_ptr<HttpServer>(
        new HttpServer(std::move(impl), bound->port(), FormatEndpoint(*bound)));
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("admin http: cannot start on ", listen_addr, ": ", e.what()));
  }
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl, int port, std::string address)
    : impl_(std::move(impl)), port_(port), address_(std::move(address)) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() { impl_->Stop(); }

}  // namespace kshield::admin
