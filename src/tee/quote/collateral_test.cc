#include "tee/quote/collateral.h"

#include <gtest/gtest.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <string>
#include <vector>

#include "crypto/sha256.h"
#include "tee/quote/pck_extensions.h"
#include "tee/quote/quote_test_util.h"
#include "tee/quote/verify.h"
#include "tee/quote/x509.h"

namespace kshield::tee::quote {
namespace {

using testing::ParseRfc3339;
using testing::PinnedNow;
using testing::ReadTestFile;

template <typename A>
std::string Hex(const A& a) {
  return crypto::HexEncode(std::string_view(reinterpret_cast<const char*>(a.data()), a.size()));
}

Collateral LoadCollateral(const char* name) {
  auto c = ParseCollateralJson(ReadTestFile(name));
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : Collateral{};
}

VerifiedQuote VerifyWith(const char* quote, const Collateral* collateral, absl::Time at) {
  VerifyOptions o;
  o.root_pem = testing::IntelRootPem();
  o.at = at;
  o.collateral = collateral;
  return VerifyQuote(ReadTestFile(quote), o);
}

std::string Errors(const VerifiedQuote& v) {
  std::string out;
  for (const std::string& e : v.errors) out += "\n  " + e;
  return out;
}

bool AnyErrorContains(const VerifiedQuote& v, const std::string& needle) {
  for (const std::string& e : v.errors) {
    if (e.find(needle) != std::string::npos) return true;
  }
  return false;
}

// --- the recorded expectations (PROVENANCE.md) -------------------------------------------------

TEST(CollateralTest, SgxSampleTcbStatusAndAdvisoriesMatchProvenance) {
  const Collateral c = LoadCollateral(testing::kSgxSampleCollateral);
  VerifiedQuote v = VerifyWith(testing::kSgxSampleQuote, &c, PinnedNow());
  EXPECT_TRUE(v.ok()) << Errors(v);
  EXPECT_EQ(v.tcb_status, "ConfigurationAndSWHardeningNeeded");
  EXPECT_EQ(v.advisories, (std::vector<std::string>{"INTEL-SA-00289", "INTEL-SA-00615"}));
}

TEST(CollateralTest, TdxSampleTcbStatusAndAdvisoriesMatchProvenance) {
  const Collateral c = LoadCollateral(testing::kTdxSampleCollateral);
  VerifiedQuote v = VerifyWith(testing::kTdxSampleQuote, &c, PinnedNow());
  EXPECT_TRUE(v.ok()) << Errors(v);
  EXPECT_EQ(v.tcb_status, "UpToDate");
  EXPECT_TRUE(v.advisories.empty());
}

// --- windows -----------------------------------------------------------------------------------

TEST(CollateralTest, AfterTheWindowIsAPreciseError) {
  const Collateral c = LoadCollateral(testing::kSgxSampleCollateral);
  VerifiedQuote v = VerifyWith(testing::kSgxSampleQuote, &c, ParseRfc3339("2025-08-01T00:00:00Z"));
  EXPECT_FALSE(v.ok());
  EXPECT_EQ(v.tcb_status, "");
  EXPECT_TRUE(AnyErrorContains(v,
                               "collateral: PCK CRL has expired: nextUpdate "
                               "2025-07-19T10:23:18Z is before the verification time "
                               "2025-08-01T00:00:00Z"))
      << Errors(v);
}

TEST(CollateralTest, BeforeTheWindowIsAPreciseError) {
  const Collateral c = LoadCollateral(testing::kSgxSampleCollateral);
  // The CRLs are current, the TCB info (issued 10:56:11) is not yet.
  VerifiedQuote v = VerifyWith(testing::kSgxSampleQuote, &c, ParseRfc3339("2025-06-19T10:30:00Z"));
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(AnyErrorContains(v,
                               "collateral: TCB info is not yet valid: issueDate "
                               "2025-06-19T10:56:11Z is after the verification time "
                               "2025-06-19T10:30:00Z"))
      << Errors(v);
  // Before the PCK CRL's thisUpdate.
  v = VerifyWith(testing::kSgxSampleQuote, &c, ParseRfc3339("2025-06-01T00:00:00Z"));
  EXPECT_TRUE(AnyErrorContains(v,
                               "collateral: PCK CRL is not yet valid: thisUpdate "
                               "2025-06-19T10:23:18Z"))
      << Errors(v);
}

TEST(CollateralTest, TcbInfoAndQeIdentityWindowsAreChecked) {
  const Collateral c = LoadCollateral(testing::kTdxSampleCollateral);
  auto root = ParsePemCertificate(testing::IntelRootPem());
  ASSERT_TRUE(root.ok());
  // QE identity issued 10:32:27, TCB info 10:16:03, PCK CRL thisUpdate 10:00:35.
  auto vc = VerifyCollateral(c, root->get(), ParseRfc3339("2025-06-19T10:20:00Z"));
  ASSERT_FALSE(vc.ok());
  EXPECT_EQ(std::string(vc.status().message()),
            "QE identity is not yet valid: issueDate 2025-06-19T10:32:27Z is after the "
            "verification time 2025-06-19T10:20:00Z");
  vc = VerifyCollateral(c, root->get(), PinnedNow());
  ASSERT_TRUE(vc.ok()) << vc.status();
  EXPECT_EQ(vc->tcb_info.id, "TDX");
  EXPECT_EQ(vc->qe_identity.id, "TD_QE");
}

// --- integrity -----------------------------------------------------------------------------------

TEST(CollateralTest, TamperedTcbInfoOrQeIdentityFailsTheSignature) {
  Collateral c = LoadCollateral(testing::kSgxSampleCollateral);
  const size_t at = c.tcb_info.find("\"tcbEvaluationDataNumber\":17");
  ASSERT_NE(at, std::string::npos);
  c.tcb_info[at + 26] = '8';
  VerifiedQuote v = VerifyWith(testing::kSgxSampleQuote, &c, PinnedNow());
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(AnyErrorContains(v, "collateral: TCB info signature does not verify")) << Errors(v);

  c = LoadCollateral(testing::kSgxSampleCollateral);
  c.qe_identity[c.qe_identity.find("\"isvprodid\":1") + 12] = '2';
  v = VerifyWith(testing::kSgxSampleQuote, &c, PinnedNow());
  EXPECT_TRUE(AnyErrorContains(v, "collateral: QE identity signature does not verify"))
      << Errors(v);

  c = LoadCollateral(testing::kSgxSampleCollateral);
  c.tcb_info_signature[5] ^= 0x01;
  v = VerifyWith(testing::kSgxSampleQuote, &c, PinnedNow());
  EXPECT_TRUE(AnyErrorContains(v, "collateral: TCB info signature does not verify")) << Errors(v);
}

TEST(CollateralTest, TamperedCrlsFail) {
  Collateral c = LoadCollateral(testing::kSgxSampleCollateral);
  c.pck_crl[c.pck_crl.size() - 5] ^= 0x01;  // inside the signature value
  VerifiedQuote v = VerifyWith(testing::kSgxSampleQuote, &c, PinnedNow());
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(AnyErrorContains(v, "collateral: PCK CRL is not signed")) << Errors(v);
  c = LoadCollateral(testing::kSgxSampleCollateral);
  c.root_ca_crl[c.root_ca_crl.size() - 5] ^= 0x01;
  v = VerifyWith(testing::kSgxSampleQuote, &c, PinnedNow());
  EXPECT_TRUE(AnyErrorContains(v, "collateral: root CA CRL is not signed by the pinned root"))
      << Errors(v);
  c = LoadCollateral(testing::kSgxSampleCollateral);
  c.pck_crl = "garbage";
  v = VerifyWith(testing::kSgxSampleQuote, &c, PinnedNow());
  EXPECT_TRUE(AnyErrorContains(v, "collateral: PCK CRL: not a DER CRL")) << Errors(v);
}

TEST(CollateralTest, CollateralUnderAnotherRootFails) {
  const Collateral c = LoadCollateral(testing::kSgxSampleCollateral);
  VerifyOptions o;
  o.root_pem = testing::MakeOtherRootPem();
  o.at = PinnedNow();
  o.collateral = &c;
  VerifiedQuote v = VerifyQuote(ReadTestFile(testing::kSgxSampleQuote), o);
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(AnyErrorContains(v, "collateral: root CA CRL is not signed by the pinned root"))
      << Errors(v);
}

TEST(CollateralTest, CollateralForAnotherPlatformFails) {
  // Same PCK CA, other FMSPC.
  const Collateral sgx = LoadCollateral(testing::kSgxSampleCollateral);
  VerifiedQuote v = VerifyWith(testing::kMobilecoinQuote, &sgx, PinnedNow());
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(AnyErrorContains(v,
                               "TCB: FMSPC mismatch: PCK certificate 00906ed50000, TCB info "
                               "00a067110000"))
      << Errors(v);
  // A TDX collateral's PCK CRL is from the Platform CA; the SGX sample's PCK is from the Processor
  // CA.
  const Collateral tdx = LoadCollateral(testing::kTdxSampleCollateral);
  v = VerifyWith(testing::kSgxSampleQuote, &tdx, PinnedNow());
  EXPECT_FALSE(v.ok());
  EXPECT_TRUE(AnyErrorContains(v, "is not the PCK certificate's issuer")) << Errors(v);
}

// --- parsing -------------------------------------------------------------------------------------

TEST(CollateralParseTest, CollateralFiles) {
  const Collateral c = LoadCollateral(testing::kSgxSampleCollateral);
  EXPECT_EQ(c.tcb_info.rfind("{\"id\":\"SGX\"", 0), 0u);
  EXPECT_EQ(c.tcb_info_signature.size(), 64u);
  EXPECT_EQ(c.qe_identity_signature.size(), 64u);
  EXPECT_FALSE(c.pck_crl.empty());
  EXPECT_FALSE(c.root_ca_crl.empty());
  EXPECT_NE(c.tcb_info_issuer_chain.find("BEGIN CERTIFICATE"), std::string::npos);
}

TEST(CollateralParseTest, SgxTcbInfoAndQeIdentity) {
  const Collateral c = LoadCollateral(testing::kSgxSampleCollateral);
  auto info = ParseTcbInfo(c.tcb_info);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->id, "SGX");
  EXPECT_EQ(info->version, 3);
  EXPECT_EQ(Hex(info->fmspc), "00a067110000");
  EXPECT_EQ(info->tcb_evaluation_data_number, 17);
  EXPECT_EQ(info->issue_date, ParseRfc3339("2025-06-19T10:56:11Z"));
  EXPECT_EQ(info->next_update, ParseRfc3339("2025-07-19T10:56:11Z"));
  ASSERT_GE(info->tcb_levels.size(), 2u);
  EXPECT_EQ(info->tcb_levels[0].status, TcbStatus::kSwHardeningNeeded);
  EXPECT_EQ(Hex(info->tcb_levels[0].sgx_components), "0b0b0202ff010c000000000000000000");
  EXPECT_EQ(info->tcb_levels[0].pce_svn, 13);
  EXPECT_FALSE(info->has_tdx_module);
  auto qe = ParseEnclaveIdentity(c.qe_identity);
  ASSERT_TRUE(qe.ok()) << qe.status();
  EXPECT_EQ(qe->id, "QE");
  EXPECT_EQ(qe->version, 2);
  EXPECT_EQ(qe->isv_prod_id, 1);
  EXPECT_EQ(Hex(qe->mrsigner), "8c4f5775d796503e96137f77c68a829a0056ac8ded70140b081b094490c57bff");
  EXPECT_EQ(Hex(qe->attributes_mask), "fbffffffffffffff0000000000000000");
  ASSERT_FALSE(qe->tcb_levels.empty());
  EXPECT_EQ(qe->tcb_levels[0].isv_svn, 8);
  EXPECT_EQ(qe->tcb_levels[0].status, TcbStatus::kUpToDate);
}

TEST(CollateralParseTest, TdxTcbInfo) {
  const Collateral c = LoadCollateral(testing::kTdxSampleCollateral);
  auto info = ParseTcbInfo(c.tcb_info);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->id, "TDX");
  EXPECT_EQ(Hex(info->fmspc), "b0c06f000000");
  EXPECT_TRUE(info->has_tdx_module);
  ASSERT_EQ(info->tdx_module_identities.size(), 2u);
  EXPECT_EQ(info->tdx_module_identities[1].id, "TDX_01");
  ASSERT_EQ(info->tdx_module_identities[1].tcb_levels.size(), 2u);
  EXPECT_EQ(info->tdx_module_identities[1].tcb_levels[1].status, TcbStatus::kOutOfDate);
  ASSERT_EQ(info->tcb_levels.size(), 2u);
  EXPECT_TRUE(info->tcb_levels[0].has_tdx_components);
  EXPECT_EQ(Hex(info->tcb_levels[0].tdx_components), "05000200000000000000000000000000");
  EXPECT_EQ(info->tcb_levels[1].advisory_ids.size(), 14u);
  auto qe = ParseEnclaveIdentity(c.qe_identity);
  ASSERT_TRUE(qe.ok()) << qe.status();
  EXPECT_EQ(qe->id, "TD_QE");
  EXPECT_EQ(qe->isv_prod_id, 2);
}

TEST(CollateralParseTest, MalformedInputIsAPreciseError) {
  struct Case {
    std::string json;
    std::string message;
  };
  const std::string tcb = LoadCollateral(testing::kSgxSampleCollateral).tcb_info;
  auto replace = [&](const std::string& from, const std::string& to) {
    std::string s = tcb;
    const size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) s.replace(at, from.size(), to);
    return s;
  };
  const Case cases[] = {
      {"", "TCB info: is not valid JSON"},
      {"[1,2]", "TCB info: is not a JSON object"},
      {"{\"version\":3}", "TCB info: lacks \"id\""},
      {replace("\"version\":3", "\"version\":\"3\""), "\"version\" is not an integer"},
      {replace("\"version\":3", "\"version\":9"), "\"version\" is out of range"},
      {replace("\"fmspc\":\"00A067110000\"", "\"fmspc\":\"00A0671100\""),
       "TCB info.fmspc: must be 6 bytes of hex"},
      {replace("\"fmspc\":\"00A067110000\"", "\"fmspc\":\"00A06711000Z\""), "not a hex string"},
      {replace("\"nextUpdate\":\"2025-07-19T10:56:11Z\"", "\"nextUpdate\":\"tomorrow\""),
       "\"nextUpdate\" is not an RFC 3339 time"},
      {replace("\"tcbStatus\":\"SWHardeningNeeded\"", "\"tcbStatus\":\"Fine\""),
       "unknown TCB status \"Fine\""},
      {replace("{\"svn\":11},{\"svn\":11},", "{\"svn\":11},"),
       "\"sgxtcbcomponents\" is not a list of 16..16 entries"},
      {replace("{\"svn\":11},{\"svn\":11},", "{\"svn\":256},{\"svn\":11},"),
       "\"svn\" is out of range"},
  };
  for (const Case& c : cases) {
    auto info = ParseTcbInfo(c.json);
    ASSERT_FALSE(info.ok()) << c.message;
    EXPECT_NE(std::string(info.status().message()).find(c.message), std::string::npos)
        << info.status();
  }
  EXPECT_FALSE(ParseCollateralJson("{}").ok());
  EXPECT_NE(std::string(ParseCollateralJson("{}").status().message()).find("lacks \"tcb_info\""),
            std::string::npos);
  EXPECT_FALSE(ParseEnclaveIdentity("{\"id\":\"QE\",\"version\":1}").ok());
}

TEST(CollateralParseTest, MutatedJsonNeverCrashes) {
  const Collateral c = LoadCollateral(testing::kTdxSampleCollateral);
  for (size_t i = 0; i < c.tcb_info.size(); i += 3) {
    std::string s = c.tcb_info;
    s[i] = static_cast<char>(s[i] ^ 0x04);
    (void)ParseTcbInfo(s);
    (void)ParseTcbInfo(std::string_view(c.tcb_info).substr(0, i));
  }
  for (size_t i = 0; i < c.qe_identity.size(); ++i) {
    std::string s = c.qe_identity;
    s[i] = static_cast<char>(s[i] ^ 0x04);
    (void)ParseEnclaveIdentity(s);
  }
  SUCCEED();
}

TEST(CollateralParseTest, TcbStatusNamesRoundTrip) {
  for (int i = 0; i <= static_cast<int>(TcbStatus::kRevoked); ++i) {
    const auto s = static_cast<TcbStatus>(i);
    auto back = ParseTcbStatus(TcbStatusName(s));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, s);
  }
  EXPECT_FALSE(ParseTcbStatus("uptodate").ok());
}

// --- TCB evaluation rules (QVL) ----------------------------------------------------------------

class EvaluateTcbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto [quote, coll, target] :
         {std::tuple{testing::kSgxSampleQuote, testing::kSgxSampleCollateral, &sgx_},
          std::tuple{testing::kTdxSampleQuote, testing::kTdxSampleCollateral, &tdx_}}) {
      const Collateral c = LoadCollateral(coll);
      auto info = ParseTcbInfo(c.tcb_info);
      auto qe = ParseEnclaveIdentity(c.qe_identity);
      VerifyOptions o;
      o.root_pem = testing::IntelRootPem();
      o.at = PinnedNow();
      VerifiedQuote v = VerifyQuote(ReadTestFile(quote), o);
      ASSERT_TRUE(info.ok() && qe.ok() && v.ok() && v.pck && v.quote);
      target->info = *info;
      target->qe = *qe;
      target->pck = *v.pck;
      target->quote = *v.quote;
    }
  }
  struct Inputs {
    TcbInfo info;
    EnclaveIdentity qe;
    PckExtensions pck;
    ParsedQuote quote;
    absl::StatusOr<TcbResult> Eval() const { return EvaluateTcb(info, qe, pck, quote); }
  };
  Inputs sgx_;
  Inputs tdx_;
};

void ExpectStatus(const absl::StatusOr<TcbResult>& r, TcbStatus status,
                  const std::vector<std::string>& advisories) {
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(TcbStatusName(r->status), TcbStatusName(status));
  EXPECT_EQ(r->advisory_ids, advisories);
}

void ExpectError(const absl::StatusOr<TcbResult>& r, const std::string& message) {
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find(message), std::string::npos) << r.status();
}

TEST_F(EvaluateTcbTest, SgxRecordedResult) {
  ExpectStatus(sgx_.Eval(), TcbStatus::kConfigurationAndSwHardeningNeeded,
               {"INTEL-SA-00289", "INTEL-SA-00615"});
}

TEST_F(EvaluateTcbTest, SgxHigherComponentSelectsTheNewerLevel) {
  sgx_.pck.tcb_components[6] = 12;
  ExpectStatus(sgx_.Eval(), TcbStatus::kSwHardeningNeeded, {"INTEL-SA-00615"});
}

TEST_F(EvaluateTcbTest, SgxEveryComponentMustBeHigherOrEqual) {
  // Component 1 below the first two levels: the 10/10 level (no component 7) applies.
  sgx_.pck.tcb_components[0] = 10;
  ExpectStatus(sgx_.Eval(), TcbStatus::kOutOfDateConfigurationNeeded,
               {"INTEL-SA-00289", "INTEL-SA-00828", "INTEL-SA-00615"});
}

TEST_F(EvaluateTcbTest, SgxOutOfDateQeConverges) {
  sgx_.quote.qe_report_body.isv_svn = 7;  // QE level isvsvn 6: OutOfDate, INTEL-SA-00615
  ExpectStatus(sgx_.Eval(), TcbStatus::kOutOfDateConfigurationNeeded,
               {"INTEL-SA-00289", "INTEL-SA-00615"});
  sgx_.pck.tcb_components[6] = 12;  // SWHardeningNeeded + QE OutOfDate → OutOfDate
  ExpectStatus(sgx_.Eval(), TcbStatus::kOutOfDate, {"INTEL-SA-00615"});
  sgx_.quote.qe_report_body.isv_svn = 5;  // INTEL-SA-00477 joins
  ExpectStatus(sgx_.Eval(), TcbStatus::kOutOfDate, {"INTEL-SA-00615", "INTEL-SA-00477"});
}

TEST_F(EvaluateTcbTest, SgxRevokedLevelOrQe) {
  sgx_.info.tcb_levels[1].status = TcbStatus::kRevoked;
  ExpectStatus(sgx_.Eval(), TcbStatus::kRevoked, {"INTEL-SA-00289", "INTEL-SA-00615"});
  sgx_.info.tcb_levels[1].status = TcbStatus::kUpToDate;
  sgx_.qe.tcb_levels[0].status = TcbStatus::kRevoked;
  ExpectStatus(sgx_.Eval(), TcbStatus::kRevoked, {"INTEL-SA-00289", "INTEL-SA-00615"});
}

TEST_F(EvaluateTcbTest, SgxNotSupported) {
  sgx_.pck.pce_svn = 1;
  ExpectError(sgx_.Eval(), "TCB not supported: the PCK certificate's TCB (PCESVN 1)");
  sgx_.pck.pce_svn = 13;
  sgx_.quote.qe_report_body.isv_svn = 0;
  ExpectError(sgx_.Eval(), "TCB not supported: QE ISVSVN 0 is below every QE identity TCB level");
}

TEST_F(EvaluateTcbTest, SgxQeIdentityMismatches) {
  Inputs in = sgx_;
  in.quote.qe_report_body.mr_signer[0] ^= 1;
  ExpectError(in.Eval(), "QE identity mismatch: MRSIGNER");
  in = sgx_;
  in.quote.qe_report_body.isv_prod_id = 2;
  ExpectError(in.Eval(), "QE identity mismatch: ISVPRODID 2, expected 1");
  in = sgx_;
  in.quote.qe_report_body.attributes[0] &= ~0x10;  // PROVISIONKEY cleared
  ExpectError(in.Eval(), "QE identity mismatch: ATTRIBUTES");
  in = sgx_;
  in.quote.qe_report_body.misc_select = 1;
  ExpectError(in.Eval(), "QE identity mismatch: MISCSELECT");
  in = sgx_;
  in.qe = tdx_.qe;
  ExpectError(in.Eval(), "QE identity is \"TD_QE\" but a SGX quote needs \"QE\"");
  in = sgx_;
  in.pck.pce_id[1] = 1;
  ExpectError(in.Eval(), "PCE-ID mismatch");
}

TEST_F(EvaluateTcbTest, TdxRecordedResult) { ExpectStatus(tdx_.Eval(), TcbStatus::kUpToDate, {}); }

TEST_F(EvaluateTcbTest, TdxModuleStatusConverges) {
  tdx_.quote.td.tee_tcb_svn[0] = 3;  // TDX_01 level isvsvn 2: OutOfDate
  ExpectStatus(tdx_.Eval(), TcbStatus::kOutOfDate, {});
  tdx_.quote.td.tee_tcb_svn[0] = 1;  // below every TDX_01 level
  ExpectError(tdx_.Eval(), "TCB not supported: TDX module SVN 1 is below every level of TDX_01");
}

TEST_F(EvaluateTcbTest, TdxModuleIdentityMustExistAndMatch) {
  Inputs in = tdx_;
  in.quote.td.tee_tcb_svn[1] = 5;
  ExpectError(in.Eval(), "TDX module mismatch: TCB info has no module identity TDX_05");
  in = tdx_;
  in.quote.td.mr_signer_seam[0] = 1;
  ExpectError(in.Eval(), "TDX module mismatch: MRSIGNERSEAM");
  in = tdx_;
  in.quote.td.seam_attributes[7] = 1;
  ExpectError(in.Eval(), "TDX module mismatch: SEAMATTRIBUTES");
}

TEST_F(EvaluateTcbTest, TdxComponentsAndPceSvn) {
  Inputs in = tdx_;
  in.quote.td.tee_tcb_svn[2] = 1;  // below both levels' TDX component 3 (svn 2)
  ExpectError(in.Eval(), "TCB not supported: TEE_TCB_SVN 06010100");
  in = tdx_;
  in.pck.pce_svn = 5;  // only the 2018 level applies
  ASSERT_TRUE(in.Eval().ok());
  EXPECT_EQ(in.Eval()->status, TcbStatus::kOutOfDate);
  EXPECT_EQ(in.Eval()->advisory_ids.size(), 14u);
  EXPECT_EQ(in.Eval()->advisory_ids.front(), "INTEL-SA-00106");
}

TEST_F(EvaluateTcbTest, TcbInfoForTheOtherTee) {
  Inputs in = tdx_;
  in.info = sgx_.info;
  ExpectError(in.Eval(), "TCB info is for SGX but the quote is TDX");
  in = sgx_;
  in.info = tdx_.info;
  ExpectError(in.Eval(), "TCB info is for TDX but the quote is SGX");
}

// --- the PCK certificate's SGX extension
// ----------------------------------------------------------

std::string SgxExtensionDer(const char* quote_file) {
  auto q = ParseQuote(ReadTestFile(quote_file));
  EXPECT_TRUE(q.ok());
  auto chain = ParsePemChain(q->cert_data);
  EXPECT_TRUE(chain.ok());
  ASN1_OBJECT* oid = OBJ_txt2obj(kSgxExtensionsOid, 1);
  const int idx = X509_get_ext_by_OBJ((*chain)[0].get(), oid, -1);
  ASN1_OBJECT_free(oid);
  EXPECT_GE(idx, 0);
  ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(X509_get_ext((*chain)[0].get(), idx));
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                     static_cast<size_t>(ASN1_STRING_length(data)));
}

TEST(PckExtensionsTest, ParsesAndRejectsEveryTruncation) {
  for (const char* f :
       {testing::kMobilecoinQuote, testing::kSgxSampleQuote, testing::kTdxSampleQuote}) {
    const std::string der = SgxExtensionDer(f);
    auto ext = ParseSgxExtensions(der);
    ASSERT_TRUE(ext.ok()) << f << ": " << ext.status();
    EXPECT_EQ(Hex(ext->pce_id), "0000");
    for (size_t len = 0; len < der.size(); ++len) {
      auto t = ParseSgxExtensions(std::string_view(der).substr(0, len));
      ASSERT_FALSE(t.ok()) << f << " len " << len;
      EXPECT_EQ(std::string(t.status().message()).rfind("PCK certificate SGX extension: ", 0), 0u);
    }
    for (size_t i = 0; i < der.size(); ++i) {  // no crash on any single-byte change
      std::string m = der;
      m[i] = static_cast<char>(m[i] ^ 0x21);
      (void)ParseSgxExtensions(m);
    }
  }
}

TEST(PckExtensionsTest, MissingEntriesAreRefused) {
  // A SEQUENCE with only the PPID entry.
  const std::string der = SgxExtensionDer(testing::kSgxSampleQuote);
  const size_t ppid_len = 2 + static_cast<uint8_t>(der[5]);  // entry 1 starts at offset 4
  std::string only_ppid = der.substr(4, ppid_len);
  std::string seq = std::string("\x30", 1) + static_cast<char>(only_ppid.size()) + only_ppid;
  auto ext = ParseSgxExtensions(seq);
  ASSERT_FALSE(ext.ok());
  EXPECT_NE(std::string(ext.status().message()).find("lacks one of PPID, TCB, PCE-ID"),
            std::string::npos)
      << ext.status();
}

}  // namespace
}  // namespace kshield::tee::quote
