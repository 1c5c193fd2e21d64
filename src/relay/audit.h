// The relay's audit trail: one JSON object per line for every certificate request, issued or
// refused, appended to a file (0600, O_APPEND) or written to stdout.
//
//   {"ts":"2025-01-02T03:04:05.678Z","event":"relay.certificate","decision":"issued",
//    "status":200,"peer":"10.0.0.7:51234","auth":"oidc","user":"alice@example.com",
//    "cluster":"prod","groups":["developers"],"tee":"not_required",
//    "serial":"5f1c...","fingerprint_sha256":"9a0b...","not_after":"2025-01-02T04:04:05Z",
//    "reason":""}
//
// What a line never holds: a bearer token, a private key, a CSR or certificate body. A refused
// request before authentication has user "" (unverified claims are not trusted, so not logged).
#pragma once

#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kshield::relay {

struct AuditRecord {
  std::string decision;  // "issued" | "refused"
  int status = 0;        // HTTP status sent
  std::string peer;      // "ip:port"
  std::string auth;      // "oidc" | "client_cert" | "none"
  std::string user;
  std::string cluster;
  std::vector<std::string> groups;
  std::string tee;     // "not_required" | "verified" | "" (not reached)
  std::string serial;  // hex, issued only
  std::string fingerprint_sha256;
  std::string not_after;  // RFC 3339, issued only
  std::string reason;     // refusal reason (no secrets)
};

// The JSON line (no trailing newline) for `record`, stamped with the current time.
std::string FormatAuditLine(const AuditRecord& record);

class AuditLog {
 public:
  // "-" = stdout; otherwise a file opened O_WRONLY|O_APPEND|O_CREAT with mode 0600.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& path);
  // For tests: every line goes to `sink` instead.
  static std::unique_ptr<AuditLog> ToSink(std::function<void(const std::string&)> sink);
  ~AuditLog();

  // Appends one line under a lock (concurrent lines never interleave; O_APPEND keeps them whole
  // against other writers of the file). An error means
  // the line is not on record; callers must then not hand out a certificate.
  [[nodiscard]] absl::Status Write(const AuditRecord& record);

 private:
  AuditLog() = default;
  std::mutex mu_;
  int fd_ = -1;
  bool owns_fd_ = false;
  std::function<void(const std::string&)> sink_;
};

}  // namespace kshield::relay
