#include <dirent.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"
#include "common/status.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "envelope/envelope.h"
#include "tools/etcd_common.h"
#include "tools/etcd_tools.h"
#include "tools/parallel.h"
#include "tools/value_decryptor.h"

namespace kshield::tools {
namespace {

constexpr char kTempPrefix[] = ".kshieldctl-tmp-";
constexpr char kHeaderPrefix[] = "# kshieldctl etcd decrypt: key=";

std::string Sanitize(std::string_view s, bool* changed) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-';
    out.push_back(ok ? c : '_');
    if (!ok) *changed = true;
  }
  return out;
}

// The first line of every output file: which etcd key at which revision it holds (the key with
// unusual characters replaced; it is only compared, never parsed back).
std::string Header(std::string_view key, int64_t mod_revision) {
  std::string safe(key);
  for (char& c : safe) {
    if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) c = '_';
  }
  return absl::StrCat(kHeaderPrefix, safe, " mod_revision=", mod_revision, "\n");
}

// True if `path` is a regular file that starts with `header` (a complete earlier run: files only
// ever appear by rename after being written and fsync'd).
bool AlreadyComplete(const std::string& path, const std::string& header) {
  int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  std::string buf(header.size(), '\0');
  bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
            read(fd, buf.data(), buf.size()) == static_cast<ssize_t>(buf.size()) && buf == header;
  close(fd);
  return ok;
}

// Writes `content` to dir/name via a 0600 temp file, fsync and rename (a reader never sees a
// partial file under the final name).
absl::Status WriteFileAtomic(const std::string& dir, const std::string& name,
                             std::string_view content) {
  std::string tmp = absl::StrCat(dir, "/", kTempPrefix, crypto::RandomHex(8));
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("create ", tmp, ": ", ErrnoString(errno)));
  absl::Status s = WriteAll(fd, content);
  if (s.ok() && fchmod(fd, 0600) != 0) s = absl::InternalError("fchmod: " + ErrnoString(errno));
  if (s.ok() && fsync(fd) != 0) s = absl::InternalError("fsync: " + ErrnoString(errno));
  close(fd);
  if (s.ok() && rename(tmp.c_str(), (dir + "/" + name).c_str()) != 0) {
    s = absl::InternalError(absl::StrCat("rename to ", name, ": ", ErrnoString(errno)));
  }
  if (!s.ok()) unlink(tmp.c_str());
  return s;
}

// Creates `dir` 0700 or checks an existing one: a real directory (not a symlink) owned by us;
// its mode is tightened to 0700. Removes temp files an interrupted run left behind.
absl::Status PrepareOutDir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", ErrnoString(errno)));
  }
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    return absl::InternalError(absl::StrCat("stat ", dir, ": ", ErrnoString(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " is not a directory"));
  }
  if (st.st_uid != geteuid()) {
    return absl::FailedPreconditionError(absl::StrCat(dir, " is not owned by this user"));
  }
  if ((st.st_mode & 07777) != 0700 && chmod(dir.c_str(), 0700) != 0) {
    return absl::InternalError(absl::StrCat("chmod 0700 ", dir, ": ", ErrnoString(errno)));
  }
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return absl::InternalError(absl::StrCat("opendir ", dir, ": ", ErrnoString(errno)));
  while (struct dirent* e = readdir(d)) {
    if (std::string_view(e->d_name).rfind(kTempPrefix, 0) == 0) {
      unlinkat(dirfd(d), e->d_name, 0);
    }
  }
  closedir(d);
  return absl::OkStatus();
}

void SyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

enum class Outcome { kDone, kSkipped, kFailed, kNotOurs };

class Decrypter {
 public:
  Decrypter(etcd::Client& etcd, DekDecrypter& kms, const DecryptOptions& options,
            std::string secrets_prefix)
      : etcd_(etcd), options_(options), prefix_(std::move(secrets_prefix)),
        decryptor_(&kms, options.provider_name) {}

  Outcome Run(etcd::KeyValue kv, std::string* reason) {
    for (int attempt = 0; attempt < 5; ++attempt) {
      envelope::ValuePrefix p = envelope::SplitValuePrefix(kv.value);
      bool ours = (p.kind == envelope::ValueKind::kKmsV2 ||
                   p.kind == envelope::ValueKind::kKmsV1) &&
                  p.provider == options_.provider_name;
      if (!ours) {
        // --rewrite-identity: an identity value is what a completed run leaves behind.
        if (options_.rewrite_identity && options_.out_dir.empty() &&
            p.kind == envelope::ValueKind::kIdentity) {
          return Outcome::kSkipped;
        }
        return Outcome::kNotOurs;
      }
      std::string file;
      std::string header;
      if (!options_.out_dir.empty()) {
        file = DecryptFileName(options_.prefix, kv.key);
        header = Header(kv.key, kv.mod_revision);
        if (AlreadyComplete(options_.out_dir + "/" + file, header) && !options_.rewrite_identity) {
          return Outcome::kSkipped;
        }
      }
      absl::StatusOr<std::string> plain = decryptor_.Decrypt(kv.key, kv.value);
      if (!plain.ok()) {
        *reason = std::string(plain.status().message());
        return Outcome::kFailed;
      }
      absl::Cleanup wipe = [&] { OPENSSL_cleanse(plain->data(), plain->size()); };
      absl::StatusOr<envelope::SecretInfo> secret = envelope::DecodeSecret(*plain);
      if (!secret.ok()) {
        *reason = absl::StrCat("decrypted value: ", secret.status().message());
        return Outcome::kFailed;
      }
      if (!options_.out_dir.empty() &&
          !AlreadyComplete(options_.out_dir + "/" + file, header)) {
        std::string yaml = header + envelope::SecretToYaml(*secret);
        absl::Status s = WriteFileAtomic(options_.out_dir, file, yaml);
        OPENSSL_cleanse(yaml.data(), yaml.size());
        if (!s.ok()) {
          *reason = std::string(s.message());
          return Outcome::kFailed;
        }
      }
      if (!options_.rewrite_identity) return Outcome::kDone;
      // The identity provider stores exactly the plain protobuf.
      absl::StatusOr<etcd::TxnResult> r = etcd_.CompareAndSwap(kv.key, kv.mod_revision, *plain);
      std::optional<etcd::KeyValue> current;
      if (r.ok()) {
        if (r->succeeded) return Outcome::kDone;
        current = r->current;
      } else if (etcd::IsOutcomeUnknown(r.status())) {
        absl::StatusOr<std::optional<etcd::KeyValue>> g = etcd_.Get(kv.key);
        if (!g.ok()) {
          *reason = std::string(g.status().message());
          return Outcome::kFailed;
        }
        if (g->has_value() && (*g)->value == *plain) return Outcome::kDone;
        current = *g;
      } else {
        *reason = std::string(r.status().message());
        return Outcome::kFailed;
      }
      if (!current.has_value()) return Outcome::kSkipped;  // deleted meanwhile
      kv = std::move(*current);  // written meanwhile: decrypt the new value and try again
    }
    *reason = "value kept changing; gave up after 5 attempts";
    return Outcome::kFailed;
  }

 private:
  etcd::Client& etcd_;
  const DecryptOptions& options_;
  const std::string prefix_;
  ValueDecryptor decryptor_;
};

}  // namespace

std::string DecryptFileName(std::string_view prefix, std::string_view etcd_key) {
  std::string secrets = internal::SecretsPrefix(prefix);
  std::string_view rest = etcd_key;
  bool changed = false;
  if (rest.substr(0, secrets.size()) == secrets) {
    rest.remove_prefix(secrets.size());
  } else {
    changed = true;
  }
  size_t slash = rest.find('/');
  std::string base;
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == rest.size() ||
      rest.find('/', slash + 1) != std::string_view::npos) {
    changed = true;
    base = Sanitize(rest, &changed);
  } else {
    base = absl::StrCat(Sanitize(rest.substr(0, slash), &changed), "_",
                        Sanitize(rest.substr(slash + 1), &changed));
  }
  // Names are short in practice; keep file names well below NAME_MAX.
  if (base.size() > 200) {
    base.resize(200);
    changed = true;
  }
  if (base.empty() || base[0] == '.') changed = true;
  if (changed) {
    base = absl::StrCat(base.empty() || base[0] == '.' ? "_" : "", base, "-",
                        AV(absl::BytesToHexString(AV(crypto::Sha256(etcd_key)).substr(0, 6))));
  }
  return base + ".yaml";
}

absl::StatusOr<DecryptReport> DecryptSecrets(etcd::Client& etcd, DekDecrypter& kms,
                                             const DecryptOptions& options,
                                             const ProgressFn& progress) {
  if (options.out_dir.empty() && !options.rewrite_identity) {
    return absl::InvalidArgumentError("decrypt needs an output directory or rewrite_identity");
  }
  if (!options.out_dir.empty()) KSH_RETURN_IF_ERROR(PrepareOutDir(options.out_dir));
  const std::string prefix = internal::SecretsPrefix(options.prefix);
  KmsClient::Counters before = kms.counters();
  KSH_ASSIGN_OR_RETURN(int64_t total, internal::CountKeys(etcd, prefix));
  DecryptReport report;
  Decrypter decrypter(etcd, kms, options, prefix);
  absl::Mutex mu;
  auto on_page = [&](const std::vector<etcd::KeyValue>& kvs) -> absl::Status {
    ParallelFor(kvs.size(), options.concurrency, [&](size_t i) {
      std::string reason;
      Outcome o = decrypter.Run(kvs[i], &reason);
      absl::MutexLock lock(&mu);
      ++report.scanned;
      switch (o) {
        case Outcome::kDone:
          ++report.done;
          break;
        case Outcome::kSkipped:
          ++report.skipped;
          break;
        case Outcome::kNotOurs:
          ++report.not_ours;
          break;
        case Outcome::kFailed:
          ++report.failed;
          internal::AddProblem(&report.failures, kvs[i].key, std::move(reason));
          break;
      }
    });
    if (progress) progress(report.scanned, total);
    return absl::OkStatus();
  };
  KSH_RETURN_IF_ERROR(etcd.RangePrefix(prefix, options.page_size, on_page).status());
  if (!options.out_dir.empty()) SyncDir(options.out_dir);
  report.plugin_calls = CountersSince(kms.counters(), before);
  return report;
}

}  // namespace kshield::tools
