#include "keys/local_provider.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "crypto/hkdf.h"
#include "crypto/random.h"

namespace kshield::keys {
namespace {

constexpr std::string_view kMaterialPrefix = "L1";  // format of the sealed material
constexpr size_t kKekSize = 32;

std::string SealAad(const KekContext& ctx) {
  return absl::StrCat("kshield/local/kek/v1:", ctx.keyset_id, ":", ctx.version);
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalProvider>> LocalProvider::New(tee::Platform& platform) {
  auto sealing = platform.SealingKey();
  if (!sealing.ok()) {
    return Annotate(sealing.status(),
                    absl::StrCat("local provider: sealing key of platform ", AV(platform.name())));
  }
  KSH_ASSIGN_OR_RETURN(SecretBytes wrap_key,
                       crypto::HkdfSha256(*sealing, "", "kshield local provider wrap v1", 32));
  KSH_ASSIGN_OR_RETURN(auto aead, crypto::AesGcmAead::New(std::move(wrap_key)));
  return std::unique_ptr<LocalProvider>(
      new LocalProvider(std::move(aead), std::string(platform.name())));
}

absl::StatusOr<std::string> LocalProvider::Seal(const KekContext& ctx,
                                                const SecretBytes& kek) const {
  if (kek.size() != kKekSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("KEK version ", ctx.version, " is ", kek.size(), " bytes, want ", kKekSize));
  }
  KSH_ASSIGN_OR_RETURN(std::string sealed, wrap_->Encrypt(kek.UnsafeStringView(), SealAad(ctx)));
  return absl::StrCat(AV(kMaterialPrefix), sealed);
}

absl::StatusOr<SecretBytes> LocalProvider::Unseal(const KekContext& ctx,
                                                  std::string_view material) const {
  if (material.substr(0, kMaterialPrefix.size()) != kMaterialPrefix) {
    return absl::DataLossError(
        absl::StrCat("KEK version ", ctx.version, " was not made by the local provider"));
  }
  auto kek = wrap_->Decrypt(material.substr(kMaterialPrefix.size()), SealAad(ctx));
  if (!kek.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot unseal KEK version ", ctx.version, " of keyset ", ctx.keyset_id,
        ": it was sealed under a different platform identity or sealing key (platform now: ",
        platform_, "), or the keyset file is corrupted"));
  }
  SecretBytes key = SecretBytes::CopyFrom(*kek);
  std::fill(kek->begin(), kek->end(), '\0');
  if (key.size() != kKekSize) {
    return absl::DataLossError(absl::StrCat("KEK version ", ctx.version, " has a wrong size"));
  }
  return key;
}

absl::StatusOr<std::string> LocalProvider::CreateVersion(const KekContext& ctx) {
  return Seal(ctx, crypto::RandomSecret(kKekSize));
}

absl::StatusOr<std::shared_ptr<const crypto::Aead>> LocalProvider::OpenVersion(
    const KekContext& ctx, std::string_view material) {
  KSH_ASSIGN_OR_RETURN(SecretBytes key, Unseal(ctx, material));
  KSH_ASSIGN_OR_RETURN(auto aead, crypto::AesGcmAead::New(std::move(key)));
  return std::shared_ptr<const crypto::Aead>(std::move(aead));
}

absl::StatusOr<SecretBytes> LocalProvider::ExportVersion(const KekContext& ctx,
                                                         std::string_view material) {
  return Unseal(ctx, material);
}

absl::StatusOr<std::string> LocalProvider::ImportVersion(const KekContext& ctx,
                                                         const SecretBytes& kek) {
  return Seal(ctx, kek);
}

}  // namespace kshield::keys
