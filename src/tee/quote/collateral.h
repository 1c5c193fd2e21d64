// DCAP collateral: TCB info and QE identity (Intel PCS JSON, signed by "Intel SGX TCB Signing"),
// the PCK and root CA CRLs — and the TCB status they give a quote.
//
// The collateral file format is the one dcap-qvl / PCCS clients store (`*_collateral.json`):
//
//   { "tcb_info": "<exact JSON text>", "tcb_info_signature": "<hex r‖s>",
//     "tcb_info_issuer_chain": "<PEM>", "qe_identity": "<exact JSON text>",
//     "qe_identity_signature": "<hex r‖s>", "qe_identity_issuer_chain": "<PEM>",
//     "pck_crl": "<hex DER>", "pck_crl_issuer_chain": "<PEM>", "root_ca_crl": "<hex DER>" }
//
// Signatures cover the exact bytes of the `tcb_info` / `qe_identity` strings, so those are kept
// verbatim and parsed only after their signature verified.
//
//   KSH_ASSIGN_OR_RETURN(Collateral c, ParseCollateralJson(file_text));
//   KSH_ASSIGN_OR_RETURN(VerifiedCollateral vc, VerifyCollateral(c, root.get(), at));
//   KSH_ASSIGN_OR_RETURN(TcbResult tcb, EvaluateTcb(vc.tcb_info, vc.qe_identity, pck_ext, quote));
//
// TCB status rules follow Intel's QVL (SGX-TDX-DCAP-QuoteVerificationLibrary, QuoteVerifier.cpp
// §4.1.2.4.9-17, Checks/TcbLevelCheck.cpp, Checks/TdxModuleCheck.cpp, EnclaveReportVerifier.cpp):
//  - the TCB level is the first of `tcbLevels` (Intel orders them newest first) whose 16 SGX
//    component SVNs are all <= the PCK certificate's and whose pcesvn <= the PCK's PCESVN; for TDX
//    additionally every TDX component SVN <= TEE_TCB_SVN (from index 2 when TEE_TCB_SVN[1] > 0);
//  - TDX: the TDX module identity `TDX_<TEE_TCB_SVN[1] as 2 hex digits>` gives the module status
//    from TEE_TCB_SVN[0]; its MRSIGNER and attributes (or `tdxModule`'s when the version byte is 0)
//    must match the TD report's MRSIGNERSEAM and SEAMATTRIBUTES (which must be zero);
//  - QE identity: MISCSELECT and ATTRIBUTES under their masks, MRSIGNER and ISVPRODID must match
//    the QE report; its first level with isvsvn <= the QE's ISVSVN gives the QE status;
//  - convergence: a module or QE status of OutOfDate turns UpToDate / SWHardeningNeeded into
//    OutOfDate and ConfigurationNeeded / ConfigurationAndSWHardeningNeeded into
//    OutOfDateConfigurationNeeded; Revoked anywhere gives Revoked.
// Advisory IDs: the selected TCB level's, then the TDX module level's, then the QE identity
// level's, each ID once, in that order.
// Not implemented: the TD 1.5 relaunch check (TDRelaunchAdvised statuses); a TD 1.5 quote is
// evaluated with its first TEE_TCB_SVN only.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tee/quote/pck_extensions.h"
#include "tee/quote/quote.h"
#include "tee/quote/x509.h"

namespace kshield::tee::quote {

// From best to worst. The order is what a policy's `min_tcb_status` compares with: a status is
// acceptable when it is at or before the minimum in this list. Revoked is never acceptable.
enum class TcbStatus {
  kUpToDate = 0,
  kSwHardeningNeeded = 1,
  kConfigurationNeeded = 2,
  kConfigurationAndSwHardeningNeeded = 3,
  kOutOfDate = 4,
  kOutOfDateConfigurationNeeded = 5,
  kRevoked = 6,
};
std::string_view TcbStatusName(TcbStatus s);  // "UpToDate", "SWHardeningNeeded", ...
absl::StatusOr<TcbStatus> ParseTcbStatus(std::string_view name);

// Size limits for untrusted collateral text.
inline constexpr size_t kMaxCollateralFileSize = 1024 * 1024;
inline constexpr size_t kMaxCollateralJsonSize = 256 * 1024;  // one tcb_info / qe_identity
inline constexpr size_t kMaxTcbLevels = 256;

struct Collateral {
  std::string tcb_info;            // exact signed JSON text
  std::string tcb_info_signature;  // raw r ‖ s (64 bytes)
  std::string tcb_info_issuer_chain;
  std::string qe_identity;
  std::string qe_identity_signature;
  std::string qe_identity_issuer_chain;
  std::string pck_crl;  // DER
  std::string pck_crl_issuer_chain;
  std::string root_ca_crl;  // DER
};

// Parses a `*_collateral.json` file (above). All nine keys are required; unknown keys are ignored.
absl::StatusOr<Collateral> ParseCollateralJson(std::string_view json_text);

struct TcbLevel {
  std::array<uint8_t, 16> sgx_components{};
  uint16_t pce_svn = 0;
  bool has_tdx_components = false;
  std::array<uint8_t, 16> tdx_components{};
  absl::Time tcb_date;
  TcbStatus status = TcbStatus::kRevoked;
  std::vector<std::string> advisory_ids;
};

struct IdentityTcbLevel {
  uint16_t isv_svn = 0;
  absl::Time tcb_date;
  TcbStatus status = TcbStatus::kRevoked;
  std::vector<std::string> advisory_ids;
};

struct TdxModule {
  std::array<uint8_t, 48> mrsigner{};
  std::array<uint8_t, 8> attributes{};
  std::array<uint8_t, 8> attributes_mask{};
};

struct TdxModuleIdentity {
  std::string id;  // "TDX_01", ...
  TdxModule module;
  std::vector<IdentityTcbLevel> tcb_levels;
};

struct TcbInfo {
  std::string id;  // "SGX" | "TDX" (version 3); absent in version 2 (then "SGX")
  int version = 0;
  absl::Time issue_date;
  absl::Time next_update;
  std::array<uint8_t, 6> fmspc{};
  std::array<uint8_t, 2> pce_id{};
  int tcb_type = 0;
  int tcb_evaluation_data_number = 0;
  std::vector<TcbLevel> tcb_levels;
  bool has_tdx_module = false;
  TdxModule tdx_module;
  std::vector<TdxModuleIdentity> tdx_module_identities;
};

struct EnclaveIdentity {
  std::string id;  // "QE" | "TD_QE" | "QVE"
  int version = 0;
  absl::Time issue_date;
  absl::Time next_update;
  int tcb_evaluation_data_number = 0;
  std::array<uint8_t, 4> miscselect{};
  std::array<uint8_t, 4> miscselect_mask{};
  std::array<uint8_t, 16> attributes{};
  std::array<uint8_t, 16> attributes_mask{};
  std::array<uint8_t, 32> mrsigner{};
  uint16_t isv_prod_id = 0;
  std::vector<IdentityTcbLevel> tcb_levels;
};

// Parse the signed JSON bodies (TCB info v2 / v3, enclave identity v2). Unknown keys are ignored
// (Intel adds fields); missing or mistyped required ones are errors naming the key.
absl::StatusOr<TcbInfo> ParseTcbInfo(std::string_view json_text);
absl::StatusOr<EnclaveIdentity> ParseEnclaveIdentity(std::string_view json_text);

struct VerifiedCollateral {
  TcbInfo tcb_info;
  EnclaveIdentity qe_identity;
  X509CrlPtr root_ca_crl;
  X509CrlPtr pck_crl;
  std::string pck_crl_issuer;  // one-line subject of the PCK CRL's issuer
};

// Verifies the collateral against the pinned `root` at time `at`: both issuer chains (leaf CN
// "Intel SGX TCB Signing") to the root with the root CA CRL, both signatures, the PCK CRL's
// signature by its issuer chain, and every validity window (issueDate..nextUpdate of TCB info and
// QE identity, thisUpdate..nextUpdate of both CRLs). Errors are precise: which item, which bound,
// which time.
absl::StatusOr<VerifiedCollateral> VerifyCollateral(const Collateral& collateral, X509* root,
                                                    absl::Time at);

struct TcbResult {
  TcbStatus status = TcbStatus::kRevoked;
  std::vector<std::string> advisory_ids;
};

// The TCB status of a (verified) quote under verified collateral; the rules are in the header
// comment. Errors: TCB info / QE identity for the other TEE, FMSPC or PCE-ID mismatch, QE identity
// mismatch, TDX module mismatch, no matching TCB level ("TCB not supported").
absl::StatusOr<TcbResult> EvaluateTcb(const TcbInfo& tcb_info, const EnclaveIdentity& qe_identity,
                                      const PckExtensions& pck, const ParsedQuote& quote);

}  // namespace kshield::tee::quote
