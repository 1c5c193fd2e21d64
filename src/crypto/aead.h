// Tink-shaped authenticated encryption.
//
// An Aead hides the nonce, the algorithm and the key from its caller:
//
//   KSH_ASSIGN_OR_RETURN(std::unique_ptr<Aead> aead, AesGcmAead::New(RandomSecret(32)));
//   KSH_ASSIGN_OR_RETURN(std::string ct, aead->Encrypt(plaintext, "context"));
//   KSH_ASSIGN_OR_RETURN(std::string pt, aead->Decrypt(ct, "context"));
//
// Decrypt failures all carry the same message ("authentication failed"), whatever went wrong
// (short input, bad tag): callers must not be able to tell reasons apart (no oracle).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/secret.h"

namespace kshield::crypto {

inline constexpr size_t kAesGcmNonceSize = 12;
inline constexpr size_t kAesGcmTagSize = 16;
inline constexpr std::string_view kAuthFailed = "authentication failed";

class Aead {
 public:
  virtual ~Aead() = default;
  // Thread-safe. Returns nonce || ciphertext || tag.
  virtual absl::StatusOr<std::string> Encrypt(std::string_view plaintext,
                                              std::string_view associated_data) const = 0;
  virtual absl::StatusOr<std::string> Decrypt(std::string_view ciphertext,
                                              std::string_view associated_data) const = 0;
};

// AES-GCM with a random 96-bit nonce and a 128-bit tag, over OpenSSL EVP.
// Key sizes 16 or 32 bytes (AES-128 only for compatibility with recorded data).
class AesGcmAead final : public Aead {
 public:
  static absl::StatusOr<std::unique_ptr<AesGcmAead>> New(SecretBytes key);

  absl::StatusOr<std::string> Encrypt(std::string_view plaintext,
                                      std::string_view associated_data) const override;
  absl::StatusOr<std::string> Decrypt(std::string_view ciphertext,
                                      std::string_view associated_data) const override;

 private:
  explicit AesGcmAead(SecretBytes key) : key_(std::move(key)) {}
  SecretBytes key_;
};

// Explicit-nonce AES-GCM for formats defined by others (kube-apiserver's envelope layers, test
// vectors). Output / input is ciphertext || tag (no nonce). `key` is 16, 24 or 32 bytes;
// `nonce` any non-empty length (12 is the only one we emit).
absl::StatusOr<std::string> AesGcmSeal(const SecretBytes& key, std::string_view nonce,
                                       std::string_view plaintext, std::string_view aad);
absl::StatusOr<std::string> AesGcmOpen(const SecretBytes& key, std::string_view nonce,
                                       std::string_view ciphertext_and_tag, std::string_view aad);

}  // namespace kshield::crypto
