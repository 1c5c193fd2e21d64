#include "proxy/token_store.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>

#include "common/secret.h"
#include "crypto/random.h"
#include "crypto/sha256.h"

namespace kshield::kubectl {
namespace {

constexpr char kB64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Base64UrlNoPad(const uint8_t* data, size_t n) {
  std::string out;
  out.reserve((n * 4 + 2) / 3);
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8) | data[i + 2];
    out.push_back(kB64Url[(v >> 18) & 63]);
    out.push_back(kB64Url[(v >> 12) & 63]);
    out.push_back(kB64Url[(v >> 6) & 63]);
    out.push_back(kB64Url[v & 63]);
  }
  if (n - i == 1) {
    uint32_t v = uint32_t{data[i]} << 16;
    out.push_back(kB64Url[(v >> 18) & 63]);
    out.push_back(kB64Url[(v >> 12) & 63]);
  } else if (n - i == 2) {
    uint32_t v = (uint32_t{data[i]} << 16) | (uint32_t{data[i + 1]} << 8);
    out.push_back(kB64Url[(v >> 18) & 63]);
    out.push_back(kB64Url[(v >> 12) & 63]);
    out.push_back(kB64Url[(v >> 6) & 63]);
  }
  return out;
}

bool LooksLikeToken(std::string_view token) {
  if (token.size() != TokenStore::kTokenChars) return false;
  for (char c : token) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

uint64_t BucketKey(const std::string& digest) {
  uint64_t k = 0;
  std::memcpy(&k, digest.data(), sizeof(k));
  return k;
}

absl::Status Refused() {
  // One message for every reason: the caller learns nothing about which check failed.
  return absl::UnauthenticatedError("invalid or expired local token");
}

}  // namespace

TokenStore::TokenStore(Options options) : options_(std::move(options)) {}

TokenStore::Issued TokenStore::Issue(std::string_view cluster) {
  SecretBytes raw = crypto::RandomSecret(kTokenBytes);
  Issued out;
  out.token = Base64UrlNoPad(raw.UnsafeView().data(), raw.size());
  const absl::Time now = Now();
  out.expires = now + options_.ttl;
  Entry e{crypto::Sha256(out.token), std::string(cluster), out.expires};
  absl::MutexLock lock(&mu_);
  PruneLocked(now);
  if (live_ >= options_.max_live) {
    // Evict the token that would expire first.
    uint64_t victim_key = 0;
    size_t victim_index = 0;
    absl::Time victim_expires = absl::InfiniteFuture();
    for (const auto& [key, entries] : buckets_) {
      for (size_t i = 0; i < entries.size(); ++i) {
        if (entries[i].expires < victim_expires) {
          victim_expires = entries[i].expires;
          victim_key = key;
          victim_index = i;
        }
      }
    }
    auto it = buckets_.find(victim_key);
    if (it != buckets_.end()) {
      it->second.erase(it->second.begin() + static_cast<ptrdiff_t>(victim_index));
      if (it->second.empty()) buckets_.erase(it);
      --live_;
      evicted_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  buckets_[BucketKey(e.digest)].push_back(std::move(e));
  ++live_;
  issued_.fetch_add(1, std::memory_order_relaxed);
  return out;
}

absl::StatusOr<std::string> TokenStore::Validate(std::string_view cluster,
                                                 std::string_view token) const {
  if (!LooksLikeToken(token)) {
    malformed_.fetch_add(1, std::memory_order_relaxed);
    return Refused();
  }
  const std::string digest = crypto::Sha256(token);
  const absl::Time now = Now();
  absl::ReaderMutexLock lock(&mu_);
  auto it = buckets_.find(BucketKey(digest));
  if (it == buckets_.end()) {
    unknown_.fetch_add(1, std::memory_order_relaxed);
    return Refused();
  }
  for (const Entry& e : it->second) {
    if (!ConstantTimeEquals(e.digest, digest)) continue;
    if (e.cluster != cluster) {
      wrong_cluster_.fetch_add(1, std::memory_order_relaxed);
      return Refused();
    }
    if (now >= e.expires) {
      expired_.fetch_add(1, std::memory_order_relaxed);
      return Refused();
    }
    accepted_.fetch_add(1, std::memory_order_relaxed);
    return options_.user;
  }
  unknown_.fetch_add(1, std::memory_order_relaxed);
  return Refused();
}

void TokenStore::RevokeCluster(std::string_view cluster) {
  absl::MutexLock lock(&mu_);
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    auto& v = it->second;
    const size_t before = v.size();
    v.erase(std::remove_if(v.begin(), v.end(), [&](const Entry& e) { return e.cluster == cluster; }),
            v.end());
    live_ -= before - v.size();
    it = v.empty() ? buckets_.erase(it) : std::next(it);
  }
}

void TokenStore::PruneLocked(absl::Time now) {
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    auto& v = it->second;
    const size_t before = v.size();
    v.erase(std::remove_if(v.begin(), v.end(), [&](const Entry& e) { return now >= e.expires; }),
            v.end());
    live_ -= before - v.size();
    it = v.empty() ? buckets_.erase(it) : std::next(it);
  }
}

size_t TokenStore::live_count() const {
  absl::ReaderMutexLock lock(&mu_);
  return live_;
}

TokenStore::Counters TokenStore::counters() const {
  Counters c;
  c.issued = issued_.load();
  c.accepted = accepted_.load();
  c.rejected_malformed = malformed_.load();
  c.rejected_unknown = unknown_.load();
  c.rejected_expired = expired_.load();
  c.rejected_wrong_cluster = wrong_cluster_.load();
  c.evicted = evicted_.load();
  return c;
}

std::vector<std::string> TokenStore::StoredDigestsForTesting() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::string> out;
  for (const auto& [key, entries] : buckets_) {
    for (const Entry& e : entries) out.push_back(e.digest);
  }
  return out;
}

}  // namespace kshield::kubectl
