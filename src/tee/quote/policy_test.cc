#include "tee/quote/policy.h"

#include <gtest/gtest.h>

#include <string>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "tee/quote/quote_test_util.h"

namespace kshield::tee::quote {
namespace {

using testing::PinnedNow;
using testing::ReadTestFile;

constexpr char kSgxMrenclave[] = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";
constexpr char kSgxMrsigner[] = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6";
constexpr char kMobilecoinMrenclave[] =
    "1dd0df84810e53e26b2b167dfe0f97cc4364085fe0bd41d5e18a759c21d5c189";
constexpr char kTdxMrtd[] =
    "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118"
    "b7";
constexpr char kTdxRtmr2[] =
    "d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3ba80b70870d7330733642e01d48c31"
    "32";

VerifiedQuote Verified(const char* quote, const char* collateral_file) {
  VerifyOptions o;
  o.root_pem = testing::IntelRootPem();
  o.at = PinnedNow();
  Collateral c;
  if (collateral_file != nullptr) {
    auto parsed = ParseCollateralJson(ReadTestFile(collateral_file));
    EXPECT_TRUE(parsed.ok());
    c = *parsed;
    o.collateral = &c;
  }
  VerifiedQuote v = VerifyQuote(ReadTestFile(quote), o);
  EXPECT_TRUE(v.ok()) << quote;
  return v;
}

Policy MustParse(const std::string& yaml) {
  auto p = ParsePolicyYaml(yaml);
  EXPECT_TRUE(p.ok()) << p.status() << "\n" << yaml;
  return p.ok() ? *p : Policy{};
}

void ExpectRefusal(const absl::Status& s, const std::string& prefix) {
  ASSERT_FALSE(s.ok()) << prefix;
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(std::string(s.message()).rfind(prefix, 0), 0u) << s;
}

void ExpectParseError(const std::string& yaml, const std::string& needle) {
  auto p = ParsePolicyYaml(yaml);
  ASSERT_FALSE(p.ok()) << yaml;
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(p.status().message()).find(needle), std::string::npos) << p.status();
}

TEST(PolicyParseTest, FullPolicy) {
  Policy p = MustParse(std::string("tee_type: sgx\n") + "mrenclave: [" +
                       std::string(kSgxMrenclave) + "]\n" + "mrsigner:\n  - " +
                       "815F42F11CF64430C30BAB7816BA596A1DA0130C3B028B673133A66CF9A3E0E6\n" +
                       "isv_prod_id: 0\nmin_isv_svn: 0\nallow_debug: false\n" +
                       "min_tcb_status: ConfigurationAndSWHardeningNeeded\n" + "mrtd: [" +
                       kTdxMrtd + "]\n" + "rtmr:\n  2: [" + kTdxRtmr2 + "]\n");
  EXPECT_EQ(p.tee_type, "sgx");
  ASSERT_EQ(p.mrenclave.size(), 1u);
  ASSERT_EQ(p.mrsigner.size(), 1u);
  EXPECT_EQ(p.mrsigner[0], kSgxMrsigner);  // lowercased
  EXPECT_EQ(p.isv_prod_id, 0);
  EXPECT_EQ(p.min_isv_svn, 0);
  EXPECT_FALSE(p.allow_debug);
  EXPECT_EQ(p.min_tcb_status, TcbStatus::kConfigurationAndSwHardeningNeeded);
  EXPECT_EQ(p.mrtd.size(), 1u);
  EXPECT_TRUE(p.rtmr[0].empty());
  EXPECT_EQ(p.rtmr[2].size(), 1u);
}

TEST(PolicyParseTest, ErrorsNameTheKey) {
  ExpectParseError("mrenclave: [abc]\n", "policy: mrenclave: entry 0 is not 64 hex digits");
  ExpectParseError("mrenclave: abc\n", "policy: mrenclave: must be a list of hex strings");
  ExpectParseError("mrtd: [" + std::string(kSgxMrenclave) + "]\n",
                   "policy: mrtd: entry 0 is not 96 hex digits");
  ExpectParseError("isv_prod_id: 70000\n", "policy: isv_prod_id: must be an integer");
  ExpectParseError("min_isv_svn: -1\n", "policy: min_isv_svn: must be an integer");
  ExpectParseError("allow_debug: yes\n", "policy: allow_debug: must be true or false");
  ExpectParseError("min_tcb_status: Great\n", "policy: min_tcb_status: unknown TCB status");
  ExpectParseError("min_tcb_status: Revoked\n", "policy: min_tcb_status: Revoked is never");
  ExpectParseError("tee_type: sev\n", "policy: tee_type: must be sgx or tdx");
  ExpectParseError("rtmr:\n  4: [" + std::string(kTdxRtmr2) + "]\n",
                   "policy: rtmr: index must be 0, 1, 2 or 3");
  ExpectParseError("rtmr:\n  1: []\n", "policy: rtmr[1]: must list at least one value");
  ExpectParseError("mrenclaves: []\n",
                   "policy: unknown key \"mrenclaves\" (known: tee_type, mrenclave, mrsigner");
  ExpectParseError("allow_debug: false\nallow_debug: true\n", "policy: allow_debug: appears twice");
  ExpectParseError("mrenclave: [\n", "policy: invalid YAML at line");
  ExpectParseError("", "policy: is empty");
  ExpectParseError("- a\n- b\n", "policy: must be a YAML mapping");
}

TEST(PolicyParseTest, LoadsFromFile) {
  kshield::testing::TempDir dir;
  const std::string path = dir.path() + "/policy.yaml";
  ASSERT_TRUE(WriteFileAtomic(path, "mrsigner: [" + std::string(kSgxMrsigner) + "]\n").ok());
  auto p = LoadPolicyFile(path);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->mrsigner.size(), 1u);
  auto missing = LoadPolicyFile(dir.path() + "/nope.yaml");
  EXPECT_FALSE(missing.ok());
}

TEST(CheckPolicyTest, AcceptingSgxPolicy) {
  const VerifiedQuote v = Verified(testing::kSgxSampleQuote, testing::kSgxSampleCollateral);
  Policy p = MustParse(std::string("tee_type: sgx\nmrenclave: [") + kSgxMrenclave +
                       "]\nmrsigner: [" + kSgxMrsigner +
                       "]\nisv_prod_id: 0\nmin_isv_svn: 0\n"
                       "min_tcb_status: ConfigurationAndSWHardeningNeeded\n");
  EXPECT_TRUE(CheckPolicy(p, v).ok()) << CheckPolicy(p, v);
  // mrsigner alone is enough identity.
  EXPECT_TRUE(CheckPolicy(MustParse(std::string("mrsigner: [") + kSgxMrsigner + "]\n"), v).ok());
}

TEST(CheckPolicyTest, SgxRefusalsNameTheField) {
  const VerifiedQuote v = Verified(testing::kSgxSampleQuote, testing::kSgxSampleCollateral);
  const std::string id = std::string("mrenclave: [") + kSgxMrenclave + "]\n";
  ExpectRefusal(
      CheckPolicy(MustParse(std::string("mrenclave: [") + kMobilecoinMrenclave + "]\n"), v),
      "policy: mrenclave: 33d8736d");
  ExpectRefusal(CheckPolicy(MustParse(id + "mrsigner: [" + kSgxMrenclave + "]\n"), v),
                "policy: mrsigner: 815f42f1");
  ExpectRefusal(CheckPolicy(MustParse(id + "isv_prod_id: 3\n"), v),
                "policy: isv_prod_id: 0, the policy requires 3");
  ExpectRefusal(CheckPolicy(MustParse(id + "min_isv_svn: 1\n"), v),
                "policy: isv_svn: 0 is below min_isv_svn 1");
  ExpectRefusal(CheckPolicy(MustParse(id + "min_tcb_status: SWHardeningNeeded\n"), v),
                "policy: tcb_status: ConfigurationAndSWHardeningNeeded is worse than "
                "min_tcb_status SWHardeningNeeded");
  ExpectRefusal(CheckPolicy(MustParse(id + "tee_type: tdx\n"), v),
                "policy: tee_type: the quote is sgx, the policy accepts tdx");
  ExpectRefusal(CheckPolicy(MustParse(id + "mrtd: [" + kTdxMrtd + "]\n"), v),
                "policy: mrtd: an SGX quote has no MRTD");
  ExpectRefusal(CheckPolicy(MustParse("allow_debug: false\n"), v),
                "policy: mrenclave: the policy "
                "accepts no MRENCLAVE or MRSIGNER");
}

TEST(CheckPolicyTest, TcbStatusOrder) {
  const VerifiedQuote v = Verified(testing::kSgxSampleQuote, testing::kSgxSampleCollateral);
  const std::string id = std::string("mrenclave: [") + kSgxMrenclave + "]\n";
  for (const char* ok :
       {"ConfigurationAndSWHardeningNeeded", "OutOfDate", "OutOfDateConfigurationNeeded"}) {
    EXPECT_TRUE(CheckPolicy(MustParse(id + "min_tcb_status: " + ok + "\n"), v).ok()) << ok;
  }
  for (const char* refused : {"UpToDate", "SWHardeningNeeded", "ConfigurationNeeded"}) {
    ExpectRefusal(CheckPolicy(MustParse(id + "min_tcb_status: " + refused + "\n"), v),
                  "policy: tcb_status: ");
  }
  VerifiedQuote revoked = v;
  revoked.tcb_status = "Revoked";
  ExpectRefusal(
      CheckPolicy(MustParse(id + "min_tcb_status: OutOfDateConfigurationNeeded\n"), revoked),
      "policy: tcb_status: Revoked is worse");
  // Without collateral the status is unknown: a policy that needs one refuses.
  const VerifiedQuote bare = Verified(testing::kSgxSampleQuote, nullptr);
  ExpectRefusal(CheckPolicy(MustParse(id + "min_tcb_status: OutOfDate\n"), bare),
                "policy: tcb_status: unknown (no collateral)");
  EXPECT_TRUE(CheckPolicy(MustParse(id), bare).ok());
}

TEST(CheckPolicyTest, DebugEnclaveNeedsAllowDebug) {
  const VerifiedQuote v = Verified(testing::kMobilecoinQuote, nullptr);
  const std::string id = std::string("mrenclave: [") + kMobilecoinMrenclave + "]\n";
  ExpectRefusal(CheckPolicy(MustParse(id), v),
                "policy: debug: the quote is from a debug enclave and allow_debug is false");
  EXPECT_TRUE(CheckPolicy(MustParse(id + "allow_debug: true\n"), v).ok());
}

TEST(CheckPolicyTest, TdxPolicy) {
  const VerifiedQuote v = Verified(testing::kTdxSampleQuote, testing::kTdxSampleCollateral);
  const std::string id = std::string("mrtd: [") + kTdxMrtd + "]\n";
  EXPECT_TRUE(CheckPolicy(MustParse(id + "rtmr:\n  2: [" + kTdxRtmr2 + "]\n  3: [" +
                                    std::string(96, '0') + "]\nmin_tcb_status: UpToDate\n"),
                          v)
                  .ok());
  ExpectRefusal(CheckPolicy(MustParse(id + "rtmr:\n  1: [" + kTdxRtmr2 + "]\n"), v),
                "policy: rtmr[1]: 0084452c");
  ExpectRefusal(CheckPolicy(MustParse(std::string("mrtd: [") + kTdxRtmr2 + "]\n"), v),
                "policy: mrtd: 91eb2b44");
  ExpectRefusal(CheckPolicy(MustParse(id + "mrenclave: [" + kSgxMrenclave + "]\n"), v),
                "policy: mrenclave: a TDX quote has no MRENCLAVE");
  ExpectRefusal(CheckPolicy(MustParse(id + "min_isv_svn: 0\n"), v),
                "policy: isv_svn: a TDX quote has no ISVSVN");
  ExpectRefusal(CheckPolicy(MustParse("allow_debug: true\n"), v),
                "policy: mrtd: the policy accepts no MRTD");
  VerifiedQuote debug_td = v;
  debug_td.debug = true;
  ExpectRefusal(CheckPolicy(MustParse(id), debug_td),
                "policy: debug: the quote is from a debug TD");
}

TEST(CheckPolicyTest, UnverifiedQuotesAreRefused) {
  const Policy p = MustParse(std::string("mrenclave: [") + kSgxMrenclave + "]\n");
  std::string bytes = ReadTestFile(testing::kSgxSampleQuote);
  bytes[100] ^= 1;
  VerifyOptions o;
  o.root_pem = testing::IntelRootPem();
  o.at = PinnedNow();
  ExpectRefusal(CheckPolicy(p, VerifyQuote(bytes, o)), "policy: signature_valid: ");
  o.root_pem = testing::MakeOtherRootPem();
  ExpectRefusal(CheckPolicy(p, VerifyQuote(ReadTestFile(testing::kSgxSampleQuote), o)),
                "policy: chain_valid: ");
  VerifiedQuote with_error = Verified(testing::kSgxSampleQuote, nullptr);
  with_error.errors.push_back("collateral: something");
  ExpectRefusal(CheckPolicy(p, with_error), "policy: errors: verification failed: collateral");
}

}  // namespace
}  // namespace kshield::tee::quote
