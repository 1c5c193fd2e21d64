#include "kms/kms_metrics.h"

namespace kshield::kms {
namespace {

// Wrap / unwrap of a 32-byte DEK takes microseconds; the apiserver's deadline is 3 s.
const std::vector<double> kLatencyBuckets = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                             0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                             0.5,     1,      2.5};

}  // namespace

void MethodMetrics::Done(const char* code_name, double seconds) {
  if (code_name[0] == 'O' && code_name[1] == 'K' && code_name[2] == '\0') {
    ok->Inc();
  } else {
    requests->WithLabels({api, method, code_name}).Inc();
  }
  latency->Observe(seconds);
}

KmsMetrics::KmsMetrics(metrics::Registry& r)
    : rejected_callers(r.Counter("kshield_kms_rejected_callers_total",
                                 "Calls refused because the caller's uid is not allowed.",
                                 {"socket", "reason"})),
      decrypt_failures(r.Counter("kshield_kms_decrypt_failures_total",
                                 "Decrypt calls that failed, by internal reason (never told to "
                                 "the caller).",
                                 {"api", "reason"})),
      provider_healthy(r.Gauge("kshield_kms_provider_healthy",
                               "1 when the last background probe of the key provider passed.",
                               {"provider"})),
      probe_latency(r.Histogram("kshield_kms_provider_probe_duration_seconds",
                                "Duration of the background provider probe (canary wrap + unwrap).",
                                {"provider"}, kLatencyBuckets)),
      probes(r.Counter("kshield_kms_provider_probes_total", "Background provider probes.",
                       {"provider", "result"})),
      key_info(r.Gauge("kshield_kms_key_info", "The current primary key (value is always 1).",
                       {"keyset_id", "key_id"})),
      key_versions(r.Gauge("kshield_kms_key_versions", "KEK versions in the keyset by state.",
                           {"state"})),
      rotations(r.Counter("kshield_kms_rotations_total", "Key rotations.", {"result"})),
      build_info(r.Gauge("kshield_kms_build_info", "Build and runtime facts (value is always 1).",
                         {"version", "tee_platform", "provider"})),
      requests_(r.Counter("kshield_kms_requests_total", "KMS and admin calls by result code.",
                          {"api", "method", "code"})),
      latency_(r.Histogram("kshield_kms_request_duration_seconds",
                           "Time to handle a call inside the plugin.", {"api", "method"},
                           kLatencyBuckets)) {
  v2_status = Method(r, "v2", "Status");
  v2_encrypt = Method(r, "v2", "Encrypt");
  v2_decrypt = Method(r, "v2", "Decrypt");
  v1_version = Method(r, "v1beta1", "Version");
  v1_encrypt = Method(r, "v1beta1", "Encrypt");
  v1_decrypt = Method(r, "v1beta1", "Decrypt");
  admin_info = Method(r, "admin", "KeysetInfo");
  admin_rotate = Method(r, "admin", "Rotate");
  admin_refresh = Method(r, "admin", "Refresh");
}

MethodMetrics KmsMetrics::Method(metrics::Registry& r, const char* api, const char* method) {
  MethodMetrics m;
  m.api = api;
  m.method = method;
  m.requests = &requests_;
  m.ok = &requests_.WithLabels({api, method, "OK"});
  m.latency_family = &latency_;
  m.latency = &latency_.WithLabels({api, method});
  return m;
}

void KmsMetrics::SetKeyInfo(const std::string& keyset_id, const std::string& key_id, int primary,
                            int active, int retired) {
  std::lock_guard<std::mutex> lock(key_mu_);
  // Children are never removed, so the previous primary's series drops to 0.
  if (!last_key_id_.empty() && last_key_id_ != key_id) {
    key_info.WithLabels({last_keyset_id_, last_key_id_}).Set(0);
  }
  key_info.WithLabels({keyset_id, key_id}).Set(1);
  last_key_id_ = key_id;
  last_keyset_id_ = keyset_id;
  key_versions.WithLabels({"primary"}).Set(primary);
  key_versions.WithLabels({"active"}).Set(active);
  key_versions.WithLabels({"retired"}).Set(retired);
}

}  // namespace kshield::kms
