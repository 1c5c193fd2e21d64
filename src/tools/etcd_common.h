// Internal helpers shared by scan / rewrap / decrypt.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "etcd/client.h"
#include "tools/etcd_tools.h"

namespace kshield::tools::internal {

// `<prefix>/secrets/` (prefix without trailing '/').
std::string SecretsPrefix(std::string_view prefix);

// Keys under `prefix` now (a count-only style Range with limit 1).
absl::StatusOr<int64_t> CountKeys(etcd::Client& etcd, std::string_view prefix);

void AddProblem(std::vector<KeyProblem>* list, std::string key, std::string reason);

// Checks that a decoded object is a Secret whose namespace/name match its etcd key.
absl::Status CheckSecretMatchesKey(std::string_view plaintext, std::string_view secrets_prefix,
                                   std::string_view etcd_key);

}  // namespace kshield::tools::internal
