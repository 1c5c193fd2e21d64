// File helpers with the durability and permission rules our stores need.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kshield {

// Atomically replaces `path` with `contents`: write to a temp file in the same directory (mode
// `mode`), fsync it, rename over `path`, fsync the directory. A crash at any point leaves either
// the old or the new file, never a torn one.
[[nodiscard]] absl::Status WriteFileAtomic(const std::string& path, std::string_view contents,
                                           mode_t mode = 0600);

// Reads a whole file, refusing files larger than `max_bytes`.
absl::StatusOr<std::string> ReadFileBounded(const std::string& path, size_t max_bytes);

// Refuses a file that others can read or write, or that another (non-root) uid owns: key files
// must be 0600 (or stricter) and ours.
[[nodiscard]] absl::Status CheckPrivateFile(const std::string& path);

// mkdir -p with `mode` for directories it creates.
[[nodiscard]] absl::Status MakeDirs(const std::string& path, mode_t mode = 0700);

bool FileExists(const std::string& path);

// write(2) until all of `data` is written (retrying EINTR and short writes).
[[nodiscard]] absl::Status WriteAll(int fd, std::string_view data);

// strerror(errno) as a string, thread-safe.
std::string ErrnoString(int err);

}  // namespace kshield
