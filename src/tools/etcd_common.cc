#include "tools/etcd_common.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "envelope/envelope.h"

namespace kshield::tools {

KmsClient::Counters CountersSince(const KmsClient::Counters& now, const KmsClient::Counters& then) {
  KmsClient::Counters d;
  d.status = now.status - then.status;
  d.v2_encrypt = now.v2_encrypt - then.v2_encrypt;
  d.v2_decrypt = now.v2_decrypt - then.v2_decrypt;
  d.v1_encrypt = now.v1_encrypt - then.v1_encrypt;
  d.v1_decrypt = now.v1_decrypt - then.v1_decrypt;
  return d;
}

namespace internal {

std::string SecretsPrefix(std::string_view prefix) {
  while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
  return absl::StrCat(AV(prefix), "/secrets/");
}

absl::StatusOr<int64_t> CountKeys(etcd::Client& etcd, std::string_view prefix) {
  KSH_ASSIGN_OR_RETURN(etcd::RangeResult r, etcd.Range(prefix, etcd::PrefixRangeEnd(prefix), 1));
  return r.count;
}

void AddProblem(std::vector<KeyProblem>* list, std::string key, std::string reason) {
  if (list->size() < kMaxListedKeys) list->push_back({std::move(key), std::move(reason)});
}

absl::Status CheckSecretMatchesKey(std::string_view plaintext, std::string_view secrets_prefix,
                                   std::string_view etcd_key) {
  KSH_ASSIGN_OR_RETURN(envelope::SecretInfo s, envelope::DecodeSecret(plaintext));
  std::string want = absl::StrCat(AV(secrets_prefix), s.namespace_name, "/", s.name);
  if (want != etcd_key) {
    return absl::InvalidArgumentError("decoded Secret's namespace/name do not match its etcd key");
  }
  return absl::OkStatus();
}

}  // namespace internal
}  // namespace kshield::tools
