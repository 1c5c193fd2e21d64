// Fuzz target: JWKS parsing (relay/jwks.h) — the OIDC issuer's key set, read from a file (or
// fetched) and so not under the relay's control: strict JSON, RSA n/e and EC P-256 x/y decoding,
// EVP_PKEY_fromdata + public-key checks, duplicate-kid handling. Seeds: fuzz/corpus/jwks_fuzz/.
// Invariants:
//  - success: 1..64 keys, each with an EVP_PKEY of the type its alg says (RSA 2048..8192 bits,
//    EC 256 bits); non-empty kids are unique and Find(kid, alg) returns that very key;
//  - failure: InvalidArgument with a bounded, printable message.
// fuzz-libs: kshield_relay_jwt
// fuzz-sources: src/relay/base64url.cc src/relay/json_util.cc src/relay/jwks.cc
#include <openssl/evp.h>

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "relay/jwks.h"

namespace r = kshield::relay;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  auto jwks = r::ParseJwks(in);
  if (!jwks.ok()) {
    FUZZ_CHECK(jwks.status().code() == absl::StatusCode::kInvalidArgument);
    const std::string msg(jwks.status().message());
    FUZZ_CHECK(!msg.empty() && msg.size() <= 400);
    for (unsigned char c : msg) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
    return 0;
  }
  FUZZ_CHECK(!jwks->keys.empty() && jwks->keys.size() <= r::kMaxJwksKeys);
  std::set<std::string> kids;
  for (const r::Jwk& k : jwks->keys) {
    FUZZ_CHECK(k.key != nullptr);
    if (k.alg == r::JwtAlg::kRs256) {
      FUZZ_CHECK(EVP_PKEY_is_a(k.key.get(), "RSA"));
      FUZZ_CHECK(k.bits >= 2048 && k.bits <= 8192);
    } else {
      FUZZ_CHECK(EVP_PKEY_is_a(k.key.get(), "EC"));
      FUZZ_CHECK(k.bits == 256);
    }
    if (!k.kid.empty()) {
      FUZZ_CHECK(kids.insert(k.kid).second);
      auto found = jwks->Find(k.kid, k.alg);
      FUZZ_CHECK(found.ok() && *found == &k);
    }
  }
  for (const std::string& why : jwks->skipped) {
    FUZZ_CHECK(why.size() <= 400);
  }
  return 0;
}
