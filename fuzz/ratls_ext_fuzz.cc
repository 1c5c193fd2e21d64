// Fuzz target: the RA-TLS certificate-extension parsers (tee/ratls_evidence.h) — the TCG DICE
// tagged-evidence CBOR (tag 60000 [quote, claims]) and the claims map's "pubkey-hash" entry, both
// taken from peer certificates. Seeds: fuzz/corpus/ratls_ext_fuzz/ (a DICE value around a real
// quote, and a claims map).
// Invariants:
//  - a successful evidence parse has a non-empty quote, and re-encoding it parses back to the same
//    quote and claims;
//  - a successful claims parse yields a 32-byte hash, and EncodeClaims of it parses back to it;
//  - a failure is InvalidArgument with a bounded, printable message.
// fuzz-libs: kshield_tee
// fuzz-sources: src/tee/ratls_evidence.cc
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "tee/ratls_evidence.h"

namespace t = kshield::tee;

namespace {

void CheckError(const absl::Status& s) {
  FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  const std::string msg(s.message());
  FUZZ_CHECK(!msg.empty() && msg.size() <= 400);
  for (unsigned char c : msg) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  auto ev = t::ParseDiceTaggedEvidence(in);
  if (ev.ok()) {
    FUZZ_CHECK(!ev->quote.empty());
    FUZZ_CHECK(ev->quote.size() + ev->claims.size() <= size);
    auto again = t::ParseDiceTaggedEvidence(t::EncodeDiceTaggedEvidence(ev->quote, ev->claims));
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(again->quote == ev->quote && again->claims == ev->claims);
    auto hash = t::ParseClaimsPubkeyHash(ev->claims);
    if (!hash.ok()) CheckError(hash.status());
  } else {
    CheckError(ev.status());
  }

  auto hash = t::ParseClaimsPubkeyHash(in);
  if (hash.ok()) {
    FUZZ_CHECK(hash->size() == 32);
    auto again = t::ParseClaimsPubkeyHash(t::EncodeClaims(*hash));
    FUZZ_CHECK(again.ok() && *again == *hash);
  } else {
    CheckError(hash.status());
  }
  return 0;
}
