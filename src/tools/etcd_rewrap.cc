#include <openssl/crypto.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "envelope/envelope.h"
#include "tools/etcd_common.h"
#include "tools/etcd_tools.h"
#include "tools/parallel.h"
#include "tools/value_decryptor.h"

namespace kshield::tools {
namespace {

enum class Outcome { kRewrapped, kSkipped, kFailed };

// What one distinct old DEK source becomes under the primary key: computed once, shared by every
// value that uses it.
struct Rewrapped {
  std::shared_ptr<const SecretBytes> seed;
  KmsClient::V2Wrapped wrapped;
};

class Rewrapper {
 public:
  Rewrapper(etcd::Client& etcd, KmsClient& kms, const RewrapOptions& options,
            std::string primary)
      : etcd_(etcd), kms_(kms), options_(options), primary_(std::move(primary)),
        decryptor_(&kms, options.provider_name) {}

  size_t distinct() const { return decryptor_.cached_dek_sources(); }

  // Rewraps one value read at `kv`. On a lost CAS, re-reads and retries while the value is still
  // an old-key v2 value of ours.
  Outcome Run(etcd::KeyValue kv, std::string* reason) {
    for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
      absl::StatusOr<envelope::KmsV2Value> v = envelope::ParseKmsV2(kv.value);
      if (!v.ok()) {
        *reason = absl::StrCat("kms-v2: ", v.status().message());
        return Outcome::kFailed;
      }
      if (v->provider != options_.provider_name || v->key_id == primary_) {
        return Outcome::kSkipped;  // no longer an old value of ours
      }
      absl::StatusOr<std::shared_ptr<const Rewrapped>> rw = ForSource(*v);
      if (!rw.ok()) {
        *reason = std::string(rw.status().message());
        return Outcome::kFailed;
      }
      // The data must open under the DEK source before the source is rewrapped: never rewrite a
      // value whose data does not belong to its DEK source.
      absl::StatusOr<std::string> plain = envelope::DecryptKmsV2Data(*v, *(*rw)->seed, kv.key);
      if (!plain.ok()) {
        *reason = "data does not decrypt under its DEK source; left unchanged";
        return Outcome::kFailed;
      }
      OPENSSL_cleanse(plain->data(), plain->size());
      envelope::KmsV2Value nv = *v;  // encrypted_data and unknown fields copied byte for byte
      nv.key_id = (*rw)->wrapped.key_id;
      nv.encrypted_dek_source = (*rw)->wrapped.ciphertext;
      nv.annotations = (*rw)->wrapped.annotations;
      absl::StatusOr<std::string> value = envelope::BuildKmsV2(nv);
      if (!value.ok()) {
        *reason = std::string(value.status().message());
        return Outcome::kFailed;
      }
      absl::StatusOr<etcd::TxnResult> r = etcd_.CompareAndSwap(kv.key, kv.mod_revision, *value);
      std::optional<etcd::KeyValue> current;
      if (r.ok()) {
        if (r->succeeded) return Outcome::kRewrapped;
        current = r->current;
      } else if (etcd::IsOutcomeUnknown(r.status())) {
        absl::StatusOr<std::optional<etcd::KeyValue>> g = etcd_.Get(kv.key);
        if (!g.ok()) {
          *reason = std::string(g.status().message());
          return Outcome::kFailed;
        }
        if (g->has_value() && (*g)->value == *value) return Outcome::kRewrapped;
        current = *g;
      } else {
        *reason = std::string(r.status().message());
        return Outcome::kFailed;
      }
      // Someone wrote (or deleted) the key since it was read: their write stands.
      if (!current.has_value()) return Outcome::kSkipped;
      if (envelope::ClassifyValue(current->value) != envelope::ValueKind::kKmsV2) {
        return Outcome::kSkipped;
      }
      kv = std::move(*current);
    }
    *reason = "value kept changing; gave up after max attempts";
    return Outcome::kFailed;
  }

 private:
  // One Decrypt + Encrypt per distinct DEK source, also when several threads meet it at once.
  absl::StatusOr<std::shared_ptr<const Rewrapped>> ForSource(const envelope::KmsV2Value& v) {
    std::shared_ptr<Entry> entry;
    {
      absl::MutexLock lock(&mu_);
      std::shared_ptr<Entry>& slot = cache_[V2DekSourceId(v)];
      if (slot == nullptr) slot = std::make_shared<Entry>();
      entry = slot;
    }
    absl::MutexLock lock(&entry->mu);
    if (entry->value != nullptr) return entry->value;
    KSH_ASSIGN_OR_RETURN(std::shared_ptr<const SecretBytes> seed, decryptor_.V2DekSource(v));
    auto rw = std::make_shared<Rewrapped>();
    rw->seed = seed;
    KSH_ASSIGN_OR_RETURN(rw->wrapped, kms_.EncryptV2(*seed));
    entry->value = std::move(rw);
    return entry->value;
  }

  struct Entry {
    absl::Mutex mu;
    std::shared_ptr<const Rewrapped> value ABSL_GUARDED_BY(mu);
  };

  etcd::Client& etcd_;
  KmsClient& kms_;
  const RewrapOptions& options_;
  const std::string primary_;
  ValueDecryptor decryptor_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

absl::StatusOr<RewrapReport> RewrapToPrimary(etcd::Client& etcd, KmsClient& kms,
                                             const RewrapOptions& options,
                                             const ProgressFn& progress) {
  const std::string prefix = internal::SecretsPrefix(options.prefix);
  KmsClient::Counters before = kms.counters();
  RewrapReport report;
  report.applied = options.apply;
  KSH_ASSIGN_OR_RETURN(report.primary_key_id, kms.StatusKeyId());
  KSH_ASSIGN_OR_RETURN(int64_t total, internal::CountKeys(etcd, prefix));
  Rewrapper rewrapper(etcd, kms, options, report.primary_key_id);
  absl::Mutex mu;

  auto on_page = [&](const std::vector<etcd::KeyValue>& kvs) -> absl::Status {
    std::vector<size_t> todo;
    for (size_t i = 0; i < kvs.size(); ++i) {
      ++report.scanned;
      envelope::ValuePrefix p = envelope::SplitValuePrefix(kvs[i].value);
      if (p.kind != envelope::ValueKind::kKmsV2 || p.provider != options.provider_name) continue;
      ++report.v2_values;
      absl::StatusOr<envelope::KmsV2Value> v = envelope::ParseKmsV2(kvs[i].value);
      if (!v.ok()) {
        ++report.failed;
        internal::AddProblem(&report.failures, kvs[i].key,
                             absl::StrCat("kms-v2: ", v.status().message()));
        continue;
      }
      if (v->key_id == report.primary_key_id) {
        ++report.at_primary;
        continue;
      }
      ++report.to_rewrap;
      ++report.old_key_ids[v->key_id];
      if (options.apply) todo.push_back(i);
    }
    ParallelFor(todo.size(), options.concurrency, [&](size_t j) {
      std::string reason;
      Outcome o = rewrapper.Run(kvs[todo[j]], &reason);
      absl::MutexLock lock(&mu);
      switch (o) {
        case Outcome::kRewrapped:
          ++report.rewrapped;
          break;
        case Outcome::kSkipped:
          ++report.skipped;
          break;
        case Outcome::kFailed:
          ++report.failed;
          internal::AddProblem(&report.failures, kvs[todo[j]].key, std::move(reason));
          break;
      }
    });
    if (progress) progress(report.scanned, total);
    return absl::OkStatus();
  };
  KSH_RETURN_IF_ERROR(etcd.RangePrefix(prefix, options.page_size, on_page).status());
  report.distinct_dek_sources = rewrapper.distinct();
  report.plugin_calls = CountersSince(kms.counters(), before);
  return report;
}

}  // namespace kshield::tools
