#include "proxy/control.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"

namespace kshield::kubectl {
namespace {

absl::StatusOr<std::pair<sockaddr_un, socklen_t>> MakeAddr(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "control socket path \"", path, "\" is empty or longer than ", sizeof(addr.sun_path) - 1,
        " bytes"));
  }
  memcpy(addr.sun_path, path.data(), path.size());
  return std::make_pair(addr, static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
                                                      path.size() + 1));
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

int64_t MillisLeft(absl::Time deadline) {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return std::max<int64_t>(1, absl::ToInt64Milliseconds(left));
}

// Reads one '\n'-terminated line (or up to EOF) of at most `max` bytes before `deadline`.
// `wake_fd` (≥ 0) aborts the wait when it becomes readable.
enum class ReadResult { kOk, kTooLarge, kTimeout, kError };
ReadResult ReadLine(int fd, size_t max, absl::Time deadline, int wake_fd, std::string* out) {
  char buf[16384];
  while (true) {
    size_t nl = out->find('\n');
    if (nl != std::string::npos) {
      OPENSSL_cleanse(out->data() + nl, out->size() - nl);
      out->resize(nl);
      return out->size() > max ? ReadResult::kTooLarge : ReadResult::kOk;
    }
    if (out->size() > max) return ReadResult::kTooLarge;
    pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    const int64_t ms = MillisLeft(deadline);
    if (ms == 0) return ReadResult::kTimeout;
    int r = poll(fds, wake_fd >= 0 ? 2 : 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ReadResult::kError;
    }
    if (r == 0) return ReadResult::kTimeout;
    if (wake_fd >= 0 && (fds[1].revents & POLLIN)) return ReadResult::kError;
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ReadResult::kError;
    }
    if (n == 0) return out->empty() ? ReadResult::kError : ReadResult::kOk;  // EOF ends the line
    out->append(buf, static_cast<size_t>(n));
    OPENSSL_cleanse(buf, static_cast<size_t>(n));
  }
}

absl::Status WriteWithDeadline(int fd, std::string_view data, absl::Time deadline) {
  while (!data.empty()) {
    pollfd p{fd, POLLOUT, 0};
    const int64_t ms = MillisLeft(deadline);
    if (ms == 0) return absl::DeadlineExceededError("control socket: write timed out");
    int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return absl::DeadlineExceededError("control socket: write timed out");
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return absl::UnavailableError(absl::StrCat("control socket: ", ErrnoString(errno)));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string ErrorLine(const absl::Status& s) {
  nlohmann::json j = {{"ok", false},
                      {"code", StatusCodeName(s.code())},
                      {"error", std::string(s.message())}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

void ScrubString(std::string* s) {
  if (!s->empty()) OPENSSL_cleanse(s->data(), s->size());
}

}  // namespace

std::string StatusCodeName(absl::StatusCode code) {
  std::string s = absl::StatusCodeToString(code);
  return s;
}

absl::StatusCode StatusCodeFromName(std::string_view name) {
  for (int c = 0; c <= 16; ++c) {
    if (absl::StatusCodeToString(static_cast<absl::StatusCode>(c)) == AV(name)) {
      return static_cast<absl::StatusCode>(c);
    }
  }
  return absl::StatusCode::kUnknown;
}

void ScrubJson(nlohmann::json* j) {
  if (j->is_string()) {
    ScrubString(j->get_ptr<std::string*>());
  } else if (j->is_structured()) {
    for (auto& item : *j) ScrubJson(&item);
  }
}

absl::Status PrepareSocketDirectory(const std::string& socket_path) {
  const std::string dir = Dirname(socket_path);
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return absl::FailedPreconditionError(
          absl::StrCat("control socket directory ", dir, ": ", ErrnoString(errno)));
    }
    KSH_RETURN_IF_ERROR(MakeDirs(dir, 0700));
    if (lstat(dir.c_str(), &st) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("control socket directory ", dir, ": ", ErrnoString(errno)));
    }
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("control socket directory ", dir, " is not a directory (or is a symlink)"));
  }
  if (st.st_uid == geteuid()) {
    if ((st.st_mode & 022) != 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "control socket directory %s has mode %04o; others could replace the socket "
          "(chmod 700)",
          dir, st.st_mode & 07777));
    }
    return absl::OkStatus();
  }
  // Root's sticky, world-writable directory (/tmp): others cannot remove or rename our socket.
  if (st.st_uid == 0 && (st.st_mode & S_ISVTX) != 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrFormat(
      "control socket directory %s belongs to uid %d, not to this user (uid %d)", dir,
      st.st_uid, geteuid()));
}

absl::StatusOr<std::unique_ptr<ControlServer>> ControlServer::Start(ControlServerOptions options,
                                                                    ControlHandler handler) {
  KSH_ASSIGN_OR_RETURN(auto addr, MakeAddr(options.path));
  KSH_RETURN_IF_ERROR(PrepareSocketDirectory(options.path));
  struct stat st;
  if (lstat(options.path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(options.path, " exists and is not a socket; refusing to replace it"));
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
      const bool live =
          connect(probe, reinterpret_cast<const sockaddr*>(&addr.first), addr.second) == 0;
      close(probe);
      if (live) {
        return absl::AlreadyExistsError(absl::StrCat(
            "another kshield-kubectl daemon is listening on ", options.path));
      }
    }
    if (unlink(options.path.c_str()) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot remove stale socket ", options.path, ": ", ErrnoString(errno)));
    }
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", ErrnoString(errno)));
  if (bind(fd, reinterpret_cast<const sockaddr*>(&addr.first), addr.second) != 0) {
    int err = errno;
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot bind control socket ", options.path, ": ", ErrnoString(err)));
  }
  // The directory is private already; 0600 also keeps the socket closed if it is moved.
  if (chmod(options.path.c_str(), 0600) != 0 || listen(fd, 64) != 0) {
    int err = errno;
    close(fd);
    unlink(options.path.c_str());
    return absl::InternalError(
        absl::StrCat("control socket ", options.path, ": ", ErrnoString(err)));
  }
  int wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) {
    int err = errno;
    close(fd);
    unlink(options.path.c_str());
    return absl::InternalError(absl::StrCat("eventfd: ", ErrnoString(err)));
  }
  std::unique_ptr<ControlServer> server(
      new ControlServer(std::move(options), std::move(handler), fd, wake));
  server->accept_thread_ = std::thread([s = server.get()] { s->AcceptLoop(); });
  return server;
}

ControlServer::ControlServer(ControlServerOptions options, ControlHandler handler, int listen_fd,
                             int wake_fd)
    : options_(std::move(options)),
      handler_(std::move(handler)),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd) {}

ControlServer::~ControlServer() { Stop(); }

void ControlServer::Stop() {
  if (stopping_.exchange(true)) return;
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  if (accept_thread_.joinable()) accept_thread_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Worker& w : workers_) {
      if (!w.done.load()) shutdown(w.fd, SHUT_RDWR);
    }
  }
  for (Worker& w : workers_) {
    if (w.thread.joinable()) w.thread.join();
  }
  workers_.clear();
  close(listen_fd_);
  close(wake_fd_);
  unlink(options_.path.c_str());
}

ControlServer::Counters ControlServer::counters() const {
  Counters c;
  c.served = served_.load();
  c.refused_uid = refused_uid_.load();
  c.oversized = oversized_.load();
  c.malformed = malformed_.load();
  c.timed_out = timed_out_.load();
  c.too_many = too_many_.load();
  return c;
}

void ControlServer::ReapFinished() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->done.load()) {
      it->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

void ControlServer::AcceptLoop() {
  while (!stopping_.load()) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    int r = poll(fds, 2, 1000);
    ReapFinished();
    if (r < 0 && errno != EINTR) {
      log::Error("control.poll_failed", {{"error", ErrnoString(errno)}});
      return;
    }
    if (r <= 0) continue;
    if (fds[1].revents & POLLIN) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
      log::Warn("control.peercred_failed", {{"error", ErrnoString(errno)}});
      close(fd);
      continue;
    }
    if (cred.uid != geteuid()) {
      refused_uid_.fetch_add(1);
      log::Warn("control.peer_refused",
                {{"uid", static_cast<uint64_t>(cred.uid)},
                 {"pid", static_cast<int64_t>(cred.pid)},
                 {"reason", "not the daemon's uid"}});
      std::string line = ErrorLine(absl::PermissionDeniedError(absl::StrCat(
          "permission denied: uid ", cred.uid, " is not the uid of this kshield-kubectl daemon")));
      (void)WriteWithDeadline(fd, line, absl::Now() + absl::Seconds(1));
      close(fd);
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (static_cast<int>(workers_.size()) >= options_.max_connections) {
      too_many_.fetch_add(1);
      log::Warn("control.too_many_connections", {{"max", options_.max_connections}});
      (void)WriteWithDeadline(fd, ErrorLine(absl::ResourceExhaustedError("daemon busy")),
                              absl::Now() + absl::Seconds(1));
      close(fd);
      continue;
    }
    Worker& w = workers_.emplace_back();
    w.fd = fd;
    w.thread = std::thread([this, &w] {
      Serve(w.fd);
      // Close under the lock so Stop() never shuts down a reused descriptor number.
      std::lock_guard<std::mutex> l(mu_);
      close(w.fd);
      w.done.store(true);
    });
  }
}

void ControlServer::Serve(int fd) {
  const absl::Time deadline = absl::Now() + options_.io_timeout;
  std::string line;
  ReadResult rr = ReadLine(fd, options_.max_request_bytes, deadline, wake_fd_, &line);
  absl::Status error;
  nlohmann::json request;
  switch (rr) {
    case ReadResult::kOk:
      request = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (request.is_discarded() || !request.is_object() || !request.contains("op") ||
          !request["op"].is_string()) {
        malformed_.fetch_add(1);
        error = absl::InvalidArgumentError("request is not a JSON object with an \"op\"");
      }
      break;
    case ReadResult::kTooLarge:
      oversized_.fetch_add(1);
      log::Warn("control.request_too_large", {{"max_bytes", options_.max_request_bytes}});
      error = absl::InvalidArgumentError(
          absl::StrCat("request larger than ", options_.max_request_bytes, " bytes"));
      break;
    case ReadResult::kTimeout:
      timed_out_.fetch_add(1);
      log::Warn("control.request_timeout", {});
      error = absl::DeadlineExceededError("request not received in time");
      break;
    case ReadResult::kError:
      ScrubString(&line);
      return;
  }
  ScrubString(&line);
  std::string reply;
  if (!error.ok()) {
    reply = ErrorLine(error);
  } else {
    absl::StatusOr<nlohmann::json> result;
    try {
      result = handler_(request);
    } catch (const std::exception& e) {
      // nlohmann type errors from an unexpected field type end here.
      result = absl::InvalidArgumentError(absl::StrCat("bad request: ", e.what()));
    }
    if (result.ok()) {
      served_.fetch_add(1);
      nlohmann::json& j = *result;
      if (!j.is_object()) j = nlohmann::json::object();
      j["ok"] = true;
      reply = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
      ScrubJson(&j);
    } else {
      reply = ErrorLine(result.status());
    }
  }
  ScrubJson(&request);
  (void)WriteWithDeadline(fd, reply, absl::Now() + options_.io_timeout);
  ScrubString(&reply);
}

absl::StatusOr<nlohmann::json> CallControl(const std::string& path, const nlohmann::json& request,
                                           absl::Duration timeout) {
  KSH_ASSIGN_OR_RETURN(auto addr, MakeAddr(path));
  const absl::Time deadline = absl::Now() + timeout;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", ErrnoString(errno)));
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr.first), addr.second) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ECONNREFUSED) {
      return absl::UnavailableError(absl::StrCat(
          "the kshield-kubectl daemon is not running (no daemon at ", path,
          "); start it with: kshield-kubectl daemon --config FILE"));
    }
    if (err == EACCES || err == EPERM) {
      return absl::PermissionDeniedError(
          absl::StrCat("cannot connect to ", path, ": ", ErrnoString(err)));
    }
    return absl::UnavailableError(absl::StrCat("cannot connect to ", path, ": ",
                                               ErrnoString(err)));
  }
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return absl::InternalError(absl::StrCat("SO_PEERCRED: ", ErrnoString(errno)));
  }
  if (cred.uid != geteuid()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the process listening on ", path, " runs as uid ", cred.uid, ", not as this user (uid ",
        geteuid(), "); refusing to talk to it"));
  }
  std::string line = request.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line.push_back('\n');
  absl::Status w = WriteWithDeadline(fd, line, deadline);
  ScrubString(&line);
  std::string reply;
  // Even when the write failed (the daemon refused an oversized request and closed), its
  // explanation may be waiting to be read.
  ReadResult rr = ReadLine(fd, 4 << 20, w.ok() ? deadline : absl::Now() + absl::Seconds(1), -1,
                           &reply);
  if (!w.ok() && rr != ReadResult::kOk) return w;
  if (rr == ReadResult::kTimeout) {
    return absl::DeadlineExceededError("the kshield-kubectl daemon did not answer in time");
  }
  if (rr != ReadResult::kOk) {
    return absl::UnavailableError("the kshield-kubectl daemon closed the connection");
  }
  nlohmann::json j = nlohmann::json::parse(reply, nullptr, false);
  ScrubString(&reply);
  if (j.is_discarded() || !j.is_object() || !j.contains("ok") || !j["ok"].is_boolean()) {
    return absl::InternalError("the kshield-kubectl daemon sent a malformed reply");
  }
  if (!j["ok"].get<bool>()) {
    std::string msg = j.contains("error") && j["error"].is_string()
                          ? j["error"].get<std::string>()
                          : std::string("request refused");
    absl::StatusCode code = j.contains("code") && j["code"].is_string()
                                ? StatusCodeFromName(j["code"].get<std::string>())
                                : absl::StatusCode::kUnknown;
    if (code == absl::StatusCode::kOk) code = absl::StatusCode::kUnknown;
    return absl::Status(code, msg);
  }
  return j;
}

}  // namespace kshield::kubectl
