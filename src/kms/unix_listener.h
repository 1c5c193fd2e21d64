// UnixListener — a unix-socket listener that knows who is calling.
//
// gRPC does not expose the peer's SO_PEERCRED, so we accept connections ourselves, read the peer's
// uid / gid / pid, record them under the connection's fd, and hand the fd to the gRPC server
// (grpc::AddInsecureChannelFromFd). Handlers then ask PeerOf(context) and check the allow-list on
// every call (DESIGN.md §1: someone else on the host calling Decrypt).
//
// Socket path rules: "@name" is an abstract socket (no file). For a path, a stale *socket* file is
// removed at start (anything else at that path is an error, never deleted); the socket is created
// with the configured mode (default 0600) and optional owner / group; it is removed on Stop().
#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grpc {
class Server;
class ServerContextBase;
}  // namespace grpc

namespace kshield::kms {

struct PeerCred {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  pid_t pid = 0;
};

struct UnixSocketOptions {
  std::string path;  // "/run/x.sock" or "@abstract"
  mode_t mode = 0600;
  std::optional<uid_t> owner;
  std::optional<gid_t> group;
  int max_connections = 1024;
};

class UnixListener {
 public:
  ~UnixListener();
  // Binds and listens. Does not accept until Start().
  static absl::StatusOr<std::unique_ptr<UnixListener>> Bind(const UnixSocketOptions& options);
  // Starts the accept thread handing connections to `server` (must outlive the listener's Stop()).
  void Start(grpc::Server* server);
  // Stops accepting, closes the listening socket and removes the socket file. Idempotent.
  void Stop();

  // The credentials of the connection a call arrived on; nullopt if unknown (then refuse).
  std::optional<PeerCred> PeerOf(const grpc::ServerContextBase& context) const;
  // gRPC target a client uses to reach this socket ("unix:/path", "unix-abstract:name").
  std::string grpc_target() const;
  const std::string& path() const { return options_.path; }
  uint64_t accepted() const { return accepted_; }

 private:
  explicit UnixListener(UnixSocketOptions options) : options_(std::move(options)) {}
  void AcceptLoop(grpc::Server* server);

  UnixSocketOptions options_;
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  std::thread thread_;
  std::atomic<bool> stopped_{false};
  bool bound_ = false;  // we created the socket file (only then may Stop() remove it)
  std::atomic<uint64_t> accepted_{0};
  mutable std::mutex mu_;
  std::unordered_map<int, PeerCred> peers_;  // by fd; guarded by mu_
};

// Parses "fd:N" (the peer string gRPC gives connections added from an fd).
std::optional<int> ParseFdPeer(std::string_view peer);

// Allow-list of uids. Empty list = deny everyone.
class UidAllowList {
 public:
  UidAllowList() = default;
  explicit UidAllowList(std::vector<uid_t> uids) : uids_(std::move(uids)) {}
  bool Allows(uid_t uid) const;
  std::string ToString() const;
  // "0,1000,kube" — numbers or user names.
  static absl::StatusOr<UidAllowList> Parse(std::string_view list);

 private:
  std::vector<uid_t> uids_;
};

// uid from a number or user name; gid from a number or group name.
absl::StatusOr<uid_t> ResolveUser(std::string_view name_or_id);
absl::StatusOr<gid_t> ResolveGroup(std::string_view name_or_id);

}  // namespace kshield::kms
