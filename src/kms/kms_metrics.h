// The metrics kshield-kms exposes on /metrics. Names are listed in docs/metrics.md.
// Label values are fixed strings, key ids (public) or provider names — never key material.
#pragma once

#include <array>
#include <mutex>
#include <string>

#include "metrics/registry.h"

namespace kshield::kms {

// Per (api, method): the hot path holds references, no map lookups per call.
struct MethodMetrics {
  metrics::Counter* ok = nullptr;
  metrics::HistogramFamily* latency_family = nullptr;
  metrics::Histogram* latency = nullptr;
  metrics::CounterFamily* requests = nullptr;
  std::string api;
  std::string method;
  // Counts a finished call with its gRPC code name ("OK", "INVALID_ARGUMENT", ...).
  void Done(const char* code_name, double seconds);
};

class KmsMetrics {
 public:
  explicit KmsMetrics(metrics::Registry& registry);

  MethodMetrics v2_status, v2_encrypt, v2_decrypt;
  MethodMetrics v1_version, v1_encrypt, v1_decrypt;
  MethodMetrics admin_info, admin_rotate, admin_refresh;

  metrics::CounterFamily& rejected_callers;  // {socket, reason}
  metrics::CounterFamily& decrypt_failures;  // {api, reason}
  metrics::GaugeFamily& provider_healthy;    // {provider}
  metrics::HistogramFamily& probe_latency;   // {provider}
  metrics::CounterFamily& probes;            // {provider, result}
  metrics::GaugeFamily& key_info;            // {keyset_id, key_id} = 1 for the primary
  metrics::GaugeFamily& key_versions;        // {state}
  metrics::CounterFamily& rotations;         // {result}
  metrics::GaugeFamily& build_info;          // {version, tee_platform, provider}

  // Updates key_info / key_versions from the current keyset.
  void SetKeyInfo(const std::string& keyset_id, const std::string& key_id, int primary,
                  int active, int retired);

 private:
  MethodMetrics Method(metrics::Registry& r, const char* api, const char* method);
  metrics::CounterFamily& requests_;
  metrics::HistogramFamily& latency_;
  std::mutex key_mu_;
  std::string last_key_id_;     // guarded by key_mu_
  std::string last_keyset_id_;  // guarded by key_mu_
};

}  // namespace kshield::kms
