// TcpServer: the accept / thread / stop scaffolding shared by kshield's Boost.Asio servers (admin
// HTTP, kshield-relay, the kshield-kubectl proxy). It owns one io_context per I/O thread and a
// listener; each accepted socket is dealt round-robin to the next context and handed to OnAccept,
// which starts a session on it. A session and everything it creates on that context (timers,
// upstream sockets) run on that one thread for their whole life, so they need no strand.
//
//   TcpServerOptions o;
//   o.threads = 2;
//   o.max_connections = 128;
//   o.log_prefix = "admin_http";      // log events "admin_http.accept_failed", ".io_exception"
//   o.error_prefix = "admin http: ";  // "admin http: cannot listen on 127.0.0.1:9102: bind: ..."
//   KSH_ASSIGN_OR_RETURN(auto server, TcpServer::Listen(
//       endpoint, o,
//       [shared](tcp::socket s, net::io_context& ioc, size_t) { StartSession(std::move(s)); },
//       [shared] { return shared->connections.load(); },
//       [] { overloaded.Inc(); }));
//   KSH_RETURN_IF_ERROR(server->Run());
//   ...
//   server->Stop();  // or let it go out of scope
//
// Promises:
//  - Listen() binds or fails with a status naming the address and the step: address in use →
//    Unavailable, access denied → PermissionDenied, address not available → InvalidArgument,
//    anything else → Internal. Port 0 picks a free port (see port()).
//  - Accept errors (EMFILE, ENFILE, ENOBUFS, ...) are logged, counted (accept_errors()) and
//    retried after `accept_backoff`, never in a tight loop.
//  - A connection accepted while live_connections() >= max_connections is closed at once and
//    on_overload() is called; OnAccept is not.
//  - An exception escaping a handler is caught and logged on its thread; that thread keeps
//    running its context.
//  - Stop() closes the listener, stops every context, joins the threads and then destroys the
//    contexts, which destroys every pending handler and with it every session and its sockets.
//
// OnAccept, live_connections and on_overload run on context 0's thread (the listener's).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/steady_timer.hpp"

namespace kshield::net {

struct TcpServerOptions {
  int threads = 1;               // 1..64 I/O threads, one io_context each
  size_t max_connections = 128;  // >= 1; compared with live_connections() at each accept
  std::chrono::milliseconds accept_backoff{50};
  // Prefix of log events: "<log_prefix>.accept_failed", "<log_prefix>.io_exception".
  std::string log_prefix = "tcp_server";
  // Prefix of error messages, e.g. "admin http: "; may be empty.
  std::string error_prefix;
};

class TcpServer {
 public:
  // Called for each accepted connection (not over the limit). `socket`'s executor is `ioc`, the
  // `io_index`-th context (0..threads-1).
  using OnAccept = std::function<void(boost::asio::ip::tcp::socket socket,
                                      boost::asio::io_context& ioc, size_t io_index)>;

  // Creates the contexts and binds `endpoint` (SO_REUSEADDR, then listen). Accepting and the
  // threads start with Run(). InvalidArgument for bad options or missing callbacks.
  static absl::StatusOr<std::unique_ptr<TcpServer>> Listen(
      const boost::asio::ip::tcp::endpoint& endpoint, TcpServerOptions options,
      OnAccept on_accept, std::function<size_t()> live_connections,
      std::function<void()> on_overload);

  TcpServer(const TcpServer&) = delete;
  TcpServer& operator=(const TcpServer&) = delete;
  ~TcpServer();  // Calls Stop().

  // Starts accepting and the I/O threads. Call once; on error the server is stopped.
  [[nodiscard]] absl::Status Run();

  // The bound endpoint / port (the real one when bound to port 0).
  const boost::asio::ip::tcp::endpoint& endpoint() const { return endpoint_; }
  uint16_t port() const { return endpoint_.port(); }
  // How many I/O contexts (= threads), e.g. to size per-context pools.
  size_t io_count() const { return io_count_; }
  // Failed accepts so far (each one was followed by a backoff).
  uint64_t accept_errors() const { return accept_errors_.load(std::memory_order_relaxed); }

  // Stops as described above. `after_join`, if set, runs after the threads are joined and before
  // the contexts are destroyed: release there any I/O object of these contexts that is not owned
  // by a handler (e.g. a connection pool). Idempotent (later calls do nothing); must not be
  // called from an I/O thread (a handler).
  void Stop(const std::function<void()>& after_join = nullptr);

 private:
  using WorkGuard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;

  TcpServer(TcpServerOptions options, OnAccept on_accept,
            std::function<size_t()> live_connections, std::function<void()> on_overload);
  absl::Status Bind(const boost::asio::ip::tcp::endpoint& endpoint);
  void Accept();
  void RunLoop(boost::asio::io_context& ioc);

  const TcpServerOptions options_;
  const OnAccept on_accept_;
  const std::function<size_t()> live_connections_;
  const std::function<void()> on_overload_;
  const size_t io_count_;

  std::mutex stop_mu_;
  bool stopped_ = false;  // guarded by stop_mu_
  std::vector<std::unique_ptr<boost::asio::io_context>> iocs_;
  std::vector<WorkGuard> guards_;
  std::optional<boost::asio::ip::tcp::acceptor> acceptor_;  // on context 0
  std::optional<boost::asio::steady_timer> backoff_;        // on context 0
  size_t next_io_ = 0;  // used on context 0's thread only (and before Run)
  std::vector<std::thread> threads_;
  boost::asio::ip::tcp::endpoint endpoint_;
  std::atomic<uint64_t> accept_errors_{0};
};

}  // namespace kshield::net
