#include "keys/key_id.h"

#include <gtest/gtest.h>

namespace kshield::keys {
namespace {

TEST(KeyIdTest, RoundTrip) {
  std::string id = FormatKeyId("0123456789abcdef", 42);
  EXPECT_EQ(id, "ksh1:0123456789abcdef:42");
  auto parsed = ParseKeyId(id);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->keyset_id, "0123456789abcdef");
  EXPECT_EQ(parsed->version, 42u);
}

TEST(KeyIdTest, MaxVersion) {
  auto parsed = ParseKeyId("ksh1:0123456789abcdef:4294967295");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->version, 4294967295u);
}

TEST(KeyIdTest, RejectsEachMalformedPart) {
  const char* bad[] = {
      "",                                  // empty
      "ksh2:0123456789abcdef:1",           // wrong prefix
      "ksh1:",                             // nothing after prefix
      "ksh1:0123456789abcdef",             // no version
      "ksh1:0123456789abcdef:",            // empty version
      "ksh1:0123456789abcde:1",            // keyset id 15 chars
      "ksh1:0123456789abcdef0:1",          // 17 chars
      "ksh1:0123456789ABCDEF:1",           // uppercase hex
      "ksh1:0123456789abcdeg:1",           // non-hex
      "ksh1:0123456789abcdef:0",           // version 0
      "ksh1:0123456789abcdef:01",          // leading zero
      "ksh1:0123456789abcdef:4294967296",  // overflow
      "ksh1:0123456789abcdef:1a",          // non-digit
      "ksh1:0123456789abcdef:-1",          // sign
      "ksh1:0123456789abcdef:1:2",         // extra part
      "1",                                 // upstream mock style
  };
  for (const char* b : bad) {
    EXPECT_FALSE(ParseKeyId(b).ok()) << b;
  }
}

TEST(KeyIdTest, OverlongRejectedAndNotEchoedInFull) {
  std::string big = "ksh1:" + std::string(5000, 'a');
  auto parsed = ParseKeyId(big);
  ASSERT_FALSE(parsed.ok());
  EXPECT_LT(parsed.status().message().size(), 200u);
}

TEST(KeyIdTest, ErrorQuotesBoundedPrefix) {
  std::string s = "nope:" + std::string(500, 'x');
  auto parsed = ParseKeyId(s);
  ASSERT_FALSE(parsed.ok());
  EXPECT_LT(parsed.status().message().size(), 200u);
  EXPECT_NE(parsed.status().message().find("not issued by kshield"), std::string::npos);
}

}  // namespace
}  // namespace kshield::keys
