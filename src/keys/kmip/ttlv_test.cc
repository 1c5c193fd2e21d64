#include "keys/kmip/ttlv.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_replace.h"
#include "common/status.h"
#include "keys/kmip/kmip_tags.h"

namespace kshield::keys::kmip {
namespace {

// "42 00 20 | 02 | 00 00 00 04 | ..." -> bytes (the notation of the KMIP specification).
std::string Hex(std::string_view spaced) {
  std::string compact = absl::StrReplaceAll(std::string(spaced), {{" ", ""}, {"|", ""}});
  return absl::HexStringToBytes(compact);
}

std::string ToHex(std::string_view bytes) { return absl::BytesToHexString(AV(bytes)); }

std::string Encode(const Item& item) {
  auto e = EncodeTtlv(item);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *e : std::string();
}

constexpr uint32_t kTag = 0x420020;  // the example tag of KMIP 1.x §9.1.2

// KMIP Specification v1.0-1.4, §9.1.2 "Examples": the value, and its encoding as printed.
TEST(TtlvSpecExamples, Integer8) {
  const std::string wire = Hex("42 00 20 | 02 | 00 00 00 04 | 00 00 00 08 00 00 00 00");
  EXPECT_EQ(ToHex(Encode(Item::Integer(kTag, 8))), ToHex(wire));
  auto d = DecodeTtlv(wire);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->type(), ItemType::kInteger);
  EXPECT_EQ(d->tag(), kTag);
  EXPECT_EQ(d->number(), 8);
}

TEST(TtlvSpecExamples, LongInteger) {
  const std::string wire = Hex("42 00 20 | 03 | 00 00 00 08 | 01 B6 9B 4B A5 74 92 00");
  EXPECT_EQ(ToHex(Encode(Item::LongInteger(kTag, 123456789000000000))), ToHex(wire));
  auto d = DecodeTtlv(wire);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->type(), ItemType::kLongInteger);
  EXPECT_EQ(d->number(), 123456789000000000);
}

TEST(TtlvSpecExamples, BigInteger) {
  // 1234567890000000000000000000, sign-extended to 16 bytes.
  const std::string wire =
      Hex("42 00 20 | 04 | 00 00 00 10 | 00 00 00 00 03 FD 35 EB 6B C2 DF 46 18 08 00 00");
  const std::string value = Hex("00 00 00 00 03 FD 35 EB 6B C2 DF 46 18 08 00 00");
  EXPECT_EQ(ToHex(Encode(Item::BigInteger(kTag, value))), ToHex(wire));
  auto d = DecodeTtlv(wire);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->type(), ItemType::kBigInteger);
  EXPECT_EQ(ToHex(d->bytes()), ToHex(value));
}

TEST(TtlvSpecExamples, Enumeration255) {
  const std::string wire = Hex("42 00 20 | 05 | 00 00 00 04 | 00 00 00 FF 00 00 00 00");
  EXPECT_EQ(ToHex(Encode(Item::Enumeration(kTag, 255))), ToHex(wire));
  auto d = DecodeTtlv(wire);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->type(), ItemType::kEnumeration);
  EXPECT_EQ(d->number(), 255);
}

TEST(TtlvSpecExamples, BooleanTrue) {
  const std::string wire = Hex("42 00 20 | 06 | 00 00 00 08 | 00 00 00 00 00 00 00 01");
  EXPECT_EQ(ToHex(Encode(Item::Boolean(kTag, true))), ToHex(wire));
  auto d = DecodeTtlv(wire);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->type(), ItemType::kBoolean);
  EXPECT_EQ(d->number(), 1);
}

TEST(TtlvSpecExamples, TextStringHelloWorld) {
  const std::string wire =
      Hex("42 00 20 | 07 | 00 00 00 0B | 48 65 6C 6C 6F 20 57 6F 72 6C 64 00 00 00 00 00");
  EXPECT_EQ(ToHex(Encode(Item::TextString(kTag, "Hello World"))), ToHex(wire));
  auto d = DecodeTtlv(wire);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->type(), ItemType::kTextString);
  EXPECT_EQ(std::string(d->bytes()), "Hello World");
}

TEST(TtlvSpecExamples, ByteString010203) {
  const std::string wire = Hex("42 00 20 | 08 | 00 00 00 03 | 01 02 03 00 00 00 00 00");
  EXPECT_EQ(ToHex(Encode(Item::ByteString(kTag, std::string("\x01\x02\x03", 3)))), ToHex(wire));
  auto d = DecodeTtlv(wire);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->type(), ItemType::kByteString);
  EXPECT_EQ(std::string(d->bytes()), std::string("\x01\x02\x03", 3));
}

TEST(TtlvSpecExamples, DateTime) {
  // Friday, March 14, 2008, 11:56:40 GMT.
  const std::string wire = Hex("42 00 20 | 09 | 00 00 00 08 | 00 00 00 00 47 DA 67 F8");
  EXPECT_EQ(ToHex(Encode(Item::DateTime(kTag, 1205495800))), ToHex(wire));
  auto d = DecodeTtlv(wire);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->type(), ItemType::kDateTime);
  EXPECT_EQ(d->number(), 1205495800);
}

TEST(TtlvSpecExamples, Interval10Days) {
  const std::string wire = Hex("42 00 20 | 0A | 00 00 00 04 | 00 0D 2F 00 00 00 00 00");
  EXPECT_EQ(ToHex(Encode(Item::Interval(kTag, 10 * 86400))), ToHex(wire));
  auto d = DecodeTtlv(wire);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->type(), ItemType::kInterval);
  EXPECT_EQ(d->number(), 864000);
}

TEST(TtlvSpecExamples, StructureWithEnumerationAndInteger) {
  const std::string wire =
      Hex("42 00 20 | 01 | 00 00 00 20 | 42 00 04 | 05 | 00 00 00 04 | 00 00 00 FE "
          "00 00 00 00 | 42 00 05 | 02 | 00 00 00 04 | 00 00 00 FF 00 00 00 00");
  Item s = Item::Structure(kTag, {Item::Enumeration(0x420004, 254), Item::Integer(0x420005, 255)});
  EXPECT_EQ(ToHex(Encode(s)), ToHex(wire));
  auto d = DecodeTtlv(wire);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->children().size(), 2u);
  EXPECT_EQ(d->children()[0].tag(), 0x420004u);
  EXPECT_EQ(d->children()[0].type(), ItemType::kEnumeration);
  EXPECT_EQ(d->children()[0].number(), 254);
  EXPECT_EQ(d->children()[1].tag(), 0x420005u);
  EXPECT_EQ(d->children()[1].number(), 255);
  EXPECT_TRUE(*d == s);
}

TEST(Ttlv, NegativeNumbersRoundTrip) {
  Item s = Item::Structure(
      kTag, {Item::Integer(1, -1), Item::LongInteger(2, INT64_MIN), Item::DateTime(3, -5),
             Item::Enumeration(4, 0xFFFFFFFFu), Item::Interval(5, 0xFFFFFFFFu)});
  auto d = DecodeTtlv(Encode(s));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(*d == s) << DebugString(*d);
  EXPECT_EQ(d->children()[0].number(), -1);
  EXPECT_EQ(d->children()[3].number(), 0xFFFFFFFFll);
}

TEST(Ttlv, EmptyValuesRoundTrip) {
  Item s =
      Item::Structure(kTag, {Item::TextString(1, ""), Item::ByteString(2, ""), Item::Structure(3)});
  const std::string wire = Encode(s);
  EXPECT_EQ(wire.size(), 8u + 3 * 8u);
  auto d = DecodeTtlv(wire);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(*d == s);
}

TEST(Ttlv, EncoderRejectsBadBigIntegerAndTag) {
  EXPECT_FALSE(EncodeTtlv(Item::BigInteger(kTag, "1234567")).ok());
  EXPECT_FALSE(EncodeTtlv(Item::BigInteger(kTag, "")).ok());
  EXPECT_FALSE(EncodeTtlv(Item::Integer(0x1000000, 1)).ok());
}

TEST(Ttlv, EncoderEnforcesDepthAndSize) {
  Item deep = Item::Integer(kTag, 1);
  for (int i = 0; i < 16; ++i) deep = Item::Structure(kTag, {std::move(deep)});
  EXPECT_FALSE(EncodeTtlv(deep).ok());  // 17 levels
  TtlvLimits small;
  small.max_message_size = 64;
  EXPECT_FALSE(EncodeTtlv(Item::ByteString(kTag, std::string(100, 'x')), small).ok());
}

TEST(Ttlv, DebugStringHidesByteStrings) {
  Item s = Item::Structure(kTag, {Item::ByteString(tag::kKeyMaterial, "SECRETKEYBYTES"),
                                  Item::TextString(tag::kNameValue, "visible-name")});
  std::string dump = DebugString(s);
  EXPECT_EQ(dump.find("SECRETKEYBYTES"), std::string::npos) << dump;
  EXPECT_NE(dump.find("(14 bytes)"), std::string::npos) << dump;
  EXPECT_NE(dump.find("visible-name"), std::string::npos) << dump;
}

// ---- Mutation tests: one valid message, mutated one field at a time. ----

// A real Get response recorded from PyKMIP 0.10 (its server log, logging_level DEBUG) for a key
// made on a throw-away test server. Response Message { Response Header { Protocol Version 1.2,
// Time Stamp, Batch Count 1 }, Batch Item { Operation Get, Result Status Success, Response
// Payload { Object Type Symmetric Key, Unique Identifier "1", Symmetric Key { Key Block {
// Key Format Type Raw, Key Value { Key Material (32 bytes) }, Cryptographic Algorithm AES,
// Cryptographic Length 256 } } } } }.
const char kGetResponseHex[] =
    "42007b010000011042007a0100000048420069010000002042006a020000000400000001000000004200"
    "6b020000000400000002000000004200920900000008000000006b0a274842000d020000000400000001"
    "0000000042000f01000000b842005c05000000040000000a0000000042007f0500000004000000000000"
    "000042007c01000000904200570500000004000000020000000042009407000000013100000000000000"
    "42008f010000006842004001000000604200420500000004000000010000000042004501000000284200"
    "430800000020edb3b17f4f17cad39699812735438d6c9161a747e5c9c31bac81e50bd2c7990542002805"
    "00000004000000030000000042002a02000000040000010000000000";

std::string GetResponse() { return absl::HexStringToBytes(kGetResponseHex); }

// Offsets of every item header in `wire` (pre-order).
void CollectHeaders(std::string_view wire, size_t base, std::vector<size_t>* out) {
  size_t pos = 0;
  while (pos + 8 <= wire.size()) {
    out->push_back(base + pos);
    const auto* p = reinterpret_cast<const uint8_t*>(wire.data() + pos);
    uint32_t len = (uint32_t{p[4]} << 24) | (uint32_t{p[5]} << 16) | (uint32_t{p[6]} << 8) | p[7];
    size_t padded = (len + 7) / 8 * 8;
    if (p[3] == 0x01) CollectHeaders(wire.substr(pos + 8, len), base + pos + 8, out);
    pos += 8 + padded;
  }
}

TEST(TtlvMutation, ValidBaseline) {
  const std::string wire = GetResponse();
  ASSERT_EQ(wire.size(), 8u + 0x110);
  auto d = DecodeTtlv(wire);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->tag(), tag::kResponseMessage);
  auto again = EncodeTtlv(*d);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(ToHex(*again), ToHex(wire));  // decode + encode is the identity
}

TEST(TtlvMutation, EveryTruncationFails) {
  const std::string wire = GetResponse();
  for (size_t n = 0; n < wire.size(); ++n) {
    auto d = DecodeTtlv(std::string_view(wire).substr(0, n));
    EXPECT_FALSE(d.ok()) << "prefix of " << n << " bytes decoded";
    if (!d.ok()) {
      EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    }
  }
}

TEST(TtlvMutation, TrailingBytesFail) {
  std::string wire = GetResponse() + std::string(8, '\0');
  EXPECT_FALSE(DecodeTtlv(wire).ok());
}

TEST(TtlvMutation, BadTypeByteAtEveryItemFails) {
  const std::string wire = GetResponse();
  std::vector<size_t> headers;
  CollectHeaders(wire, 0, &headers);
  ASSERT_EQ(headers.size(), 20u);
  for (size_t h : headers) {
    for (uint8_t bad : {0x00, 0x0B, 0x42, 0xFF}) {
      std::string m = wire;
      m[h + 3] = static_cast<char>(bad);
      EXPECT_FALSE(DecodeTtlv(m).ok())
          << "type 0x" << std::hex << int{bad} << " at " << std::dec << h;
    }
  }
}

TEST(TtlvMutation, AnyOtherTypeAtEveryItemFails) {
  // Swapping a valid type for another valid type must also fail: lengths are checked per type,
  // and a Structure's value must parse as items.
  const std::string wire = GetResponse();
  std::vector<size_t> headers;
  CollectHeaders(wire, 0, &headers);
  int accepted = 0;
  for (size_t h : headers) {
    for (uint8_t t = 0x01; t <= 0x0A; ++t) {
      if (static_cast<uint8_t>(wire[h + 3]) == t) continue;
      std::string m = wire;
      m[h + 3] = static_cast<char>(t);
      auto d = DecodeTtlv(m);
      // Some swaps are well-formed TTLV (Integer <-> Enumeration <-> Interval, Byte <-> Text
      // String of ASCII, Long Integer <-> Date-Time ...) but they must never crash, and the
      // decoded item must carry the new type.
      if (d.ok()) ++accepted;
    }
  }
  EXPECT_LT(accepted, static_cast<int>(headers.size()) * 9);
}

TEST(TtlvMutation, LengthOverflowAtEveryItemFails) {
  const std::string wire = GetResponse();
  std::vector<size_t> headers;
  CollectHeaders(wire, 0, &headers);
  for (size_t h : headers) {
    for (uint32_t bad : {0xFFFFFFFFu, 0xFFFFFFF8u, 0x80000000u, 0x00100000u}) {
      std::string m = wire;
      m[h + 4] = static_cast<char>(bad >> 24);
      m[h + 5] = static_cast<char>(bad >> 16);
      m[h + 6] = static_cast<char>(bad >> 8);
      m[h + 7] = static_cast<char>(bad);
      EXPECT_FALSE(DecodeTtlv(m).ok()) << "length " << bad << " at " << h;
    }
  }
}

TEST(TtlvMutation, LengthOffByOneAtEveryItemFails) {
  const std::string wire = GetResponse();
  std::vector<size_t> headers;
  CollectHeaders(wire, 0, &headers);
  for (size_t h : headers) {
    for (int delta : {-8, -1, 1, 8}) {
      std::string m = wire;
      const auto* p = reinterpret_cast<const uint8_t*>(m.data() + h + 4);
      uint32_t len = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
      uint32_t bad = len + static_cast<uint32_t>(delta);
      m[h + 4] = static_cast<char>(bad >> 24);
      m[h + 5] = static_cast<char>(bad >> 16);
      m[h + 6] = static_cast<char>(bad >> 8);
      m[h + 7] = static_cast<char>(bad);
      auto d = DecodeTtlv(m);
      if (d.ok()) {
        // Only a Text / Byte String may move within its zero padding (then its value changes).
        const uint8_t type = static_cast<uint8_t>(wire[h + 3]);
        EXPECT_TRUE((type == 0x07 || type == 0x08) && (delta == -1 || delta == 1))
            << "length " << len << "+" << delta << " at " << h << " accepted";
      }
    }
  }
}

TEST(TtlvMutation, NonZeroPaddingFails) {
  const std::string wire = GetResponse();
  // The Integer 1 (Protocol Version Major) at offset 24: value 4 bytes, padding 4 bytes.
  std::string m = wire;
  ASSERT_EQ(ToHex(m.substr(24, 16)), "42006a02000000040000000100000000");
  m[39] = 1;
  EXPECT_FALSE(DecodeTtlv(m).ok());
  // The Unique Identifier "1": 1 byte of text, 7 of padding.
  size_t uid = wire.find(absl::HexStringToBytes("420094070000000131"));
  ASSERT_NE(uid, std::string::npos);
  for (size_t i = 9; i < 16; ++i) {
    std::string u = wire;
    u[uid + i] = 'x';
    EXPECT_FALSE(DecodeTtlv(u).ok()) << "padding byte " << i;
  }
}

TEST(TtlvMutation, WrongFixedLengthsFail) {
  for (auto [type, len] : std::vector<std::pair<uint8_t, uint32_t>>{{0x02, 8},
                                                                    {0x02, 0},
                                                                    {0x03, 4},
                                                                    {0x05, 8},
                                                                    {0x06, 4},
                                                                    {0x09, 4},
                                                                    {0x0A, 8},
                                                                    {0x04, 4},
                                                                    {0x04, 0},
                                                                    {0x01, 4}}) {
    std::string m = Hex("42 00 20");
    m.push_back(static_cast<char>(type));
    m += std::string("\0\0\0", 3) + static_cast<char>(len);
    m += std::string((len + 7) / 8 * 8, '\0');
    EXPECT_FALSE(DecodeTtlv(m).ok()) << "type " << int{type} << " length " << len;
  }
}

TEST(TtlvMutation, BooleanMustBeZeroOrOne) {
  EXPECT_TRUE(DecodeTtlv(Hex("42 00 20 | 06 | 00 00 00 08 | 00 00 00 00 00 00 00 00")).ok());
  EXPECT_FALSE(DecodeTtlv(Hex("42 00 20 | 06 | 00 00 00 08 | 00 00 00 00 00 00 00 02")).ok());
  EXPECT_FALSE(DecodeTtlv(Hex("42 00 20 | 06 | 00 00 00 08 | 01 00 00 00 00 00 00 01")).ok());
}

TEST(TtlvMutation, TextStringMustBeUtf8) {
  EXPECT_TRUE(DecodeTtlv(Hex("42 00 20 | 07 | 00 00 00 02 | C3 A9 00 00 00 00 00 00")).ok());
  for (const char* bad : {"42 00 20 | 07 | 00 00 00 01 | C3 00 00 00 00 00 00 00",
                          "42 00 20 | 07 | 00 00 00 02 | C0 80 00 00 00 00 00 00",
                          "42 00 20 | 07 | 00 00 00 03 | ED A0 80 00 00 00 00 00",
                          "42 00 20 | 07 | 00 00 00 01 | FF 00 00 00 00 00 00 00"}) {
    EXPECT_FALSE(DecodeTtlv(Hex(bad)).ok()) << bad;
  }
}

TEST(TtlvMutation, DepthBomb) {
  // 16 nested structures decode; 17 do not; a million-deep bomb fails without recursing deeply.
  auto nest = [](int levels) {
    std::string wire;
    wire.reserve(static_cast<size_t>(levels) * 8);
    for (int i = 0; i < levels; ++i) {
      uint32_t len = static_cast<uint32_t>((levels - 1 - i) * 8);
      wire.append("\x42\x00\x20\x01", 4);
      wire.push_back(static_cast<char>(len >> 24));
      wire.push_back(static_cast<char>(len >> 16));
      wire.push_back(static_cast<char>(len >> 8));
      wire.push_back(static_cast<char>(len));
    }
    return wire;
  };
  EXPECT_TRUE(DecodeTtlv(nest(16)).ok());
  auto d = DecodeTtlv(nest(17));
  ASSERT_FALSE(d.ok());
  EXPECT_NE(std::string(d.status().message()).find("nested deeper"), std::string::npos)
      << d.status();
  TtlvLimits big;
  big.max_message_size = 16 << 20;
  EXPECT_FALSE(DecodeTtlv(nest(1 << 20), big).ok());
}

TEST(TtlvMutation, Oversize) {
  TtlvLimits limits, big;
  big.max_message_size = 2 * limits.max_message_size;
  auto encoded = EncodeTtlv(Item::ByteString(kTag, std::string(limits.max_message_size, 'k')), big);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  const std::string& wire = *encoded;
  auto d = DecodeTtlv(wire);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(std::string(d.status().message()).find("exceeds the limit"), std::string::npos);
  // TtlvMessageSize, used to frame messages off the socket, refuses the header alone.
  EXPECT_FALSE(TtlvMessageSize(std::string_view(wire).substr(0, 8)).ok());
  auto ok = TtlvMessageSize(std::string_view(GetResponse()).substr(0, 8));
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, GetResponse().size());
  EXPECT_FALSE(TtlvMessageSize(Hex("42 00 7B 01 00 00 00 09")).ok());  // not a multiple of 8
  EXPECT_FALSE(TtlvMessageSize(Hex("42 00 7B 0B 00 00 00 08")).ok());  // unknown type
  EXPECT_FALSE(TtlvMessageSize(Hex("42 00 7B 01")).ok());              // short
}

TEST(TtlvMutation, ItemCountLimit) {
  Item s = Item::Structure(kTag);
  for (int i = 0; i < 100; ++i) s.Add(Item::Structure(kTag));
  TtlvLimits limits;
  limits.max_items = 100;
  EXPECT_FALSE(DecodeTtlv(Encode(s), limits).ok());
  limits.max_items = 101;
  EXPECT_TRUE(DecodeTtlv(Encode(s), limits).ok());
}

TEST(TtlvMutation, ErrorsDoNotEchoValues) {
  std::string wire = GetResponse();
  wire.resize(wire.size() - 40);  // truncated inside the Key Material
  auto d = DecodeTtlv(wire);
  ASSERT_FALSE(d.ok());
  const std::string msg(d.status().message());
  EXPECT_EQ(msg.find("edb3b17f"), std::string::npos);
  EXPECT_EQ(msg.find(absl::HexStringToBytes("edb3b17f")), std::string::npos);
}

}  // namespace
}  // namespace kshield::keys::kmip
