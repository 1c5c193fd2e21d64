// kshieldctl's etcd operations (issue 4 §3), as a library: scan, rewrap, decrypt of the Secrets
// kube-apiserver stored under `<prefix>/secrets/`. The CLI (src/cmd/kshieldctl_etcd.cc) parses
// flags, calls these and prints the reports.
//
//   KSH_ASSIGN_OR_RETURN(auto etcd, etcd::Client::Create(etcd_options));
//   KSH_ASSIGN_OR_RETURN(auto kms, KmsClient::Create(socket));
//   ScanOptions o;  o.verify = true;
//   KSH_ASSIGN_OR_RETURN(ScanReport r, ScanSecrets(*etcd, kms.get(), o));
//
// Rules shared by all three:
//  - a value that cannot be parsed or decrypted is reported with its etcd key and a reason, and the
//    walk goes on (never fatal); only etcd / plugin set-up failures end an operation early;
//  - only KMS values whose provider name is options.provider_name go to the plugin;
//  - every etcd write is a compare-and-swap on the mod_revision that was read, so a concurrent
//    apiserver write is never overwritten;
//  - reports and errors hold etcd keys, key ids and counts, never a DEK, a seed or Secret data.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "etcd/client.h"
#include "tools/dek_decrypter.h"
#include "tools/kms_client.h"

namespace kshield::tools {

// Called as values are processed: (done, total). `total` is the key count when the walk started
// (values written meanwhile may push done past it).
using ProgressFn = std::function<void(int64_t done, int64_t total)>;

// Lists of keys in reports stop growing at this many entries (their counts do not).
inline constexpr size_t kMaxListedKeys = 1000;

struct KeyProblem {
  std::string key;
  std::string reason;
};

struct CommonOptions {
  std::string prefix = "/registry";       // the apiserver's --etcd-prefix
  std::string provider_name = "kshield";  // EncryptionConfiguration name of our KMS provider
  int64_t page_size = 500;
  int concurrency = 4;  // values decrypted at once (plugin calls in flight)
};

// ---- scan -------------------------------------------------------------------------------------

struct ScanOptions : CommonOptions {
  bool verify = false;  // decrypt every value of our provider through the plugin
};

struct ScanGroup {
  std::string kind;      // ValueKindName: identity, kms-v2, kms-v1, aesgcm, ...
  std::string provider;  // provider / key name from the prefix ("" for identity)
  std::string key_id;    // KMS v2 keyID; "" otherwise
  std::string dek_source_type;  // KMS v2: "hkdf-seed" or "aes-gcm-key"; "" otherwise
  int64_t count = 0;
};

struct ScanReport {
  int64_t revision = 0;  // etcd revision of the snapshot walked
  int64_t total = 0;
  std::vector<ScanGroup> groups;  // sorted by kind, provider, key_id, type
  // kshield KEK versions in use by our provider's values: from v2 key ids `ksh1:<keyset>:<n>` and
  // from v1 wrapped-DEK headers. Key: "ksh1:<keyset>:<n>" for v2, "v1:<n>" for v1 (v1beta1 values
  // do not name the keyset).
  std::map<std::string, int64_t> key_versions;
  int64_t unencrypted_count = 0;
  std::vector<std::string> unencrypted;  // etcd keys (first kMaxListedKeys)
  int64_t unparseable_count = 0;
  std::vector<KeyProblem> unparseable;
  // --verify
  bool verified = false;
  int64_t verify_ok = 0;
  int64_t verify_failed = 0;
  int64_t verify_skipped = 0;  // encrypted by something else than our provider
  std::vector<KeyProblem> verify_failures;
  size_t distinct_dek_sources = 0;
  KmsClient::Counters plugin_calls;
};

// `kms` (the plugin, or KEKs from a backup) is needed only with options.verify.
absl::StatusOr<ScanReport> ScanSecrets(etcd::Client& etcd, DekDecrypter* kms,
                                       const ScanOptions& options,
                                       const ProgressFn& progress = nullptr);

// ---- rewrap -----------------------------------------------------------------------------------

struct RewrapOptions : CommonOptions {
  bool apply = false;    // false: dry run, count only
  int max_attempts = 5;  // CAS attempts per value when concurrent writes keep it old
};

struct RewrapReport {
  bool applied = false;
  std::string primary_key_id;  // the plugin's Status key_id at the start
  int64_t scanned = 0;
  int64_t v2_values = 0;   // KMS v2 values of our provider
  int64_t at_primary = 0;  // already under the primary key_id
  int64_t to_rewrap = 0;   // under an older key_id when read
  std::map<std::string, int64_t> old_key_ids;  // to_rewrap by key_id
  int64_t rewrapped = 0;   // written (apply)
  int64_t skipped = 0;     // changed or deleted concurrently and no longer old: left alone
  int64_t failed = 0;
  std::vector<KeyProblem> failures;
  size_t distinct_dek_sources = 0;
  KmsClient::Counters plugin_calls;
};

absl::StatusOr<RewrapReport> RewrapToPrimary(etcd::Client& etcd, KmsClient& kms,
                                             const RewrapOptions& options,
                                             const ProgressFn& progress = nullptr);

// ---- key version usage (keyset retire) ------------------------------------------------------

struct UsageOptions {
  std::string prefix = "/registry";
  std::string provider_name = "kshield";
  int64_t page_size = 500;
  // true: every resource under `<prefix>/` (an EncryptionConfiguration may cover more than
  // Secrets); false: `<prefix>/secrets/` only.
  bool all_resources = true;
};

struct UsageReport {
  std::string walked_prefix;
  int64_t revision = 0;
  int64_t scanned = 0;
  int64_t ours = 0;  // KMS values of options.provider_name
  // As ScanReport::key_versions: "ksh1:<keyset>:<n>" for v2 values, "v1:<n>" for v1 values.
  std::map<std::string, int64_t> key_versions;
  // KMS values of our provider whose key version cannot be read (corrupt): they name no version.
  int64_t unreadable = 0;
  std::vector<KeyProblem> unreadable_keys;
};

// Which kshield key versions the values in etcd still use (no plugin needed).
absl::StatusOr<UsageReport> KeyVersionUsage(etcd::Client& etcd, const UsageOptions& options,
                                            const ProgressFn& progress = nullptr);

// How many values `report` counts under KEK `version` of keyset `keyset_id`: v2 values naming
// its key_id plus v1 values whose wrapped-DEK header names `version` (v1beta1 values do not name
// their keyset, so these are counted whatever keyset wrote them: conservative for retire).
int64_t UsesOfVersion(const std::map<std::string, int64_t>& key_versions,
                      std::string_view keyset_id, uint32_t version);

// ---- decrypt (one-click decryption) -----------------------------------------------------------

struct DecryptOptions : CommonOptions {
  // One 0600 YAML manifest per Secret in this directory (created 0700), named
  // `<namespace>_<name>.yaml`; each file starts with a comment naming its etcd key and
  // mod_revision, so a rerun skips files already complete for the same revision.
  std::string out_dir;
  // Write the plain protobuf back (identity), compare-and-swap on mod_revision.
  bool rewrite_identity = false;
};

struct DecryptReport {
  int64_t scanned = 0;
  int64_t done = 0;     // decrypted and written in this run
  int64_t skipped = 0;  // already complete (file for this revision / value already identity)
  int64_t failed = 0;
  int64_t not_ours = 0;  // not KMS-encrypted by our provider (--out: identity values too)
  std::vector<KeyProblem> failures;
  KmsClient::Counters plugin_calls;
};

// `kms`: the plugin (KmsClient) or, offline, KEKs from a backup (OfflineDecrypter).
absl::StatusOr<DecryptReport> DecryptSecrets(etcd::Client& etcd, DekDecrypter& kms,
                                             const DecryptOptions& options,
                                             const ProgressFn& progress = nullptr);

// `<namespace>_<name>.yaml` from an etcd key under `<prefix>/secrets/`: characters outside
// [A-Za-z0-9.-] become '_', and if anything was replaced (or the key has no namespace/name
// shape) a short hash of the key is appended, so distinct keys never share a file.
std::string DecryptFileName(std::string_view prefix, std::string_view etcd_key);

KmsClient::Counters CountersSince(const KmsClient::Counters& now, const KmsClient::Counters& then);

}  // namespace kshield::tools
