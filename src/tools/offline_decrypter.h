// OfflineDecrypter — the emergency path of one-click decryption: opens the DEKs / seeds that
// kube-apiserver stored in etcd with KEKs taken from a backup file, in this process, with no
// plugin running. It builds the same Keyset and DekCipher the plugin serves from, so a value
// decrypts offline exactly when the plugin would decrypt it (same key_id checks, retired versions
// refused, same "authentication failed" for tampered bytes).
//
//   std::vector<OfflineKek> keks = ...;   // e.g. from keys::OpenBackup(file, identity)
//   KSH_ASSIGN_OR_RETURN(auto offline,
//                        OfflineDecrypter::Create(keyset_id, next_version, std::move(keks)));
//   KSH_ASSIGN_OR_RETURN(DecryptReport r, DecryptSecrets(etcd, *offline, options));
//
// KEKs stay in SecretBytes (locked, non-dumpable, zeroized); nothing is written to disk.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/secret.h"
#include "keyset.pb.h"
#include "tools/dek_decrypter.h"

namespace kshield::keys {
class DekCipher;
class KeysetManager;
class Keyset;
}  // namespace kshield::keys

namespace kshield::tools {

struct OfflineKek {
  uint32_t version = 0;
  kshield::keys::v1::KekVersionRecord::State state =
      kshield::keys::v1::KekVersionRecord::STATE_UNSPECIFIED;
  int64_t created_unix = 0;
  SecretBytes kek;  // AES-256 key, 32 bytes
};

class OfflineDecrypter final : public DekDecrypter {
 public:
  // `keks` must form a valid keyset (versions increasing from 1, below `next_version`, exactly one
  // primary, 32-byte keys): InvalidArgument / DataLoss otherwise.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<OfflineDecrypter>> Create(
      std::string keyset_id, uint32_t next_version, std::vector<OfflineKek> keks);
  ~OfflineDecrypter() override;

  absl::StatusOr<SecretBytes> DecryptV2(
      std::string_view ciphertext, std::string_view key_id,
      const std::map<std::string, std::string>& annotations) override;
  absl::StatusOr<SecretBytes> DecryptV1(std::string_view ciphertext) override;
  KmsCallCounters counters() const override;

  // The keyset built from the backup (versions, states, key ids).
  const keys::Keyset& keyset() const;

 private:
  explicit OfflineDecrypter(std::unique_ptr<keys::KeysetManager> manager);
  std::unique_ptr<keys::KeysetManager> manager_;
  std::unique_ptr<keys::DekCipher> cipher_;
  std::atomic<uint64_t> v2_decrypt_{0}, v1_decrypt_{0};
};

}  // namespace kshield::tools
