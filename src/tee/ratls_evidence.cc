#include "tee/ratls_evidence.h"

#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include <optional>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "crypto/sha256.h"

namespace kshield::tee {
namespace {

constexpr int kMaxDepth = 8;
constexpr uint64_t kMaxMapPairs = 16;

// A bounded CBOR (RFC 8949) reader: definite lengths only, every length checked against what is
// left before it is used.
class CborReader {
 public:
  explicit CborReader(std::string_view data) : data_(data) {}
  size_t remaining() const { return data_.size() - pos_; }
  size_t offset() const { return pos_; }

  // Reads an item head: major type and argument.
  absl::Status Head(int* major, uint64_t* arg) {
    if (remaining() < 1) return Err("unexpected end of data");
    const uint8_t b = static_cast<uint8_t>(data_[pos_++]);
    *major = b >> 5;
    const uint8_t ai = b & 0x1f;
    if (ai < 24) {
      *arg = ai;
      return absl::OkStatus();
    }
    size_t n = 0;
    if (ai == 24) n = 1;
    else if (ai == 25) n = 2;
    else if (ai == 26) n = 4;
    else if (ai == 27) n = 8;
    else if (ai == 31) return Err("indefinite-length items are not accepted");
    else return Err(absl::StrCat("reserved additional information ", ai));
    if (remaining() < n) return Err("unexpected end of data in an item head");
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<uint8_t>(data_[pos_++]);
    *arg = v;
    return absl::OkStatus();
  }

  absl::StatusOr<std::string_view> Bytes(int want_major, std::string_view what) {
    int major = 0;
    uint64_t len = 0;
    KSH_RETURN_IF_ERROR(Head(&major, &len));
    if (major != want_major) {
      return Err(absl::StrCat(AV(what), ": expected major type ", want_major, ", got ", major));
    }
    if (len > remaining()) {
      return Err(absl::StrCat(AV(what), ": length ", len, " exceeds the ", remaining(),
                              " bytes left"));
    }
    std::string_view out = data_.substr(pos_, len);
    pos_ += len;
    return out;
  }

  absl::Status Skip(int depth) {
    if (depth > kMaxDepth) return Err("nesting too deep");
    int major = 0;
    uint64_t arg = 0;
    KSH_RETURN_IF_ERROR(Head(&major, &arg));
    switch (major) {
      case 0: case 1: case 7:
        return absl::OkStatus();
      case 2: case 3:
        if (arg > remaining()) return Err("string length exceeds the data");
        pos_ += arg;
        return absl::OkStatus();
      case 4: case 5: {
        const uint64_t items = major == 4 ? arg : arg * 2;
        if (arg > remaining() || items > remaining()) return Err("container larger than the data");
        for (uint64_t i = 0; i < items; ++i) KSH_RETURN_IF_ERROR(Skip(depth + 1));
        return absl::OkStatus();
      }
      default:  // 6: tag
        return Skip(depth + 1);
    }
  }

  static absl::Status Err(std::string_view msg) {
    return absl::InvalidArgumentError(absl::StrCat("CBOR: ", AV(msg)));
  }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

void PutHead(std::string* out, int major, uint64_t arg) {
  const uint8_t m = static_cast<uint8_t>(major << 5);
  if (arg < 24) {
    out->push_back(static_cast<char>(m | arg));
    return;
  }
  int n = arg <= 0xff ? 1 : arg <= 0xffff ? 2 : arg <= 0xffffffffULL ? 4 : 8;
  out->push_back(static_cast<char>(m | (n == 1 ? 24 : n == 2 ? 25 : n == 4 ? 26 : 27)));
  for (int i = n - 1; i >= 0; --i) out->push_back(static_cast<char>((arg >> (8 * i)) & 0xff));
}

void PutBytes(std::string* out, int major, std::string_view s) {
  PutHead(out, major, s.size());
  out->append(s);
}

// The hash-entry [uint alg, bstr hash].
absl::StatusOr<std::string> ParseHashEntry(std::string_view cbor) {
  CborReader r(cbor);
  int major = 0;
  uint64_t n = 0;
  KSH_RETURN_IF_ERROR(r.Head(&major, &n));
  if (major != 4 || n != 2) return CborReader::Err("pubkey-hash: expected an array of 2");
  uint64_t alg = 0;
  KSH_RETURN_IF_ERROR(r.Head(&major, &alg));
  if (major != 0) return CborReader::Err("pubkey-hash: algorithm id is not an unsigned integer");
  if (alg != kHashAlgSha256) {
    return absl::InvalidArgumentError(
        absl::StrCat("pubkey-hash: hash algorithm ", alg, " is not supported (only 1, SHA-256)"));
  }
  KSH_ASSIGN_OR_RETURN(std::string_view hash, r.Bytes(2, "pubkey-hash value"));
  if (hash.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("pubkey-hash: SHA-256 value has ", hash.size(), " bytes"));
  }
  if (r.remaining() != 0) return CborReader::Err("pubkey-hash: trailing bytes");
  return std::string(hash);
}

std::string ObjText(const ASN1_OBJECT* obj) {
  char buf[128];
  const int n = OBJ_obj2txt(buf, sizeof(buf), obj, 1);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(buf)) return "";
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

absl::StatusOr<DiceEvidence> ParseDiceTaggedEvidence(std::string_view cbor) {
  if (cbor.size() > kMaxEvidenceSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("DICE evidence of ", cbor.size(), " bytes exceeds ", kMaxEvidenceSize));
  }
  CborReader r(cbor);
  int major = 0;
  uint64_t arg = 0;
  KSH_RETURN_IF_ERROR(r.Head(&major, &arg));
  if (major != 6 || arg != kCborTagTeeQuote) {
    return CborReader::Err(absl::StrCat("DICE evidence: expected tag ", kCborTagTeeQuote,
                                        " (TEE quote), got major type ", major, " value ", arg));
  }
  KSH_RETURN_IF_ERROR(r.Head(&major, &arg));
  if (major != 4 || arg != 2) {
    return CborReader::Err("DICE evidence: expected an array of 2 (quote, claims)");
  }
  DiceEvidence ev;
  KSH_ASSIGN_OR_RETURN(std::string_view quote, r.Bytes(2, "DICE evidence quote"));
  KSH_ASSIGN_OR_RETURN(std::string_view claims, r.Bytes(2, "DICE evidence claims"));
  if (r.remaining() != 0) {
    return CborReader::Err(
        absl::StrCat("DICE evidence: ", r.remaining(), " trailing bytes after the array"));
  }
  if (quote.empty()) return CborReader::Err("DICE evidence: empty quote");
  ev.quote = std::string(quote);
  ev.claims = std::string(claims);
  return ev;
}

std::string EncodeDiceTaggedEvidence(std::string_view quote, std::string_view claims) {
  std::string out;
  PutHead(&out, 6, kCborTagTeeQuote);
  PutHead(&out, 4, 2);
  PutBytes(&out, 2, quote);
  PutBytes(&out, 2, claims);
  return out;
}

absl::StatusOr<std::string> ParseClaimsPubkeyHash(std::string_view claims_cbor) {
  CborReader r(claims_cbor);
  int major = 0;
  uint64_t pairs = 0;
  KSH_RETURN_IF_ERROR(r.Head(&major, &pairs));
  if (major != 5) return CborReader::Err("claims: expected a map");
  if (pairs > kMaxMapPairs) {
    return CborReader::Err(absl::StrCat("claims: ", pairs, " entries (at most ", kMaxMapPairs,
                                        ")"));
  }
  std::optional<std::string> hash;
  for (uint64_t i = 0; i < pairs; ++i) {
    KSH_ASSIGN_OR_RETURN(std::string_view key, r.Bytes(3, "claims key"));
    if (key != "pubkey-hash") {
      KSH_RETURN_IF_ERROR(r.Skip(1));
      continue;
    }
    if (hash.has_value()) return CborReader::Err("claims: pubkey-hash appears twice");
    // Gramine wraps the serialized hash-entry in a bstr.
    KSH_ASSIGN_OR_RETURN(std::string_view entry, r.Bytes(2, "claims pubkey-hash"));
    KSH_ASSIGN_OR_RETURN(std::string h, ParseHashEntry(entry));
    hash = std::move(h);
  }
  if (r.remaining() != 0) return CborReader::Err("claims: trailing bytes after the map");
  if (!hash.has_value()) return absl::InvalidArgumentError("claims: no pubkey-hash claim");
  return *hash;
}

std::string EncodeClaims(std::string_view pubkey_sha256) {
  std::string entry;
  PutHead(&entry, 4, 2);
  PutHead(&entry, 0, kHashAlgSha256);
  PutBytes(&entry, 2, pubkey_sha256);
  std::string out;
  PutHead(&out, 5, 1);
  PutBytes(&out, 3, "pubkey-hash");
  PutBytes(&out, 2, entry);
  return out;
}

absl::StatusOr<std::string> SpkiSha256(X509* cert) {
  X509_PUBKEY* pub = X509_get_X509_PUBKEY(cert);
  unsigned char* der = nullptr;
  const int len = pub ? i2d_X509_PUBKEY(pub, &der) : -1;
  if (len <= 0) return absl::InvalidArgumentError("certificate has no encodable public key");
  std::string digest =
      crypto::Sha256(std::string_view(reinterpret_cast<char*>(der), static_cast<size_t>(len)));
  OPENSSL_free(der);
  return digest;
}

absl::StatusOr<CertEvidence> ExtractCertEvidence(X509* cert) {
  const ASN1_OCTET_STRING* dice = nullptr;
  const ASN1_OCTET_STRING* legacy = nullptr;
  const int n = X509_get_ext_count(cert);
  for (int i = 0; i < n; ++i) {
    X509_EXTENSION* ext = X509_get_ext(cert, i);
    const std::string oid = ObjText(X509_EXTENSION_get_object(ext));
    if (oid == kTcgDiceTaggedEvidenceOid) {
      if (dice != nullptr) {
        return absl::InvalidArgumentError("certificate carries two DICE evidence extensions");
      }
      dice = X509_EXTENSION_get_data(ext);
    } else if (oid == kGramineLegacyQuoteOid || oid == kGramineLegacyQuoteOidAsEncoded) {
      if (legacy != nullptr) {
        return absl::InvalidArgumentError("certificate carries two legacy quote extensions");
      }
      legacy = X509_EXTENSION_get_data(ext);
    }
  }
  CertEvidence ev;
  KSH_ASSIGN_OR_RETURN(ev.spki_sha256, SpkiSha256(cert));
  auto view = [](const ASN1_OCTET_STRING* s) {
    return std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                            static_cast<size_t>(ASN1_STRING_length(s)));
  };
  if (dice != nullptr) {
    KSH_ASSIGN_OR_RETURN(DiceEvidence d, ParseDiceTaggedEvidence(view(dice)));
    ev.format = EvidenceFormat::kTcgDice;
    ev.quote = std::move(d.quote);
    ev.claims = std::move(d.claims);
    return ev;
  }
  if (legacy != nullptr) {
    std::string_view q = view(legacy);
    if (q.empty() || q.size() > kMaxEvidenceSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("legacy quote extension of ", q.size(), " bytes"));
    }
    ev.format = EvidenceFormat::kGramineLegacy;
    ev.quote = std::string(q);
    return ev;
  }
  return absl::NotFoundError(absl::StrCat(
      "certificate carries no attestation evidence (no extension ", kTcgDiceTaggedEvidenceOid,
      " or ", kGramineLegacyQuoteOid, ")"));
}

absl::StatusOr<std::string> ExpectedReportData(const CertEvidence& evidence) {
  if (evidence.format == EvidenceFormat::kGramineLegacy) {
    return evidence.spki_sha256 + std::string(32, '\0');
  }
  KSH_ASSIGN_OR_RETURN(std::string claimed, ParseClaimsPubkeyHash(evidence.claims));
  if (claimed != evidence.spki_sha256) {
    return absl::PermissionDeniedError(
        "evidence binding: the pubkey-hash claim is not the SHA-256 of the certificate's public "
        "key");
  }
  return crypto::Sha256(evidence.claims) + std::string(32, '\0');
}

absl::Status CheckBinding(const CertEvidence& evidence, std::string_view report_data) {
  auto expected = ExpectedReportData(evidence);
  if (!expected.ok()) {
    return absl::PermissionDeniedError(
        absl::StrCat("evidence binding: ", expected.status().message()));
  }
  // Gramine's legacy verifier compares only the first 32 bytes; so do we for that format.
  const size_t n = evidence.format == EvidenceFormat::kGramineLegacy ? 32 : 64;
  if (report_data.size() != 64 || report_data.substr(0, n) != std::string_view(*expected).substr(0, n)) {
    return absl::PermissionDeniedError(
        evidence.format == EvidenceFormat::kGramineLegacy
            ? "evidence binding: REPORTDATA does not start with SHA-256 of the certificate's "
              "public key"
            : "evidence binding: REPORTDATA is not SHA-256 of the claims (which name the "
              "certificate's public key)");
  }
  return absl::OkStatus();
}

}  // namespace kshield::tee
