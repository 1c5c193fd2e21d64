#include "relay/jwks_source.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"
#include "crypto/x509.h"
#include "net/https_client.h"

namespace kshield::relay {
namespace {

constexpr size_t kMaxCaFileBytes = 1024 * 1024;

// RFC 7517 §8.5 registers application/jwk-set+json; issuers mostly send application/json.
// An absent Content-Type is let through: the body must still be a strict JSON JWKS.
bool IsJsonContentType(std::string_view content_type) {
  absl::string_view type = AV(content_type);
  type = absl::StripAsciiWhitespace(type.substr(0, type.find(';')));
  return type.empty() || absl::EqualsIgnoreCase(type, "application/json") ||
         absl::EqualsIgnoreCase(type, "application/jwk-set+json");
}

// Text from the issuer, made safe and short for an error message.
std::string Printable(std::string_view s, size_t max = 64) {
  std::string out;
  for (unsigned char c : s.substr(0, max)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  return out;
}

}  // namespace

JwksSource::Options JwksSource::OptionsFor(const OidcConfig& oidc) {
  Options o;
  o.file = oidc.jwks_file;
  o.url = oidc.jwks_url;
  o.ca_file = oidc.jwks_ca_file;
  o.refresh = oidc.jwks_refresh;
  return o;
}

JwksSource::JwksSource(Options options)
    : options_(std::move(options)),
      source_(options_.url.empty() ? "file " + options_.file : options_.url) {}

absl::StatusOr<std::unique_ptr<JwksSource>> JwksSource::Create(Options options) {
  if (options.file.empty() == options.url.empty()) {
    return absl::InvalidArgumentError("oidc: exactly one of jwks_file and jwks_url is required");
  }
  std::unique_ptr<JwksSource> src(new JwksSource(std::move(options)));
  const Options& o = src->options_;
  if (o.url.empty()) {
    // A key file the relay cannot use is an operator error: refuse to start.
    if (absl::Status s = src->ReloadNow(); !s.ok()) return Annotate(s, "oidc.jwks_file " + o.file);
    return src;
  }

  if (auto u = net::SplitHttpsUrl(o.url); !u.ok()) return Annotate(u.status(), "oidc.jwks_url");
  if (!o.ca_file.empty()) {
    auto ca = ReadFileBounded(o.ca_file, kMaxCaFileBytes);
    if (!ca.ok()) return Annotate(ca.status(), "oidc.jwks_ca_file " + o.ca_file);
    auto certs = crypto::SplitPemCertificates(*ca);
    if (!certs.ok() || certs->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("oidc.jwks_ca_file ", o.ca_file, ": no PEM certificate"));
    }
    src->ca_pem_ = std::move(*ca);
  }
  // The issuer being unreachable is not a reason to refuse client-certificate users: start
  // anyway, fail OIDC requests closed, and let the fetcher retry.
  const absl::Status first = src->ReloadNow();
  {
    absl::MutexLock lock(&src->mu_);
    const absl::Duration wait = first.ok() ? o.refresh : src->Backoff();
    src->next_fetch_ = absl::Now() + wait;
    if (!first.ok()) {
      log::Warn("relay.jwks_fetch_failed",
                {{"url", o.url},
                 {"reason", std::string(first.message())},
                 {"retry_in", absl::FormatDuration(wait)},
                 {"effect", "OIDC requests are refused until the issuer's keys are fetched"}});
    }
  }
  src->fetcher_ = std::thread([p = src.get()] { p->FetchLoop(); });
  return src;
}

JwksSource::~JwksSource() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    wake_.SignalAll();
    done_.SignalAll();
  }
  if (fetcher_.joinable()) fetcher_.join();
}

std::shared_ptr<const Jwks> JwksSource::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

JwksSource::Stats JwksSource::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

absl::StatusOr<std::string> JwksSource::ReadDocument() const {
  if (options_.url.empty()) return ReadFileBounded(options_.file, kMaxJwksBytes);
  net::HttpsRequest r;
  r.url = options_.url;
  r.ca_pem = ca_pem_;
  r.accept = "application/jwk-set+json, application/json";
  r.user_agent = "kshield-relay";
  r.timeout = options_.fetch_timeout;
  r.max_response_bytes = options_.max_response_bytes;
  KSH_ASSIGN_OR_RETURN(net::HttpsResponse resp, net::HttpsCall(r));
  if (resp.status != 200) {
    return absl::UnavailableError(absl::StrCat("HTTP status ", resp.status, " (want 200)"));
  }
  if (!IsJsonContentType(resp.content_type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("Content-Type \"", Printable(resp.content_type), "\" is not JSON"));
  }
  return std::move(resp.body);
}

absl::Status JwksSource::ReloadNow() {
  // The read / fetch and the parse run without the lock: readers keep the current set meanwhile.
  absl::StatusOr<std::string> doc = ReadDocument();
  absl::StatusOr<Jwks> parsed = doc.ok() ? ParseJwks(*doc) : absl::StatusOr<Jwks>(doc.status());
  absl::MutexLock lock(&mu_);
  if (!parsed.ok()) {
    ++stats_.reloads_failed;
    ++stats_.consecutive_failures;
    stats_.last_error = std::string(parsed.status().message());
    return parsed.status();
  }
  ++stats_.reloads_ok;
  stats_.consecutive_failures = 0;
  stats_.last_error.clear();
  stats_.last_success = absl::Now();
  if (current_ != nullptr && *doc == current_document_) return absl::OkStatus();  // unchanged
  for (const std::string& why : parsed->skipped) {
    log::Warn("relay.jwks_key_skipped", {{"source", source_}, {"reason", why}});
  }
  current_ = std::make_shared<const Jwks>(std::move(*parsed));
  current_document_ = std::move(*doc);
  ++stats_.generation;
  stats_.loaded = true;
  stats_.keys = current_->keys.size();
  log::Info(stats_.generation == 1 ? "relay.jwks_loaded" : "relay.jwks_reloaded",
            {{"source", source_}, {"keys", static_cast<uint64_t>(stats_.keys)}});
  return absl::OkStatus();
}

bool JwksSource::TakeReloadSlot() {
  const absl::Time now = absl::Now();
  if (now - last_on_demand_ < options_.min_reload_interval) return false;
  last_on_demand_ = now;
  return true;
}

absl::Duration JwksSource::Backoff() const {
  const int doublings = static_cast<int>(std::min<uint64_t>(
      stats_.consecutive_failures == 0 ? 0 : stats_.consecutive_failures - 1, 30));
  absl::Duration d = options_.initial_backoff * (int64_t{1} << doublings);
  return std::min({d, options_.max_backoff, options_.refresh});
}

bool JwksSource::ReloadOnDemand(const Jwks* seen) {
  if (options_.url.empty()) {
    {
      absl::MutexLock lock(&mu_);
      if (current_.get() != seen) return true;  // someone else reloaded meanwhile
      if (!TakeReloadSlot()) return false;
    }
    if (absl::Status s = ReloadNow(); !s.ok()) {
      log::Warn("relay.jwks_reload_failed",
                {{"source", source_}, {"reason", std::string(s.message())}});
    }
    absl::MutexLock lock(&mu_);
    return current_.get() != seen;
  }

  absl::MutexLock lock(&mu_);
  if (current_.get() != seen) return true;
  // A fetch in flight may have started before the issuer published the new key: wait for one
  // that starts after now — requested here if the rate limit allows, or already requested by
  // someone else. Rate-limited with a fetch in flight: wait for that one only.
  uint64_t target;
  if (fetch_requested_ || TakeReloadSlot()) {
    fetch_requested_ = true;
    wake_.Signal();
    target = fetches_done_ + (fetching_ ? 2 : 1);
  } else if (fetching_) {
    target = fetches_done_ + 1;
  } else {
    return false;
  }
  const absl::Time deadline = absl::Now() + options_.on_demand_wait;
  while (fetches_done_ < target && current_.get() == seen && !stop_) {
    if (done_.WaitWithDeadline(&mu_, deadline)) break;  // timed out: the fetch goes on alone
  }
  return current_.get() != seen;
}

void JwksSource::FetchLoop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    while (!stop_ && !fetch_requested_ && absl::Now() < next_fetch_) {
      wake_.WaitWithDeadline(&mu_, next_fetch_);
    }
    if (stop_) return;
    fetch_requested_ = false;
    fetching_ = true;
    mu_.Unlock();
    const absl::Status s = ReloadNow();
    mu_.Lock();
    fetching_ = false;
    ++fetches_done_;
    const absl::Duration wait = s.ok() ? options_.refresh : Backoff();
    next_fetch_ = absl::Now() + wait;
    if (!s.ok()) {
      log::Warn("relay.jwks_fetch_failed",
                {{"url", options_.url},
                 {"reason", std::string(s.message())},
                 {"consecutive_failures", stats_.consecutive_failures},
                 {"retry_in", absl::FormatDuration(wait)},
                 {"keeping", current_ ? absl::StrCat("the last good set (", stats_.keys, " keys)")
                                      : std::string("no key set: OIDC requests are refused")}});
    }
    done_.SignalAll();
  }
}

}  // namespace kshield::relay
