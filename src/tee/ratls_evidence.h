// Attestation evidence inside an X.509 certificate (RA-TLS), in the two encodings we read:
//
//  - TCG DICE tagged evidence, extension OID 2.23.133.5.4.9 (the one we emit). The extension
//    value is CBOR, as Gramine writes it (tools/sgx/ra-tls, "TCG DICE tagged evidence"):
//      tag 60000 ( [ bstr quote, bstr claims ] )
//      claims = serialized CBOR map { "pubkey-hash": bstr( serialized [ uint alg, bstr hash ] ),
//                                     ... other claims ignored }
//    alg is the IANA named-information id (1 = SHA-256); hash = SHA-256 of the certificate's DER
//    SubjectPublicKeyInfo; the quote's REPORTDATA = SHA-256(claims) ‖ 32 zero bytes.
//  - Gramine's legacy extension 1.2.840.113741.1337.6 (accepted on read only): the value is the raw
//    quote; REPORTDATA[0..32] = SHA-256(SubjectPublicKeyInfo). Gramine's own certificates encode
//    this OID with its DER tag and length inside the value, so OpenSSL reads it as
//    0.6.9.42.840.113741.1337.6; both spellings are accepted.
//
// Both encodings therefore bind the quote to the certificate's public key; CheckBinding checks it.
//
//   KSH_ASSIGN_OR_RETURN(CertEvidence ev, ExtractCertEvidence(cert));
//   KSH_RETURN_IF_ERROR(CheckBinding(ev, parsed_quote_report_data));
#pragma once

#include <openssl/x509.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kshield::tee {

inline constexpr char kTcgDiceTaggedEvidenceOid[] = "2.23.133.5.4.9";
inline constexpr char kGramineLegacyQuoteOid[] = "1.2.840.113741.1337.6";
inline constexpr char kGramineLegacyQuoteOidAsEncoded[] = "0.6.9.42.840.113741.1337.6";
inline constexpr uint64_t kCborTagTeeQuote = 60000;
inline constexpr uint64_t kHashAlgSha256 = 1;  // IANA named-information registry
// Bound for the extension value (a quote is ~5 KB).
inline constexpr size_t kMaxEvidenceSize = 128 * 1024;

struct DiceEvidence {
  std::string quote;
  std::string claims;  // the serialized claims map, exactly as hashed into REPORTDATA
};

// Parses the DICE extension value. InvalidArgument with a precise reason for anything else
// (other tag, indefinite lengths, trailing bytes, nesting too deep).
absl::StatusOr<DiceEvidence> ParseDiceTaggedEvidence(std::string_view cbor);
std::string EncodeDiceTaggedEvidence(std::string_view quote, std::string_view claims);

// The "pubkey-hash" claim: returns the 32-byte SHA-256 it carries (other algorithms refused).
absl::StatusOr<std::string> ParseClaimsPubkeyHash(std::string_view claims_cbor);
std::string EncodeClaims(std::string_view pubkey_sha256);

enum class EvidenceFormat { kTcgDice, kGramineLegacy };

struct CertEvidence {
  EvidenceFormat format = EvidenceFormat::kTcgDice;
  std::string quote;
  std::string claims;       // DICE only
  std::string spki_sha256;  // SHA-256 of the certificate's DER SubjectPublicKeyInfo
};

// Finds the evidence extension (DICE preferred, then the legacy OID). NotFound when the
// certificate carries neither ("a plain certificate").
absl::StatusOr<CertEvidence> ExtractCertEvidence(X509* cert);

// The 64 REPORTDATA bytes a quote must carry for this evidence.
absl::StatusOr<std::string> ExpectedReportData(const CertEvidence& evidence);

// PermissionDenied unless `report_data` (64 bytes, from the verified quote) binds the
// certificate's public key as described above.
[[nodiscard]] absl::Status CheckBinding(const CertEvidence& evidence, std::string_view report_data);

// SHA-256 of the DER SubjectPublicKeyInfo of `cert`.
absl::StatusOr<std::string> SpkiSha256(X509* cert);

}  // namespace kshield::tee
