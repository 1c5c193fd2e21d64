#include "tee/quote/verify.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "crypto/sha256.h"
#include "tee/quote/quote_test_util.h"
#include "tee/quote/x509.h"

namespace kshield::tee::quote {
namespace {

using testing::PinnedNow;
using testing::ReadTestFile;

VerifyOptions IntelOptions(absl::Time at = PinnedNow()) {
  VerifyOptions o;
  o.root_pem = testing::IntelRootPem();
  o.at = at;
  return o;
}

bool AnyErrorContains(const VerifiedQuote& v, const std::string& needle) {
  for (const std::string& e : v.errors) {
    if (e.find(needle) != std::string::npos) return true;
  }
  return false;
}

std::string Errors(const VerifiedQuote& v) {
  std::string out;
  for (const std::string& e : v.errors) out += "\n  " + e;
  return out;
}

struct QuoteCase {
  const char* file;
  size_t signed_len;    // header ‖ body
  size_t qe_report_at;  // offset of the 384-byte QE report
};
const QuoteCase kQuotes[] = {
    {testing::kMobilecoinQuote, 432, 564},
    {testing::kSgxSampleQuote, 432, 564},
    {testing::kTdxSampleQuote, 632, 770},
};

TEST(VerifyQuoteTest, EveryRealQuoteVerifiesWithThePinnedIntelRoot) {
  for (const QuoteCase& c : kQuotes) {
    VerifiedQuote v = VerifyQuote(ReadTestFile(c.file), IntelOptions());
    EXPECT_TRUE(v.ok()) << c.file << Errors(v);
    EXPECT_TRUE(v.signature_valid) << c.file;
    EXPECT_TRUE(v.chain_valid) << c.file;
    EXPECT_TRUE(v.errors.empty()) << c.file << Errors(v);
    EXPECT_TRUE(v.status().ok());
    EXPECT_EQ(v.tcb_status, "");  // no collateral given
    ASSERT_TRUE(v.pck.has_value()) << c.file;
  }
}

TEST(VerifyQuoteTest, ResultFieldsMatchProvenance) {
  VerifiedQuote m = VerifyQuote(ReadTestFile(testing::kMobilecoinQuote), IntelOptions());
  EXPECT_EQ(m.tee_type, "sgx");
  EXPECT_EQ(m.version, 3);
  EXPECT_EQ(m.mrenclave, "1dd0df84810e53e26b2b167dfe0f97cc4364085fe0bd41d5e18a759c21d5c189");
  EXPECT_EQ(m.mrsigner, "d412a4f07ef83892a5915fb2ab584be31e186e5a4f95ab5f6950fd4eb8694d7b");
  EXPECT_EQ(m.isv_prod_id, 0);
  EXPECT_EQ(m.isv_svn, 0);
  EXPECT_TRUE(m.debug);
  EXPECT_EQ(m.report_data, std::string(128, '0'));
  EXPECT_TRUE(m.mrtd.empty());
  EXPECT_TRUE(m.rtmr.empty());

  VerifiedQuote s = VerifyQuote(ReadTestFile(testing::kSgxSampleQuote), IntelOptions());
  EXPECT_EQ(s.tee_type, "sgx");
  EXPECT_EQ(s.mrenclave, "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb");
  EXPECT_FALSE(s.debug);
  EXPECT_EQ(s.report_data, "48656c6c6f2c20776f726c6421" + std::string(102, '0'));

  VerifiedQuote t = VerifyQuote(ReadTestFile(testing::kTdxSampleQuote), IntelOptions());
  EXPECT_EQ(t.tee_type, "tdx");
  EXPECT_EQ(t.version, 4);
  EXPECT_FALSE(t.debug);
  EXPECT_EQ(t.mrtd,
            "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f2742"
            "8b2538873118b7");
  ASSERT_EQ(t.rtmr.size(), 4u);
  EXPECT_EQ(t.rtmr[3], std::string(96, '0'));
  EXPECT_TRUE(t.mrenclave.empty());

  // PCK leaf SGX extensions (PROVENANCE.md).
  ASSERT_TRUE(m.pck && s.pck && t.pck);
  auto hex = [](const auto& a) {
    return crypto::HexEncode(std::string_view(reinterpret_cast<const char*>(a.data()), a.size()));
  };
  EXPECT_EQ(hex(m.pck->fmspc), "00906ed50000");
  EXPECT_EQ(hex(m.pck->pce_id), "0000");
  EXPECT_EQ(m.pck->sgx_type, 0);
  EXPECT_EQ(m.pck->pce_svn, 11);
  EXPECT_EQ(hex(m.pck->cpu_svn), "11110204018006000000000000000000");
  EXPECT_EQ(hex(s.pck->fmspc), "00a067110000");
  EXPECT_EQ(s.pck->sgx_type, 0);
  EXPECT_EQ(s.pck->pce_svn, 13);
  EXPECT_EQ(hex(s.pck->cpu_svn), "0b0b0202ff0100000000000000000000");
  EXPECT_EQ(hex(t.pck->fmspc), "b0c06f000000");
  EXPECT_EQ(t.pck->sgx_type, 1);
  EXPECT_EQ(t.pck->pce_svn, 11);
  EXPECT_EQ(hex(t.pck->cpu_svn), "03030202040100050000000000000000");
  EXPECT_EQ(hex(t.pck->tcb_components), "03030202040100050000000000000000");
}

TEST(VerifyQuoteTest, JsonHasTheCliKeys) {
  VerifiedQuote s = VerifyQuote(ReadTestFile(testing::kSgxSampleQuote), IntelOptions());
  nlohmann::json j = ToJson(s);
  for (const char* key : {"tee_type", "version", "mrenclave", "mrsigner", "isv_prod_id", "isv_svn",
                          "debug", "mrtd", "rtmr", "report_data", "signature_valid", "chain_valid",
                          "tcb_status", "advisories", "errors"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["tee_type"], "sgx");
  EXPECT_EQ(j["mrenclave"], s.mrenclave);
  EXPECT_TRUE(j["mrtd"].is_null());
  EXPECT_TRUE(j["tcb_status"].is_null());
  EXPECT_EQ(j["signature_valid"], true);
  VerifiedQuote t = VerifyQuote(ReadTestFile(testing::kTdxSampleQuote), IntelOptions());
  j = ToJson(t);
  EXPECT_EQ(j["rtmr"].size(), 4u);
  EXPECT_TRUE(j["mrenclave"].is_null());
  VerifiedQuote bad = VerifyQuote("nonsense", IntelOptions());
  j = ToJson(bad);
  EXPECT_TRUE(j["tee_type"].is_null());
  EXPECT_EQ(j["signature_valid"], false);
  EXPECT_EQ(j["errors"].size(), 1u);
}

TEST(VerifyQuoteTest, EverySignedHeaderOrBodyByteChangeFails) {
  for (const QuoteCase& c : kQuotes) {
    const std::string good = ReadTestFile(c.file);
    for (size_t i = 0; i < c.signed_len; ++i) {
      std::string bytes = good;
      bytes[i] = static_cast<char>(bytes[i] ^ 0x01);
      VerifiedQuote v = VerifyQuote(bytes, IntelOptions());
      ASSERT_FALSE(v.ok()) << c.file << " byte " << i;
      EXPECT_FALSE(v.signature_valid) << c.file << " byte " << i;
      // Either the structure no longer parses, or the quote signature names the failure.
      const bool parse_error = !v.errors.empty() && v.errors[0].rfind("parse: ", 0) == 0;
      EXPECT_TRUE(parse_error || AnyErrorContains(v,
                                                  "quote signature over header and report body "
                                                  "does not verify"))
          << c.file << " byte " << i << Errors(v);
    }
  }
}

TEST(VerifyQuoteTest, EveryQeReportByteChangeFails) {
  for (const QuoteCase& c : kQuotes) {
    const std::string good = ReadTestFile(c.file);
    for (size_t i = c.qe_report_at; i < c.qe_report_at + kSgxReportBodySize; ++i) {
      std::string bytes = good;
      bytes[i] = static_cast<char>(bytes[i] ^ 0x01);
      VerifiedQuote v = VerifyQuote(bytes, IntelOptions());
      ASSERT_FALSE(v.ok()) << c.file << " byte " << i;
      EXPECT_FALSE(v.signature_valid);
      EXPECT_TRUE(v.chain_valid);  // the chain itself is intact
      EXPECT_TRUE(AnyErrorContains(v,
                                   "QE report signature does not verify with the PCK "
                                   "certificate key"))
          << c.file << " byte " << i << Errors(v);
    }
  }
}

TEST(VerifyQuoteTest, SignatureAttestationKeyAndAuthDataChangesFail) {
  for (const QuoteCase& c : kQuotes) {
    const std::string good = ReadTestFile(c.file);
    const size_t sig_at = c.signed_len + 4;
    // Quote signature (r ‖ s).
    std::string bytes = good;
    bytes[sig_at + 10] ^= 0x01;
    VerifiedQuote v = VerifyQuote(bytes, IntelOptions());
    EXPECT_FALSE(v.ok());
    EXPECT_TRUE(AnyErrorContains(v, "quote signature")) << Errors(v);
    // Attestation key: no longer bound by the QE report (and the signature fails with it).
    bytes = good;
    bytes[sig_at + 64 + 5] ^= 0x01;
    v = VerifyQuote(bytes, IntelOptions());
    EXPECT_FALSE(v.ok());
    EXPECT_TRUE(AnyErrorContains(v, "QE report data does not bind the attestation key"))
        << Errors(v);
    // QE auth data (first byte after its u16 length).
    bytes = good;
    bytes[c.qe_report_at + 384 + 64 + 2] ^= 0x01;
    v = VerifyQuote(bytes, IntelOptions());
    EXPECT_FALSE(v.ok());
    EXPECT_TRUE(AnyErrorContains(v, "QE report data does not bind the attestation key"))
        << Errors(v);
    // QE report signature.
    bytes = good;
    bytes[c.qe_report_at + 384 + 3] ^= 0x01;
    v = VerifyQuote(bytes, IntelOptions());
    EXPECT_FALSE(v.ok());
    EXPECT_TRUE(AnyErrorContains(v, "QE report signature does not verify")) << Errors(v);
  }
}

TEST(VerifyQuoteTest, TruncatedQuotesFailCleanly) {
  const std::string good = ReadTestFile(testing::kTdxSampleQuote);
  for (size_t len = 0; len < 4936; len += 7) {
    VerifiedQuote v = VerifyQuote(std::string_view(good).substr(0, len), IntelOptions());
    ASSERT_FALSE(v.ok()) << len;
    ASSERT_EQ(v.errors.size(), 1u);
    EXPECT_EQ(v.errors[0].rfind("parse: quote truncated: ", 0), 0u) << v.errors[0];
    EXPECT_EQ(v.tee_type, "");
  }
}

TEST(VerifyQuoteTest, AnotherRootRejectsTheIntelChain) {
  for (const QuoteCase& c : kQuotes) {
    VerifyOptions o = IntelOptions();
    o.root_pem = testing::MakeOtherRootPem();
    VerifiedQuote v = VerifyQuote(ReadTestFile(c.file), o);
    EXPECT_FALSE(v.ok()) << c.file;
    EXPECT_FALSE(v.chain_valid) << c.file;
    EXPECT_TRUE(v.signature_valid) << c.file;  // the quote's own signatures are fine
    EXPECT_TRUE(AnyErrorContains(v,
                                 "PCK chain: certificate chain does not verify to the pinned "
                                 "root"))
        << c.file << Errors(v);
  }
}

TEST(VerifyQuoteTest, BadPinnedRootIsAnError) {
  VerifyOptions o = IntelOptions();
  o.root_pem = "not a certificate";
  VerifiedQuote v = VerifyQuote(ReadTestFile(testing::kSgxSampleQuote), o);
  EXPECT_FALSE(v.ok());
  EXPECT_FALSE(v.chain_valid);
  EXPECT_TRUE(AnyErrorContains(v, "pinned root: ")) << Errors(v);
}

TEST(VerifyQuoteTest, CertificateValidityIsCheckedAtTheGivenTime) {
  // The mobilecoin PCK leaf is valid 2022-06-13 .. 2029-06-13.
  VerifiedQuote late = VerifyQuote(ReadTestFile(testing::kMobilecoinQuote),
                                   IntelOptions(testing::ParseRfc3339("2030-01-01T00:00:00Z")));
  EXPECT_FALSE(late.chain_valid);
  EXPECT_TRUE(AnyErrorContains(late, "certificate has expired")) << Errors(late);
  EXPECT_TRUE(AnyErrorContains(late, "2030-01-01T00:00:00Z")) << Errors(late);
  VerifiedQuote early = VerifyQuote(ReadTestFile(testing::kMobilecoinQuote),
                                    IntelOptions(testing::ParseRfc3339("2021-01-01T00:00:00Z")));
  EXPECT_FALSE(early.chain_valid);
  EXPECT_TRUE(AnyErrorContains(early, "certificate is not yet valid")) << Errors(early);
}

TEST(VerifyQuoteTest, CrlsGivenByTheCallerApplyToThePckChain) {
  auto collateral = ParseCollateralJson(ReadTestFile(testing::kSgxSampleCollateral));
  ASSERT_TRUE(collateral.ok());
  VerifyOptions o = IntelOptions();
  o.crls_der = {collateral->root_ca_crl, collateral->pck_crl};
  VerifiedQuote v = VerifyQuote(ReadTestFile(testing::kSgxSampleQuote), o);
  EXPECT_TRUE(v.ok()) << Errors(v);
  // With CRLs, every issuer needs one: the root CA CRL is missing here.
  o.crls_der = {collateral->pck_crl};
  v = VerifyQuote(ReadTestFile(testing::kSgxSampleQuote), o);
  EXPECT_FALSE(v.chain_valid);
  EXPECT_TRUE(AnyErrorContains(v, "unable to get certificate CRL")) << Errors(v);
  // Past the PCK CRL's nextUpdate.
  o = IntelOptions(testing::ParseRfc3339("2025-08-01T00:00:00Z"));
  o.crls_der = {collateral->root_ca_crl, collateral->pck_crl};
  v = VerifyQuote(ReadTestFile(testing::kSgxSampleQuote), o);
  EXPECT_FALSE(v.chain_valid);
  EXPECT_TRUE(AnyErrorContains(v, "CRL has expired")) << Errors(v);
  o = IntelOptions();
  o.crls_der = {"junk"};
  v = VerifyQuote(ReadTestFile(testing::kSgxSampleQuote), o);
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(AnyErrorContains(v, "CRL 0: not a DER CRL")) << Errors(v);
}

std::vector<X509Ptr> ChainOf(std::initializer_list<X509*> certs) {
  std::vector<X509Ptr> out;
  for (X509* c : certs) {
    X509_up_ref(c);
    out.emplace_back(c);
  }
  return out;
}

TEST(VerifyChainTest, RevocationAndAnchoring) {
  testing::TestPki pki;
  const absl::Time at = PinnedNow();
  const absl::Time from = at - absl::Hours(24);
  const absl::Time to = at + absl::Hours(24);
  auto chain = ChainOf({pki.leaf.cert, pki.intermediate.cert});
  EXPECT_TRUE(VerifyChain(chain, pki.root.cert, {}, at).ok());

  auto root_crl = ParseDerCrl(testing::TestPki::Crl(pki.root, {}, from, to));
  auto clean = ParseDerCrl(testing::TestPki::Crl(pki.intermediate, {7}, from, to));
  auto revoking = ParseDerCrl(testing::TestPki::Crl(pki.intermediate, {3}, from, to));
  auto stale =
      ParseDerCrl(testing::TestPki::Crl(pki.intermediate, {}, from - absl::Hours(48), from));
  ASSERT_TRUE(root_crl.ok() && clean.ok() && revoking.ok() && stale.ok());
  EXPECT_TRUE(VerifyChain(chain, pki.root.cert, {root_crl->get(), clean->get()}, at).ok());
  absl::Status s = VerifyChain(chain, pki.root.cert, {root_crl->get(), revoking->get()}, at);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("certificate revoked"), std::string::npos) << s;
  EXPECT_NE(std::string(s.message()).find("Test SGX PCK Certificate"), std::string::npos) << s;
  s = VerifyChain(chain, pki.root.cert, {root_crl->get(), stale->get()}, at);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("CRL has expired"), std::string::npos) << s;

  // The chain's own copy of its root never anchors it: with another pinned root, it fails even
  // though the chain carries a valid self-signed root.
  testing::TestPki other;
  auto with_root = ChainOf({pki.leaf.cert, pki.intermediate.cert, pki.root.cert});
  EXPECT_TRUE(VerifyChain(with_root, pki.root.cert, {}, at).ok());
  s = VerifyChain(with_root, other.root.cert, {}, at);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  // A leaf signed directly by a root that is not pinned, and the pinned root used as a "chain".
  EXPECT_FALSE(VerifyChain(ChainOf({pki.intermediate.cert}), other.root.cert, {}, at).ok());
  EXPECT_FALSE(VerifyChain(ChainOf({pki.root.cert}), pki.root.cert, {}, at).ok());
  EXPECT_FALSE(VerifyChain({}, pki.root.cert, {}, at).ok());
}

TEST(VerifyChainTest, PemChainLimits) {
  testing::TestPki pki;
  const std::string one = testing::TestPki::Pem(pki.leaf.cert);
  auto chain = ParsePemChain(one + std::string(3, '\0'));
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(chain->size(), 1u);
  std::string many;
  for (size_t i = 0; i <= kMaxChainCertificates; ++i) many += one;
  EXPECT_FALSE(ParsePemChain(many).ok());
  EXPECT_FALSE(ParsePemChain("").ok());
  EXPECT_FALSE(ParsePemChain("no certificates here").ok());
  std::string broken = one;
  broken[broken.size() / 2] = '*';
  EXPECT_FALSE(ParsePemChain(broken).ok());
}

TEST(VerifyQuoteTest, ForeignCertificationDataTypeIsRefused) {
  std::string bytes = ReadTestFile(testing::kSgxSampleQuote);
  const size_t type_at = 564 + 384 + 64 + 2 + 32;
  bytes[type_at] = 3;  // type 3: PPID encrypted with RSA-3072
  VerifiedQuote v = VerifyQuote(bytes, IntelOptions());
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(AnyErrorContains(v, "certification data type 3 is not supported")) << Errors(v);
}

}  // namespace
}  // namespace kshield::tee::quote
