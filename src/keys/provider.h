// KeyProvider — the root of trust behind a keyset (DESIGN.md §3).
//
// A provider makes and opens KEK versions; the keyset (versions, states, never-reused numbers) is
// kept by KeysetManager in a KeysetStore, so every provider shares one rotation and persistence
// path. What a provider stores per version is opaque `material`:
//   local   — the KEK sealed with the TEE platform's sealing key
//   pkcs11  — cached mode: the KEK wrapped by the HSM master key; direct mode: the HSM key label
//   kmip    — the KMIP object's unique identifier
//   static  — nothing (keys come from the emergency file)
// OpenVersion returns an Aead: a local AES-256-GCM over protected memory for cached providers, or a
// handle that calls out per operation for direct ones. Either way DekCipher frames and
// authenticates the result identically.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/secret.h"
#include "crypto/aead.h"

namespace kshield::keys {

struct KekContext {
  std::string keyset_id;
  uint32_t version = 0;
};

class KeyProvider {
 public:
  virtual ~KeyProvider() = default;
  // "local", "pkcs11", "kmip", "static".
  virtual std::string_view name() const = 0;
  // Generates KEK version `ctx.version` under the root of trust; returns the material to persist.
  // Must not make the version usable anywhere before the caller has persisted the material.
  virtual absl::StatusOr<std::string> CreateVersion(const KekContext& ctx) = 0;
  // Turns persisted material back into a usable KEK. Errors must say why (wrong platform identity,
  // HSM unreachable, object missing) without echoing key bytes.
  virtual absl::StatusOr<std::shared_ptr<const crypto::Aead>> OpenVersion(
      const KekContext& ctx, std::string_view material) = 0;
  // Cheap liveness check of the root of trust itself (the HSM session answers, the KMIP server
  // answers). The KMS layer adds a canary wrap + unwrap with the primary KEK.
  virtual absl::Status Probe() = 0;
  // Called when a retired version is removed for good.
  virtual absl::Status DestroyVersion(const KekContext& ctx, std::string_view material) {
    return absl::OkStatus();
  }

  // Raw KEK bytes of a version, for a backup sealed to an offline recipient (keys/backup.h).
  // Direct-mode providers (non-extractable HSM keys) keep the default FailedPrecondition refusal.
  // Errors follow OpenVersion's rules (say why, never echo key bytes).
  virtual absl::StatusOr<SecretBytes> ExportVersion(const KekContext& ctx,
                                                    std::string_view material) {
    return absl::FailedPreconditionError(std::string("the ") + std::string(name()) +
                                         " provider cannot export KEK versions for a backup");
  }
  // Material for a KEK restored from a backup: seals / wraps `kek` (32 bytes) under this root of
  // trust, as CreateVersion does for a new one. The caller persists the result exactly like
  // CreateVersion's; OpenVersion(ctx, material) then yields an Aead over `kek`.
  virtual absl::StatusOr<std::string> ImportVersion(const KekContext& ctx, const SecretBytes& kek) {
    return absl::FailedPreconditionError(std::string("the ") + std::string(name()) +
                                         " provider cannot import KEK versions from a backup");
  }
};

}  // namespace kshield::keys
