// JwksSource: the OIDC issuer's current key set (jwks.h), kept fresh from oidc.jwks_file or
// oidc.jwks_url. Token verification reads an immutable snapshot and never waits on I/O, except a
// request that names a key the relay does not have (ReloadOnDemand, bounded).
//
//   KSH_ASSIGN_OR_RETURN(auto source, JwksSource::Create(JwksSource::OptionsFor(config.oidc)));
//   std::shared_ptr<const Jwks> keys = source->Current();  // null: nothing loaded yet
//   auto jwt = keys ? VerifyJwt(token, *keys, options) : no_keys_error;
//   if (IsUnknownKidError(jwt.status()) && source->ReloadOnDemand(keys.get())) { ...again... }
//
// jwks_file: read by Create (an unreadable file, or one without a usable key, is a start-up
//   error). Re-read by ReloadOnDemand on the calling thread (a local read).
// jwks_url: fetched over HTTPS (net/https_client.h) by ONE background thread — the only thread
//   that ever fetches, so at most one fetch is in flight:
//   - first by Create, on the calling thread, bounded by fetch_timeout. If that fails, Create
//     still succeeds (users with client certificates must keep working): relay.jwks_fetch_failed
//     is logged and Current() stays null until a fetch succeeds — callers fail closed;
//   - then every `refresh` after a success; after a failure, again after a backoff
//     (initial_backoff doubling up to max_backoff, never longer than `refresh`);
//   - on ReloadOnDemand: the caller wakes the fetcher and waits at most on_demand_wait for it
//     (a slow issuer delays only the requests that need its new key, and only that long; the
//     fetch itself continues in the background). The fetch waited for starts after the call (one
//     in flight may predate the issuer's rotation); rate-limited, a caller only joins a fetch
//     already in flight.
//   A fetch fails on a network / TLS / certificate error, an HTTP status other than 200, a
//   Content-Type that is not JSON, a body over max_response_bytes, or a document ParseJwks
//   refuses; a failure keeps the last good set and is logged with its reason.
// Both: ReloadOnDemand starts at most one reload per min_reload_interval (whichever the source);
// a document identical to the current one is not re-installed.
//
// There is no metrics endpoint in the relay; stats() carries the counters (check-config, tests).
// Nothing here sees a token: log lines carry the source, key counts and error reasons only.
//
// Thread-safe. The destructor stops the fetcher (waiting for a fetch in flight: at most
// fetch_timeout).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "relay/config.h"
#include "relay/jwks.h"

namespace kshield::relay {

// The largest JWKS response read from jwks_url (the parser's own limit, kMaxJwksBytes, is lower).
inline constexpr size_t kMaxJwksResponseBytes = 1024 * 1024;

class JwksSource {
 public:
  struct Options {
    std::string file;     // exactly one of file / url
    std::string url;      // https://...
    std::string ca_file;  // url: trust anchors (PEM); empty: the system trust store
    absl::Duration refresh = absl::Hours(1);
    absl::Duration min_reload_interval = absl::Seconds(30);
    absl::Duration on_demand_wait = absl::Seconds(3);
    absl::Duration fetch_timeout = absl::Seconds(10);
    absl::Duration initial_backoff = absl::Seconds(1);
    absl::Duration max_backoff = absl::Minutes(5);
    size_t max_response_bytes = kMaxJwksResponseBytes;
  };
  // The production options for an `oidc:` section.
  static Options OptionsFor(const OidcConfig& oidc);

  // Errors (start-up): no or two sources, an unreadable / invalid jwks_file, an unreadable
  // ca_file or one without a PEM certificate. An unreachable jwks_url is NOT an error.
  static absl::StatusOr<std::unique_ptr<JwksSource>> Create(Options options);
  ~JwksSource();
  JwksSource(const JwksSource&) = delete;
  JwksSource& operator=(const JwksSource&) = delete;

  // The current key set; null only for jwks_url before the first successful fetch.
  std::shared_ptr<const Jwks> Current() const;

  // A token named a kid that `seen` (the set it was checked against; null: none was loaded)
  // lacks: reload now if the rate limit allows (or join a fetch in flight), waiting at most
  // on_demand_wait. True when Current() is now another set than `seen` (verify again); false
  // when rate-limited, failed, unchanged or not finished in time.
  bool ReloadOnDemand(const Jwks* seen);

  struct Stats {
    bool loaded = false;
    size_t keys = 0;
    uint64_t generation = 0;      // key sets installed so far
    uint64_t reloads_ok = 0;      // reads / fetches that produced a valid document
    uint64_t reloads_failed = 0;  // ... that did not (the last good set was kept)
    uint64_t consecutive_failures = 0;
    std::string last_error;  // "" after a success
    absl::Time last_success = absl::InfinitePast();
  };
  Stats stats() const;
  // "https://idp/keys" or "file /etc/kshield/jwks.json", for logs and check-config.
  const std::string& source() const { return source_; }

 private:
  explicit JwksSource(Options options);
  absl::StatusOr<std::string> ReadDocument() const;  // the file, or one HTTPS fetch
  // Reads / fetches once and installs the result (or records the failure). Not under mu_.
  absl::Status ReloadNow();
  bool TakeReloadSlot() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration Backoff() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FetchLoop();

  const Options options_;
  std::string source_;
  std::string ca_pem_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const Jwks> current_ ABSL_GUARDED_BY(mu_);
  std::string current_document_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
  absl::Time last_on_demand_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // jwks_url's fetcher.
  absl::CondVar wake_;  // fetcher: a request, or stop
  absl::CondVar done_;  // waiters: a fetch finished
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool fetch_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool fetching_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t fetches_done_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_fetch_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::thread fetcher_;
};

}  // namespace kshield::relay
