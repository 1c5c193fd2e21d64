#include "net/tcp_server.h"

#include <exception>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace kshield::net {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr int kMaxThreads = 64;

std::string FormatEndpoint(const tcp::endpoint& endpoint) {
  const std::string ip = endpoint.address().to_string();
  return endpoint.address().is_v6() ? absl::StrCat("[", ip, "]:", endpoint.port())
                                    : absl::StrCat(ip, ":", endpoint.port());
}

absl::Status BindError(const std::string& prefix, const tcp::endpoint& endpoint,
                       std::string_view step, const boost::system::error_code& ec) {
  const std::string message = absl::StrCat(
      prefix, "cannot listen on ", FormatEndpoint(endpoint), ": ",
      absl::string_view(step.data(), step.size()), ": ", absl::AsciiStrToLower(ec.message()));
  if (ec == asio::error::address_in_use) return absl::UnavailableError(message);
  if (ec == asio::error::access_denied) return absl::PermissionDeniedError(message);
  if (ec == boost::system::errc::address_not_available) return absl::InvalidArgumentError(message);
  return absl::InternalError(message);
}

}  // namespace

TcpServer::TcpServer(TcpServerOptions options, OnAccept on_accept,
                     std::function<size_t()> live_connections, std::function<void()> on_overload)
    : options_(std::move(options)),
      on_accept_(std::move(on_accept)),
      live_connections_(std::move(live_connections)),
      on_overload_(std::move(on_overload)),
      io_count_(static_cast<size_t>(options_.threads)) {}

absl::StatusOr<std::unique_ptr<TcpServer>> TcpServer::Listen(
    const tcp::endpoint& endpoint, TcpServerOptions options, OnAccept on_accept,
    std::function<size_t()> live_connections, std::function<void()> on_overload) {
  if (options.threads < 1 || options.threads > kMaxThreads) {
    return absl::InvalidArgumentError(absl::StrCat(options.error_prefix, "threads must be 1..",
                                                   kMaxThreads, ", got ", options.threads));
  }
  if (options.max_connections == 0 || options.accept_backoff <= std::chrono::milliseconds(0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.error_prefix, "max_connections and accept_backoff must be positive"));
  }
  if (on_accept == nullptr || live_connections == nullptr || on_overload == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.error_prefix, "tcp server needs all three callbacks"));
  }
  const std::string prefix = options.error_prefix;
  // Asio reports setup failures (no epoll fd, no memory) by throwing; convert at this edge.
  try {
    std::unique_ptr<TcpServer> server(new TcpServer(std::move(options), std::move(on_accept),
                                                    std::move(live_connections),
                                                    std::move(on_overload)));
    for (size_t i = 0; i < server->io_count_; ++i) {
      server->iocs_.push_back(std::make_unique<asio::io_context>(1));
      server->guards_.emplace_back(server->iocs_.back()->get_executor());
    }
    server->acceptor_.emplace(*server->iocs_[0]);
    server->backoff_.emplace(*server->iocs_[0]);
    absl::Status bound = server->Bind(endpoint);
    if (!bound.ok()) return bound;
    return server;
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat(prefix, "cannot start on ", FormatEndpoint(endpoint), ": ", e.what()));
  }
}

absl::Status TcpServer::Bind(const tcp::endpoint& endpoint) {
  const std::string& prefix = options_.error_prefix;
  boost::system::error_code ec;
  acceptor_->open(endpoint.protocol(), ec);
  if (ec) return BindError(prefix, endpoint, "socket", ec);
  // Lets a restarted server rebind while old connections sit in TIME_WAIT; on Linux it does not
  // let two live listeners share a port.
  acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return BindError(prefix, endpoint, "setsockopt", ec);
  acceptor_->bind(endpoint, ec);
  if (ec) return BindError(prefix, endpoint, "bind", ec);
  acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return BindError(prefix, endpoint, "listen", ec);
  endpoint_ = acceptor_->local_endpoint(ec);
  if (ec) return BindError(prefix, endpoint, "getsockname", ec);
  return absl::OkStatus();
}

TcpServer::~TcpServer() { Stop(); }

absl::Status TcpServer::Run() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    if (stopped_ || !threads_.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat(options_.error_prefix, "tcp server already running or stopped"));
    }
    try {
      Accept();  // Queued on context 0; runs once its thread starts.
      for (auto& ioc : iocs_) {
        threads_.emplace_back([this, ioc = ioc.get()] { RunLoop(*ioc); });
      }
      return absl::OkStatus();
    } catch (const std::exception& e) {
      // std::thread throws std::system_error when no thread can be created.
      log::Error(options_.log_prefix + ".start_failed", {{"what", e.what()}});
    }
  }
  Stop();
  return absl::ResourceExhaustedError(
      absl::StrCat(options_.error_prefix, "cannot start I/O threads"));
}

void TcpServer::RunLoop(asio::io_context& ioc) {
  for (;;) {
    try {
      ioc.run();
      return;  // Stopped.
    } catch (const std::exception& e) {
      // Only a session's handler can get here; that session is gone, the rest keep running.
      log::Error(options_.log_prefix + ".io_exception", {{"what", e.what()}});
    } catch (...) {
      log::Error(options_.log_prefix + ".io_exception", {});
    }
  }
}

void TcpServer::Accept() {
  const size_t index = next_io_;
  next_io_ = (next_io_ + 1) % iocs_.size();
  asio::io_context& ioc = *iocs_[index];
  // The accepted socket is bound to `ioc`: it and the session built on it live on that context.
  acceptor_->async_accept(ioc, [this, &ioc, index](boost::system::error_code ec,
                                                   tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;  // Stopping.
    if (ec) {
      // EMFILE, ENFILE, ENOBUFS, ...: retry shortly rather than spin on a failing accept. The
      // context chosen for this attempt is skipped; the next one gets the next connection.
      accept_errors_.fetch_add(1, std::memory_order_relaxed);
      log::Warn(options_.log_prefix + ".accept_failed", {{"reason", ec.message()}});
      backoff_->expires_after(options_.accept_backoff);
      backoff_->async_wait([this](boost::system::error_code wait_ec) {
        if (!wait_ec) Accept();
      });
      return;
    }
    if (live_connections_() >= options_.max_connections) {
      boost::system::error_code ignored;
      socket.close(ignored);
      on_overload_();
    } else {
      // An exception here (bad_alloc making the session) would otherwise end accepting for good.
      try {
        on_accept_(std::move(socket), ioc, index);
      } catch (const std::exception& e) {
        log::Error(options_.log_prefix + ".io_exception", {{"what", e.what()}});
      }
    }
    Accept();
  });
}

void TcpServer::Stop(const std::function<void()>& after_join) {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  guards_.clear();
  for (auto& ioc : iocs_) ioc->stop();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  // No handler runs any more. Close the listener and its timer first (they must not outlive
  // their context), let the owner drop what it holds on the contexts, then destroy the contexts:
  // that destroys every pending handler and with it every session and its socket.
  acceptor_.reset();
  backoff_.reset();
  if (after_join) after_join();
  iocs_.clear();
}

}  // namespace kshield::net
