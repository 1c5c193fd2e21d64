// The Intel SGX extension of a PCK certificate (OID 1.2.840.113741.1.13.1): what the platform's
// TCB was when the certificate was issued. Layout: "Intel SGX PCK Certificate and Certificate
// Revocation List Profile Specification" §1.3.5:
//
//   SGXExtensions ::= SEQUENCE OF SEQUENCE { OID, value }
//     .1 PPID          OCTET STRING (16)
//     .2 TCB           SEQUENCE OF SEQUENCE { OID .2.1 .. .2.16 INTEGER (SGX TCB component SVNs),
//                                             .2.17 INTEGER (PCESVN), .2.18 OCTET STRING (CPUSVN) }
//     .3 PCE-ID        OCTET STRING (2)
//     .4 FMSPC         OCTET STRING (6)
//     .5 SGX Type      ENUMERATED (0 Standard, 1 Scalable, 2 Scalable with integrity)
//     .6 PlatformInstanceID, .7 Configuration — optional (platform CA certificates), not used here
//
// The walk uses OpenSSL's ASN1_TYPE decoding, one level at a time, with bounded entry counts.
//
//   KSH_ASSIGN_OR_RETURN(PckExtensions ext, ParsePckExtensions(leaf));
//   if (ext.fmspc != tcb_info.fmspc) ...
#pragma once

#include <openssl/types.h>

#include <array>
#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace kshield::tee::quote {

inline constexpr char kSgxExtensionsOid[] = "1.2.840.113741.1.13.1";

struct PckExtensions {
  std::array<uint8_t, 16> ppid{};
  std::array<uint8_t, 16> tcb_components{};  // SGX TCB component SVNs 1..16
  uint16_t pce_svn = 0;
  std::array<uint8_t, 16> cpu_svn{};
  std::array<uint8_t, 2> pce_id{};
  std::array<uint8_t, 6> fmspc{};
  int sgx_type = 0;
};

// Parses the DER value of the SGX extension (the SEQUENCE, not the X.509 extension wrapper).
// Every mandatory entry (PPID, TCB with all 18 parts, PCE-ID, FMSPC, SGX Type) must be present
// exactly once; sizes and ranges are checked.
absl::StatusOr<PckExtensions> ParseSgxExtensions(std::string_view der);

// Finds the SGX extension in `cert` and parses it.
absl::StatusOr<PckExtensions> ParsePckExtensions(X509* cert);

}  // namespace kshield::tee::quote
