// AES-GCM on the token (CKM_AES_GCM, 128-bit tag), for use inside a SessionPool op.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/secret.h"
#include "crypto/aead.h"
#include "keys/pkcs11/session_pool.h"

namespace kshield::keys::pkcs11 {

// Encrypts `plaintext` under `key` with `iv` (12 bytes); returns ciphertext || tag.
absl::StatusOr<std::string> TokenGcmEncrypt(OpContext& c, CK_OBJECT_HANDLE key, std::string_view iv,
                                            absl::Span<const uint8_t> plaintext,
                                            std::string_view aad);

// Decrypts ciphertext || tag into protected memory. A failing C_Decrypt (bad tag, wrong key, wrong
// AAD — SoftHSM 2.6 says CKR_GENERAL_ERROR for all of them) is InvalidArgument(kAuthFailed), with
// the return value recorded in `c` so the pool can still tell a vanished token apart.
absl::StatusOr<SecretBytes> TokenGcmDecrypt(OpContext& c, CK_OBJECT_HANDLE key, std::string_view iv,
                                            std::string_view ct_and_tag, std::string_view aad);

// The direct-mode Aead: every call is CKM_AES_GCM on the token with the key `ref`.
// Output nonce(12) || ciphertext || tag(16), like crypto::AesGcmAead. Decrypt returns
// InvalidArgument(kAuthFailed) for any failure except an unavailable token (UNAVAILABLE).
class TokenAead final : public crypto::Aead {
 public:
  TokenAead(std::shared_ptr<SessionPool> pool, KeyRef ref)
      : pool_(std::move(pool)), ref_(std::move(ref)) {}

  absl::StatusOr<std::string> Encrypt(std::string_view plaintext,
                                      std::string_view associated_data) const override;
  absl::StatusOr<std::string> Decrypt(std::string_view ciphertext,
                                      std::string_view associated_data) const override;

  const KeyRef& ref() const { return ref_; }

 private:
  std::shared_ptr<SessionPool> pool_;
  KeyRef ref_;
};

}  // namespace kshield::keys::pkcs11
