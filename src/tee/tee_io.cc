#include "tee/tee_io.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"

namespace kshield::tee {

RealTeeFileSystem::RealTeeFileSystem(std::string root) : root_(std::move(root)) {
  while (!root_.empty() && root_.back() == '/') root_.pop_back();
}

std::string RealTeeFileSystem::Resolve(const std::string& path) const { return root_ + path; }

bool RealTeeFileSystem::Exists(const std::string& path) {
  struct stat st;
  return stat(Resolve(path).c_str(), &st) == 0;
}

absl::Status RealTeeFileSystem::WriteFile(const std::string& path, std::string_view data) {
  const std::string p = Resolve(path);
  int fd = open(p.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("open ", p, ": ", ErrnoString(errno)));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      close(fd);
      return absl::UnavailableError(absl::StrCat("write ", p, ": ", ErrnoString(err)));
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) {
    return absl::UnavailableError(absl::StrCat("close ", p, ": ", ErrnoString(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RealTeeFileSystem::ReadFile(const std::string& path,
                                                        size_t max_bytes) {
  // Pseudo-files report size 0 in stat, so read until EOF instead of trusting st_size.
  const std::string p = Resolve(path);
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("open ", p, ": ", ErrnoString(errno)));
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return absl::UnavailableError(absl::StrCat("read ", p, ": ", ErrnoString(err)));
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      close(fd);
      return absl::OutOfRangeError(absl::StrCat(p, " is larger than ", max_bytes, " bytes"));
    }
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

absl::Status RealTeeFileSystem::MakeDir(const std::string& path) {
  const std::string p = Resolve(path);
  if (mkdir(p.c_str(), 0700) != 0) {
    return absl::UnavailableError(absl::StrCat("mkdir ", p, ": ", ErrnoString(errno)));
  }
  return absl::OkStatus();
}

absl::Status RealTeeFileSystem::RemoveDir(const std::string& path) {
  const std::string p = Resolve(path);
  if (rmdir(p.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("rmdir ", p, ": ", ErrnoString(errno)));
  }
  return absl::OkStatus();
}

RealSgxDevice::~RealSgxDevice() {
  if (fd_ >= 0) close(fd_);
}

int RealSgxDevice::Ioctl(unsigned long request, void* arg) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) {
    fd_ = open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) return -errno;
  }
  int rc;
  do {
    rc = ioctl(fd_, request, arg);
  } while (rc < 0 && errno == EINTR);
  return rc < 0 ? -errno : 0;
}

}  // namespace kshield::tee
