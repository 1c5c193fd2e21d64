#include "keys/backup.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "crypto/aead.h"
#include "crypto/recipient.h"
#include "keys/key_id.h"

namespace kshield::keys {
namespace {

using kshield::keys::v1::KekVersionRecord;
using kshield::keys::v1::KeysetRecord;

constexpr size_t kPrefixSize = 8 + 4;  // magic + header_len
constexpr size_t kFingerprintSize = 64;
constexpr size_t kMaxProviderSize = 32;
constexpr size_t kMaxKindSize = 16;
// The smallest sealed blob: X25519 kind + ephemeral key + nonce + tag (empty plaintext).
constexpr size_t kMinSealedSize = 1 + 32 + crypto::kAesGcmNonceSize + crypto::kAesGcmTagSize;
// u32 version + u8 state + i64 created + str8 kek.
constexpr size_t kKekEntrySize = 4 + 1 + 8 + 1 + kBackupKekSize;

absl::Status Invalid(std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("backup file: ", AV(what)));
}

// One bounded reader over untrusted bytes: every read checks the remaining length first and
// names the field and its offset on failure (never the bytes).
class Reader {
 public:
  Reader(std::string_view data, std::string_view area, size_t base_offset)
      : data_(data), area_(area), base_(base_offset) {}

  size_t remaining() const { return data_.size() - pos_; }
  size_t offset() const { return base_ + pos_; }

  absl::StatusOr<std::string_view> Bytes(size_t n, std::string_view field) {
    if (n > remaining()) {
      return absl::InvalidArgumentError(absl::StrCat(AV(area_), ": ", AV(field), " at offset ",
                                                     offset(), " needs ", n, " bytes, ",
                                                     remaining(), " remain"));
    }
    std::string_view out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  absl::StatusOr<uint8_t> U8(std::string_view field) {
    KSH_ASSIGN_OR_RETURN(std::string_view b, Bytes(1, field));
    return static_cast<uint8_t>(b[0]);
  }
  absl::StatusOr<uint32_t> U32(std::string_view field) {
    KSH_ASSIGN_OR_RETURN(std::string_view b, Bytes(4, field));
    uint32_t v = 0;
    for (char c : b) v = (v << 8) | static_cast<uint8_t>(c);
    return v;
  }
  absl::StatusOr<int64_t> I64(std::string_view field) {
    KSH_ASSIGN_OR_RETURN(std::string_view b, Bytes(8, field));
    uint64_t v = 0;
    for (char c : b) v = (v << 8) | static_cast<uint8_t>(c);
    return static_cast<int64_t>(v);
  }
  // u8 length (checked against [min, max]) + bytes.
  absl::StatusOr<std::string_view> Str8(std::string_view field, size_t min, size_t max) {
    const size_t at = offset();
    KSH_ASSIGN_OR_RETURN(uint8_t len, U8(field));
    if (len < min || len > max) {
      return absl::InvalidArgumentError(absl::StrCat(AV(area_), ": ", AV(field), " at offset ", at,
                                                     " has length ", len, ", want ", min, "..",
                                                     max));
    }
    return Bytes(len, field);
  }
  absl::Status End() const {
    if (remaining() != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(AV(area_), ": ", remaining(), " unexpected bytes at offset ", offset()));
    }
    return absl::OkStatus();
  }

 private:
  std::string_view data_;
  std::string_view area_;
  size_t base_;
  size_t pos_ = 0;
};

// Writes into a fixed buffer sized in advance (the payload's SecretBytes).
class Writer {
 public:
  Writer(uint8_t* out, size_t size) : out_(out), size_(size) {}
  void U8(uint8_t v) { Put(&v, 1); }
  void U32(uint32_t v) {
    const uint8_t b[4] = {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
                          static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)};
    Put(b, 4);
  }
  void I64(int64_t s) {
    const auto v = static_cast<uint64_t>(s);
    uint8_t b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (56 - 8 * i));
    Put(b, 8);
  }
  void Str8(std::string_view s) {
    U8(static_cast<uint8_t>(s.size()));
    Put(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  bool full() const { return ok_ && pos_ == size_; }

 private:
  void Put(const uint8_t* p, size_t n) {
    if (!ok_ || n > size_ - pos_) {
      ok_ = false;
      return;
    }
    if (n > 0) std::memcpy(out_ + pos_, p, n);
    pos_ += n;
  }
  uint8_t* out_;
  size_t size_;
  size_t pos_ = 0;
  bool ok_ = true;
};

void AppendU32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}
void AppendI64(std::string& out, int64_t s) {
  const auto v = static_cast<uint64_t>(s);
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}
void AppendStr8(std::string& out, std::string_view s) {
  out.push_back(static_cast<char>(s.size()));
  out.append(s);
}

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool IsValidProvider(std::string_view p) {
  if (p.empty() || p.size() > kMaxProviderSize) return false;
  for (char c : p) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) return false;
  }
  return true;
}

// "x25519" or "rsa-<bits>" with 3072 <= bits <= 16384, no leading zero.
bool IsValidKind(std::string_view k) {
  if (k == "x25519") return true;
  if (k.substr(0, 4) != "rsa-" || k.size() < 8 || k.size() > 9 || k[4] == '0') return false;
  uint32_t bits = 0;
  for (char c : k.substr(4)) {
    if (c < '0' || c > '9') return false;
    bits = bits * 10 + static_cast<uint32_t>(c - '0');
  }
  return bits >= static_cast<uint32_t>(crypto::kMinRecipientRsaBits) &&
         bits <= static_cast<uint32_t>(crypto::kMaxRecipientRsaBits);
}

// The contents rules of backup.h (KeysetManager::Validate plus sizes). `where` prefixes errors.
absl::Status ValidateContents(const BackupContents& c, std::string_view where) {
  auto bad = [where](std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(AV(where), ": ", AV(what)));
  };
  if (!IsValidKeysetId(c.keyset_id)) return bad("keyset_id is not 16 lower-case hex characters");
  if (!IsValidProvider(c.provider)) return bad("provider name must be 1..32 of [a-z0-9_-]");
  if (c.created_unix < 0) return bad("created time is negative");
  if (c.keks.empty() || c.keks.size() > kMaxBackupKeks) {
    return bad(absl::StrCat(c.keks.size(), " KEK versions; want 1..", kMaxBackupKeks));
  }
  uint32_t prev = 0;
  int primaries = 0;
  for (const BackupKek& k : c.keks) {
    if (k.version == 0 || k.version <= prev) {
      return bad("KEK versions are not strictly increasing from 1");
    }
    if (k.version >= c.next_version) {
      return bad(absl::StrCat("version ", k.version, " >= next_version ", c.next_version));
    }
    if (k.state != KekVersionRecord::PRIMARY && k.state != KekVersionRecord::ACTIVE &&
        k.state != KekVersionRecord::RETIRED) {
      return bad(absl::StrCat("version ", k.version, " has no valid state"));
    }
    if (k.state == KekVersionRecord::PRIMARY) ++primaries;
    if (k.created_unix < 0) {
      return bad(absl::StrCat("version ", k.version, " has a negative created time"));
    }
    if (k.kek.size() != kBackupKekSize) {
      return bad(absl::StrCat("KEK of version ", k.version, " is ", k.kek.size(), " bytes, want ",
                              kBackupKekSize));
    }
    prev = k.version;
  }
  if (primaries != 1) return bad(absl::StrCat(primaries, " primary versions, want exactly 1"));
  return absl::OkStatus();
}

struct ParsedFile {
  BackupHeader header;
  std::string_view aad;     // bytes [0, 12+H)
  std::string_view sealed;  // the rest
};

absl::StatusOr<ParsedFile> ParseFile(std::string_view file) {
  if (file.size() > kMaxBackupFileSize) {
    return Invalid(absl::StrCat(file.size(), " bytes; a backup is at most ", kMaxBackupFileSize));
  }
  if (file.size() < kBackupMagic.size() || file.substr(0, kBackupMagic.size()) != kBackupMagic) {
    return Invalid("not a kshield backup file (bad magic)");
  }
  Reader r(file.substr(kBackupMagic.size()), "backup file", kBackupMagic.size());
  KSH_ASSIGN_OR_RETURN(uint32_t header_len, r.U32("header length"));
  if (header_len < 4 || header_len > kMaxBackupHeaderSize) {
    return Invalid(absl::StrCat("header length ", header_len, ", want 4..", kMaxBackupHeaderSize));
  }
  KSH_ASSIGN_OR_RETURN(std::string_view header_bytes, r.Bytes(header_len, "header"));

  ParsedFile out;
  Reader h(header_bytes, "backup header", kPrefixSize);
  KSH_ASSIGN_OR_RETURN(out.header.format, h.U32("format"));
  if (out.header.format != kBackupFormat) {
    return Invalid(absl::StrCat("unsupported backup format ", out.header.format,
                                " (this kshield reads format ", kBackupFormat, ")"));
  }
  KSH_ASSIGN_OR_RETURN(std::string_view keyset_id,
                       h.Str8("keyset_id", kKeysetIdLength, kKeysetIdLength));
  if (!IsValidKeysetId(keyset_id)) return Invalid("keyset_id is not 16 lower-case hex characters");
  KSH_ASSIGN_OR_RETURN(out.header.created_unix, h.I64("created time"));
  if (out.header.created_unix < 0) return Invalid("created time is negative");
  KSH_ASSIGN_OR_RETURN(std::string_view kind, h.Str8("recipient kind", 1, kMaxKindSize));
  if (!IsValidKind(kind)) return Invalid("recipient kind is not x25519 or rsa-<3072..16384>");
  KSH_ASSIGN_OR_RETURN(std::string_view fp,
                       h.Str8("recipient fingerprint", kFingerprintSize, kFingerprintSize));
  if (!IsLowerHex(fp)) return Invalid("recipient fingerprint is not lower-case hex");
  KSH_ASSIGN_OR_RETURN(out.header.kek_count, h.U32("KEK count"));
  if (out.header.kek_count < 1 || out.header.kek_count > kMaxBackupKeks) {
    return Invalid(absl::StrCat("KEK count ", out.header.kek_count, ", want 1..", kMaxBackupKeks));
  }
  KSH_RETURN_IF_ERROR(h.End());

  if (r.remaining() < kMinSealedSize) {
    return Invalid(absl::StrCat("sealed part is ", r.remaining(), " bytes; the file is truncated"));
  }
  out.header.keyset_id = std::string(keyset_id);
  out.header.recipient_kind = std::string(kind);
  out.header.recipient_fingerprint = std::string(fp);
  out.aad = file.substr(0, kPrefixSize + header_len);
  out.sealed = file.substr(kPrefixSize + header_len);
  return out;
}

absl::StatusOr<BackupContents> ParsePayload(const SecretBytes& payload,
                                            const BackupHeader& header) {
  Reader r(payload.UnsafeStringView(), "backup payload", 0);
  BackupContents c;
  c.keyset_id = header.keyset_id;
  c.created_unix = header.created_unix;
  KSH_ASSIGN_OR_RETURN(c.next_version, r.U32("next_version"));
  KSH_ASSIGN_OR_RETURN(std::string_view provider, r.Str8("provider", 1, kMaxProviderSize));
  c.provider = std::string(provider);
  KSH_ASSIGN_OR_RETURN(uint32_t count, r.U32("KEK count"));
  if (count != header.kek_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "backup payload: holds ", count, " KEK versions, the header says ", header.kek_count));
  }
  if (count > kMaxBackupKeks || static_cast<size_t>(count) * kKekEntrySize > r.remaining()) {
    return absl::InvalidArgumentError("backup payload: KEK list is truncated");
  }
  c.keks.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    BackupKek k;
    KSH_ASSIGN_OR_RETURN(k.version, r.U32("KEK version"));
    KSH_ASSIGN_OR_RETURN(uint8_t state, r.U8("KEK state"));
    k.state = static_cast<KekVersionRecord::State>(state);  // checked by ValidateContents
    KSH_ASSIGN_OR_RETURN(k.created_unix, r.I64("KEK created time"));
    KSH_ASSIGN_OR_RETURN(std::string_view kek, r.Str8("KEK", kBackupKekSize, kBackupKekSize));
    k.kek = SecretBytes::CopyFrom(kek);
    c.keks.push_back(std::move(k));
  }
  KSH_RETURN_IF_ERROR(r.End());
  KSH_RETURN_IF_ERROR(ValidateContents(c, "backup payload"));
  return c;
}

}  // namespace

absl::StatusOr<std::string> SealBackup(const BackupContents& contents,
                                       std::string_view recipient_public_key_pem) {
  KSH_RETURN_IF_ERROR(ValidateContents(contents, "backup"));
  KSH_ASSIGN_OR_RETURN(std::string kind, crypto::RecipientKind(recipient_public_key_pem));
  KSH_ASSIGN_OR_RETURN(std::string fp, crypto::RecipientFingerprint(recipient_public_key_pem));

  std::string header;
  AppendU32(header, kBackupFormat);
  AppendStr8(header, contents.keyset_id);
  AppendI64(header, contents.created_unix);
  AppendStr8(header, kind);
  AppendStr8(header, fp);
  AppendU32(header, static_cast<uint32_t>(contents.keks.size()));
  std::string file(kBackupMagic);
  AppendU32(file, static_cast<uint32_t>(header.size()));
  file.append(header);

  const size_t payload_size =
      4 + 1 + contents.provider.size() + 4 + contents.keks.size() * kKekEntrySize;
  SecretBytes payload(payload_size);
  Writer w(payload.UnsafeMutableData(), payload.size());
  w.U32(contents.next_version);
  w.Str8(contents.provider);
  w.U32(static_cast<uint32_t>(contents.keks.size()));
  for (const BackupKek& k : contents.keks) {
    w.U32(k.version);
    w.U8(static_cast<uint8_t>(k.state));
    w.I64(k.created_unix);
    w.Str8(k.kek.UnsafeStringView());
  }
  if (!w.full()) return absl::InternalError("backup payload size mismatch");

  KSH_ASSIGN_OR_RETURN(std::string sealed,
                       crypto::SealToRecipient(recipient_public_key_pem, payload, file));
  file.append(sealed);
  if (file.size() > kMaxBackupFileSize) {
    return absl::InvalidArgumentError(absl::StrCat("backup of ", contents.keks.size(),
                                                   " KEK versions would exceed ",
                                                   kMaxBackupFileSize, " bytes"));
  }
  return file;
}

absl::StatusOr<BackupContents> ExportKeysetForBackup(const KeysetRecord& record,
                                                     KeyProvider& provider, int64_t created_unix) {
  BackupContents c;
  c.keyset_id = record.keyset_id();
  c.next_version = record.next_version();
  c.created_unix = created_unix;
  c.provider = std::string(provider.name());
  for (const KekVersionRecord& v : record.versions()) {
    if (!v.provider().empty()) c.provider = v.provider();
    BackupKek k;
    k.version = v.version();
    k.state = v.state();
    k.created_unix = v.created_unix();
    auto kek = provider.ExportVersion(KekContext{record.keyset_id(), v.version()}, v.material());
    if (!kek.ok()) {
      return Annotate(kek.status(), absl::StrCat("exporting KEK version ", v.version(),
                                                 " of keyset ", record.keyset_id()));
    }
    k.kek = *std::move(kek);
    c.keks.push_back(std::move(k));
  }
  KSH_RETURN_IF_ERROR(ValidateContents(c, "backup"));
  return c;
}

absl::StatusOr<KeysetRecord> ImportKeysetFromBackup(const BackupContents& contents,
                                                    KeyProvider& provider) {
  KSH_RETURN_IF_ERROR(ValidateContents(contents, "backup"));
  KeysetRecord r;
  r.set_format(1);
  r.set_keyset_id(contents.keyset_id);
  r.set_next_version(contents.next_version);
  for (const BackupKek& k : contents.keks) {
    auto material = provider.ImportVersion(KekContext{contents.keyset_id, k.version}, k.kek);
    if (!material.ok()) {
      return Annotate(
          material.status(),
          absl::StrCat("importing KEK version ", k.version, " of keyset ", contents.keyset_id,
                       " into the ", AV(provider.name()), " provider"));
    }
    KekVersionRecord* v = r.add_versions();
    v->set_version(k.version);
    v->set_state(k.state);
    v->set_created_unix(k.created_unix);
    v->set_provider(std::string(provider.name()));
    v->set_material(*std::move(material));
  }
  return r;
}

absl::StatusOr<BackupHeader> InspectBackup(std::string_view file_bytes) {
  KSH_ASSIGN_OR_RETURN(ParsedFile parsed, ParseFile(file_bytes));
  return std::move(parsed.header);
}

absl::StatusOr<BackupContents> OpenBackup(std::string_view file_bytes,
                                          const SecretBytes& identity_private_key_pem) {
  KSH_ASSIGN_OR_RETURN(ParsedFile parsed, ParseFile(file_bytes));
  KSH_ASSIGN_OR_RETURN(std::string identity_fp,
                       crypto::IdentityFingerprint(identity_private_key_pem));
  if (identity_fp != parsed.header.recipient_fingerprint) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the identity key is not this backup's recipient: the backup is sealed to the key with "
        "fingerprint ",
        parsed.header.recipient_fingerprint, ", the identity's public key has ", identity_fp));
  }
  auto payload = crypto::OpenFromRecipient(identity_private_key_pem, parsed.sealed, parsed.aad);
  if (!payload.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("backup file failed authentication (modified, truncated or corrupted): ",
                     payload.status().message()));
  }
  return ParsePayload(*payload, parsed.header);
}

}  // namespace kshield::keys
