#include "tee/sim_platform.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "crypto/sha256.h"
#include "tee/quote/policy.h"
#include "tee/quote/quote_test_util.h"
#include "tee/quote/verify.h"

namespace kshield::tee {
namespace {

std::string ReportData(char fill) { return std::string(kReportDataSize, fill); }

std::unique_ptr<SimPlatform> MakeSim(const PlatformOptions& options) {
  auto p = SimPlatform::New(options);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? std::move(*p) : nullptr;
}

quote::VerifiedQuote Verify(const std::string& q, const std::string& root_pem) {
  quote::VerifyOptions opts;
  opts.root_pem = root_pem;
  return quote::VerifyQuote(q, opts);
}

TEST(SimPlatformTest, QuoteVerifiesUnderSimRootWithExpectedFields) {
  testing::TempDir dir;
  PlatformOptions options{dir.path()};
  options.sim_identity = "alpha";
  options.sim_debug = false;
  auto sim = MakeSim(options);
  ASSERT_NE(sim, nullptr);
  const std::string rd = std::string("bind me") + std::string(57, '\x5a');
  auto q = sim->Quote(rd);
  ASSERT_TRUE(q.ok()) << q.status();

  quote::VerifiedQuote v = Verify(*q, sim->RootCaPem());
  EXPECT_TRUE(v.ok()) << (v.errors.empty() ? "" : v.errors.front());
  EXPECT_TRUE(v.signature_valid);
  EXPECT_TRUE(v.chain_valid);
  EXPECT_EQ(v.tee_type, "sgx");
  EXPECT_EQ(v.version, 3);
  auto exe = Sha256File("/proc/self/exe");
  ASSERT_TRUE(exe.ok());
  EXPECT_EQ(v.mrenclave, crypto::HexEncode(*exe));
  EXPECT_EQ(v.mrsigner, crypto::HexEncode(crypto::Sha256("kshield-sim-signer:alpha")));
  EXPECT_EQ(v.report_data, crypto::HexEncode(rd));
  EXPECT_EQ(v.isv_prod_id, 1);
  EXPECT_EQ(v.isv_svn, 1);
  EXPECT_FALSE(v.debug);
}

TEST(SimPlatformTest, QuoteFailsUnderIntelRoot) {
  auto sim = MakeSim({});
  ASSERT_NE(sim, nullptr);
  auto q = sim->Quote(ReportData('a'));
  ASSERT_TRUE(q.ok());
  quote::VerifiedQuote v = Verify(*q, quote::testing::IntelRootPem());
  EXPECT_FALSE(v.ok());
  EXPECT_FALSE(v.chain_valid);
  ASSERT_FALSE(v.errors.empty());
  EXPECT_NE(v.errors.front().find("PCK chain"), std::string::npos) << v.errors.front();
  // A quote is not trusted because another machine's sim root is pinned either.
  auto other = MakeSim({});
  ASSERT_NE(other, nullptr);
  EXPECT_FALSE(Verify(*q, other->RootCaPem()).chain_valid);
}

TEST(SimPlatformTest, SameDataDirKeepsRootAndSealingKeyAcrossRestarts) {
  testing::TempDir dir;
  PlatformOptions options{dir.path()};
  options.sim_identity = "alpha";
  auto first = MakeSim(options);
  auto second = MakeSim(options);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  struct stat st;
  ASSERT_EQ(stat(SimPlatform::SecretPath(dir.path()).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto q = second->Quote(ReportData('b'));
  ASSERT_TRUE(q.ok());
  EXPECT_TRUE(Verify(*q, first->RootCaPem()).ok());
  auto k1 = first->SealingKey();
  auto k2 = second->SealingKey();
  ASSERT_TRUE(k1.ok()) << k1.status();
  ASSERT_TRUE(k2.ok());
  EXPECT_EQ(k1->size(), kSealingKeySize);
  EXPECT_TRUE(k1->Equals(*k2));
}

TEST(SimPlatformTest, IdentityMrenclaveAndMachineChangeTheSealingKey) {
  testing::TempDir dir, other_dir;
  PlatformOptions a{dir.path()};
  a.sim_identity = "alpha";
  PlatformOptions b = a;
  b.sim_identity = "beta";
  PlatformOptions c = a;
  c.sim_mrenclave = std::string(32, '\x11');
  PlatformOptions d{other_dir.path()};
  d.sim_identity = "alpha";
  auto ka = MakeSim(a)->SealingKey();
  auto kb = MakeSim(b)->SealingKey();
  auto kc = MakeSim(c)->SealingKey();
  auto kd = MakeSim(d)->SealingKey();
  ASSERT_TRUE(ka.ok() && kb.ok() && kc.ok() && kd.ok());
  EXPECT_FALSE(ka->Equals(*kb));
  EXPECT_FALSE(ka->Equals(*kc));
  EXPECT_FALSE(ka->Equals(*kd));
}

TEST(SimPlatformTest, IdentityFromEnvironment) {
  setenv("KSHIELD_TEE_SIM_IDENTITY", "from-env", 1);
  setenv("KSHIELD_TEE_SIM_DEBUG", "1", 1);
  auto sim = MakeSim({});
  unsetenv("KSHIELD_TEE_SIM_IDENTITY");
  unsetenv("KSHIELD_TEE_SIM_DEBUG");
  ASSERT_NE(sim, nullptr);
  EXPECT_EQ(sim->mrsigner(), crypto::Sha256("kshield-sim-signer:from-env"));
  auto q = sim->Quote(ReportData('c'));
  ASSERT_TRUE(q.ok());
  quote::VerifiedQuote v = Verify(*q, sim->RootCaPem());
  EXPECT_TRUE(v.ok());
  EXPECT_TRUE(v.debug);
}

TEST(SimPlatformTest, PolicyAcceptsOwnMeasurementAndRefusesDebug) {
  PlatformOptions options;
  options.sim_debug = true;
  auto sim = MakeSim(options);
  ASSERT_NE(sim, nullptr);
  auto q = sim->Quote(ReportData('d'));
  ASSERT_TRUE(q.ok());
  quote::VerifiedQuote v = Verify(*q, sim->RootCaPem());
  ASSERT_TRUE(v.ok());
  quote::Policy policy;
  policy.mrenclave.push_back(crypto::HexEncode(sim->mrenclave()));
  absl::Status s = quote::CheckPolicy(policy, v);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("debug"), std::string::npos) << s;
  policy.allow_debug = true;
  EXPECT_TRUE(quote::CheckPolicy(policy, v).ok());
  policy.mrenclave = {std::string(64, '0')};
  s = quote::CheckPolicy(policy, v);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find("mrenclave"), std::string::npos) << s;
}

TEST(SimPlatformTest, RefusesBadInputAndSealingWithoutDataDir) {
  auto sim = MakeSim({});
  ASSERT_NE(sim, nullptr);
  EXPECT_EQ(sim->Quote("short").status().code(), absl::StatusCode::kInvalidArgument);
  auto k = sim->SealingKey();
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(k.status().message()).find("data directory"), std::string::npos);
  PlatformOptions bad;
  bad.sim_mrenclave = "too short";
  EXPECT_FALSE(SimPlatform::New(bad).ok());
}

TEST(SimPlatformTest, RefusesATruncatedOrWideOpenMachineSecret) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(SimPlatform::SecretPath(dir.path()), "short", 0600).ok());
  auto p = SimPlatform::New(PlatformOptions{dir.path()});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(
      WriteFileAtomic(SimPlatform::SecretPath(dir.path()), std::string(32, 'k'), 0644).ok());
  EXPECT_FALSE(SimPlatform::New(PlatformOptions{dir.path()}).ok());
}

TEST(SimPlatformTest, EverySignedByteChangeFailsVerification) {
  auto sim = MakeSim({});
  ASSERT_NE(sim, nullptr);
  auto q = sim->Quote(ReportData('e'));
  ASSERT_TRUE(q.ok());
  // Header and report body (the bytes the attestation key signs), sampled every 7 bytes.
  for (size_t i = 0; i < quote::kHeaderSize + quote::kSgxReportBodySize; i += 7) {
    std::string m = *q;
    m[i] = static_cast<char>(m[i] ^ 0x01);
    EXPECT_FALSE(Verify(m, sim->RootCaPem()).ok()) << "byte " << i;
  }
}

}  // namespace
}  // namespace kshield::tee
