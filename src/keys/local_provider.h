// The `local` key provider: KEKs generated in-process and sealed with the TEE platform's sealing
// key (a 0600 key file under the `none` platform). Wraps are local AES-256-GCM.
#pragma once

#include <memory>

#include "common/secret.h"
#include "keys/provider.h"
#include "tee/platform.h"

namespace kshield::keys {

class LocalProvider final : public KeyProvider {
 public:
  // Derives the provider's wrapping key from the platform's sealing key.
  static absl::StatusOr<std::unique_ptr<LocalProvider>> New(tee::Platform& platform);

  std::string_view name() const override { return "local"; }
  absl::StatusOr<std::string> CreateVersion(const KekContext& ctx) override;
  absl::StatusOr<std::shared_ptr<const crypto::Aead>> OpenVersion(
      const KekContext& ctx, std::string_view material) override;
  absl::Status Probe() override { return absl::OkStatus(); }
  // Unseals the material, as OpenVersion does, and returns the raw KEK.
  absl::StatusOr<SecretBytes> ExportVersion(const KekContext& ctx,
                                            std::string_view material) override;
  // Seals a 32-byte KEK exactly as CreateVersion seals a new one.
  absl::StatusOr<std::string> ImportVersion(const KekContext& ctx, const SecretBytes& kek) override;

 private:
  absl::StatusOr<SecretBytes> Unseal(const KekContext& ctx, std::string_view material) const;
  absl::StatusOr<std::string> Seal(const KekContext& ctx, const SecretBytes& kek) const;
  LocalProvider(std::unique_ptr<crypto::Aead> wrap, std::string platform)
      : wrap_(std::move(wrap)), platform_(std::move(platform)) {}
  std::unique_ptr<crypto::Aead> wrap_;
  std::string platform_;
};

}  // namespace kshield::keys
