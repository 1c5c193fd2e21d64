// Intel DCAP quotes: SGX v3, TDX v4 and v5 — layouts and a bounded parser.
//
// Parsing only checks structure (every length is checked against what is left before it is used);
// it proves nothing about who made the quote. VerifyQuote (verify.h) does that.
//
//   KSH_ASSIGN_OR_RETURN(ParsedQuote q, ParseQuote(bytes));
//   if (q.tee == TeeType::kSgx) use(q.sgx.mr_enclave);
//
// Layouts (Intel "SGX ECDSA Quote Library API" §A.4 for v3; "Intel TDX DCAP Quoting Library API"
// §A.3 for v4 and v5), all integers little-endian:
//
//   header (48)        version u16 | att_key_type u16 | tee_type u32 (v3: reserved, 0) |
//                      qe_svn u16 | pce_svn u16 | qe_vendor_id [16] | user_data [20]
//   v3 / v4 body       SGX enclave report (384) when tee_type = 0, TD report 1.0 (584) when 0x81
//   v5 body            body_type u16 (1 SGX, 2 TD 1.0, 3 TD 1.5) | body_size u32 | body
//   signature data     signature_data_len u32 | ECDSA auth data (below); bytes after it (padding)
//                      are tolerated and ignored.
//   auth data v3       signature [64] | attestation_key [64] | QE report [384] |
//                      QE report signature [64] | qe_auth_len u16 | qe_auth_data |
//                      cert_type u16 | cert_size u32 | cert data (type 5: PCK chain, PEM)
//   auth data v4/v5    signature [64] | attestation_key [64] | cert_type u16 (= 6) | cert_size u32
//   |
//                      QE report certification data: QE report [384] | QE report signature [64] |
//                      qe_auth_len u16 | qe_auth_data | cert_type u16 | cert_size u32 | cert data
//
// The signed bytes (quote signature) are header ‖ body (v5: header ‖ body_type ‖ body_size ‖ body).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace kshield::tee::quote {

inline constexpr size_t kHeaderSize = 48;
inline constexpr size_t kSgxReportBodySize = 384;
inline constexpr size_t kTdReport10Size = 584;
inline constexpr size_t kTdReport15Size = 648;
inline constexpr size_t kEcdsaSignatureSize = 64;  // r ‖ s, 32 bytes each, big-endian
inline constexpr size_t kAttestationKeySize = 64;  // x ‖ y of a P-256 point, big-endian
// Upper bound we accept for a whole quote; real ones are ~5 KB.
inline constexpr size_t kMaxQuoteSize = 64 * 1024;

inline constexpr uint16_t kAttKeyTypeEcdsaP256 = 2;
inline constexpr uint32_t kTeeTypeSgx = 0x00000000;
inline constexpr uint32_t kTeeTypeTdx = 0x00000081;
inline constexpr uint16_t kCertTypePckChain = 5;      // concatenated PCK cert chain, PEM
inline constexpr uint16_t kCertTypeQeReportData = 6;  // QE report certification data
// v5 body types.
inline constexpr uint16_t kBodyTypeSgx = 1;
inline constexpr uint16_t kBodyTypeTd10 = 2;
inline constexpr uint16_t kBodyTypeTd15 = 3;

// Intel's QE vendor id.
inline constexpr std::array<uint8_t, 16> kIntelQeVendorId = {
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

enum class TeeType { kSgx, kTdx };

struct QuoteHeader {
  uint16_t version = 0;
  uint16_t att_key_type = 0;
  uint32_t tee_type = 0;
  uint16_t qe_svn = 0;
  uint16_t pce_svn = 0;
  std::array<uint8_t, 16> qe_vendor_id{};
  std::array<uint8_t, 20> user_data{};
};

// sgx_report_body_t (Intel SGX SDK sgx_report.h), 384 bytes. Used for the application enclave's
// report in an SGX quote and for the QE report in every quote.
struct SgxReportBody {
  std::array<uint8_t, 16> cpu_svn{};
  uint32_t misc_select = 0;
  std::array<uint8_t, 16> isv_ext_prod_id{};
  std::array<uint8_t, 16> attributes{};  // flags u64 ‖ xfrm u64
  uint64_t attributes_flags = 0;
  uint64_t attributes_xfrm = 0;
  std::array<uint8_t, 32> mr_enclave{};
  std::array<uint8_t, 32> mr_signer{};
  std::array<uint8_t, 64> config_id{};
  uint16_t isv_prod_id = 0;
  uint16_t isv_svn = 0;
  uint16_t config_svn = 0;
  std::array<uint8_t, 16> isv_family_id{};
  std::array<uint8_t, 64> report_data{};

  static constexpr uint64_t kFlagDebug = 0x2;  // SGX_FLAGS_DEBUG
  bool debug() const { return (attributes_flags & kFlagDebug) != 0; }
};

// TD report body (TDX DCAP Quoting Library API §A.3.2): TD 1.0 is 584 bytes; TD 1.5 adds
// tee_tcb_svn2 and mr_service_td (648 bytes, v5 quotes only).
struct TdReportBody {
  std::array<uint8_t, 16> tee_tcb_svn{};
  std::array<uint8_t, 48> mr_seam{};
  std::array<uint8_t, 48> mr_signer_seam{};
  std::array<uint8_t, 8> seam_attributes{};
  std::array<uint8_t, 8> td_attributes{};
  std::array<uint8_t, 8> xfam{};
  std::array<uint8_t, 48> mr_td{};
  std::array<uint8_t, 48> mr_config_id{};
  std::array<uint8_t, 48> mr_owner{};
  std::array<uint8_t, 48> mr_owner_config{};
  std::array<std::array<uint8_t, 48>, 4> rtmr{};
  std::array<uint8_t, 64> report_data{};
  bool is_td15 = false;
  std::array<uint8_t, 16> tee_tcb_svn2{};   // TD 1.5 only
  std::array<uint8_t, 48> mr_service_td{};  // TD 1.5 only

  // TDATTRIBUTES bit 0 (TUD.DEBUG): the TD runs in debug mode, its state is readable by the host.
  bool debug() const { return (td_attributes[0] & 0x01) != 0; }
};

struct ParsedQuote {
  QuoteHeader header;
  TeeType tee = TeeType::kSgx;
  uint16_t body_type = 0;  // kBodyType*; for v3/v4 derived from tee_type
  SgxReportBody sgx;       // when tee == kSgx
  TdReportBody td;         // when tee == kTdx

  std::string signed_data;  // header ‖ body exactly as signed by the attestation key
  std::array<uint8_t, kEcdsaSignatureSize> signature{};
  std::array<uint8_t, kAttestationKeySize> attestation_key{};

  std::string qe_report;  // the 384 raw bytes signed by the PCK key
  SgxReportBody qe_report_body;
  std::array<uint8_t, kEcdsaSignatureSize> qe_report_signature{};
  std::string qe_auth_data;

  uint16_t cert_type = 0;  // innermost certification data type (5 for a PCK chain)
  std::string cert_data;   // innermost certification data (PEM chain for type 5)

  size_t quote_size = 0;     // bytes the quote occupies (end of the signature data)
  size_t trailing_size = 0;  // bytes after it in the input (padding), ignored
};

// Parses an SGX v3, TDX v4 or v5 quote. InvalidArgument with a precise reason (which field, at
// which offset) for anything malformed or unsupported (attestation key type other than
// ECDSA-P256, unknown TEE / body type, inconsistent lengths).
absl::StatusOr<ParsedQuote> ParseQuote(std::string_view bytes);

// Parses a 384-byte sgx_report_body_t.
absl::StatusOr<SgxReportBody> ParseSgxReportBody(std::string_view bytes);

}  // namespace kshield::tee::quote
