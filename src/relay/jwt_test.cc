// VerifyJwt / ParseJwt: one valid token per algorithm, then one field mutated at a time.
#include "relay/jwt.h"

#include <gtest/gtest.h>

#include "common/file_util.h"
#include "relay/base64url.h"
#include "relay/testing/jwt_signer.h"

namespace kshield::relay {
namespace {

using testing::StandardClaims;
using testing::TestSigner;

constexpr char kIssuer[] = "https://idp.example.com";
constexpr char kAudience[] = "kshield";

class JwtTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    rsa_ = TestSigner::Rsa("rsa-1")->release();
    ec_ = TestSigner::Ec("ec-1")->release();
    other_ = TestSigner::Rsa("rsa-1")->release();  // same kid, different key (an impostor)
  }
  static void TearDownTestSuite() {
    delete rsa_;
    delete ec_;
    delete other_;
  }
  void SetUp() override {
    auto jwks = ParseJwks(TestSigner::JwksJson({rsa_, ec_}));
    ASSERT_TRUE(jwks.ok()) << jwks.status();
    jwks_ = std::move(*jwks);
    opts_.issuer = kIssuer;
    opts_.audience = kAudience;
    claims_ = StandardClaims(kIssuer, kAudience, "alice@example.com", {"dev", "ops"});
  }
  nlohmann::json RsaHeader() const { return {{"alg", "RS256"}, {"typ", "JWT"}, {"kid", "rsa-1"}}; }
  nlohmann::json EcHeader() const { return {{"alg", "ES256"}, {"kid", "ec-1"}}; }
  absl::Status Verify(const std::string& token) const {
    return VerifyJwt(token, jwks_, opts_).status();
  }
  // Expects an Unauthenticated refusal whose message contains `why`.
  void ExpectRefused(const std::string& token, std::string_view why) const {
    absl::Status s = Verify(token);
    EXPECT_TRUE(absl::IsUnauthenticated(s)) << s;
    EXPECT_NE(std::string(s.message()).find(why), std::string::npos) << s;
    // A refusal never quotes the token.
    if (token.size() >= 20) {
      EXPECT_EQ(std::string(s.message()).find(token.substr(0, 20)), std::string::npos);
    }
  }

  static TestSigner* rsa_;
  static TestSigner* ec_;
  static TestSigner* other_;
  Jwks jwks_;
  JwtVerifyOptions opts_;
  nlohmann::json claims_;
};
TestSigner* JwtTest::rsa_ = nullptr;
TestSigner* JwtTest::ec_ = nullptr;
TestSigner* JwtTest::other_ = nullptr;

TEST_F(JwtTest, ValidRs256) {
  auto jwt = VerifyJwt(rsa_->Sign(RsaHeader(), claims_), jwks_, opts_);
  ASSERT_TRUE(jwt.ok()) << jwt.status();
  EXPECT_EQ(jwt->alg, JwtAlg::kRs256);
  EXPECT_EQ(jwt->kid, "rsa-1");
  EXPECT_EQ(*jwt->StringClaim("email"), "alice@example.com");
  EXPECT_EQ(*jwt->StringListClaim("groups"), (std::vector<std::string>{"dev", "ops"}));
  EXPECT_FALSE(jwt->ClaimPresentAndNotTrue("email_verified"));
}

TEST_F(JwtTest, ValidEs256) {
  auto jwt = VerifyJwt(ec_->Sign(EcHeader(), claims_), jwks_, opts_);
  ASSERT_TRUE(jwt.ok()) << jwt.status();
  EXPECT_EQ(jwt->alg, JwtAlg::kEs256);
}

TEST_F(JwtTest, AudienceArrayContainingOurs) {
  claims_["aud"] = {"other", kAudience};
  EXPECT_TRUE(Verify(rsa_->Sign(RsaHeader(), claims_)).ok());
}

TEST_F(JwtTest, NoKidUsesTheOnlyKeyOfTheAlg) {
  EXPECT_TRUE(Verify(rsa_->Sign({{"alg", "RS256"}}, claims_)).ok());
  EXPECT_TRUE(Verify(ec_->Sign({{"alg", "ES256"}}, claims_)).ok());
}

TEST_F(JwtTest, AlgNoneRefused) {
  const std::string token = Base64UrlEncode(nlohmann::json{{"alg", "none"}}.dump()) + "." +
                            Base64UrlEncode(claims_.dump()) + ".";
  ExpectRefused(token, "alg is not RS256 or ES256");
  ExpectRefused(token + "AAAA", "alg is not RS256 or ES256");
}

TEST_F(JwtTest, AlgNoneCaseVariantsRefused) {
  for (const char* alg : {"None", "NONE", "nOnE", "", "RS256 ", "rs256"}) {
    const std::string token = Base64UrlEncode(nlohmann::json{{"alg", alg}}.dump()) + "." +
                              Base64UrlEncode(claims_.dump()) + ".AAAA";
    ExpectRefused(token, "alg");
  }
}

TEST_F(JwtTest, Hs256WithThePublicKeyAsSecretRefused) {
  // The classic key-confusion attack: HMAC with the RSA public key (PEM, and raw modulus).
  ExpectRefused(
      TestSigner::SignHs256({{"alg", "HS256"}, {"kid", "rsa-1"}}, claims_, rsa_->PublicKeyPem()),
      "alg is not RS256 or ES256");
  ExpectRefused(TestSigner::SignHs256({{"alg", "HS256"}}, claims_, "secret"), "alg");
}

TEST_F(JwtTest, OtherAlgorithmsRefused) {
  for (const char* alg : {"RS384", "RS512", "PS256", "ES384", "ES512", "EdDSA", "HS512"}) {
    ExpectRefused(rsa_->Sign({{"alg", alg}, {"kid", "rsa-1"}}, claims_), "alg");
  }
  ExpectRefused(rsa_->Sign({{"alg", 256}}, claims_), "alg");
  ExpectRefused(rsa_->Sign({{"kid", "rsa-1"}}, claims_), "no \"alg\"");
}

TEST_F(JwtTest, AlgKeyTypeMismatchRefused) {
  // ES256 header naming the RSA key, and RS256 naming the EC key.
  ExpectRefused(ec_->Sign({{"alg", "ES256"}, {"kid", "rsa-1"}}, claims_), "not a key for this alg");
  ExpectRefused(rsa_->Sign({{"alg", "RS256"}, {"kid", "ec-1"}}, claims_), "not a key for this alg");
}

TEST_F(JwtTest, WrongKidRefused) {
  absl::Status s = Verify(rsa_->Sign({{"alg", "RS256"}, {"kid", "nope"}}, claims_));
  EXPECT_TRUE(IsUnknownKidError(s)) << s;
  ExpectRefused(rsa_->Sign({{"alg", "RS256"}, {"kid", 7}}, claims_), "kid is not a string");
}

TEST_F(JwtTest, ImpostorKeyWithTheRightKidRefused) {
  ExpectRefused(other_->Sign(RsaHeader(), claims_), "signature does not verify");
}

TEST_F(JwtTest, WrongIssuerRefused) {
  claims_["iss"] = "https://evil.example.com";
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "iss");
  claims_["iss"] = std::string(kIssuer) + "/";
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "iss");
  claims_.erase("iss");
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "iss");
}

TEST_F(JwtTest, WrongAudienceRefused) {
  claims_["aud"] = "someone-else";
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "aud");
  claims_["aud"] = {"a", "b"};
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "aud");
  claims_["aud"] = {kAudience, 5};
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "aud");
  claims_.erase("aud");
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "aud");
}

TEST_F(JwtTest, ExpiryWithClockSkew) {
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  claims_["exp"] = now - 30;  // within the default 60 s skew
  EXPECT_TRUE(Verify(rsa_->Sign(RsaHeader(), claims_)).ok());
  claims_["exp"] = now - 120;  // beyond it
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "expired");
  opts_.clock_skew = absl::Seconds(300);
  EXPECT_TRUE(Verify(rsa_->Sign(RsaHeader(), claims_)).ok());
}

TEST_F(JwtTest, ExpMissingOrMalformedRefused) {
  claims_.erase("exp");
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "no \"exp\"");
  claims_["exp"] = "2099-01-01";
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "not a number");
  claims_["exp"] = 1e300;
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "out of range");
  claims_["exp"] = -5;
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "out of range");
}

TEST_F(JwtTest, NotBeforeInTheFutureRefused) {
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  claims_["nbf"] = now + 30;  // within skew
  EXPECT_TRUE(Verify(rsa_->Sign(RsaHeader(), claims_)).ok());
  claims_["nbf"] = now + 600;
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "nbf");
}

TEST_F(JwtTest, IssuedFarInTheFutureRefused) {
  claims_["iat"] = absl::ToUnixSeconds(absl::Now()) + 3600;
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "iat");
}

TEST_F(JwtTest, FixedClockIsUsed) {
  opts_.now = absl::Now() + absl::Hours(2);
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "expired");
}

TEST_F(JwtTest, BadBase64Refused) {
  const std::string good = rsa_->Sign(RsaHeader(), claims_);
  const size_t dot1 = good.find('.');
  const size_t dot2 = good.find('.', dot1 + 1);
  ExpectRefused("!" + good.substr(1), "header is not base64url");
  ExpectRefused(good.substr(0, dot1 + 1) + "*" + good.substr(dot1 + 2), "payload is not base64url");
  ExpectRefused(good + "=", "signature is not base64url");
  ExpectRefused(good.substr(0, dot1) + "=" + good.substr(dot1), "header is not base64url");
  // Standard (not URL-safe) alphabet.
  std::string plus = good;
  plus[dot2 + 1] = '+';
  ExpectRefused(plus, "signature is not base64url");
}

TEST_F(JwtTest, WrongSegmentCountRefused) {
  const std::string good = rsa_->Sign(RsaHeader(), claims_);
  ExpectRefused(good + ".AAAA", "three segments");
  ExpectRefused(good + ".", "three segments");
  ExpectRefused(good.substr(0, good.rfind('.')), "three segments");
  ExpectRefused("a.b.c.d.e", "three segments");
  ExpectRefused("", "empty");
}

TEST_F(JwtTest, EmptySignatureRefused) {
  const std::string good = rsa_->Sign(RsaHeader(), claims_);
  ExpectRefused(good.substr(0, good.rfind('.') + 1), "signature is empty");
}

TEST_F(JwtTest, SignatureBitFlipRefused) {
  for (const TestSigner* signer :
       {static_cast<const TestSigner*>(rsa_), static_cast<const TestSigner*>(ec_)}) {
    const std::string good = signer->Sign(signer->is_ec() ? EcHeader() : RsaHeader(), claims_);
    const size_t dot2 = good.rfind('.');
    std::string sig = *Base64UrlDecode(good.substr(dot2 + 1));
    sig[sig.size() / 2] ^= 0x01;
    ExpectRefused(good.substr(0, dot2 + 1) + Base64UrlEncode(sig), "signature");
  }
}

TEST_F(JwtTest, PayloadChangedAfterSigningRefused) {
  const std::string good = rsa_->Sign(RsaHeader(), claims_);
  const size_t dot1 = good.find('.');
  const size_t dot2 = good.find('.', dot1 + 1);
  nlohmann::json evil = claims_;
  evil["email"] = "root@example.com";
  ExpectRefused(good.substr(0, dot1 + 1) + Base64UrlEncode(evil.dump()) + good.substr(dot2),
                "signature does not verify");
}

TEST_F(JwtTest, Es256DerSignatureRefused) {
  ExpectRefused(ec_->Sign(EcHeader(), claims_, /*der_signature=*/true), "64 bytes");
}

TEST_F(JwtTest, OversizedRefused) {
  claims_["padding"] = std::string(20000, 'x');
  ExpectRefused(rsa_->Sign(RsaHeader(), claims_), "maximum token size");
  opts_.max_token_bytes = 64 * 1024;
  EXPECT_TRUE(Verify(rsa_->Sign(RsaHeader(), claims_)).ok());
}

TEST_F(JwtTest, CritAndTypRefused) {
  nlohmann::json h = RsaHeader();
  h["crit"] = {"exp"};
  ExpectRefused(rsa_->Sign(h, claims_), "crit");
  h = RsaHeader();
  h["typ"] = "at+jwt";
  ExpectRefused(rsa_->Sign(h, claims_), "typ");
  h["typ"] = "jwt";  // case-insensitive per RFC 7519 §5.1
  EXPECT_TRUE(Verify(rsa_->Sign(h, claims_)).ok());
}

TEST_F(JwtTest, EmbeddedKeysAreIgnored) {
  // A header carrying the attacker's own key (jwk / jku / x5u) does not change which key verifies.
  nlohmann::json h = RsaHeader();
  h["jwk"] = other_->PublicJwk();
  h["jku"] = "https://evil.example.com/jwks";
  ExpectRefused(other_->Sign(h, claims_), "signature does not verify");
}

TEST_F(JwtTest, DuplicateClaimRefused) {
  // {"iss": good, ..., "iss": evil}: readers that keep the first or the last would disagree.
  std::string payload = claims_.dump();
  payload.insert(payload.size() - 1, ",\"iss\":\"https://evil.example.com\"");
  ExpectRefused(rsa_->SignSegments(Base64UrlEncode(RsaHeader().dump()), Base64UrlEncode(payload)),
                "duplicate key");
}

TEST_F(JwtTest, NonObjectSegmentsRefused) {
  ExpectRefused(rsa_->SignSegments(Base64UrlEncode("[1]"), Base64UrlEncode(claims_.dump())),
                "header is not a JSON object");
  ExpectRefused(rsa_->SignSegments(Base64UrlEncode(RsaHeader().dump()), Base64UrlEncode("\"x\"")),
                "payload is not a JSON object");
  ExpectRefused(rsa_->SignSegments(Base64UrlEncode(RsaHeader().dump()), Base64UrlEncode("{")),
                "payload is not valid JSON");
  ExpectRefused(rsa_->SignSegments(Base64UrlEncode(RsaHeader().dump()),
                                   Base64UrlEncode(std::string(100, '[') + std::string(100, ']'))),
                "nested too deeply");
}

TEST_F(JwtTest, MissingIssuerOrAudienceInOptionsIsAnError) {
  opts_.audience.clear();
  EXPECT_TRUE(absl::IsFailedPrecondition(Verify(rsa_->Sign(RsaHeader(), claims_))));
}

TEST_F(JwtTest, ClaimAccessors) {
  claims_["groups"] = "solo";
  claims_["email_verified"] = false;
  claims_["n"] = 3;
  auto jwt = VerifyJwt(rsa_->Sign(RsaHeader(), claims_), jwks_, opts_);
  ASSERT_TRUE(jwt.ok());
  EXPECT_EQ(*jwt->StringListClaim("groups"), std::vector<std::string>{"solo"});
  EXPECT_TRUE(jwt->StringListClaim("absent")->empty());
  EXPECT_FALSE(jwt->StringListClaim("n").ok());
  EXPECT_FALSE(jwt->StringClaim("n").ok());
  EXPECT_FALSE(jwt->StringClaim("absent").ok());
  EXPECT_TRUE(jwt->ClaimPresentAndNotTrue("email_verified"));
}

// The fuzz seeds (fuzz/corpus/jwt_fuzz/) must stay valid tokens for the fuzz target's JWKS and
// clock, or the fuzzer never reaches signature and claim checks.
TEST(JwtFuzzSeedsTest, SeedsVerify) {
  auto read = [](const std::string& rel) {
    auto text = ReadFileBounded(std::string(KSHIELD_SOURCE_DIR) + "/fuzz/corpus/" + rel, 1 << 20);
    EXPECT_TRUE(text.ok()) << rel;
    return text.ok() ? *text : std::string();
  };
  auto jwks = ParseJwks(read("jwks_fuzz/rsa_and_ec.json"));
  ASSERT_TRUE(jwks.ok()) << jwks.status();
  JwtVerifyOptions opts;
  opts.issuer = "https://idp.example.com";
  opts.audience = "kshield";
  opts.now = absl::FromUnixSeconds(1700001000);
  for (const char* seed : {"jwt_fuzz/rs256_valid", "jwt_fuzz/es256_valid"}) {
    auto jwt = VerifyJwt(read(seed), *jwks, opts);
    EXPECT_TRUE(jwt.ok()) << seed << ": " << jwt.status();
  }
}

TEST(Base64UrlTest, RoundTripAndStrictness) {
  for (std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\x00"}) {
    EXPECT_EQ(*Base64UrlDecode(Base64UrlEncode(s)), s);
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_FALSE(Base64UrlDecode("Zg==").ok());  // padding
  EXPECT_FALSE(Base64UrlDecode("Z").ok());     // impossible length
  EXPECT_FALSE(Base64UrlDecode("Zh").ok());    // non-canonical trailing bits ("Zg" is canonical)
  EXPECT_TRUE(Base64UrlDecode("Zg").ok());
  EXPECT_FALSE(Base64UrlDecode("Zm9v\n").ok());  // whitespace
  EXPECT_FALSE(Base64UrlDecode("+/8").ok());     // standard alphabet
}

}  // namespace
}  // namespace kshield::relay
