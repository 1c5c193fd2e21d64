// libFuzzer target for the KMIP TTLV decoder (keys/kmip/ttlv.h).
//
// Properties checked on every input:
//  - DecodeTtlv never crashes, reads out of bounds or recurses past its depth limit (ASan/UBSan);
//  - whatever it accepts re-encodes to exactly the input bytes (the encoding is canonical: fixed
//    lengths per type, zero padding), and decodes again to an equal tree;
//  - TtlvMessageSize agrees with the decoder on how long an accepted message is.
// Link with kshield_kmip_ttlv (abseil only).
// fuzz-libs: kshield_kmip_ttlv
// fuzz-sources: src/keys/kmip/ttlv.cc
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "keys/kmip/ttlv.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using kshield::keys::kmip::DecodeTtlv;
  using kshield::keys::kmip::EncodeTtlv;
  using kshield::keys::kmip::TtlvMessageSize;

  const std::string_view input(reinterpret_cast<const char*>(data), size);
  auto item = DecodeTtlv(input);
  if (!item.ok()) return 0;

  auto size_from_header = TtlvMessageSize(input.substr(0, 8));
  if (!size_from_header.ok() || *size_from_header != size) abort();

  auto encoded = EncodeTtlv(*item);
  if (!encoded.ok() || *encoded != input) abort();

  auto again = DecodeTtlv(*encoded);
  if (!again.ok() || !(*again == *item)) abort();
  return 0;
}
