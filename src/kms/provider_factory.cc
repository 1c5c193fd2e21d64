#include "kms/provider_factory.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "keys/local_provider.h"

namespace kshield::kms {

absl::StatusOr<ProviderBundle> MakeProvider(const KmsConfig& config, tee::Platform& platform,
                                            metrics::Registry& registry) {
  ProviderBundle b;
  if (config.provider == "local") {
    KSH_ASSIGN_OR_RETURN(auto p, keys::LocalProvider::New(platform));
    b.provider = std::move(p);
    return b;
  }
  return absl::UnimplementedError(
      absl::StrCat("provider \"", config.provider, "\" is not built into this kshield-kms"));
}

}  // namespace kshield::kms
