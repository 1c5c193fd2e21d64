#include "common/base64.h"

#include <gtest/gtest.h>

#include <string>

namespace kshield {
namespace {

std::string Str(const SecretBytes& s) {
  auto v = s.UnsafeView();
  return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

TEST(Base64Test, RoundTripsEveryLengthBothAlphabets) {
  std::string bytes;
  for (int i = 0; i < 40; ++i) {
    for (bool url : {false, true}) {
      for (bool pad : {false, true}) {
        const std::string enc = Base64Encode(bytes, url, pad);
        Base64Options o{.url_alphabet = url, .allow_empty = true};
        auto dec = Base64Decode(enc, o);
        ASSERT_TRUE(dec.ok()) << enc << ": " << dec.status();
        EXPECT_EQ(*dec, bytes);
        auto sec = Base64DecodeSecret(enc, o);
        ASSERT_TRUE(sec.ok());
        EXPECT_EQ(Str(*sec), bytes);
      }
    }
    bytes.push_back(static_cast<char>(0xf0 + i * 37));
  }
}

TEST(Base64Test, KnownVectors) {
  EXPECT_EQ(Base64Encode("foob"), "Zm9vYg==");
  EXPECT_EQ(Base64Encode("foob", true, false), "Zm9vYg");
  EXPECT_EQ(Base64Encode("\xfb\xff"), "+/8=");
  EXPECT_EQ(Base64Encode("\xfb\xff", true, false), "-_8");
  EXPECT_EQ(*Base64Decode("Zm9vYmFy"), "foobar");
}

// One valid input ("Zm9vYg==", "foob") mutated a field at a time.
TEST(Base64Test, StrictnessOfEachRule) {
  const Base64Options std_opt;
  EXPECT_TRUE(Base64Decode("Zm9vYg==", std_opt).ok());
  EXPECT_TRUE(Base64Decode("Zm9vYg", std_opt).ok()) << "padding optional by default";
  EXPECT_FALSE(Base64Decode("Zm9vYg", {.padding = Base64Padding::kRequired}).ok());
  EXPECT_FALSE(Base64Decode("Zm9vYg==", {.padding = Base64Padding::kForbidden}).ok());
  EXPECT_FALSE(Base64Decode("Zm9vYh==", std_opt).ok()) << "non-zero trailing bits";
  EXPECT_FALSE(Base64Decode("Zm9vY===", std_opt).ok()) << "impossible length";
  EXPECT_FALSE(Base64Decode("Zm9vYg=", std_opt).ok()) << "short padding";
  EXPECT_FALSE(Base64Decode("Zm9vYg===", std_opt).ok()) << "excess padding";
  EXPECT_FALSE(Base64Decode("Zm9v=Yg=", std_opt).ok()) << "data after padding";
  EXPECT_FALSE(Base64Decode("Zm9v Yg==", std_opt).ok()) << "whitespace not allowed by default";
  EXPECT_TRUE(Base64Decode("Zm9v\nYg==\n", {.allow_whitespace = true}).ok());
  EXPECT_FALSE(Base64Decode("Zm9v-g==", std_opt).ok()) << "url character in std alphabet";
  EXPECT_FALSE(Base64Decode("Zm9v+g", kBase64UrlNoPadding).ok()) << "std character in url";
  EXPECT_FALSE(Base64Decode("Zm9vY", std_opt).ok()) << "truncated (4k+1)";
  EXPECT_FALSE(Base64Decode("", std_opt).ok());
  EXPECT_TRUE(Base64Decode("", kBase64UrlNoPadding).ok());
  EXPECT_FALSE(Base64Decode(std::string("Zm9v\0g==", 8), std_opt).ok());
  auto e = Base64Decode("Zm9v!g==", std_opt);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(std::string(e.status().message()), "base64: invalid character");
  e = Base64Decode("Zm9v!g", kBase64UrlNoPadding);
  EXPECT_EQ(std::string(e.status().message()), "base64url: invalid character");
}

}  // namespace
}  // namespace kshield
