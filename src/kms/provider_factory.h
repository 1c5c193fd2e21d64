// Builds the key provider named in the config (local, pkcs11, kmip, static) from its section.
#pragma once

#include <memory>

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
};

absl::StatusOr<ProviderBundle> MakeProvider(const KmsConfig& config, tee::Platform& platform,
                                            metrics::Registry& registry);

}  // namespace kshield::kms
