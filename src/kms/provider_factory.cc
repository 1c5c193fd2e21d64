#include "kms/provider_factory.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "keys/kmip/kmip_options.h"
#include "keys/kmip/kmip_provider.h"
#include "keys/local_provider.h"
#include "keys/pkcs11/options.h"
#include "keys/pkcs11/provider.h"

namespace kshield::kms {

absl::StatusOr<ProviderBundle> MakeProvider(const KmsConfig& config, tee::Platform& platform,
                                            metrics::Registry& registry) {
  ProviderBundle b;
  if (config.provider == "local") {
    KSH_ASSIGN_OR_RETURN(auto p, keys::LocalProvider::New(platform));
    b.provider = std::move(p);
    return b;
  }
  auto section = config.provider_sections.find(config.provider);
  const std::string yaml = section == config.provider_sections.end() ? "" : section->second;
  if (config.provider == "pkcs11") {
    keys::Pkcs11Options options;
    KSH_RETURN_IF_ERROR(
        Annotate(keys::ParsePkcs11OptionsYaml(yaml, &options), "pkcs11 provider config"));
    KSH_ASSIGN_OR_RETURN(auto p, keys::NewPkcs11Provider(options));
    b.provider = std::move(p);
    return b;
  }
  if (config.provider == "kmip") {
    auto options = keys::kmip::ParseKmipOptionsYaml(yaml);
    if (!options.ok()) return Annotate(options.status(), "kmip provider config");
    KSH_ASSIGN_OR_RETURN(auto p, keys::kmip::NewKmipProvider(*options));
    b.provider = std::move(p);
    return b;
  }
  return absl::UnimplementedError(
      absl::StrCat("provider \"", config.provider, "\" is not built into this kshield-kms"));
}

}  // namespace kshield::kms
