// Fuzz target: the DCAP collateral parsers (tee::quote::ParseCollateralJson, ParseTcbInfo,
// ParseEnclaveIdentity): the collateral file and the Intel-signed TCB info / QE identity JSON.
// The JSON bodies are parsed only after their signature verified in production, but the
// collateral file itself is untrusted input to `kshieldctl attest verify --collateral`.
// Seeds: ../shared/testdata/attestation/*_collateral.json and their tcb_info / qe_identity strings.
// Invariants:
//  - no exception escapes, nothing crashes, however deep or malformed the JSON;
//  - a failure is InvalidArgument with a bounded, printable message;
//  - a parsed TCB info has 1..kMaxTcbLevels levels, TDX components (and a tdxModule) exactly when
//    its id is TDX; a parsed collateral has 64-byte signatures.
// fuzz-libs: kshield_tee_quote
// fuzz-sources: src/tee/quote/collateral.cc src/tee/quote/x509.cc
// (the clang build also needs absl::time and the nlohmann-json headers)
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "tee/quote/collateral.h"

namespace q = kshield::tee::quote;

namespace {

void CheckError(const absl::Status& s) {
  FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  const std::string msg(s.message());
  FUZZ_CHECK(!msg.empty() && msg.size() <= 600);
  for (unsigned char c : msg) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  auto collateral = q::ParseCollateralJson(in);
  if (collateral.ok()) {
    FUZZ_CHECK(collateral->tcb_info_signature.size() == 64);
    FUZZ_CHECK(collateral->qe_identity_signature.size() == 64);
    // Follow the chain as production does (minus the signature check).
    (void)q::ParseTcbInfo(collateral->tcb_info);
    (void)q::ParseEnclaveIdentity(collateral->qe_identity);
  } else {
    CheckError(collateral.status());
  }

  auto info = q::ParseTcbInfo(in);
  if (info.ok()) {
    FUZZ_CHECK(!info->tcb_levels.empty() && info->tcb_levels.size() <= q::kMaxTcbLevels);
    FUZZ_CHECK(info->id == "SGX" || info->id == "TDX");
    for (const q::TcbLevel& l : info->tcb_levels) {
      FUZZ_CHECK(l.has_tdx_components == (info->id == "TDX" && info->version >= 3));
    }
    FUZZ_CHECK(info->has_tdx_module == (info->id == "TDX"));
  } else {
    CheckError(info.status());
  }

  auto identity = q::ParseEnclaveIdentity(in);
  if (identity.ok()) {
    FUZZ_CHECK(!identity->tcb_levels.empty());
    FUZZ_CHECK(identity->version == 2);
  } else {
    CheckError(identity.status());
  }
  return 0;
}
