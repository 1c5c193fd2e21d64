// TokenStore: the short-lived local tokens kubectl presents to the kshield-kubectl proxy.
//
// `kshield-kubectl credential --cluster NAME` (the exec plugin) asks the daemon for a token over
// the control socket; the daemon calls Issue(); kubectl sends it as `Authorization: Bearer ...` to
// https://127.0.0.1:<port>/clusters/NAME/...; the proxy calls Validate().
//
// Promises:
//  - a token is 32 bytes from the CSPRNG, base64url without padding (43 characters), bound to one
//    cluster, valid for `ttl`;
//  - only SHA-256(token) is stored, never the token; the returned Issued::token is the one copy;
//  - Validate compares digests with ConstantTimeEquals (the map lookup uses an 8-byte digest
//    prefix, which says nothing usable about a token);
//  - a token for another cluster, an expired or unknown token are refused alike (Unauthenticated,
//    same message), and each refusal is counted by reason;
//  - at most `max_live` tokens live at once: issuing one more drops the one expiring first.
//
//   TokenStore tokens({.ttl = absl::Minutes(10), .user = "alice"});
//   TokenStore::Issued t = tokens.Issue("prod");
//   absl::StatusOr<std::string> user = tokens.Validate("prod", t.token);  // "alice"
//
// Thread-safe; Validate takes a reader lock only.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "proxy/proxy.h"

namespace kshield::kubectl {

class TokenStore final : public proxy::LocalTokenValidator {
 public:
  struct Options {
    absl::Duration ttl = absl::Minutes(10);
    std::string user;  // the local user name Validate reports (audit "user")
    size_t max_live = 4096;
    std::function<absl::Time()> now;  // tests; default absl::Now
  };
  struct Issued {
    std::string token;
    absl::Time expires;
  };
  struct Counters {
    uint64_t issued = 0, accepted = 0, rejected_malformed = 0, rejected_unknown = 0,
             rejected_expired = 0, rejected_wrong_cluster = 0, evicted = 0;
  };

  explicit TokenStore(Options options);

  Issued Issue(std::string_view cluster);
  absl::StatusOr<std::string> Validate(std::string_view cluster,
                                       std::string_view token) const override;
  // Drops every token of `cluster` (e.g. its credential was replaced by an import).
  void RevokeCluster(std::string_view cluster);

  size_t live_count() const;
  Counters counters() const;
  // The stored digests (raw 32 bytes each): tests prove no token is kept.
  std::vector<std::string> StoredDigestsForTesting() const;

  static constexpr size_t kTokenBytes = 32;
  static constexpr size_t kTokenChars = 43;  // base64url, no padding

 private:
  struct Entry {
    std::string digest;  // SHA-256(token), 32 bytes
    std::string cluster;
    absl::Time expires;
  };
  absl::Time Now() const { return options_.now ? options_.now() : absl::Now(); }
  void PruneLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable absl::Mutex mu_;
  // Keyed by the digest's first 8 bytes; collisions share the bucket.
  std::unordered_map<uint64_t, std::vector<Entry>> buckets_ ABSL_GUARDED_BY(mu_);
  size_t live_ ABSL_GUARDED_BY(mu_) = 0;
  mutable std::atomic<uint64_t> issued_{0}, accepted_{0}, malformed_{0}, unknown_{0},
      expired_{0}, wrong_cluster_{0}, evicted_{0};
};

}  // namespace kshield::kubectl
