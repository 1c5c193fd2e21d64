#include "tools/keyset_restore.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "crypto/aead.h"
#include "crypto/random.h"
#include "keys/key_id.h"
#include "keys/keyset_manager.h"
#include "keys/keyset_store.h"

namespace kshield::tools {
namespace {

using kshield::keys::v1::KeysetRecord;

// Proves that `opened` (the provider's view of an imported version) is the backup's KEK.
absl::Status CheckSameKek(const SecretBytes& kek, const crypto::Aead& opened,
                          const std::string& key_id) {
  KSH_ASSIGN_OR_RETURN(auto reference, crypto::AesGcmAead::New(kek.Clone()));
  const std::string aad = absl::StrCat("kshieldctl restore check:", key_id);
  SecretBytes canary = crypto::RandomSecret(32);
  KSH_ASSIGN_OR_RETURN(std::string sealed, reference->Encrypt(canary.UnsafeStringView(), aad));
  absl::StatusOr<std::string> back = opened.Decrypt(sealed, aad);
  bool same = back.ok() && ConstantTimeEquals(*back, canary.UnsafeStringView());
  if (back.ok()) OPENSSL_cleanse(back->data(), back->size());
  if (!same) {
    return absl::DataLossError(absl::StrCat(
        "the provider's copy of ", key_id, " does not match the backup's KEK; nothing written"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SecretBytes> ReadIdentityFile(const std::string& path) {
  absl::StatusOr<SecretBytes> out = ReadPrivateFile(path, kMaxIdentityFileBytes);
  if (!out.ok()) return Annotate(out.status(), "identity (private key) file");
  if (out->empty()) return absl::InvalidArgumentError(absl::StrCat(path, " is empty"));
  return out;
}

absl::StatusOr<keys::BackupContents> OpenBackupFile(const std::string& backup_path,
                                                    const std::string& identity_path) {
  KSH_ASSIGN_OR_RETURN(std::string bytes, ReadFileBounded(backup_path, kMaxBackupFileBytes));
  KSH_ASSIGN_OR_RETURN(SecretBytes identity, ReadIdentityFile(identity_path));
  absl::StatusOr<keys::BackupContents> contents = keys::OpenBackup(bytes, identity);
  if (!contents.ok()) {
    return Annotate(contents.status(),
                    absl::StrCat("opening backup ", backup_path, " with identity ", identity_path));
  }
  return contents;
}

absl::StatusOr<std::unique_ptr<OfflineDecrypter>> OfflineDecrypterFromBackup(
    keys::BackupContents contents) {
  std::vector<OfflineKek> keks;
  keks.reserve(contents.keks.size());
  for (keys::BackupKek& k : contents.keks) {
    OfflineKek o;
    o.version = k.version;
    o.state = k.state;
    o.created_unix = k.created_unix;
    o.kek = std::move(k.kek);
    keks.push_back(std::move(o));
  }
  return OfflineDecrypter::Create(contents.keyset_id, contents.next_version, std::move(keks));
}

absl::StatusOr<KeysetRecord> BuildRestoredRecord(const keys::BackupContents& contents,
                                                 keys::KeyProvider& provider) {
  KeysetRecord record;
  record.set_format(1);
  record.set_keyset_id(contents.keyset_id);
  record.set_next_version(contents.next_version);
  // Structure first (cheap, and before the provider creates anything).
  for (const keys::BackupKek& k : contents.keks) {
    auto* v = record.add_versions();
    v->set_version(k.version);
    v->set_state(k.state);
    v->set_created_unix(k.created_unix);
    v->set_provider(std::string(provider.name()));
  }
  KSH_RETURN_IF_ERROR(Annotate(keys::KeysetManager::Validate(record), "backup"));
  for (int i = 0; i < record.versions_size(); ++i) {
    const keys::BackupKek& k = contents.keks[static_cast<size_t>(i)];
    const keys::KekContext ctx{contents.keyset_id, k.version};
    const std::string key_id = keys::FormatKeyId(contents.keyset_id, k.version);
    absl::StatusOr<std::string> material = provider.ImportVersion(ctx, k.kek);
    if (!material.ok()) {
      return Annotate(material.status(),
                      absl::StrCat("importing ", key_id, " into provider ", AV(provider.name())));
    }
    KSH_ASSIGN_OR_RETURN(std::shared_ptr<const crypto::Aead> opened,
                         provider.OpenVersion(ctx, *material));
    KSH_RETURN_IF_ERROR(CheckSameKek(k.kek, *opened, key_id));
    record.mutable_versions(i)->set_material(std::move(*material));
  }
  return record;
}

absl::StatusOr<RestoreReport> RestoreKeyset(const keys::BackupContents& contents,
                                            keys::KeyProvider& provider,
                                            const RestoreOptions& options) {
  if (options.keyset_path.empty()) return absl::InvalidArgumentError("no keyset path");
  RestoreReport report;
  report.keyset_path = options.keyset_path;
  report.keyset_id = contents.keyset_id;
  report.backup_provider = contents.provider;
  report.provider = std::string(provider.name());

  keys::FileKeysetStore store(options.keyset_path);
  const bool exists = FileExists(options.keyset_path);
  if (exists) {
    absl::StatusOr<std::optional<KeysetRecord>> current = store.Load();
    std::string what;
    if (!current.ok()) {
      what = absl::StrCat("a keyset file that does not load (", current.status().message(), ")");
    } else if (current->has_value()) {
      report.replaced_keyset_id = (*current)->keyset_id();
      what = absl::StrCat("keyset ", (*current)->keyset_id(), " with ",
                          (*current)->versions_size(), " versions");
    } else {
      what = "an empty keyset file";
    }
    if (!options.force) {
      return absl::FailedPreconditionError(absl::StrCat(
          options.keyset_path, " already holds ", what,
          "; refusing to overwrite it (--force replaces it and keeps the old file as ",
          options.keyset_path, ".replaced-<unix time>)"));
    }
  }

  KSH_ASSIGN_OR_RETURN(KeysetRecord record, BuildRestoredRecord(contents, provider));

  if (exists) {
    // A hard link keeps the old keyset under its new name; Save then replaces the original name
    // atomically, so at every moment one complete keyset is at keyset_path.
    const std::string base = absl::StrCat(options.keyset_path, ".replaced-", time(nullptr));
    std::string replaced = base;
    for (int n = 2; FileExists(replaced); ++n) replaced = absl::StrCat(base, "-", n);
    if (link(options.keyset_path.c_str(), replaced.c_str()) != 0) {
      const int err = errno;
      absl::StatusOr<std::string> old = ReadFileBounded(options.keyset_path, 64 << 20);
      if (!old.ok()) return Annotate(old.status(), "keeping the old keyset");
      absl::Status s = WriteFileAtomic(replaced, *old, 0600);
      if (!s.ok()) {
        return Annotate(s, absl::StrCat("keeping the old keyset as ", replaced, " (link: ",
                                        ErrnoString(err), ")"));
      }
    }
    report.replaced_path = replaced;
  }
  KSH_RETURN_IF_ERROR(Annotate(store.Save(record), absl::StrCat("writing ", store.Describe())));
  for (const auto& v : record.versions()) {
    if (v.state() == kshield::keys::v1::KekVersionRecord::PRIMARY) {
      report.primary_key_id = keys::FormatKeyId(record.keyset_id(), v.version());
    }
  }
  report.versions = record.versions_size();
  return report;
}

}  // namespace kshield::tools
