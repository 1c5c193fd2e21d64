#include "kms/health.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "crypto/aead.h"
#include "crypto/random.h"

namespace kshield::kms {

HealthMonitor::HealthMonitor(keys::KeysetManager* manager, KmsMetrics* metrics,
                             std::chrono::milliseconds interval, std::function<bool()> self_check)
    : manager_(manager),
      cipher_(manager),
      metrics_(metrics),
      interval_(interval),
      self_check_(std::move(self_check)) {}

HealthMonitor::~HealthMonitor() { Stop(); }

void HealthMonitor::RunProbe(bool with_self_check) {
  std::lock_guard<std::mutex> probe_lock(probe_mu_);
  const std::string provider(manager_->provider().name());
  auto start = std::chrono::steady_clock::now();
  std::string reason;
  absl::Status s = manager_->provider().Probe();
  if (!s.ok()) {
    reason = absl::StrCat("provider ", provider, " probe failed: ", s.message());
  } else {
    std::string canary = crypto::RandomString(32);
    auto wrapped = cipher_.Wrap(canary, keys::WrapFormat::kKmsV2);
    if (!wrapped.ok()) {
      reason = absl::StrCat("canary wrap with the primary KEK failed: ", wrapped.status().message());
    } else {
      auto back = cipher_.Unwrap(wrapped->ciphertext, wrapped->key_id, keys::WrapFormat::kKmsV2);
      if (!back.ok() || *back != canary) {
        reason = "canary unwrap with the primary KEK failed";
      }
    }
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  bool healthy = reason.empty();
  bool responsive = with_self_check && self_check_ ? self_check_() : true;

  auto ks = manager_->Current();
  int primary = 0, active = 0, retired = 0;
  for (const auto& v : ks->versions()) {
    if (v.state == keys::KeyState::kPrimary) ++primary;
    if (v.state == keys::KeyState::kActive) ++active;
    if (v.state == keys::KeyState::kRetired) ++retired;
  }
  metrics_->SetKeyInfo(ks->keyset_id(), ks->primary().key_id, primary, active, retired);
  metrics_->provider_healthy.WithLabels({provider}).Set(healthy ? 1 : 0);
  metrics_->probe_latency.WithLabels({provider}).Observe(seconds);
  metrics_->probes.WithLabels({provider, healthy ? "ok" : "failed"}).Inc();

  bool was_healthy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    was_healthy = state_.healthy;
    state_.healthy = healthy;
    state_.reason = healthy ? "ok" : reason;
    state_.probed_at = std::chrono::steady_clock::now();
    state_.heartbeat = state_.probed_at;
    if (with_self_check) state_.loop_responsive = responsive;
  }
  if (was_healthy && !healthy) {
    log::Warn("health.unhealthy", {{"provider", provider}, {"reason", reason}});
  } else if (!was_healthy && healthy) {
    log::Info("health.healthy", {{"provider", provider}, {"key_id", ks->primary().key_id}});
  }
  if (with_self_check && !responsive) {
    log::Warn("health.self_check_failed", {{"reason", "own socket did not answer Status"}});
  }
}

void HealthMonitor::ProbeNow() { RunProbe(false); }

void HealthMonitor::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void HealthMonitor::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, interval_, [this] { return stop_; });
    if (stop_) break;
    lock.unlock();
    RunProbe(true);
    lock.lock();
  }
}

void HealthMonitor::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

HealthState HealthMonitor::Get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

}  // namespace kshield::kms
