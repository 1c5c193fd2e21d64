// Hybrid public-key encryption to an offline recipient (the keyset backup file, keys/backup.h).
// OpenSSL 3, EVP only.
//
// The sealer holds only the recipient's PUBLIC key; the private key ("identity") stays offline
// and is needed only to open:
//
//   KSH_ASSIGN_OR_RETURN(std::string blob, SealToRecipient(recipient_pub_pem, secret, "ctx"));
//   ... later, elsewhere ...
//   KSH_ASSIGN_OR_RETURN(SecretBytes secret, OpenFromRecipient(identity_pem, blob, "ctx"));
//
// Recipient keys are PEM SubjectPublicKeyInfo ("-----BEGIN PUBLIC KEY-----"), exactly one PEM
// block, at most kMaxRecipientPemSize bytes:
//  - X25519; or
//  - RSA with kMinRecipientRsaBits (3072) .. kMaxRecipientRsaBits bits.
// Anything else (RSA-2048, EC, Ed25519, DSA, ...) is InvalidArgument.
// Identities are the matching unencrypted PEM private keys (PKCS#8 "PRIVATE KEY", or
// "RSA PRIVATE KEY"); an encrypted PEM is refused (never prompts for a passphrase).
//
// Sealed blob (all integers big-endian):
//   X25519:  0x01 || ephemeral_pub(32) || nonce(12) || ciphertext || tag(16)
//     shared = X25519(ephemeral_priv, recipient_pub)
//     key    = HKDF-SHA256(ikm = shared, salt = ephemeral_pub || recipient_pub,
//                          info = "kshield recipient v1", 32 bytes)
//   RSA:     0x02 || u16 wrapped_len || wrapped_key(wrapped_len = modulus bytes) || nonce(12)
//            || ciphertext || tag(16)
//     key    = 32 random bytes; wrapped_key = RSA-OAEP(SHA-256, MGF1-SHA-256, no label)(key)
//   ciphertext || tag = AES-256-GCM(key, nonce, plaintext,
//                                   AAD = blob prefix up to the nonce || aad)
// (the prefix is self-delimiting, so prefix || aad is unambiguous). The key is fresh per blob.
//
// Errors never contain key bytes or PEM content. Every cryptographic failure of
// OpenFromRecipient (bad tag, wrong identity, OAEP failure, low-order X25519 point) is the same
// InvalidArgument("authentication failed"); structural problems (truncated blob, unknown kind,
// identity of the other kind) say what is wrong.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/secret.h"

namespace kshield::crypto {

inline constexpr size_t kMaxRecipientPemSize = 16 * 1024;
inline constexpr int kMinRecipientRsaBits = 3072;
inline constexpr int kMaxRecipientRsaBits = 16384;
// Plaintext bound of one sealed blob (a backup is far smaller).
inline constexpr size_t kMaxRecipientPlaintextSize = 16 * 1024 * 1024;
inline constexpr std::string_view kRecipientHkdfInfo = "kshield recipient v1";

// Seals `plaintext` to the recipient public key; `aad` is authenticated, not stored.
absl::StatusOr<std::string> SealToRecipient(std::string_view recipient_public_key_pem,
                                            const SecretBytes& plaintext, std::string_view aad);

// Opens a blob made by SealToRecipient with the recipient's private key; `aad` must equal the
// one given to SealToRecipient. The plaintext exists only in the returned SecretBytes.
absl::StatusOr<SecretBytes> OpenFromRecipient(const SecretBytes& identity_private_key_pem,
                                              std::string_view sealed, std::string_view aad);

// "x25519" or "rsa-<bits>" (e.g. "rsa-3072"); InvalidArgument for unsupported keys.
absl::StatusOr<std::string> RecipientKind(std::string_view public_key_pem);

// Lower-case hex SHA-256 of the SubjectPublicKeyInfo DER (64 characters). Any parseable public
// key (supported as a recipient or not).
absl::StatusOr<std::string> RecipientFingerprint(std::string_view public_key_pem);

// The recipient public key (SPKI PEM) that belongs to an identity, e.g. to compare its
// RecipientFingerprint with the one a backup names. InvalidArgument for an unusable identity
// (not a PEM private key, encrypted, or not a supported recipient kind).
absl::StatusOr<std::string> IdentityPublicKey(const SecretBytes& identity_private_key_pem);
// RecipientFingerprint(IdentityPublicKey(identity)), without the PEM round trip.
absl::StatusOr<std::string> IdentityFingerprint(const SecretBytes& identity_private_key_pem);

}  // namespace kshield::crypto
