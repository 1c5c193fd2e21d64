// ParseJwks: valid RSA and EC keys, then one member mutated at a time.
#include "relay/jwks.h"

#include <gtest/gtest.h>

#include "relay/base64url.h"
#include "relay/testing/jwt_signer.h"

namespace kshield::relay {
namespace {

using testing::TestSigner;

class JwksTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = TestSigner::Rsa("rsa-1")->release();
    ec_ = TestSigner::Ec("ec-1")->release();
    weak_ = TestSigner::Rsa("weak", 1024)->release();
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete ec_;
    delete weak_;
  }
  static std::string Doc(std::vector<nlohmann::json> keys) {
    return nlohmann::json{{"keys", keys}}.dump();
  }
  static TestSigner* rsa_;
  static TestSigner* ec_;
  static TestSigner* weak_;
};
TestSigner* JwksTest::rsa_ = nullptr;
TestSigner* JwksTest::ec_ = nullptr;
TestSigner* JwksTest::weak_ = nullptr;

TEST_F(JwksTest, ParsesRsaAndEc) {
  auto jwks = ParseJwks(TestSigner::JwksJson({rsa_, ec_}));
  ASSERT_TRUE(jwks.ok()) << jwks.status();
  ASSERT_EQ(jwks->keys.size(), 2u);
  EXPECT_TRUE(jwks->skipped.empty());
  EXPECT_EQ(jwks->keys[0].kid, "rsa-1");
  EXPECT_EQ(jwks->keys[0].alg, JwtAlg::kRs256);
  EXPECT_EQ(jwks->keys[0].bits, 2048);
  EXPECT_EQ(jwks->keys[1].alg, JwtAlg::kEs256);
  EXPECT_EQ(*jwks->Find("ec-1", JwtAlg::kEs256), &jwks->keys[1]);
  EXPECT_TRUE(absl::IsNotFound(jwks->Find("nope", JwtAlg::kEs256).status()));
  EXPECT_TRUE(absl::IsPermissionDenied(jwks->Find("ec-1", JwtAlg::kRs256).status()));
}

TEST_F(JwksTest, OptionalMembersAccepted) {
  nlohmann::json k = rsa_->PublicJwk();
  k["use"] = "sig";
  k["alg"] = "RS256";
  k["x5t"] = "ignored";
  EXPECT_TRUE(ParseJwks(Doc({k})).ok());
}

TEST_F(JwksTest, WeakRsaRefused) {
  auto jwks = ParseJwks(TestSigner::JwksJson({weak_}));
  ASSERT_FALSE(jwks.ok());
  EXPECT_NE(std::string(jwks.status().message()).find("1024 bits"), std::string::npos);
  // Alongside a good key, the weak one is skipped with a reason.
  auto mixed = ParseJwks(TestSigner::JwksJson({weak_, rsa_}));
  ASSERT_TRUE(mixed.ok());
  ASSERT_EQ(mixed->keys.size(), 1u);
  ASSERT_EQ(mixed->skipped.size(), 1u);
  EXPECT_NE(mixed->skipped[0].find("minimum 2048"), std::string::npos);
}

TEST_F(JwksTest, BadRsaExponentSkipped) {
  for (std::string e : {std::string("\x02", 1), std::string("\x01", 1), std::string(9, '\x01')}) {
    nlohmann::json k = rsa_->PublicJwk();
    k["e"] = Base64UrlEncode(e);
    EXPECT_FALSE(ParseJwks(Doc({k})).ok()) << e.size();
  }
}

TEST_F(JwksTest, WrongEcSizesAndCurvesSkipped) {
  nlohmann::json k = ec_->PublicJwk();
  const std::string x = *Base64UrlDecode(k["x"].get<std::string>());
  nlohmann::json shortx = k;
  shortx["x"] = Base64UrlEncode(x.substr(1));
  EXPECT_FALSE(ParseJwks(Doc({shortx})).ok());
  nlohmann::json longx = k;
  longx["x"] = Base64UrlEncode(std::string(1, '\0') + x);
  EXPECT_FALSE(ParseJwks(Doc({longx})).ok());
  nlohmann::json curve = k;
  curve["crv"] = "P-384";
  EXPECT_FALSE(ParseJwks(Doc({curve})).ok());
  nlohmann::json nocrv = k;
  nocrv.erase("crv");
  EXPECT_FALSE(ParseJwks(Doc({nocrv})).ok());
}

TEST_F(JwksTest, PointNotOnCurveSkipped) {
  nlohmann::json k = ec_->PublicJwk();
  std::string y = *Base64UrlDecode(k["y"].get<std::string>());
  y[31] ^= 0x01;
  k["y"] = Base64UrlEncode(y);
  auto jwks = ParseJwks(Doc({k}));
  ASSERT_FALSE(jwks.ok());
}

TEST_F(JwksTest, UnknownAndSymmetricKeyTypesSkipped) {
  nlohmann::json oct = {{"kty", "oct"}, {"kid", "hmac"}, {"k", Base64UrlEncode("secret")}};
  nlohmann::json okp = {
      {"kty", "OKP"}, {"crv", "Ed25519"}, {"x", Base64UrlEncode(std::string(32, 'a'))}};
  auto jwks = ParseJwks(Doc({oct, okp, rsa_->PublicJwk()}));
  ASSERT_TRUE(jwks.ok()) << jwks.status();
  EXPECT_EQ(jwks->keys.size(), 1u);
  EXPECT_EQ(jwks->skipped.size(), 2u);
  EXPECT_FALSE(ParseJwks(Doc({oct})).ok());
}

TEST_F(JwksTest, PrivateMaterialSkipped) {
  nlohmann::json k = ec_->PublicJwk();
  k["d"] = Base64UrlEncode(std::string(32, 'd'));
  auto jwks = ParseJwks(Doc({k}));
  ASSERT_FALSE(jwks.ok());
  EXPECT_NE(std::string(jwks.status().message()).find("private"), std::string::npos);
}

TEST_F(JwksTest, UseAndAlgMismatchSkipped) {
  nlohmann::json enc = rsa_->PublicJwk();
  enc["use"] = "enc";
  EXPECT_FALSE(ParseJwks(Doc({enc})).ok());
  nlohmann::json alg = rsa_->PublicJwk();
  alg["alg"] = "RS512";
  EXPECT_FALSE(ParseJwks(Doc({alg})).ok());
  nlohmann::json ecalg = ec_->PublicJwk();
  ecalg["alg"] = "RS256";
  EXPECT_FALSE(ParseJwks(Doc({ecalg})).ok());
}

TEST_F(JwksTest, DuplicateKidsAreAmbiguousAndSkipped) {
  auto other = TestSigner::Rsa("rsa-1");
  ASSERT_TRUE(other.ok());
  auto jwks = ParseJwks(TestSigner::JwksJson({rsa_, other->get(), ec_}));
  ASSERT_TRUE(jwks.ok()) << jwks.status();
  ASSERT_EQ(jwks->keys.size(), 1u);
  EXPECT_EQ(jwks->keys[0].kid, "ec-1");
  EXPECT_EQ(jwks->skipped.size(), 2u);
  EXPECT_TRUE(absl::IsNotFound(jwks->Find("rsa-1", JwtAlg::kRs256).status()));
}

TEST_F(JwksTest, NoKidLookupNeedsExactlyOneKeyOfTheAlg) {
  nlohmann::json a = rsa_->PublicJwk();
  a.erase("kid");
  auto other = TestSigner::Rsa("");
  auto jwks = ParseJwks(Doc({a, (*other)->PublicJwk(), ec_->PublicJwk()}));
  ASSERT_TRUE(jwks.ok());
  EXPECT_TRUE(absl::IsNotFound(jwks->Find("", JwtAlg::kRs256).status()));
  EXPECT_TRUE(jwks->Find("", JwtAlg::kEs256).ok());
}

TEST_F(JwksTest, MalformedDocumentsRefused) {
  for (std::string doc : {"", "[]", "{}", "{\"keys\": {}}", "{\"keys\": [1, \"x\"]}", "not json",
                          "{\"keys\": []}", "{\"keys\": [], \"keys\": []}"}) {
    EXPECT_FALSE(ParseJwks(doc).ok()) << doc;
  }
  nlohmann::json bad_b64 = rsa_->PublicJwk();
  bad_b64["n"] = "abc=";
  EXPECT_FALSE(ParseJwks(Doc({bad_b64})).ok());
  nlohmann::json kid_num = rsa_->PublicJwk();
  kid_num["kid"] = 5;
  EXPECT_FALSE(ParseJwks(Doc({kid_num})).ok());
}

TEST_F(JwksTest, SizeLimits) {
  std::vector<nlohmann::json> many(65, rsa_->PublicJwk());
  EXPECT_FALSE(ParseJwks(Doc(many)).ok());
  EXPECT_FALSE(ParseJwks(std::string(kMaxJwksBytes + 1, ' ')).ok());
}

}  // namespace
}  // namespace kshield::relay
