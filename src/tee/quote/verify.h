// VerifyQuote — DCAP quote verification to a pinned root, with optional collateral for TCB status.
//
//   VerifyOptions opts;
//   opts.root_pem = intel_root_pem;                 // pinned; the quote's own root is never used
//   opts.at = absl::FromUnixSeconds(...);            // default: now
//   opts.collateral = &collateral;                   // optional: gives tcb_status + advisories
//   VerifiedQuote v = VerifyQuote(quote_bytes, opts);
//   if (!v.ok()) refuse(v.errors);                  // each error is a precise reason
//
// Checks (Intel QVL QuoteVerifier.cpp §4.1.2.4), all run, failures collected in `errors`:
//  - structure (ParseQuote) and the Intel QE vendor id;
//  - chain_valid: the PCK chain from the quote's certification data (type 5) verifies leaf →
//    intermediate → the pinned root at `at` (CRLs from the collateral and `crls_der` applied:
//    revoked or CRL-less certificates fail); the leaf's CN contains "SGX PCK Certificate";
//  - signature_valid: (1) the QE report signature verifies with the PCK leaf key, (2) the QE
//    report's REPORTDATA is SHA-256(attestation key ‖ QE auth data) followed by 32 zero bytes,
//    (3) the quote signature over header ‖ body verifies with the attestation key;
//  - with collateral (and only for a quote that passed both of the above): collateral signatures,
//    chains and windows (VerifyCollateral), the PCK CRL's issuer is the PCK certificate's issuer,
//    then EvaluateTcb → tcb_status and advisories. A Revoked status is also an error.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tee/quote/collateral.h"
#include "tee/quote/pck_extensions.h"
#include "tee/quote/quote.h"

namespace kshield::tee::quote {

struct VerifyOptions {
  std::string root_pem;               // the pinned root CA certificate (PEM); required
  std::optional<absl::Time> at;       // verification time; unset = absl::Now()
  std::vector<std::string> crls_der;  // extra CRLs (DER) applied to the PCK chain
  const Collateral* collateral = nullptr;
};

// Field names match `kshieldctl attest verify -o json` (ToJson below). Hex is lowercase.
struct VerifiedQuote {
  std::string tee_type;  // "sgx" | "tdx"; "" when the quote did not parse
  int version = 0;
  // SGX only.
  std::string mrenclave;
  std::string mrsigner;
  uint16_t isv_prod_id = 0;
  uint16_t isv_svn = 0;
  // Both: SGX ATTRIBUTES.DEBUG, TDX TDATTRIBUTES.TUD.DEBUG.
  bool debug = false;
  // TDX only.
  std::string mrtd;
  std::vector<std::string> rtmr;  // RTMR0..3
  std::string report_data;

  bool signature_valid = false;  // quote signature, QE report signature and QE report binding
  bool chain_valid = false;      // PCK chain to the pinned root (CRLs when given)
  std::string tcb_status;        // "" without (valid) collateral
  std::vector<std::string> advisories;
  std::vector<std::string> errors;  // precise reasons; empty when everything checked passed

  std::optional<ParsedQuote> quote;  // the parsed structure, when it parsed
  std::optional<PckExtensions> pck;  // the PCK leaf's SGX extension, when it parsed

  // Signature and chain verified, and no check failed.
  bool ok() const { return signature_valid && chain_valid && errors.empty(); }
  // OkStatus when ok(); otherwise PermissionDenied carrying the first error.
  absl::Status status() const;
};

VerifiedQuote VerifyQuote(std::string_view quote_bytes, const VerifyOptions& options);

// The `kshieldctl attest verify -o json` object (without `policy_ok`, which the CLI adds): keys
// tee_type, version, mrenclave, mrsigner, isv_prod_id, isv_svn, debug, mrtd, rtmr, report_data,
// signature_valid, chain_valid, tcb_status, advisories, errors. Fields that do not apply to the
// quote's TEE (or that are unknown) are null.
nlohmann::json ToJson(const VerifiedQuote& v);

}  // namespace kshield::tee::quote
