#include "relay/audit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "nlohmann/json.hpp"
#include "relay/json_util.h"

namespace kshield::relay {

std::string FormatAuditLine(const AuditRecord& r) {
  nlohmann::ordered_json j;
  j["ts"] = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  j["event"] = "relay.certificate";
  j["decision"] = r.decision;
  j["status"] = r.status;
  j["peer"] = r.peer;
  j["auth"] = r.auth;
  j["user"] = r.user;
  j["cluster"] = r.cluster;
  j["groups"] = r.groups;
  j["tee"] = r.tee;
  j["serial"] = r.serial;
  j["fingerprint_sha256"] = r.fingerprint_sha256;
  j["not_after"] = r.not_after;
  j["reason"] = r.reason;
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path) {
  std::unique_ptr<AuditLog> log(new AuditLog());
  if (path == "-") {
    log->fd_ = STDOUT_FILENO;
    return log;
  }
  int fd = open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("audit log ", path, ": cannot open: ", ErrnoString(errno)));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 0077) != 0) {
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat(
        "audit log ", path, ": must be a regular file readable only by its owner (chmod 600)"));
  }
  log->fd_ = fd;
  log->owns_fd_ = true;
  return log;
}

std::unique_ptr<AuditLog> AuditLog::ToSink(std::function<void(const std::string&)> sink) {
  std::unique_ptr<AuditLog> log(new AuditLog());
  log->sink_ = std::move(sink);
  return log;
}

AuditLog::~AuditLog() {
  if (owns_fd_) close(fd_);
}

absl::Status AuditLog::Write(const AuditRecord& record) {
  std::string line = FormatAuditLine(record);
  std::lock_guard<std::mutex> lock(mu_);
  if (sink_) {
    sink_(line);
    return absl::OkStatus();
  }
  line.push_back('\n');
  absl::Status s = WriteAll(fd_, line);
  if (!s.ok()) return absl::UnavailableError(absl::StrCat("audit log write failed: ", s.message()));
  return absl::OkStatus();
}

}  // namespace kshield::relay
