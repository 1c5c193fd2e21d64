// Backup files on the operator's side (kshieldctl backup / restore / etcd decrypt --backup):
// reading a recipient identity, opening a backup, and writing a keyset back into a plugin's data
// directory from a backup, offline (kshield-kms stopped).
//
//   KSH_ASSIGN_OR_RETURN(keys::BackupContents c, OpenBackupFile("kshield.backup", "id.pem"));
//   // offline decryption:
//   KSH_ASSIGN_OR_RETURN(auto offline, OfflineDecrypterFromBackup(std::move(c)));
//   // or restore, with the provider kshield-kms would build from its config:
//   KSH_ASSIGN_OR_RETURN(RestoreReport r,
//                        RestoreKeyset(c, *provider, {data_dir + "/keyset.bin", /*force=*/false}));
//
// The identity (recipient private key) is read into SecretBytes and cleared after use; errors
// name files and reasons, never key bytes.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/secret.h"
#include "keys/backup.h"
#include "keys/provider.h"
#include "keyset.pb.h"
#include "tools/offline_decrypter.h"

namespace kshield::tools {

// Backup files are small (a few hundred bytes per KEK version); this bounds what we read.
inline constexpr size_t kMaxBackupFileBytes = 16 << 20;
inline constexpr size_t kMaxIdentityFileBytes = 64 << 10;

// Reads a PEM private key. The file must be a regular file, not readable or writable by group
// or others, owned by us or root (common/file_util.h CheckPrivateFile).
absl::StatusOr<SecretBytes> ReadIdentityFile(const std::string& path);

// Reads `backup_path` and opens it with the private key in `identity_path`. A wrong identity or
// a tampered file fails (the message says so, nothing more).
absl::StatusOr<keys::BackupContents> OpenBackupFile(const std::string& backup_path,
                                                    const std::string& identity_path);

// The KEKs of an opened backup as an in-process decrypter (moves the KEKs out of `contents`).
absl::StatusOr<std::unique_ptr<OfflineDecrypter>> OfflineDecrypterFromBackup(
    keys::BackupContents contents);

// The keyset record a restore writes: same keyset_id, versions, states, created times and
// next_version as the backup; material = provider.ImportVersion(kek). Each imported version is
// opened again with provider.OpenVersion and checked to be the backup's KEK (a canary sealed
// with the backup KEK must open through the provider), so a restore never writes a keyset the
// plugin would serve wrong keys from.
absl::StatusOr<kshield::keys::v1::KeysetRecord> BuildRestoredRecord(
    const keys::BackupContents& contents, keys::KeyProvider& provider);

struct RestoreOptions {
  std::string keyset_path;  // <data_dir>/keyset.bin, as kshield-kms uses
  // Replace an existing keyset; the old file is kept as <keyset_path>.replaced-<unix time>.
  bool force = false;
};

struct RestoreReport {
  std::string keyset_path;
  std::string keyset_id;
  std::string primary_key_id;
  int versions = 0;
  std::string provider;         // the provider that now wraps the KEKs
  std::string backup_provider;  // the provider the backup was taken from
  std::string replaced_path;    // where the previous keyset was kept ("" if there was none)
  std::string replaced_keyset_id;
};

// Refuses (FailedPrecondition, naming the keyset found) when `keyset_path` already holds a
// keyset, or a file that does not decode, unless options.force. Checks that before importing
// anything into the provider.
absl::StatusOr<RestoreReport> RestoreKeyset(const keys::BackupContents& contents,
                                            keys::KeyProvider& provider,
                                            const RestoreOptions& options);

}  // namespace kshield::tools
