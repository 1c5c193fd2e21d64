// HealthMonitor — the background probe behind Status, /readyz and /healthz.
//
// Every `interval` it (1) asks the provider for its own liveness, (2) wraps and unwraps a random
// canary with the primary KEK through the same DekCipher the RPCs use, and (3) calls this plugin's
// own socket (Status) to prove the serving loop answers. Status RPCs only read the last result:
// the probe never runs per call (DESIGN.md §4: the apiserver polls Status every 60 s / 10 s).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "keys/dek_cipher.h"
#include "keys/keyset_manager.h"
#include "kms/kms_metrics.h"

namespace kshield::kms {

struct HealthState {
  bool healthy = false;
  std::string reason = "not probed yet";
  std::chrono::steady_clock::time_point probed_at{};
  bool loop_responsive = true;  // last self-call answered
  std::chrono::steady_clock::time_point heartbeat{};
};

class HealthMonitor {
 public:
  // `self_check` calls the plugin's own socket; returns false if it did not answer.
  HealthMonitor(keys::KeysetManager* manager, KmsMetrics* metrics,
                std::chrono::milliseconds interval, std::function<bool()> self_check);
  ~HealthMonitor();

  // Runs one probe synchronously (start-up, after Rotate / Refresh).
  void ProbeNow();
  void Start();
  void Stop();

  HealthState Get() const;
  std::chrono::milliseconds interval() const { return interval_; }

 private:
  void Loop();
  void RunProbe(bool with_self_check);

  keys::KeysetManager* manager_;
  keys::DekCipher cipher_;
  KmsMetrics* metrics_;
  std::chrono::milliseconds interval_;
  std::function<bool()> self_check_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  HealthState state_;    // guarded by mu_
  bool stop_ = false;    // guarded by mu_
  std::mutex probe_mu_;  // one probe at a time
  std::thread thread_;
};

}  // namespace kshield::kms
