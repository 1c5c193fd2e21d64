#include <openssl/crypto.h>

#include <optional>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "envelope/envelope.h"
#include "keys/key_id.h"
#include "keys/wrapped_dek.h"
#include "tools/etcd_common.h"
#include "tools/etcd_tools.h"
#include "tools/parallel.h"
#include "tools/value_decryptor.h"

namespace kshield::tools {
namespace {

using GroupKey = std::tuple<std::string, std::string, std::string, std::string>;

std::string DekSourceTypeName(envelope::DekSourceType t) {
  return t == envelope::DekSourceType::kAesGcmKey ? "aes-gcm-key" : "hkdf-seed";
}

}  // namespace

absl::StatusOr<ScanReport> ScanSecrets(etcd::Client& etcd, DekDecrypter* kms,
                                       const ScanOptions& options, const ProgressFn& progress) {
  if (options.verify && kms == nullptr) {
    return absl::InvalidArgumentError("scan --verify needs the plugin socket");
  }
  const std::string prefix = internal::SecretsPrefix(options.prefix);
  KSH_ASSIGN_OR_RETURN(int64_t total, internal::CountKeys(etcd, prefix));
  ScanReport report;
  report.verified = options.verify;
  KmsClient::Counters before = kms != nullptr ? kms->counters() : KmsClient::Counters{};
  ValueDecryptor decryptor(kms, options.provider_name);
  std::map<GroupKey, int64_t> groups;
  absl::Mutex mu;  // guards report's verify fields during the parallel part

  auto on_page = [&](const std::vector<etcd::KeyValue>& kvs) -> absl::Status {
    std::vector<size_t> to_verify;
    for (size_t i = 0; i < kvs.size(); ++i) {
      const etcd::KeyValue& kv = kvs[i];
      ++report.total;
      envelope::ValuePrefix p = envelope::SplitValuePrefix(kv.value);
      GroupKey g{std::string(envelope::ValueKindName(p.kind)), std::string(p.provider), "", ""};
      bool ours = false;
      switch (p.kind) {
        case envelope::ValueKind::kIdentity: {
          ++report.unencrypted_count;
          if (report.unencrypted.size() < kMaxListedKeys) report.unencrypted.push_back(kv.key);
          // A plain protobuf value must at least be a Secret; JSON (very old clusters) is counted.
          if (kv.value.compare(0, envelope::kProtobufMagic.size(), envelope::kProtobufMagic) ==
              0) {
            absl::Status s = internal::CheckSecretMatchesKey(kv.value, prefix, kv.key);
            if (!s.ok()) {
              ++report.unparseable_count;
              internal::AddProblem(&report.unparseable, kv.key,
                                   absl::StrCat("identity value: ", s.message()));
            }
          }
          break;
        }
        case envelope::ValueKind::kKmsV2: {
          absl::StatusOr<envelope::KmsV2Value> v = envelope::ParseKmsV2(kv.value);
          if (!v.ok()) {
            std::get<0>(g) = "unparseable";
            ++report.unparseable_count;
            internal::AddProblem(&report.unparseable, kv.key,
                                 absl::StrCat("kms-v2: ", v.status().message()));
            break;
          }
          std::get<2>(g) = v->key_id;
          std::get<3>(g) = DekSourceTypeName(v->dek_source_type);
          ours = v->provider == options.provider_name;
          if (ours) {
            absl::StatusOr<keys::KeyId> id = keys::ParseKeyId(v->key_id);
            if (id.ok()) ++report.key_versions[v->key_id];
          }
          break;
        }
        case envelope::ValueKind::kKmsV1: {
          absl::StatusOr<envelope::KmsV1Value> v = envelope::ParseKmsV1(kv.value);
          if (!v.ok()) {
            std::get<0>(g) = "unparseable";
            ++report.unparseable_count;
            internal::AddProblem(&report.unparseable, kv.key,
                                 absl::StrCat("kms-v1: ", v.status().message()));
            break;
          }
          ours = v->provider == options.provider_name;
          if (ours) {
            absl::StatusOr<keys::WrappedDek> w = keys::ParseWrappedDek(v->wrapped_dek);
            if (w.ok() && w->format == keys::WrapFormat::kKmsV1beta1) {
              ++report.key_versions[absl::StrCat("v1:", w->version)];
            }
          }
          break;
        }
        case envelope::ValueKind::kUnknown:
          std::get<0>(g) = "unparseable";
          ++report.unparseable_count;
          internal::AddProblem(&report.unparseable, kv.key, "unknown value format");
          break;
        default:
          break;  // aesgcm / aescbc / secretbox: counted by key name
      }
      ++groups[g];
      if (options.verify) {
        if (ours) {
          to_verify.push_back(i);
        } else if (p.kind != envelope::ValueKind::kIdentity &&
                   std::get<0>(g) != "unparseable") {
          ++report.verify_skipped;
        }
      }
    }
    ParallelFor(to_verify.size(), options.concurrency, [&](size_t j) {
      const etcd::KeyValue& kv = kvs[to_verify[j]];
      absl::StatusOr<std::string> plain = decryptor.Decrypt(kv.key, kv.value);
      absl::Status s = plain.ok() ? internal::CheckSecretMatchesKey(*plain, prefix, kv.key)
                                  : plain.status();
      if (plain.ok()) OPENSSL_cleanse(plain->data(), plain->size());
      absl::MutexLock lock(&mu);
      if (s.ok()) {
        ++report.verify_ok;
      } else {
        ++report.verify_failed;
        internal::AddProblem(&report.verify_failures, kv.key, std::string(s.message()));
      }
    });
    if (progress) progress(report.total, total);
    return absl::OkStatus();
  };
  KSH_ASSIGN_OR_RETURN(report.revision, etcd.RangePrefix(prefix, options.page_size, on_page));
  for (const auto& [k, n] : groups) {
    report.groups.push_back(
        {std::get<0>(k), std::get<1>(k), std::get<2>(k), std::get<3>(k), n});
  }
  report.distinct_dek_sources = decryptor.cached_dek_sources();
  if (kms != nullptr) report.plugin_calls = CountersSince(kms->counters(), before);
  return report;
}

namespace {

// The key version a KMS value of our provider uses ("ksh1:..." / "v1:<n>"), or a reason why it
// names none. Not ours (other provider, not KMS): nullopt with an empty reason.
std::optional<std::string> OurKeyVersion(std::string_view value, const std::string& provider,
                                         std::string* reason) {
  envelope::ValuePrefix p = envelope::SplitValuePrefix(value);
  if ((p.kind != envelope::ValueKind::kKmsV2 && p.kind != envelope::ValueKind::kKmsV1) ||
      p.provider != provider) {
    return std::nullopt;
  }
  if (p.kind == envelope::ValueKind::kKmsV2) {
    absl::StatusOr<envelope::KmsV2Value> v = envelope::ParseKmsV2(value);
    if (!v.ok()) {
      *reason = absl::StrCat("kms-v2: ", v.status().message());
      return std::nullopt;
    }
    if (!keys::ParseKeyId(v->key_id).ok()) {
      *reason = "kms-v2: keyID is not a kshield key id";
      return std::nullopt;
    }
    return v->key_id;
  }
  absl::StatusOr<envelope::KmsV1Value> v = envelope::ParseKmsV1(value);
  if (!v.ok()) {
    *reason = absl::StrCat("kms-v1: ", v.status().message());
    return std::nullopt;
  }
  absl::StatusOr<keys::WrappedDek> w = keys::ParseWrappedDek(v->wrapped_dek);
  if (!w.ok() || w->format != keys::WrapFormat::kKmsV1beta1) {
    *reason = "kms-v1: wrapped DEK is not a kshield v1beta1 ciphertext";
    return std::nullopt;
  }
  return absl::StrCat("v1:", w->version);
}

}  // namespace

absl::StatusOr<UsageReport> KeyVersionUsage(etcd::Client& etcd, const UsageOptions& options,
                                            const ProgressFn& progress) {
  std::string prefix(options.prefix);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  prefix = options.all_resources ? prefix + "/" : internal::SecretsPrefix(options.prefix);
  KSH_ASSIGN_OR_RETURN(int64_t total, internal::CountKeys(etcd, prefix));
  UsageReport report;
  report.walked_prefix = prefix;
  auto on_page = [&](const std::vector<etcd::KeyValue>& kvs) -> absl::Status {
    for (const etcd::KeyValue& kv : kvs) {
      ++report.scanned;
      std::string reason;
      std::optional<std::string> version = OurKeyVersion(kv.value, options.provider_name, &reason);
      if (version.has_value()) {
        ++report.ours;
        ++report.key_versions[*version];
      } else if (!reason.empty()) {
        ++report.ours;
        ++report.unreadable;
        internal::AddProblem(&report.unreadable_keys, kv.key, std::move(reason));
      }
    }
    if (progress) progress(report.scanned, total);
    return absl::OkStatus();
  };
  KSH_ASSIGN_OR_RETURN(report.revision, etcd.RangePrefix(prefix, options.page_size, on_page));
  return report;
}

int64_t UsesOfVersion(const std::map<std::string, int64_t>& key_versions,
                      std::string_view keyset_id, uint32_t version) {
  int64_t n = 0;
  auto v2 = key_versions.find(keys::FormatKeyId(keyset_id, version));
  if (v2 != key_versions.end()) n += v2->second;
  auto v1 = key_versions.find(absl::StrCat("v1:", version));
  if (v1 != key_versions.end()) n += v1->second;
  return n;
}

}  // namespace kshield::tools
