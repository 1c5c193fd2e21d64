// The keyset backup file: a keyset's KEK versions sealed to an offline recipient public key
// (crypto/recipient.h), so that `kshieldctl backup --recipient PUB.pem` never needs the private
// key and `kshieldctl restore --identity PRIV.pem` can rebuild the keyset under a new root of
// trust.
//
//   KSH_ASSIGN_OR_RETURN(std::string file, SealBackup(contents, recipient_pub_pem));
//   KSH_ASSIGN_OR_RETURN(BackupHeader h, InspectBackup(file));           // no key needed
//   KSH_ASSIGN_OR_RETURN(BackupContents c, OpenBackup(file, identity_priv_pem));
//
// ## File layout (format 1). All integers big-endian; "str8" = u8 length + that many bytes.
//
//   offset  size  field
//   0       8     magic "KSHBAK1\n"
//   8       4     u32 header_len H (1..kMaxBackupHeaderSize)
//   12      H     header:
//                   u32   format                 = 1
//                   str8  keyset_id              16 lower-case hex characters
//                   i64   created_unix           seconds since the epoch (>= 0)
//                   str8  recipient_kind         "x25519" or "rsa-<bits>" (3072..16384)
//                   str8  recipient_fingerprint  64 lower-case hex: SHA-256 of the recipient's
//                                                SubjectPublicKeyInfo DER
//                   u32   kek_count              1..kMaxBackupKeks
//                 (the fields must fill H exactly)
//   12+H    rest  SealToRecipient(payload, aad = file bytes [0, 12+H)) — to the end of the file
//
// The AAD covers every byte before the sealed blob, so any change to the magic, the header
// length or the header fails authentication when the file is opened; a truncated or extended
// file changes the sealed blob and fails too. The header is readable without the private key
// (InspectBackup) but is NOT authenticated until OpenBackup succeeds: show it, don't trust it.
//
// payload (plaintext; it exists only in SecretBytes):
//   u32   next_version
//   str8  provider                provider of the backed-up keyset ("local", "pkcs11", ...)
//   u32   count                   = kek_count of the header
//   count times, versions strictly increasing:
//     u32   version               1 .. next_version-1
//     u8    state                 KekVersionRecord::State: 1 PRIMARY, 2 ACTIVE, 3 RETIRED
//     i64   created_unix          >= 0
//     str8  kek                   exactly kBackupKekSize (32) bytes
//   (the fields must fill the payload exactly)
//
// Contents rules (checked by SealBackup and again by OpenBackup, the same as
// KeysetManager::Validate so a restored keyset always loads): a valid keyset_id, 1..kMaxBackupKeks
// KEKs, versions strictly increasing from >= 1 and below next_version, every state PRIMARY /
// ACTIVE / RETIRED, exactly one PRIMARY, every KEK 32 bytes, provider 1..32 characters of
// [a-z0-9_-], created times >= 0.
//
// Parsing is bounded (every size is checked against the bytes that remain, counts and lengths
// are capped) and never asserts on input. Errors are InvalidArgument for a malformed or tampered
// file (offsets and field names, never content), PermissionDenied when the identity is not the
// file's recipient, and never contain key bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/secret.h"
#include "keys/provider.h"
#include "keyset.pb.h"

namespace kshield::keys {

inline constexpr std::string_view kBackupMagic = "KSHBAK1\n";
inline constexpr uint32_t kBackupFormat = 1;
inline constexpr size_t kBackupKekSize = 32;
inline constexpr size_t kMaxBackupKeks = 10000;
inline constexpr size_t kMaxBackupHeaderSize = 1024;
// No valid backup file is larger (10,000 KEKs with an RSA-16384 recipient stay well below it):
// read files with ReadFileBounded(path, kMaxBackupFileSize).
inline constexpr size_t kMaxBackupFileSize = 1024 * 1024;

struct BackupKek {
  uint32_t version = 0;
  kshield::keys::v1::KekVersionRecord::State state =
      kshield::keys::v1::KekVersionRecord::STATE_UNSPECIFIED;
  int64_t created_unix = 0;
  SecretBytes kek;
};

struct BackupContents {
  std::string keyset_id;
  uint32_t next_version = 0;
  std::string provider;
  int64_t created_unix = 0;
  std::vector<BackupKek> keks;
};

struct BackupHeader {
  uint32_t format = 0;
  std::string keyset_id;
  int64_t created_unix = 0;
  std::string recipient_kind;
  std::string recipient_fingerprint;
  uint32_t kek_count = 0;
};

// Seals `contents` to the recipient public key (PEM SPKI; X25519 or RSA >= 3072).
absl::StatusOr<std::string> SealBackup(const BackupContents& contents,
                                       std::string_view recipient_public_key_pem);

// Parses the magic and the cleartext header (no key needed; unauthenticated, see above) and
// checks the framing (header fields fill header_len exactly, a sealed blob of plausible size
// follows).
absl::StatusOr<BackupHeader> InspectBackup(std::string_view file_bytes);

// Inspects, checks that the identity's public key has the header's recipient fingerprint
// (PermissionDenied naming both fingerprints otherwise), opens the sealed payload and checks the
// contents rules. keyset_id and created_unix come from the (now authenticated) header.
absl::StatusOr<BackupContents> OpenBackup(std::string_view file_bytes,
                                          const SecretBytes& identity_private_key_pem);

// Helpers for the two ends (optional; the admin API may do the same by hand):
//
// Every version of `record` (all states) through provider.ExportVersion, with the record's
// keyset_id / next_version, provider = record's provider of the versions (provider.name() when
// the record has none), created_unix = `created_unix`. Errors name the version that failed.
absl::StatusOr<BackupContents> ExportKeysetForBackup(const kshield::keys::v1::KeysetRecord& record,
                                                     KeyProvider& provider, int64_t created_unix);
// A keyset record (format 1) for `contents` under `provider`: every KEK through
// provider.ImportVersion (same keyset_id, versions, states, created times and next_version, so
// every earlier key_id and ciphertext stays valid); provider field = provider.name(). On error
// nothing is returned, but versions imported before the failure may have left objects behind in
// the root of trust (e.g. registered KMIP keys); the error says which version failed.
absl::StatusOr<kshield::keys::v1::KeysetRecord> ImportKeysetFromBackup(
    const BackupContents& contents, KeyProvider& provider);

}  // namespace kshield::keys
