// KMIP Register (restoring a KEK from a backup into a KMIP server): the request is byte-identical
// to the one PyKMIP 0.10's own client sends, and the key exists only in protected memory.
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/escaping.h"
#include "common/status.h"
#include "keys/kmip/kmip_messages.h"

namespace kshield::keys::kmip {
namespace {

// Recorded from PyKMIP 0.10's ProxyKmipClient (KMIP 1.2):
//   register(SymmetricKey(AES, 256, bytes(range(32)), masks=[ENCRYPT, DECRYPT],
//                         name='kshield-abc-1'))
const char kRegisterRequestHex[] =
    "42007801000001684200770100000038420069010000002042006a0200000004000000010000000042006b02"
    "00000004000000020000000042000d0200000004000000010000000042000f010000012042005c05000000"
    "0400000003000000004200790100000108420057050000000400000002000000004200910100000080420008"
    "010000003042000a070000001843727970746f67726170686963205573616765204d61736b42000b02000000"
    "040000000c00000000420008010000004042000a07000000044e616d650000000042000b0100000028420055"
    "070000000d6b736869656c642d6162632d310000004200540500000004000000010000000042008f01000000"
    "6842004001000000604200420500000004000000010000000042004501000000284200430800000020000102"
    "030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f42002805000000040000000300000000"
    "42002a02000000040000010000000000";

std::string Hex(std::string_view b) { return absl::BytesToHexString(AV(b)); }

SecretBytes Counting(size_t n) {
  SecretBytes k(n);
  for (size_t i = 0; i < n; ++i) k.UnsafeMutableData()[i] = static_cast<uint8_t>(i);
  return k;
}

TEST(KmipRegister, RequestMatchesPyKmipClient) {
  auto wire = EncodeRegisterSymmetricKeyRequest("kshield-abc-1", Counting(32));
  ASSERT_TRUE(wire.ok()) << wire.status();
  EXPECT_EQ(Hex(wire->UnsafeStringView()), kRegisterRequestHex);
  // The generic encoder agrees when given the key directly.
  std::string key(32, '\0');
  for (int i = 0; i < 32; ++i) key[i] = static_cast<char>(i);
  auto plain =
      EncodeRequest(Operation::kRegister, RegisterSymmetricKeyPayload("kshield-abc-1", key));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(Hex(*plain), kRegisterRequestHex);
  EXPECT_EQ(OperationName(Operation::kRegister), "Register");
}

TEST(KmipRegister, KeySizesAndAmbiguousNames) {
  for (size_t n : {16u, 24u, 32u}) {
    auto wire = EncodeRegisterSymmetricKeyRequest("k", Counting(n));
    ASSERT_TRUE(wire.ok()) << n;
    auto decoded = DecodeTtlv(wire->UnsafeStringView());
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    const Item* material = decoded->Find(tag::kBatchItem)
                               ->Find(tag::kRequestPayload)
                               ->Find(tag::kSymmetricKey)
                               ->Find(tag::kKeyBlock)
                               ->Find(tag::kKeyValue)
                               ->Find(tag::kKeyMaterial);
    ASSERT_NE(material, nullptr);
    EXPECT_EQ(material->bytes(), Counting(n).UnsafeStringView());
  }
  for (size_t n : {0u, 8u, 31u, 33u, 64u}) {
    auto wire = EncodeRegisterSymmetricKeyRequest("k", SecretBytes(n));
    ASSERT_FALSE(wire.ok()) << n;
    EXPECT_EQ(wire.status().code(), absl::StatusCode::kInvalidArgument);
  }
  // A name holding the exact placeholder bytes would make the key's position ambiguous: refused
  // rather than guessed.
  std::string evil = std::string("\x42\x00\x43\x08\x00\x00\x00\x20", 8) + std::string(32, '\0');
  auto wire = EncodeRegisterSymmetricKeyRequest(evil, Counting(32));
  ASSERT_FALSE(wire.ok());
  EXPECT_EQ(wire.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kshield::keys::kmip
