// File helpers with the durability and permission rules our stores need.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/secret.h"

namespace kshield {

// Atomically replaces `path` with `contents`: write to a temp file in the same directory (mode
// `mode`), fsync it, rename over `path`, fsync the directory. A crash at any point leaves either
// the old or the new file, never a torn one.
[[nodiscard]] absl::Status WriteFileAtomic(const std::string& path, std::string_view contents,
                                           mode_t mode = 0600);

// Reads a whole file, refusing files larger than `max_bytes`.
absl::StatusOr<std::string> ReadFileBounded(const std::string& path, size_t max_bytes);

// Private files (PINs, keys, tokens, keysets) must be a regular file, owned by this process's
// effective uid or by root, with no group or other permission bits (0600, 0400 or stricter).
//
// Symlinks are followed: the checks apply to the final target, so a Kubernetes Secret volume works
// (`pin -> ..data/pin`, `..data -> ..2026_11_28_06_00_00.123/`, files root-owned, with
// `defaultMode: 0400` and no pod `fsGroup`, which would add group read). The checks run with
// fstat on the opened descriptor, never on the name, so what was checked is what is read.
// Errors say why: missing, a dangling symlink (naming its target), a directory / FIFO / socket /
// device, the mode ("chmod 600"), or the owner. They never contain the file's content.
//
// Prefer ReadPrivateFile: checking and then reading by name again leaves a window in which the
// name can be pointed elsewhere.
[[nodiscard]] absl::Status CheckPrivateFile(const std::string& path);

// Opens `path`, checks it as CheckPrivateFile does (on the descriptor), and reads it, refusing
// files larger than `max_bytes`. The bytes go straight into protected memory.
//
//   KSH_ASSIGN_OR_RETURN(SecretBytes pin, ReadPrivateFile(options.pin_file, kMaxPinSize));
absl::StatusOr<SecretBytes> ReadPrivateFile(const std::string& path, size_t max_bytes);

// The same checks, for a private file whose content is not itself secret (e.g. a keyset of wrapped
// keys, which may be too large for protected memory).
absl::StatusOr<std::string> ReadPrivateFileBounded(const std::string& path, size_t max_bytes);

// mkdir -p with `mode` for directories it creates.
[[nodiscard]] absl::Status MakeDirs(const std::string& path, mode_t mode = 0700);

bool FileExists(const std::string& path);

// write(2) until all of `data` is written (retrying EINTR and short writes).
[[nodiscard]] absl::Status WriteAll(int fd, std::string_view data);

// strerror(errno) as a string, thread-safe.
std::string ErrnoString(int err);

}  // namespace kshield
