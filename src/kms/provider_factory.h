// Builds the key provider named in the config (local, pkcs11, kmip, static) from its section.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "keys/keyset_store.h"
#include "keys/provider.h"
#include "kms/config.h"
#include "metrics/registry.h"
#include "tee/platform.h"

namespace kshield::kms {

struct ProviderBundle {
  std::shared_ptr<keys::KeyProvider> provider;
  // For providers whose versions come from outside (static): the record to seed an empty store.
  std::optional<kshield::keys::v1::KeysetRecord> seed_record;
  // Runs before an admin Refresh (static: re-read the keys file and add new versions to the
  // stored keyset so the manager's reload sees them).
  std::function<absl::Status()> before_refresh;
};

absl::StatusOr<ProviderBundle> MakeProvider(const KmsConfig& config, tee::Platform& platform,
                                            metrics::Registry& registry);

}  // namespace kshield::kms
