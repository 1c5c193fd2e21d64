#include "kms/provider_factory.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "keys/kmip/kmip_options.h"
#include "keys/kmip/kmip_provider.h"
#include "keys/local_provider.h"
#include "keys/static_provider.h"
#include "crypto/random.h"
#include "keys/key_id.h"
#include <yaml-cpp/yaml.h>
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
  if (config.provider == "static") {
    keys::StaticProvider::Options options;
    options.keys.platform = &platform;
    try {
      YAML::Node node = YAML::Load(yaml);
      for (const auto& kv : node) {
        std::string key = kv.first.as<std::string>();
        if (key == "keys_file") {
          options.keys.path = kv.second.as<std::string>();
        } else if (key == "require_sealed") {
          options.keys.require_sealed = kv.second.as<bool>();
        } else {
          return absl::InvalidArgumentError(
              absl::StrCat("static provider config: unknown key \"", key, "\""));
        }
      }
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(absl::StrCat("static provider config: ", e.what()));
    }
    if (options.keys.path.empty()) {
      return absl::InvalidArgumentError("static provider config: keys_file is required");
    }
    KSH_ASSIGN_OR_RETURN(auto p, keys::StaticProvider::New(options, registry));
    std::shared_ptr<keys::StaticProvider> sp(std::move(p));
    KSH_ASSIGN_OR_RETURN(b.seed_record, keys::StaticKeysetRecord(
                                            *sp->keys(), crypto::RandomHex(keys::kKeysetIdLength / 2)));
    const std::string path = config.data_dir + "/keyset.bin";
    b.before_refresh = [sp, path]() -> absl::Status {
      KSH_RETURN_IF_ERROR(Annotate(sp->Reload(), "re-reading the static keys file"));
      keys::FileKeysetStore store(path);
      KSH_ASSIGN_OR_RETURN(auto current, store.Load());
      if (!current.has_value()) return absl::DataLossError("keyset vanished from " + path);
      KSH_ASSIGN_OR_RETURN(auto updated, keys::UpdateStaticKeysetRecord(*current, *sp->keys()));
      return store.Save(updated);
    };
    b.provider = sp;
    return b;
  }
  return absl::UnimplementedError(
      absl::StrCat("provider \"", config.provider, "\" is not built into this kshield-kms"));
}

}  // namespace kshield::kms
