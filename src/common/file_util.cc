#include "common/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"

namespace kshield {
namespace {

absl::Status ErrnoStatus(std::string_view what, const std::string& path, int err) {
  return absl::Status(err == ENOENT ? absl::StatusCode::kNotFound : absl::StatusCode::kInternal,
                      absl::StrCat(AV(what), " ", path, ": ", ErrnoString(err)));
}

std::string DirName(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

absl::Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(absl::StrCat("write: ", ErrnoString(errno)));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

std::string ErrnoString(int err) {
  char buf[256];
  // GNU strerror_r returns the message pointer.
  return std::string(strerror_r(err, buf, sizeof(buf)));
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view contents, mode_t mode) {
  std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return ErrnoStatus("creating", tmp, errno);
  absl::Status s = WriteAll(fd, contents);
  if (s.ok() && fchmod(fd, mode) != 0) s = ErrnoStatus("chmod", tmp, errno);
  if (s.ok() && fsync(fd) != 0) s = ErrnoStatus("fsync", tmp, errno);
  if (close(fd) != 0 && s.ok()) s = ErrnoStatus("close", tmp, errno);
  if (!s.ok()) {
    unlink(tmp.c_str());
    return s;
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return ErrnoStatus("renaming into", path, err);
  }
  std::string dir = DirName(path);
  int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return ErrnoStatus("opening directory", dir, errno);
  int rc = fsync(dfd);
  int err = errno;
  close(dfd);
  if (rc != 0) return ErrnoStatus("fsync directory", dir, err);
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileBounded(const std::string& path, size_t max_bytes) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("opening", path, errno);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return ErrnoStatus("stat", path, err);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  }
  if (static_cast<size_t>(st.st_size) > max_bytes) {
    close(fd);
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is %d bytes, more than the %d allowed", path, st.st_size, max_bytes));
  }
  std::string out;
  out.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = read(fd, out.data() + got, out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return ErrnoStatus("reading", path, err);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  out.resize(got);
  return out;
}

namespace {

// Owns a descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string ReadLink(const std::string& path) {
  char buf[4096];
  ssize_t n = readlink(path.c_str(), buf, sizeof(buf));
  return n < 0 ? std::string() : std::string(buf, static_cast<size_t>(n));
}

const char* KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

// Opens `path` (following symlinks) and checks the opened file. Every check is on the descriptor
// (fstat), so nothing can be swapped in between the check and the caller's read.
absl::StatusOr<Fd> OpenPrivateFile(const std::string& path, struct stat* st) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below); no effect on the
  // reads of a regular file. O_NOCTTY: a terminal device never becomes our controlling tty.
  int raw = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (raw < 0) {
    const int err = errno;
    struct stat link;
    if (err == ENOENT && lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
      return absl::NotFoundError(absl::StrCat(path, " is a dangling symlink (to ", ReadLink(path),
                                              ", which does not exist)"));
    }
    struct stat target;
    if (err == ENXIO && stat(path.c_str(), &target) == 0 && S_ISSOCK(target.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(path, " is a socket; a private file must be a regular file"));
    }
    return ErrnoStatus("opening", path, err);
  }
  Fd fd(raw);
  if (fstat(raw, st) != 0) return ErrnoStatus("stat", path, errno);

  // Name the file that was actually opened when `path` itself is a symlink (the Kubernetes
  // Secret volume layout), so a refusal points at what to fix.
  std::string name = path;
  struct stat link;
  const bool symlink = lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode);
  if (symlink) {
    std::string target = ReadLink(absl::StrCat("/proc/self/fd/", raw));  // the opened file
    if (target.empty()) target = ReadLink(path);                         // no /proc: one hop
    absl::StrAppend(&name, " (a symlink to ", target, ")");
  }
  if (!S_ISREG(st->st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, " is ", KindOf(st->st_mode), "; a private file must be a regular file"));
  }
  if ((st->st_mode & 077) != 0) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "%s has mode %04o; key files must not be readable or writable by group or others "
        "(chmod 600%s)",
        name, st->st_mode & 07777,
        symlink ? "; for a Kubernetes Secret volume: defaultMode 0400 and no fsGroup" : ""));
  }
  if (st->st_uid != geteuid() && st->st_uid != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s is owned by uid %d, not by this process (uid %d) or root", name,
                        st->st_uid, geteuid()));
  }
  return fd;
}

// Reads exactly up to `size` bytes into `buf` (fewer if the file is shorter now); returns the
// count.
absl::StatusOr<size_t> ReadUpTo(int fd, const std::string& path, uint8_t* buf, size_t size) {
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("reading", path, errno);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

absl::Status CheckSize(const std::string& path, const struct stat& st, size_t max_bytes) {
  if (static_cast<size_t>(st.st_size) > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s is %d bytes, more than the %d allowed", path, st.st_size, max_bytes));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckPrivateFile(const std::string& path) {
  struct stat st;
  return OpenPrivateFile(path, &st).status();
}

absl::StatusOr<SecretBytes> ReadPrivateFile(const std::string& path, size_t max_bytes) {
  struct stat st;
  KSH_ASSIGN_OR_RETURN(Fd fd, OpenPrivateFile(path, &st));
  KSH_RETURN_IF_ERROR(CheckSize(path, st, max_bytes));
  SecretBytes out(static_cast<size_t>(st.st_size));
  KSH_ASSIGN_OR_RETURN(size_t got, ReadUpTo(fd.get(), path, out.UnsafeMutableData(), out.size()));
  if (got < out.size()) return SecretBytes::CopyFrom(out.UnsafeView().subspan(0, got));
  return out;
}

absl::StatusOr<std::string> ReadPrivateFileBounded(const std::string& path, size_t max_bytes) {
  struct stat st;
  KSH_ASSIGN_OR_RETURN(Fd fd, OpenPrivateFile(path, &st));
  KSH_RETURN_IF_ERROR(CheckSize(path, st, max_bytes));
  std::string out(static_cast<size_t>(st.st_size), '\0');
  KSH_ASSIGN_OR_RETURN(
      size_t got, ReadUpTo(fd.get(), path, reinterpret_cast<uint8_t*>(out.data()), out.size()));
  out.resize(got);
  return out;
}

absl::Status MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return absl::InvalidArgumentError("empty directory path");
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    size_t next = path.find('/', pos + 1);
    cur = path.substr(0, next);
    pos = next;
    if (cur.empty() || cur == "/") continue;
    if (mkdir(cur.c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoStatus("creating directory", cur, errno);
    }
  }
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a directory"));
  }
  return absl::OkStatus();
}

bool FileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

}  // namespace kshield
