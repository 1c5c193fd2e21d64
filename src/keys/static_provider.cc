#include "keys/static_provider.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <ctime>
#include <set>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/base64.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"
#include "crypto/aead.h"
#include "crypto/hkdf.h"
#include "keys/key_id.h"
#include "keys/keyset_manager.h"

namespace kshield::keys {
namespace {

using v1::KekVersionRecord;
using v1::KeysetRecord;

constexpr std::string_view kSealInfo = "kshield static keys file v1";
constexpr uint32_t kMaxVersion = UINT32_MAX - 1;

void Cleanse(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

// Strict RFC 4648 §4 decoding (padding required, no whitespace) straight into protected memory,
// so the key never sits in an ordinary buffer. Returns true only for a well-formed encoding of
// exactly kStaticKeySize bytes; *decoded_size is set whenever the text is well-formed base64 (so a
// wrong length can be reported). Non-canonical spellings are refused: one key, one spelling.
bool DecodeBase64Key(std::string_view text, SecretBytes* out, size_t* decoded_size) {
  absl::StatusOr<SecretBytes> key =
      Base64DecodeSecret(text, {.padding = Base64Padding::kRequired});
  if (!key.ok()) return false;
  *decoded_size = key->size();
  if (key->size() != kStaticKeySize) return false;
  *out = std::move(*key);
  return true;
}

// Parses a version token: decimal, 1..kMaxVersion, no leading zeros.
bool ParseVersion(std::string_view s, uint32_t* out) {
  if (s.empty() || s.size() > 10 || s[0] == '0') return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v == 0 || v > kMaxVersion) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

absl::StatusOr<std::unique_ptr<crypto::Aead>> SealingAead(tee::Platform& platform) {
  auto sealing = platform.SealingKey();
  if (!sealing.ok()) {
    return Annotate(sealing.status(),
                    absl::StrCat("static keys: sealing key of platform ", AV(platform.name())));
  }
  KSH_ASSIGN_OR_RETURN(SecretBytes key, crypto::HkdfSha256(*sealing, "", kSealInfo, 32));
  KSH_ASSIGN_OR_RETURN(auto aead, crypto::AesGcmAead::New(std::move(key)));
  return std::unique_ptr<crypto::Aead>(std::move(aead));
}

std::string VersionList(const StaticKeys& keys) {
  std::vector<uint32_t> v = keys.versions();
  std::string out;
  for (size_t i = 0; i < v.size() && i < 10; ++i) absl::StrAppend(&out, i ? ", " : "", v[i]);
  if (v.size() > 10) absl::StrAppend(&out, ", ... ", v.back(), " (", v.size(), " in total)");
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// StaticKeys

std::vector<uint32_t> StaticKeys::versions() const {
  std::vector<uint32_t> out;
  out.reserve(keys_.size());
  for (const auto& [v, k] : keys_) out.push_back(v);
  return out;
}

const SecretBytes* StaticKeys::Find(uint32_t version) const {
  auto it = keys_.find(version);
  return it == keys_.end() ? nullptr : &it->second;
}

absl::StatusOr<StaticKeys> ParseStaticKeys(std::string_view plain) {
  return ParseStaticKeysWithContext(plain, "static keys");
}

absl::StatusOr<StaticKeys> ParseStaticKeysWithContext(std::string_view plain,
                                                      std::string_view context) {
  if (plain.size() > kMaxStaticKeysFileSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(context), ": more than ", kMaxStaticKeysFileSize, " bytes"));
  }
  StaticKeys out;
  std::map<uint32_t, size_t> first_line;
  size_t line_no = 0;
  size_t pos = 0;
  while (pos <= plain.size()) {
    size_t nl = plain.find('\n', pos);
    if (nl == std::string_view::npos) nl = plain.size();
    std::string_view line = Trim(plain.substr(pos, nl - pos));
    pos = nl + 1;
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    // Errors below name the line and the problem, never the line's text: it may hold key bytes.
    auto bad = [&](std::string_view what) {
      return absl::InvalidArgumentError(
          absl::StrCat(AV(context), ": line ", line_no, ": ", AV(what)));
    };
    size_t end = 0;
    while (end < line.size() && line[end] != ':' && line[end] != ' ' && line[end] != '\t') ++end;
    uint32_t version = 0;
    if (!ParseVersion(line.substr(0, end), &version)) {
      return bad(absl::StrCat("the version must be a decimal number 1..", kMaxVersion,
                              " without leading zeros (want \"VERSION: BASE64\")"));
    }
    std::string_view rest = line.substr(end);
    rest = Trim(rest);
    if (!rest.empty() && rest[0] == ':') rest = Trim(rest.substr(1));
    // YAML may quote the value.
    if (rest.size() >= 2 && (rest[0] == '"' || rest[0] == '\'') && rest.back() == rest[0]) {
      rest = rest.substr(1, rest.size() - 2);
    }
    if (rest.empty()) return bad(absl::StrCat("version ", version, " has no key"));
    if (auto it = first_line.find(version); it != first_line.end()) {
      return bad(absl::StrCat("version ", version, " appears twice (first on line ", it->second,
                              ")"));
    }
    SecretBytes key;
    size_t decoded = 0;
    if (!DecodeBase64Key(rest, &key, &decoded)) {
      if (decoded != 0 && decoded != kStaticKeySize) {
        return bad(absl::StrCat("the key of version ", version, " is ", decoded,
                                " bytes; want ", kStaticKeySize, " (AES-256)"));
      }
      return bad(absl::StrCat("the key of version ", version,
                              " is not valid base64 (standard alphabet, with padding)"));
    }
    if (out.keys_.size() >= kMaxStaticKeyVersions) {
      return bad(absl::StrCat("more than ", kMaxStaticKeyVersions, " versions"));
    }
    first_line[version] = line_no;
    out.keys_.emplace(version, std::move(key));
  }
  if (out.keys_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(AV(context), ": no key versions (want lines \"VERSION: BASE64\")"));
  }
  return out;
}

absl::StatusOr<StaticKeys> LoadStaticKeys(const StaticKeysOptions& options) {
  const std::string& path = options.path;
  if (path.empty()) return absl::InvalidArgumentError("static keys: no file configured");
  auto in_file = [&](const absl::Status& s) {
    return Annotate(s, absl::StrCat("static keys file ", path));
  };
  auto file = ReadPrivateFile(path, kMaxStaticKeysFileSize + kStaticKeysSealedMagic.size() +
                                        crypto::kAesGcmNonceSize + crypto::kAesGcmTagSize);
  if (!file.ok()) return in_file(file.status());
  const std::string_view raw = file->UnsafeStringView();

  const bool sealed = raw.substr(0, kStaticKeysSealedMagic.size()) == kStaticKeysSealedMagic;
  if (!sealed) {
    if (options.require_sealed) {
      return absl::FailedPreconditionError(absl::StrCat(
          "static keys file ", path,
          " is not sealed, and sealed keys are required; seal it to this platform first"));
    }
    return ParseStaticKeysWithContext(raw, absl::StrCat("static keys file ", path));
  }

  if (options.platform == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "static keys file ", path, " is sealed, but no TEE platform was given to unseal it"));
  }
  KSH_ASSIGN_OR_RETURN(auto aead, SealingAead(*options.platform));
  auto plain = aead->Decrypt(raw.substr(kStaticKeysSealedMagic.size()), kStaticKeysSealedMagic);
  if (!plain.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot unseal static keys file ", path,
        ": it was sealed to a different platform identity or sealing key (platform now: ",
        AV(options.platform->name()), "), or it is corrupted"));
  }
  absl::Cleanup clear_plain = [&] { Cleanse(*plain); };
  auto keys = ParseStaticKeysWithContext(*plain, absl::StrCat("static keys file ", path));
  if (!keys.ok()) return keys.status();
  keys->sealed_ = true;
  return keys;
}

absl::StatusOr<std::string> SealStaticKeysFile(tee::Platform& platform, std::string_view plain) {
  if (plain.substr(0, kStaticKeysSealedMagic.size()) == kStaticKeysSealedMagic) {
    return absl::InvalidArgumentError("static keys: the input is already sealed");
  }
  // Refuse to seal what would not load.
  KSH_RETURN_IF_ERROR(ParseStaticKeys(plain).status());
  KSH_ASSIGN_OR_RETURN(auto aead, SealingAead(platform));
  KSH_ASSIGN_OR_RETURN(std::string ct, aead->Encrypt(plain, kStaticKeysSealedMagic));
  return absl::StrCat(AV(kStaticKeysSealedMagic), ct);
}

// ---------------------------------------------------------------------------------------------
// Keyset records

absl::StatusOr<KeysetRecord> StaticKeysetRecord(const StaticKeys& keys, std::string keyset_id) {
  if (!IsValidKeysetId(keyset_id)) {
    return absl::InvalidArgumentError("static keyset: keyset_id must be 16 lowercase hex characters");
  }
  if (keys.size() == 0) return absl::InvalidArgumentError("static keyset: no key versions");
  KeysetRecord rec;
  rec.set_format(1);
  rec.set_keyset_id(std::move(keyset_id));
  const int64_t now = time(nullptr);
  const uint32_t highest = keys.highest_version();
  for (uint32_t v : keys.versions()) {
    auto* kv = rec.add_versions();
    kv->set_version(v);
    kv->set_state(v == highest ? KekVersionRecord::PRIMARY : KekVersionRecord::ACTIVE);
    kv->set_created_unix(now);
    kv->set_provider("static");
  }
  rec.set_next_version(highest + 1);  // highest <= UINT32_MAX - 1 (ParseStaticKeys)
  KSH_RETURN_IF_ERROR(KeysetManager::Validate(rec));
  return rec;
}

absl::StatusOr<KeysetRecord> UpdateStaticKeysetRecord(const KeysetRecord& current,
                                                      const StaticKeys& keys) {
  KSH_RETURN_IF_ERROR(Annotate(KeysetManager::Validate(current), "static keyset: current record"));
  std::set<uint32_t> have;
  for (const auto& v : current.versions()) have.insert(v.version());
  std::vector<uint32_t> added;
  for (uint32_t v : keys.versions()) {
    if (have.count(v) != 0) continue;
    if (v < current.next_version()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "static keyset ", current.keyset_id(), ": the keys file has version ", v,
          ", below next_version ", current.next_version(),
          "; version numbers are never reused, so give the new key version ",
          current.next_version(), " or higher"));
    }
    added.push_back(v);
  }
  KeysetRecord rec = current;
  if (added.empty()) return rec;
  for (auto& v : *rec.mutable_versions()) {
    if (v.state() == KekVersionRecord::PRIMARY) v.set_state(KekVersionRecord::ACTIVE);
  }
  const int64_t now = time(nullptr);
  for (uint32_t v : added) {  // ascending, all above every existing version
    auto* kv = rec.add_versions();
    kv->set_version(v);
    kv->set_state(v == added.back() ? KekVersionRecord::PRIMARY : KekVersionRecord::ACTIVE);
    kv->set_created_unix(now);
    kv->set_provider("static");
  }
  rec.set_next_version(added.back() + 1);
  KSH_RETURN_IF_ERROR(KeysetManager::Validate(rec));
  return rec;
}

// ---------------------------------------------------------------------------------------------
// StaticProvider

absl::StatusOr<std::unique_ptr<StaticProvider>> StaticProvider::New(Options options,
                                                                    metrics::Registry& registry) {
  if (options.warning_interval <= std::chrono::milliseconds(0)) {
    return absl::InvalidArgumentError("static provider: warning interval must be positive");
  }
  KSH_ASSIGN_OR_RETURN(StaticKeys keys, LoadStaticKeys(options.keys));
  auto family = registry.TryGauge(
      "kshield_kms_static_keys_active",
      "1 while the static emergency key provider is in use (the HSM / KMS root of trust is "
      "bypassed).",
      {});
  if (!family.ok()) return Annotate(family.status(), "static provider");
  metrics::Gauge& gauge = (*family)->WithLabels({});
  std::unique_ptr<StaticProvider> p(new StaticProvider(
      std::move(options), std::make_shared<const StaticKeys>(std::move(keys)), gauge));
  p->gauge_.Set(1);
  p->LogWarning();
  p->thread_ = std::thread([raw = p.get()] { raw->WarningLoop(); });
  return p;
}

StaticProvider::StaticProvider(Options options, std::shared_ptr<const StaticKeys> keys,
                               metrics::Gauge& gauge)
    : options_(std::move(options)), gauge_(gauge), keys_(std::move(keys)) {}

StaticProvider::~StaticProvider() {
  Stop();
  gauge_.Set(0);
}

void StaticProvider::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void StaticProvider::LogWarning() {
  auto keys = this->keys();
  warnings_.fetch_add(1);
  log::Warn("keys.static_keys_active",
            {{"path", options_.keys.path},
             {"versions", static_cast<uint64_t>(keys->size())},
             {"highest_version", keys->highest_version()},
             {"sealed", keys->sealed()},
             {"message",
              "static emergency keys are in use: the HSM / KMS root of trust is bypassed; "
              "switch back to it as soon as it is available"}});
}

void StaticProvider::WarningLoop() {
  std::unique_lock<std::mutex> lock(stop_mu_);
  while (!stop_) {
    if (stop_cv_.wait_for(lock, options_.warning_interval, [this] { return stop_; })) break;
    lock.unlock();
    LogWarning();
    lock.lock();
  }
}

std::shared_ptr<const StaticKeys> StaticProvider::keys() const {
  std::lock_guard<std::mutex> lock(keys_mu_);
  return keys_;
}

absl::Status StaticProvider::Reload() {
  auto keys = LoadStaticKeys(options_.keys);
  if (!keys.ok()) {
    log::Warn("keys.static_keys_reload_failed", {{"path", options_.keys.path},
                                                 {"reason", SV(keys.status().message())}});
    return keys.status();
  }
  auto fresh = std::make_shared<const StaticKeys>(std::move(*keys));
  log::Info("keys.static_keys_reloaded", {{"path", options_.keys.path},
                                          {"versions", static_cast<uint64_t>(fresh->size())},
                                          {"highest_version", fresh->highest_version()}});
  std::lock_guard<std::mutex> lock(keys_mu_);
  keys_ = std::move(fresh);
  return absl::OkStatus();
}

absl::StatusOr<std::string> StaticProvider::CreateVersion(const KekContext& ctx) {
  return absl::FailedPreconditionError(
      "static keys cannot be rotated by kshield; add a version to the keys file and Refresh");
}

absl::StatusOr<std::shared_ptr<const crypto::Aead>> StaticProvider::OpenVersion(
    const KekContext& ctx, std::string_view material) {
  auto keys = this->keys();
  const SecretBytes* key = keys->Find(ctx.version);
  if (key == nullptr) {
    return absl::NotFoundError(absl::StrCat("static keys file ", options_.keys.path,
                                            " has no key for version ", ctx.version,
                                            " (it has versions ", VersionList(*keys), ")"));
  }
  KSH_ASSIGN_OR_RETURN(auto aead, crypto::AesGcmAead::New(key->Clone()));
  return std::shared_ptr<const crypto::Aead>(std::move(aead));
}

absl::StatusOr<SecretBytes> StaticProvider::ExportVersion(const KekContext& ctx,
                                                          std::string_view material) {
  auto keys = this->keys();
  const SecretBytes* key = keys->Find(ctx.version);
  if (key == nullptr) {
    return absl::NotFoundError(absl::StrCat("static keys file ", options_.keys.path,
                                            " has no key for version ", ctx.version,
                                            " (it has versions ", VersionList(*keys), ")"));
  }
  return key->Clone();
}

absl::StatusOr<std::string> StaticProvider::ImportVersion(const KekContext& ctx,
                                                          const SecretBytes& kek) {
  return absl::FailedPreconditionError(absl::StrCat(
      "cannot import KEK version ", ctx.version,
      " into the static provider: static keys come from the keys file (", options_.keys.path,
      "); restore into another provider, or add the version to the keys file by hand"));
}

}  // namespace kshield::keys
