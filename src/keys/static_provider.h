// The `static` key provider: emergency KEKs read from a file (issue 3 §3), for when the HSM / KMIP
// server is down and must be bypassed. kshield neither generates nor rotates these keys; the
// operator does, by editing the file. While the provider is active it says so loudly: a warning
// log line at start and every hour, and the gauge `kshield_kms_static_keys_active` = 1.
//
// ## The keys file
//
// Plain form — UTF-8 text, one KEK version per line:
//
//   # kshield static emergency keys; keep this file 0600
//   1: 3q2+7wEjRWeJq83vASNFZ4mrze8BI0VniavN7wEjRWc=
//   2: q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k=
//
//  - `VERSION: BASE64` (a YAML mapping of integer to string, so YAML tools read it too) or
//    `VERSION BASE64`; blank lines and lines starting with `#` are ignored; leading and trailing
//    spaces / tabs and a CR before the newline are ignored.
//  - VERSION: decimal 1..4294967294, no sign, no leading zeros; each version at most once.
//    (4294967295 is refused: the keyset's next_version must stay above every version.)
//  - BASE64: standard alphabet (RFC 4648 §4) with padding, exactly 32 bytes (44 characters).
//    Make one with `head -c 32 /dev/urandom | base64`.
//  - At least one version; at most kMaxStaticKeyVersions; file at most kMaxStaticKeysFileSize.
//
// Sealed form — the plain form AES-256-GCM-sealed to the TEE platform, so the file is useless
// off this platform identity:
//
//   "KSHSTK1\n" (8 bytes) || nonce(12) || AES-256-GCM(plain form) || tag(16)
//   key = HKDF-SHA256(ikm = Platform::SealingKey(), salt = "", info = "kshield static keys file v1")
//   AAD = the 8 magic bytes
//
// Produce it with SealStaticKeysFile() (kshieldctl wraps it). A file starting with the magic is
// sealed; anything else is read as the plain form.
//
// Either form must be a regular file, mode 0600 or stricter, owned by this uid or root
// (CheckPrivateFile). Errors name the file, the line number and the problem, never the content of
// a line (it may hold key bytes).
//
// ## Seeding the keyset
//
// KeysetManager::Init() calls CreateVersion() when the store holds no keyset, and this provider
// refuses that. So before Init(), when the store is empty, seed it:
//
//   KSH_ASSIGN_OR_RETURN(auto provider, StaticProvider::New({.keys = {.path = file}}, registry));
//   auto store = std::make_unique<FileKeysetStore>(dir + "/keyset.bin");
//   KSH_ASSIGN_OR_RETURN(auto existing, store->Load());
//   if (!existing.has_value()) {
//     KSH_ASSIGN_OR_RETURN(auto record,
//                          StaticKeysetRecord(*provider->keys(), crypto::RandomHex(8)));
//     KSH_RETURN_IF_ERROR(store->Save(record));
//   }
//   KeysetManager manager(std::move(store), provider);
//   KSH_RETURN_IF_ERROR(manager.Init());
//
// To add a version: the operator appends it to the file, then (on "Refresh") call
// provider->Reload(), UpdateStaticKeysetRecord(current record, *provider->keys()), save the result,
// and KeysetManager::Refresh().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/secret.h"
#include "keys/provider.h"
#include "keyset.pb.h"
#include "metrics/registry.h"
#include "tee/platform.h"

namespace kshield::keys {

inline constexpr size_t kMaxStaticKeysFileSize = 64 * 1024;
inline constexpr size_t kMaxStaticKeyVersions = 1000;
inline constexpr size_t kStaticKeySize = 32;
inline constexpr std::string_view kStaticKeysSealedMagic = "KSHSTK1\n";

struct StaticKeysOptions;

// The parsed keys file: KEK versions in ascending order. Move-only (the keys are SecretBytes).
class StaticKeys {
 public:
  StaticKeys() = default;
  StaticKeys(StaticKeys&&) = default;
  StaticKeys& operator=(StaticKeys&&) = default;

  // Ascending, never empty for a successfully parsed file.
  std::vector<uint32_t> versions() const;
  uint32_t highest_version() const { return keys_.empty() ? 0 : keys_.rbegin()->first; }
  size_t size() const { return keys_.size(); }
  // nullptr when the file has no such version.
  const SecretBytes* Find(uint32_t version) const;
  // Whether the file was in the sealed form.
  bool sealed() const { return sealed_; }

 private:
  friend absl::StatusOr<StaticKeys> ParseStaticKeysWithContext(std::string_view plain,
                                                              std::string_view context);
  friend absl::StatusOr<StaticKeys> LoadStaticKeys(const StaticKeysOptions& options);
  std::map<uint32_t, SecretBytes> keys_;
  bool sealed_ = false;
};

// Parses the plain form (above). Errors are InvalidArgument naming the line number.
absl::StatusOr<StaticKeys> ParseStaticKeys(std::string_view plain);
// The same, with errors starting "<context>: " instead of "static keys: ".
absl::StatusOr<StaticKeys> ParseStaticKeysWithContext(std::string_view plain,
                                                      std::string_view context);

struct StaticKeysOptions {
  std::string path;
  // Needed to open a sealed file (not owned; must outlive the load). nullptr: sealed files are
  // refused with a clear error.
  tee::Platform* platform = nullptr;
  // Refuse the plain form (for TEE deployments where a plain key file on the host defeats the
  // point).
  bool require_sealed = false;
};

// Reads, checks (0600, size) and parses the keys file, unsealing it when sealed.
absl::StatusOr<StaticKeys> LoadStaticKeys(const StaticKeysOptions& options);

// Seals a plain-form keys file to `platform` (validating it first: a file that would not load is
// refused). Returns the bytes to write (0600) as the sealed file. For `kshieldctl static seal`.
absl::StatusOr<std::string> SealStaticKeysFile(tee::Platform& platform, std::string_view plain);

// The initial keyset record for a static keyset: every version of `keys`, the highest primary,
// the others active, provider "static", empty material, next_version = highest + 1.
// `keyset_id` must be 16 lowercase hex characters (keys::IsValidKeysetId).
absl::StatusOr<kshield::keys::v1::KeysetRecord> StaticKeysetRecord(const StaticKeys& keys,
                                                                   std::string keyset_id);

// `current` plus the versions of `keys` it does not have yet; if any were added, the highest of
// them becomes primary (the old primary becomes active). Version numbers are never reused: a new
// version below `current.next_version()` is refused (it was issued and removed before). Versions
// of `current` missing from the file are kept (OpenVersion will report them NotFound).
absl::StatusOr<kshield::keys::v1::KeysetRecord> UpdateStaticKeysetRecord(
    const kshield::keys::v1::KeysetRecord& current, const StaticKeys& keys);

class StaticProvider final : public KeyProvider {
 public:
  struct Options {
    StaticKeysOptions keys;
    // How often the "static keys active" warning repeats (the first one is logged by New()).
    std::chrono::milliseconds warning_interval = std::chrono::hours(1);
  };

  // Loads the keys file, registers the gauge `kshield_kms_static_keys_active` in `registry` (an
  // error if that registry already has it: one static provider per registry) and sets it to 1,
  // logs the first warning and starts the warning thread. `registry` must outlive the provider.
  static absl::StatusOr<std::unique_ptr<StaticProvider>> New(Options options,
                                                             metrics::Registry& registry);
  // Stops the warning thread and sets the gauge to 0.
  ~StaticProvider() override;

  std::string_view name() const override { return "static"; }
  // Always FailedPrecondition: kshield cannot make static keys.
  absl::StatusOr<std::string> CreateVersion(const KekContext& ctx) override;
  // The file's KEK for ctx.version as AES-256-GCM; `material` is ignored. NotFound naming the
  // version (and the versions the file has) when the file lacks it.
  absl::StatusOr<std::shared_ptr<const crypto::Aead>> OpenVersion(
      const KekContext& ctx, std::string_view material) override;
  // OK: the file was loaded (nothing external to ask).
  absl::Status Probe() override { return absl::OkStatus(); }
  // The file's KEK for ctx.version (a copy); `material` is ignored. NotFound as OpenVersion.
  absl::StatusOr<SecretBytes> ExportVersion(const KekContext& ctx,
                                            std::string_view material) override;
  // Always FailedPrecondition: static keys come from the keys file.
  absl::StatusOr<std::string> ImportVersion(const KekContext& ctx, const SecretBytes& kek) override;

  // Re-reads the file (same options). On error the keys loaded before stay in use. Versions
  // already opened keep working either way (their Aead owns its key).
  [[nodiscard]] absl::Status Reload();
  // The keys currently loaded (an immutable snapshot; Reload() swaps in a new one).
  std::shared_ptr<const StaticKeys> keys() const;

  // Stops the warning thread early (idempotent; the destructor calls it).
  void Stop();
  // Warnings logged so far (including the one at start). For tests.
  uint64_t warnings_logged() const { return warnings_.load(); }

 private:
  StaticProvider(Options options, std::shared_ptr<const StaticKeys> keys, metrics::Gauge& gauge);
  void LogWarning();
  void WarningLoop();

  const Options options_;
  metrics::Gauge& gauge_;
  mutable std::mutex keys_mu_;
  std::shared_ptr<const StaticKeys> keys_;  // guarded by keys_mu_
  std::atomic<uint64_t> warnings_{0};

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by stop_mu_
  std::thread thread_;
};

}  // namespace kshield::keys
