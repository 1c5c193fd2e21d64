// Fuzz target: keys::ParseKeyId, the parser of the key_id a KMS v2 Decrypt carries (untrusted: it
// comes from etcd via the apiserver). Invariants:
//  - a successful parse formats back to exactly the input (so the grammar has one spelling per
//    key_id: no leading zeros, no case variants) and names a valid keyset id and a version >= 1;
//  - a failure is InvalidArgument with a bounded, printable message (it may be logged: the parser
//    quotes at most 64 characters of the input and masks control bytes);
//  - FormatKeyId of fuzzer-chosen fields always parses back to the same fields.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "keys/key_id.h"

using kshield::keys::FormatKeyId;
using kshield::keys::IsValidKeysetId;
using kshield::keys::ParseKeyId;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  auto parsed = ParseKeyId(in);
  if (parsed.ok()) {
    FUZZ_CHECK(size <= kshield::keys::kMaxKeyIdLength);
    FUZZ_CHECK(IsValidKeysetId(parsed->keyset_id));
    FUZZ_CHECK(parsed->version >= 1);
    FUZZ_CHECK(FormatKeyId(parsed->keyset_id, parsed->version) == in);
  } else {
    FUZZ_CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
    const std::string msg(parsed.status().message());
    FUZZ_CHECK(!msg.empty() && msg.size() <= 200);
    for (unsigned char c : msg) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
  }

  // Build a key_id from the input's bytes: 8 bytes -> 16 hex chars of keyset id, 4 bytes -> version.
  if (size >= 12) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string keyset_id;
    for (size_t i = 0; i < 8; ++i) {
      keyset_id.push_back(kHex[data[i] >> 4]);
      keyset_id.push_back(kHex[data[i] & 0xf]);
    }
    const uint32_t version = (uint32_t{data[8]} << 24) | (uint32_t{data[9]} << 16) |
                             (uint32_t{data[10]} << 8) | uint32_t{data[11]};
    const std::string id = FormatKeyId(keyset_id, version);
    auto back = ParseKeyId(id);
    if (version == 0) {
      FUZZ_CHECK(!back.ok());
    } else {
      FUZZ_CHECK(back.ok());
      FUZZ_CHECK(back->keyset_id == keyset_id && back->version == version);
    }
  }
  return 0;
}
