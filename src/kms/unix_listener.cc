#include "kms/unix_listener.h"

#include <fcntl.h>
#include <grp.h>
#include <grpcpp/server.h>
#include <grpcpp/server_context.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"

namespace kshield::kms {
namespace {

bool IsAbstract(const std::string& path) { return !path.empty() && path[0] == '@'; }

absl::StatusOr<std::pair<sockaddr_un, socklen_t>> MakeAddr(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string name = path;
  if (IsAbstract(path)) name[0] = '\0';
  if (name.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path ", path, " is longer than ", sizeof(addr.sun_path) - 1,
                     " bytes"));
  }
  memcpy(addr.sun_path, name.data(), name.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() +
                                         (IsAbstract(path) ? 0 : 1));
  return std::make_pair(addr, len);
}

}  // namespace

std::optional<int> ParseFdPeer(std::string_view peer_in) {
  absl::string_view peer = AV(peer_in);
  if (!absl::ConsumePrefix(&peer, "fd:")) return std::nullopt;
  int fd = -1;
  if (!absl::SimpleAtoi(peer, &fd) || fd < 0) return std::nullopt;
  return fd;
}

absl::StatusOr<std::unique_ptr<UnixListener>> UnixListener::Bind(
    const UnixSocketOptions& options) {
  if (options.path.empty() || options.path == "@") {
    return absl::InvalidArgumentError("empty socket path");
  }
  auto addr = MakeAddr(options.path);
  if (!addr.ok()) return addr.status();
  std::unique_ptr<UnixListener> l(new UnixListener(options));

  if (!IsAbstract(options.path)) {
    struct stat st;
    if (lstat(options.path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        return absl::FailedPreconditionError(absl::StrCat(
            options.path, " exists and is not a socket; refusing to replace it"));
      }
      // A stale socket from a previous run. If something still answers on it, another instance is
      // running: refuse rather than steal its socket.
      int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (probe >= 0) {
        int rc = connect(probe, reinterpret_cast<const sockaddr*>(&addr->first), addr->second);
        close(probe);
        if (rc == 0) {
          return absl::AlreadyExistsError(
              absl::StrCat("another process is serving on ", options.path));
        }
      }
      if (unlink(options.path.c_str()) != 0) {
        return absl::InternalError(
            absl::StrCat("removing stale socket ", options.path, ": ", ErrnoString(errno)));
      }
      log::Info("socket.stale_removed", {{"path", options.path}});
    }
    std::string dir = options.path.substr(0, options.path.rfind('/'));
    if (options.path.find('/') != std::string::npos && !dir.empty()) {
      auto s = MakeDirs(dir, 0750);
      if (!s.ok()) return s;
    }
  }

  l->listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (l->listen_fd_ < 0) return absl::InternalError(absl::StrCat("socket: ", ErrnoString(errno)));
  // Create the file with the final mode: no window in which it is wider than configured.
  mode_t old_umask = umask(0777 & ~options.mode);
  int rc = bind(l->listen_fd_, reinterpret_cast<const sockaddr*>(&addr->first), addr->second);
  int err = errno;
  umask(old_umask);
  if (rc != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("binding ", options.path, ": ", ErrnoString(err)));
  }
  l->bound_ = true;
  if (!IsAbstract(options.path)) {
    if (chmod(options.path.c_str(), options.mode) != 0) {
      return absl::InternalError(absl::StrCat("chmod ", options.path, ": ", ErrnoString(errno)));
    }
    if (options.owner.has_value() || options.group.has_value()) {
      uid_t u = options.owner.value_or(static_cast<uid_t>(-1));
      gid_t g = options.group.value_or(static_cast<gid_t>(-1));
      if (chown(options.path.c_str(), u, g) != 0) {
        return absl::FailedPreconditionError(
            absl::StrCat("chown ", options.path, ": ", ErrnoString(errno)));
      }
    }
  }
  if (listen(l->listen_fd_, 512) != 0) {
    return absl::InternalError(absl::StrCat("listen: ", ErrnoString(errno)));
  }
  if (pipe2(l->wake_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", ErrnoString(errno)));
  }
  return l;
}

void UnixListener::Start(grpc::Server* server) {
  thread_ = std::thread([this, server] { AcceptLoop(server); });
}

void UnixListener::AcceptLoop(grpc::Server* server) {
  while (!stopped_) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    int n = poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      log::Error("socket.poll_failed", {{"path", options_.path}, {"error", ErrnoString(errno)}});
      return;
    }
    if (fds[1].revents != 0 || stopped_) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) continue;
      // EMFILE / ENFILE: back off briefly instead of spinning.
      log::Warn("socket.accept_failed", {{"path", options_.path}, {"error", ErrnoString(errno)}});
      poll(nullptr, 0, 50);
      continue;
    }
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      log::Warn("socket.peercred_failed", {{"error", ErrnoString(errno)}});
      close(fd);
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      // Prune entries whose connections gRPC has closed (fcntl fails on a closed fd; a reused fd
      // number is overwritten below anyway).
      if (static_cast<int>(peers_.size()) >= options_.max_connections) {
        for (auto it = peers_.begin(); it != peers_.end();) {
          if (fcntl(it->first, F_GETFD) < 0) {
            it = peers_.erase(it);
          } else {
            ++it;
          }
        }
      }
      if (static_cast<int>(peers_.size()) >= options_.max_connections) {
        log::Warn("socket.too_many_connections",
                  {{"path", options_.path}, {"max", options_.max_connections}});
        close(fd);
        continue;
      }
      peers_[fd] = PeerCred{cred.uid, cred.gid, cred.pid};
    }
    ++accepted_;
    grpc::AddInsecureChannelFromFd(server, fd);
  }
}

void UnixListener::Stop() {
  if (stopped_.exchange(true)) return;
  if (wake_pipe_[1] >= 0) {
    char c = 1;
    ssize_t unused = write(wake_pipe_[1], &c, 1);
    (void)unused;
  }
  if (thread_.joinable()) thread_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
  if (bound_ && !IsAbstract(options_.path)) unlink(options_.path.c_str());
}

UnixListener::~UnixListener() {
  Stop();
  for (int& fd : wake_pipe_) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
}

std::optional<PeerCred> UnixListener::PeerOf(const grpc::ServerContextBase& context) const {
  auto fd = ParseFdPeer(context.peer());
  if (!fd.has_value()) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = peers_.find(*fd);
  if (it == peers_.end()) return std::nullopt;
  return it->second;
}

std::string UnixListener::grpc_target() const {
  if (IsAbstract(options_.path)) return "unix-abstract:" + options_.path.substr(1);
  return "unix:" + options_.path;
}

bool UidAllowList::Allows(uid_t uid) const {
  return std::find(uids_.begin(), uids_.end(), uid) != uids_.end();
}

std::string UidAllowList::ToString() const { return absl::StrJoin(uids_, ","); }

absl::StatusOr<UidAllowList> UidAllowList::Parse(std::string_view list) {
  std::vector<uid_t> uids;
  for (absl::string_view item : absl::StrSplit(AV(list), ',', absl::SkipWhitespace())) {
    auto uid = ResolveUser(SV(absl::StripAsciiWhitespace(item)));
    if (!uid.ok()) return uid.status();
    uids.push_back(*uid);
  }
  if (uids.empty()) return absl::InvalidArgumentError("empty uid allow-list");
  return UidAllowList(std::move(uids));
}

absl::StatusOr<uid_t> ResolveUser(std::string_view s) {
  uint32_t id = 0;
  if (absl::SimpleAtoi(AV(s), &id)) return static_cast<uid_t>(id);
  std::string name(s);
  passwd pw;
  passwd* result = nullptr;
  char buf[4096];
  if (getpwnam_r(name.c_str(), &pw, buf, sizeof(buf), &result) != 0 || result == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown user \"", name, "\""));
  }
  return pw.pw_uid;
}

absl::StatusOr<gid_t> ResolveGroup(std::string_view s) {
  uint32_t id = 0;
  if (absl::SimpleAtoi(AV(s), &id)) return static_cast<gid_t>(id);
  std::string name(s);
  group gr;
  group* result = nullptr;
  char buf[4096];
  if (getgrnam_r(name.c_str(), &gr, buf, sizeof(buf), &result) != 0 || result == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown group \"", name, "\""));
  }
  return gr.gr_gid;
}

}  // namespace kshield::kms
