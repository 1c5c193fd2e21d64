// The kshield-kubectl control socket: how the CLI (exec plugin, `kubeconfig`, `login`, `import`,
// `status`) talks to its daemon.
//
// Transport: a unix stream socket, mode 0600, in a directory only the user can enter
// ($XDG_RUNTIME_DIR, or /tmp/kshield-kubectl-<uid>/ made 0700). Both ends check the other with
// SO_PEERCRED: the daemon serves only its own uid (others get one refusal line and are logged and
// counted); the client talks only to a daemon of its own uid (a socket planted by someone else
// never receives an imported key or hands out a token).
//
// Protocol (private to this binary): one request per connection, one JSON object on one line,
// answered by one JSON object on one line:
//   → {"op": "token", "cluster": "prod"}
//   ← {"ok": true, "token": "...", "expires": "2025-01-01T10:00:00Z"}
//   ← {"ok": false, "code": "NOT_FOUND", "error": "unknown cluster \"x\""}
// Requests larger than max_request_bytes, not JSON, or not an object are refused with an error
// line; a peer that does not finish its request within io_timeout is dropped.
//
//   KSH_ASSIGN_OR_RETURN(auto server, ControlServer::Start({.path = p}, handler));
//   KSH_ASSIGN_OR_RETURN(nlohmann::json reply, CallControl(p, {{"op", "status"}}));
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace kshield::kubectl {

// Handles one request object; returns the reply fields. Returning an error status sends
// {"ok": false, "code": ..., "error": message}; an OK reply gets "ok": true added.
using ControlHandler = std::function<absl::StatusOr<nlohmann::json>(const nlohmann::json&)>;

struct ControlServerOptions {
  std::string path;
  size_t max_request_bytes = 1 << 20;
  absl::Duration io_timeout = absl::Seconds(10);
  int max_connections = 16;
};

class ControlServer {
 public:
  struct Counters {
    uint64_t served = 0, refused_uid = 0, oversized = 0, malformed = 0, timed_out = 0,
             too_many = 0;
  };

  // Prepares the directory (see PrepareSocketDirectory), removes a stale socket (refuses a live
  // one: another daemon is running), binds, chmods 0600 and starts accepting.
  static absl::StatusOr<std::unique_ptr<ControlServer>> Start(ControlServerOptions options,
                                                              ControlHandler handler);
  ~ControlServer();  // Stop()
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Stops accepting, ends open connections, joins every thread, unlinks the socket. Idempotent.
  void Stop();
  const std::string& path() const { return options_.path; }
  Counters counters() const;

 private:
  ControlServer(ControlServerOptions options, ControlHandler handler, int listen_fd, int wake_fd);
  void AcceptLoop();
  void Serve(int fd);
  void ReapFinished();

  struct Worker {
    std::thread thread;
    int fd = -1;
    std::atomic<bool> done{false};
  };

  const ControlServerOptions options_;
  const ControlHandler handler_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: Stop() wakes the accept loop
  std::thread accept_thread_;
  std::mutex mu_;
  std::list<Worker> workers_;  // guarded by mu_
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> served_{0}, refused_uid_{0}, oversized_{0}, malformed_{0},
      timed_out_{0}, too_many_{0};
};

// Makes sure the socket's directory is private: created 0700 when missing; an existing directory
// must belong to this uid (or be root's sticky /tmp-like directory when `path` sits directly in
// it) — a directory another user controls is refused, since they could swap the socket.
absl::Status PrepareSocketDirectory(const std::string& socket_path);

// One request/response exchange with the daemon at `path`. Errors: Unavailable when no daemon is
// listening (message says how to start one), PermissionDenied when the socket belongs to another
// uid, the daemon's own error (its code and message) when it refused the request.
absl::StatusOr<nlohmann::json> CallControl(const std::string& path, const nlohmann::json& request,
                                           absl::Duration timeout = absl::Seconds(30));

// Overwrites every string inside `j` with zeros before it is freed (best effort: the JSON parser
// and the socket buffers have held copies).
void ScrubJson(nlohmann::json* j);

// "OK", "NOT_FOUND", ... and back (unknown → UNKNOWN).
std::string StatusCodeName(absl::StatusCode code);
absl::StatusCode StatusCodeFromName(std::string_view name);

}  // namespace kshield::kubectl
