// Attestation policy: which verified quotes a peer accepts (issue 5 §3).
//
//   # policy.yaml — unknown keys are an error; hex is case-insensitive
//   tee_type: sgx                 # optional: sgx | tdx
//   mrenclave: [<64 hex>, ...]    # SGX: accepted MRENCLAVEs
//   mrsigner: [<64 hex>, ...]     # SGX: accepted MRSIGNERs
//   isv_prod_id: 1                # SGX: required ISVPRODID
//   min_isv_svn: 2                # SGX: minimum ISVSVN
//   allow_debug: false            # default false: debug enclaves / debug TDs are refused
//   min_tcb_status: SWHardeningNeeded   # needs collateral; see the order below
//   mrtd: [<96 hex>, ...]         # TDX: accepted MRTDs
//   rtmr:                         # TDX: accepted values per RTMR index (0..3)
//     0: [<96 hex>, ...]
//     2: [<96 hex>]
//
// TCB status order, best first (collateral.h TcbStatus): UpToDate, SWHardeningNeeded,
// ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded,
// Revoked. `min_tcb_status: X` accepts X and every status before it; Revoked is never accepted.
//
// Fail closed: a quote that did not verify is refused; an SGX quote is refused unless the policy
// names at least one mrenclave or mrsigner, a TDX quote unless it names at least one mrtd; a
// policy constraint on a field the quote's TEE does not have refuses the quote.
//
//   KSH_ASSIGN_OR_RETURN(Policy p, LoadPolicyFile("/etc/kshield/attest-policy.yaml"));
//   absl::Status s = CheckPolicy(p, VerifyQuote(quote, opts));
//   // s.message(): "policy: mrenclave: 1dd0…c189 is not an accepted value"
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tee/quote/collateral.h"
#include "tee/quote/verify.h"

namespace kshield::tee::quote {

struct Policy {
  std::optional<std::string> tee_type;  // "sgx" | "tdx"
  std::vector<std::string> mrenclave;   // lowercase hex
  std::vector<std::string> mrsigner;
  std::optional<uint16_t> isv_prod_id;
  std::optional<uint16_t> min_isv_svn;
  bool allow_debug = false;
  std::optional<TcbStatus> min_tcb_status;
  std::vector<std::string> mrtd;
  std::array<std::vector<std::string>, 4> rtmr;  // empty: no constraint on that RTMR
};

inline constexpr size_t kMaxPolicySize = 256 * 1024;

// Parses policy YAML; errors name the key (and list the known keys for an unknown one).
absl::StatusOr<Policy> ParsePolicyYaml(std::string_view yaml);
absl::StatusOr<Policy> LoadPolicyFile(const std::string& path);

// OkStatus when `quote` verified and satisfies every constraint; otherwise PermissionDenied whose
// message starts with "policy: <field>: " naming the first field that failed.
[[nodiscard]] absl::Status CheckPolicy(const Policy& policy, const VerifiedQuote& quote);

}  // namespace kshield::tee::quote
