// HKDF with SHA-256 (RFC 5869), over OpenSSL's EVP_KDF.
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "common/secret.h"

namespace kshield::crypto {

// Extract-then-expand. `salt` may be empty (RFC 5869: a string of HashLen zeros).
absl::StatusOr<SecretBytes> HkdfSha256(const SecretBytes& ikm, std::string_view salt,
                                       std::string_view info, size_t out_len);

// Expand only: `prk` is used directly as the pseudorandom key (kube-apiserver's KMS v2 DEK
// derivation: DEK = HKDF-Expand(SHA-256, seed, info, 32)).
absl::StatusOr<SecretBytes> HkdfExpandSha256(const SecretBytes& prk, std::string_view info,
                                             size_t out_len);

}  // namespace kshield::crypto
