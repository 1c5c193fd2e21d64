// The wrapped-DEK parser gets untrusted bytes from the apiserver (and from etcd via kshieldctl):
// one valid input, mutated a field at a time.
#include "keys/wrapped_dek.h"

#include <gtest/gtest.h>

#include "crypto/aead.h"

namespace kshield::keys {
namespace {

std::string Valid(WrapFormat f = WrapFormat::kKmsV2, uint32_t version = 0x01020304,
                  size_t body = 12 + 32 + 16) {
  return BuildWrappedDekHeader(f, version) + std::string(body, '\xab');
}

TEST(WrappedDekTest, ParsesValid) {
  std::string v = Valid();
  auto p = ParseWrappedDek(v);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->format, WrapFormat::kKmsV2);
  EXPECT_EQ(p->version, 0x01020304u);
  EXPECT_EQ(p->header, v.substr(0, 7));
  EXPECT_EQ(p->body.size(), 60u);
}

TEST(WrappedDekTest, HeaderLayout) {
  std::string h = BuildWrappedDekHeader(WrapFormat::kKmsV1beta1, 7);
  ASSERT_EQ(h.size(), kWrappedDekHeaderSize);
  EXPECT_EQ(h, std::string("kS\x02\x00\x00\x00\x07", 7));
}

void ExpectParseError(std::string_view bytes, ParseError want) {
  ParseError got;
  auto p = ParseWrappedDek(bytes, &got);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(got, want) << ParseErrorName(got);
  // Every reason looks the same to the caller.
  EXPECT_EQ(std::string(p.status().message()), crypto::kAuthFailed);
}

TEST(WrappedDekTest, MutateMagic) {
  for (int i = 0; i < 2; ++i) {
    std::string v = Valid();
    v[i] ^= 0x01;
    ExpectParseError(v, ParseError::kBadMagic);
  }
}

TEST(WrappedDekTest, MutateFormat) {
  for (int f : {0x00, 0x03, 0x7f, 0xff}) {
    std::string v = Valid();
    v[2] = static_cast<char>(f);
    ExpectParseError(v, ParseError::kBadFormat);
  }
}

TEST(WrappedDekTest, MutateVersion) {
  std::string v = Valid(WrapFormat::kKmsV2, 0);
  ExpectParseError(v, ParseError::kBadVersion);
  std::string w = Valid(WrapFormat::kKmsV2, 0xffffffff);
  ASSERT_TRUE(ParseWrappedDek(w).ok());
}

TEST(WrappedDekTest, Lengths) {
  std::string v = Valid();
  for (size_t n = 0; n < kWrappedDekMinSize; ++n) {
    ExpectParseError(std::string_view(v).substr(0, n), ParseError::kTooShort);
  }
  ASSERT_TRUE(ParseWrappedDek(Valid(WrapFormat::kKmsV2, 1, kWrappedDekMinSize - 7)).ok());
  ASSERT_TRUE(ParseWrappedDek(Valid(WrapFormat::kKmsV2, 1, kWrappedDekMaxSize - 7)).ok());
  ExpectParseError(Valid(WrapFormat::kKmsV2, 1, kWrappedDekMaxSize - 6), ParseError::kTooLong);
}

TEST(WrappedDekTest, AadIsHeaderThenKeyId) {
  EXPECT_EQ(WrappedDekAad("HDR", "ksh1:x:1"), "HDRksh1:x:1");
}

}  // namespace
}  // namespace kshield::keys
