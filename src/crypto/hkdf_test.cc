#include "crypto/hkdf.h"

#include <openssl/evp.h>

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "crypto/aead.h"
#include "gtest/gtest.h"

namespace kshield::crypto {
namespace {

// This abseil build's absl::string_view is its own type, not std::string_view.
std::string Hex(std::string_view hex) {
  return absl::HexStringToBytes(absl::string_view(hex.data(), hex.size()));
}
SecretBytes SecretFromHex(std::string_view hex) { return SecretBytes::CopyFrom(Hex(hex)); }
std::string ToHex(const SecretBytes& s) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(s.UnsafeView().data()), s.size()));
}

// RFC 5869 Appendix A, test cases 1-3 (SHA-256).
struct HkdfVector {
  int test_case;
  const char* ikm;
  const char* salt;
  const char* info;
  size_t length;
  const char* prk;
  const char* okm;
};

const HkdfVector kRfc5869Vectors[] = {
    {1, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c",
     "f0f1f2f3f4f5f6f7f8f9", 42, "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
    {2,
     "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
     "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
     "404142434445464748494a4b4c4d4e4f",
     "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
     "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
     "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
     "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
     "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
     "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
     82, "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
     "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
     "cc30c58179ec3e87c14c01d5c1f3434f1d87"},
    {3, "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "", 42,
     "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
};

void PrintTo(const HkdfVector& v, std::ostream* os) { *os << "RFC 5869 test case " << v.test_case; }

class Rfc5869Test : public ::testing::TestWithParam<HkdfVector> {};

TEST_P(Rfc5869Test, VectorLengthsAreConsistent) {
  const HkdfVector& v = GetParam();
  EXPECT_EQ(std::string_view(v.okm).size(), 2 * v.length);
  EXPECT_EQ(std::string_view(v.prk).size(), 64u);
}

TEST_P(Rfc5869Test, ExtractMatchesPrk) {
  // HKDF-Extract(salt, IKM) = HMAC-SHA256(salt, IKM); an absent salt is HashLen zero bytes.
  const HkdfVector& v = GetParam();
  std::string salt = Hex(v.salt);
  if (salt.empty()) salt.assign(32, '\0');
  const std::string ikm = Hex(v.ikm);
  unsigned char prk[EVP_MAX_MD_SIZE];
  size_t prk_len = 0;
  ASSERT_NE(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, salt.data(), salt.size(),
                      reinterpret_cast<const unsigned char*>(ikm.data()), ikm.size(), prk,
                      sizeof(prk), &prk_len),
            nullptr);
  EXPECT_EQ(absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(prk), prk_len)),
            v.prk);
}

TEST_P(Rfc5869Test, ExpandFromPrk) {
  const HkdfVector& v = GetParam();
  auto okm = HkdfExpandSha256(SecretFromHex(v.prk), Hex(v.info), v.length);
  ASSERT_TRUE(okm.ok()) << okm.status();
  EXPECT_EQ(okm->size(), v.length);
  EXPECT_EQ(ToHex(*okm), v.okm);
}

TEST_P(Rfc5869Test, ExtractAndExpand) {
  const HkdfVector& v = GetParam();
  auto okm = HkdfSha256(SecretFromHex(v.ikm), Hex(v.salt), Hex(v.info), v.length);
  ASSERT_TRUE(okm.ok()) << okm.status();
  EXPECT_EQ(ToHex(*okm), v.okm);
}

TEST_P(Rfc5869Test, ShorterOutputIsPrefix) {
  const HkdfVector& v = GetParam();
  auto okm = HkdfSha256(SecretFromHex(v.ikm), Hex(v.salt), Hex(v.info), 16);
  ASSERT_TRUE(okm.ok()) << okm.status();
  EXPECT_EQ(ToHex(*okm), std::string_view(v.okm).substr(0, 32));
}

INSTANTIATE_TEST_SUITE_P(Sha256, Rfc5869Test, ::testing::ValuesIn(kRfc5869Vectors),
                         [](const ::testing::TestParamInfo<HkdfVector>& info) {
                           return "TestCase" + std::to_string(info.param.test_case);
                         });

// From kube-apiserver's KMS v2 envelope tests: DEK = HKDF-Expand(SHA-256, seed, info, 32), then
// AES-256-GCM.
TEST(HkdfKubernetes, KmsV2SeedDerivationAndDecrypt) {
  SecretBytes seed =
      SecretFromHex("5d40323a820ff95561675e3b95e81867c5fdd561d35a88a2d08b08aa9d4fcf5c");
  const std::string info = Hex("2442759e33945fbad709db577a0f037fd8a709fc76979b8942209debcecb9d57");
  auto dek = HkdfExpandSha256(seed, info, 32);
  ASSERT_TRUE(dek.ok()) << dek.status();
  EXPECT_EQ(ToHex(*dek), "6e58b7659c304b0c382f42f16bd700465def1dead80bf6f1bf1d52073bdb0c00");

  const std::string sealed =
      Hex("833b3043cec1e47b35175b151107a8d2416b0e") + Hex("296bbf66b5d102fcefdf9a78f293d271");
  auto pt = AesGcmOpen(*dek, Hex("efe3d6ff6a1ef6ee9a5003b9"), sealed, "bamboo");
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_EQ(*pt, "pandas are the best");
}

TEST(Hkdf, RejectsBadOutputLengths) {
  SecretBytes key = SecretFromHex(kRfc5869Vectors[0].prk);
  for (size_t n : {size_t{0}, size_t{255 * 32 + 1}, size_t{1} << 20}) {
    SCOPED_TRACE(n);
    auto a = HkdfSha256(key, "salt", "info", n);
    ASSERT_FALSE(a.ok());
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    auto b = HkdfExpandSha256(key, "info", n);
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(Hkdf, MaximumOutputLength) {
  SecretBytes key = SecretFromHex(kRfc5869Vectors[0].prk);
  auto full = HkdfSha256(key, "salt", "info", 255 * 32);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->size(), 255u * 32u);
  auto expanded = HkdfExpandSha256(key, "info", 255 * 32);
  ASSERT_TRUE(expanded.ok()) << expanded.status();
  EXPECT_EQ(expanded->size(), 255u * 32u);
}

TEST(Hkdf, RejectsEmptyIkmAndShortPrk) {
  auto a = HkdfSha256(SecretBytes(), "salt", "info", 32);
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  for (size_t n : {0, 1, 16, 31}) {
    SCOPED_TRACE(n);
    auto b = HkdfExpandSha256(SecretBytes(n), "info", 32);
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(Hkdf, DifferentInfoGivesDifferentKeys) {
  SecretBytes key = SecretFromHex(kRfc5869Vectors[0].prk);
  auto a = HkdfExpandSha256(key, "a", 32);
  auto b = HkdfExpandSha256(key, "b", 32);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_FALSE(a->Equals(*b));
}

}  // namespace
}  // namespace kshield::crypto
