// `kshieldctl attest verify|quote` through the real binary (issue 5 §6): the real DCAP quotes in
// ../shared/testdata/attestation/ (PROVENANCE.md) with their collateral at a pinned time inside its
// window, sim quotes from `attest quote --tee sim`, and RA-TLS certificates (PEM, DER, legacy
// extension, plain, mis-bound).
//
// KSHIELD_KSHIELDCTL overrides the binary (default: <bin>/kshieldctl).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "crypto/sha256.h"
#include "support/process.h"
#include "tee/quote/x509.h"
#include "tee/ratls.h"
#include "tee/sim_platform.h"

namespace kshield {
namespace {

using nlohmann::json;

const char kPinnedNow[] = "2025-07-01T00:00:00Z";

std::string Kshieldctl() {
  const char* env = getenv("KSHIELD_KSHIELDCTL");
  return env && *env ? env : std::string(KSHIELD_BIN_DIR) + "/kshieldctl";
}
std::string Att(const std::string& name) {
  return std::string(KSHIELD_SHARED_DIR) + "/testdata/attestation/" + name;
}
std::string IntelRoot() { return Att("intel_sgx_root_ca.pem"); }

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

std::string ToPem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  return pem;
}

struct Result {
  int exit = -1;
  std::string output;
  json j;
};

// Runs kshieldctl with `args` (already shell-quoted where needed); parses JSON output when asked.
Result RunCtl(const std::string& args, bool parse_json = true) {
  Result r;
  r.exit = testing::RunCommand("{ " + Kshieldctl() + " " + args + " 2>/dev/null; }", &r.output);
  if (parse_json) {
    r.j = json::parse(r.output, nullptr, /*allow_exceptions=*/false);
  }
  return r;
}

Result RunWithStderr(const std::string& args) {
  Result r;
  r.exit = testing::RunCommand(Kshieldctl() + " " + args + " 2>&1", &r.output);
  return r;
}

void ExpectAllKeys(const json& j) {
  ASSERT_TRUE(j.is_object()) << j.dump();
  for (const char* k : {"tee_type", "version", "mrenclave", "mrsigner", "isv_prod_id", "isv_svn",
                        "debug", "mrtd", "rtmr", "report_data", "signature_valid", "chain_valid",
                        "tcb_status", "advisories", "policy_ok", "errors"}) {
    EXPECT_TRUE(j.contains(k)) << "missing key " << k;
  }
  EXPECT_EQ(j.size(), 16u) << j.dump();
}

class AttestCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string out;
    if (testing::RunCommand(Kshieldctl() + " attest --help 2>&1", &out) != 0) {
      FAIL() << Kshieldctl() << " has no `attest` command (wire AddAttestCommands): " << out;
    }
  }
  testing::TempDir dir_;
};

TEST_F(AttestCliTest, RealSgxQuoteWithCollateralGivesRecordedTcbStatus) {
  Result r = RunCtl("attest verify " + Att("sgx_v3_dcap_qvl_sample.bin") + " --collateral " +
                 Att("sgx_v3_dcap_qvl_sample_collateral.json") + " --at " + kPinnedNow +
                 " --root " + IntelRoot() + " -o json");
  EXPECT_EQ(r.exit, 0) << r.output;
  ExpectAllKeys(r.j);
  EXPECT_EQ(r.j["tee_type"], "sgx");
  EXPECT_EQ(r.j["version"], 3);
  EXPECT_EQ(r.j["mrenclave"], "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb");
  EXPECT_EQ(r.j["mrsigner"], "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6");
  EXPECT_EQ(r.j["isv_prod_id"], 0);
  EXPECT_EQ(r.j["isv_svn"], 0);
  EXPECT_EQ(r.j["debug"], false);
  EXPECT_TRUE(r.j["mrtd"].is_null());
  EXPECT_EQ(r.j["report_data"].get<std::string>().substr(0, 26), "48656c6c6f2c20776f726c6421");
  EXPECT_EQ(r.j["signature_valid"], true);
  EXPECT_EQ(r.j["chain_valid"], true);
  EXPECT_EQ(r.j["tcb_status"], "ConfigurationAndSWHardeningNeeded");
  EXPECT_EQ(r.j["advisories"], json({"INTEL-SA-00289", "INTEL-SA-00615"}));
  EXPECT_TRUE(r.j["policy_ok"].is_null());
  EXPECT_EQ(r.j["errors"], json::array());
}

TEST_F(AttestCliTest, RealTdxQuoteWithCollateralIsUpToDate) {
  Result r = RunCtl("attest verify " + Att("tdx_v4_dcap_qvl_sample.bin") + " --collateral " +
                 Att("tdx_v4_dcap_qvl_sample_collateral.json") + " --at " + kPinnedNow +
                 " --root " + IntelRoot() + " -o json");
  EXPECT_EQ(r.exit, 0) << r.output;
  ExpectAllKeys(r.j);
  EXPECT_EQ(r.j["tee_type"], "tdx");
  EXPECT_EQ(r.j["version"], 4);
  EXPECT_EQ(r.j["mrtd"],
            "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2"
            "538873118b7");
  ASSERT_EQ(r.j["rtmr"].size(), 4u);
  EXPECT_EQ(r.j["rtmr"][3], std::string(96, '0'));
  EXPECT_TRUE(r.j["mrenclave"].is_null());
  EXPECT_EQ(r.j["debug"], false);
  EXPECT_EQ(r.j["tcb_status"], "UpToDate");
  EXPECT_EQ(r.j["advisories"], json::array());
}

TEST_F(AttestCliTest, MobilecoinDebugEnclaveVerifiesButFailsANoDebugPolicy) {
  Result r = RunCtl("attest verify " + Att("sgx_v3_mobilecoin_hw_quote.bin") + " --root " +
                 IntelRoot() + " --at " + kPinnedNow + " -o json");
  EXPECT_EQ(r.exit, 0) << r.output;
  EXPECT_EQ(r.j["debug"], true);
  EXPECT_TRUE(r.j["tcb_status"].is_null());
  EXPECT_EQ(r.j["mrenclave"], "1dd0df84810e53e26b2b167dfe0f97cc4364085fe0bd41d5e18a759c21d5c189");

  WriteFile(dir_.Sub("policy.yaml"),
            "mrenclave: [1dd0df84810e53e26b2b167dfe0f97cc4364085fe0bd41d5e18a759c21d5c189]\n");
  r = RunCtl("attest verify " + Att("sgx_v3_mobilecoin_hw_quote.bin") + " --root " + IntelRoot() +
          " --at " + kPinnedNow + " --policy " + dir_.Sub("policy.yaml") + " -o json");
  EXPECT_EQ(r.exit, 1) << r.output;
  EXPECT_EQ(r.j["policy_ok"], false);
  EXPECT_EQ(r.j["signature_valid"], true);
  ASSERT_FALSE(r.j["errors"].empty());
  EXPECT_NE(r.j["errors"].back().get<std::string>().find("debug"), std::string::npos);

  WriteFile(dir_.Sub("policy.yaml"),
            "mrenclave: [1dd0df84810e53e26b2b167dfe0f97cc4364085fe0bd41d5e18a759c21d5c189]\n"
            "allow_debug: true\n");
  r = RunCtl("attest verify " + Att("sgx_v3_mobilecoin_hw_quote.bin") + " --root " + IntelRoot() +
          " --at " + kPinnedNow + " --policy " + dir_.Sub("policy.yaml") + " -o json");
  EXPECT_EQ(r.exit, 0) << r.output;
  EXPECT_EQ(r.j["policy_ok"], true);
}

TEST_F(AttestCliTest, PolicyOnTcbStatus) {
  const std::string base = "attest verify " + Att("sgx_v3_dcap_qvl_sample.bin") +
                           " --collateral " + Att("sgx_v3_dcap_qvl_sample_collateral.json") +
                           " --at " + kPinnedNow + " --root " + IntelRoot() + " -o json --policy " +
                           dir_.Sub("p.yaml");
  const std::string mr =
      "mrenclave: [33D8736DB756ED4997E04BA358D27833188F1932FF7B1D156904D3F560452FBB]\n";
  WriteFile(dir_.Sub("p.yaml"), mr + "min_tcb_status: ConfigurationAndSWHardeningNeeded\n");
  Result r = RunCtl(base);
  EXPECT_EQ(r.exit, 0) << r.output;
  EXPECT_EQ(r.j["policy_ok"], true);
  WriteFile(dir_.Sub("p.yaml"), mr + "min_tcb_status: UpToDate\n");
  r = RunCtl(base);
  EXPECT_EQ(r.exit, 1) << r.output;
  EXPECT_EQ(r.j["policy_ok"], false);
  EXPECT_NE(r.j["errors"].back().get<std::string>().find("tcb_status"), std::string::npos)
      << r.j.dump();
}

TEST_F(AttestCliTest, FailuresExitNonZero) {
  // Collateral outside its window.
  Result r = RunCtl("attest verify " + Att("sgx_v3_dcap_qvl_sample.bin") + " --collateral " +
                 Att("sgx_v3_dcap_qvl_sample_collateral.json") +
                 " --at 2026-01-01T00:00:00Z --root " + IntelRoot() + " -o json");
  EXPECT_EQ(r.exit, 1) << r.output;
  ASSERT_FALSE(r.j["errors"].empty());
  EXPECT_NE(r.j["errors"][0].get<std::string>().find("collateral"), std::string::npos);

  // One flipped byte in the report body (MRENCLAVE).
  std::string q = testing::ReadWholeFile(Att("sgx_v3_dcap_qvl_sample.bin"));
  q[48 + 64] ^= 0x01;
  WriteFile(dir_.Sub("tampered.bin"), q);
  r = RunCtl("attest verify " + dir_.Sub("tampered.bin") + " --root " + IntelRoot() + " --at " +
          kPinnedNow + " -o json");
  EXPECT_EQ(r.exit, 1) << r.output;
  EXPECT_EQ(r.j["signature_valid"], false);
  EXPECT_EQ(r.j["chain_valid"], true);

  // Garbage.
  WriteFile(dir_.Sub("garbage.bin"), std::string(100, '\x07'));
  r = RunCtl("attest verify " + dir_.Sub("garbage.bin") + " --root " + IntelRoot() + " -o json");
  EXPECT_EQ(r.exit, 1) << r.output;
  EXPECT_TRUE(r.j["tee_type"].is_null());
  EXPECT_NE(r.j["errors"][0].get<std::string>().find("parse"), std::string::npos);
}

TEST_F(AttestCliTest, UsageErrors) {
  Result r = RunWithStderr("attest verify " + Att("sgx_v3_dcap_qvl_sample.bin") +
                           " --root " + IntelRoot() + " --at yesterday");
  EXPECT_EQ(r.exit, 2) << r.output;
  EXPECT_NE(r.output.find("--at"), std::string::npos);
  r = RunWithStderr("attest verify /nonexistent/quote.bin --root " + IntelRoot());
  EXPECT_EQ(r.exit, 2) << r.output;
  r = RunWithStderr("attest quote --report-data zz --tee sim");
  EXPECT_EQ(r.exit, 2) << r.output;
  r = RunWithStderr("attest quote --report-data 00 --tee none");
  EXPECT_EQ(r.exit, 1) << r.output;
  EXPECT_NE(r.output.find("no attestation"), std::string::npos) << r.output;
  if (FileExists("/etc/kshield/intel_sgx_root_ca.pem")) {
    GTEST_SKIP() << "/etc/kshield/intel_sgx_root_ca.pem exists here; default-root case not tested";
  }
  r = RunWithStderr("attest verify " + Att("sgx_v3_dcap_qvl_sample.bin"));
  EXPECT_EQ(r.exit, 2) << r.output;
  EXPECT_NE(r.output.find("--root"), std::string::npos) << r.output;
}

TEST_F(AttestCliTest, SimQuoteRoundTripVerifiesOnlyUnderTheSimRoot) {
  const std::string data = dir_.Sub("sim");
  Result q = RunCtl("attest quote --tee sim --data-dir " + data +
                     " --report-data 00ff00ff --root-out " + dir_.Sub("sim_root.pem") +
                     " --out " + dir_.Sub("q.bin"),
                 /*parse_json=*/false);
  ASSERT_EQ(q.exit, 0) << q.output;
  WriteFile(dir_.Sub("q.hex"), q.output);
  const std::string raw = testing::ReadWholeFile(dir_.Sub("q.bin"));
  EXPECT_EQ(crypto::HexEncode(raw) + "\n", q.output);

  for (const char* file : {"q.hex", "q.bin"}) {
    Result r = RunCtl("attest verify " + dir_.Sub(file) + " --root " + dir_.Sub("sim_root.pem") +
                   " -o json");
    EXPECT_EQ(r.exit, 0) << r.output;
    ExpectAllKeys(r.j);
    EXPECT_EQ(r.j["report_data"], "00ff00ff" + std::string(120, '0'));
    auto exe = tee::Sha256File(Kshieldctl());
    ASSERT_TRUE(exe.ok());
    EXPECT_EQ(r.j["mrenclave"], crypto::HexEncode(*exe)) << "MRENCLAVE = SHA-256 of the binary";
    EXPECT_EQ(r.j["debug"], false);
  }
  Result intel = RunCtl("attest verify " + dir_.Sub("q.bin") + " --root " + IntelRoot() + " -o json");
  EXPECT_EQ(intel.exit, 1) << intel.output;
  EXPECT_EQ(intel.j["chain_valid"], false);

  // base64 output, and the same simulated machine (data dir) gives the same root.
  Result b64 = RunCtl("attest quote --tee sim --data-dir " + data +
                       " --report-data 01 --encoding base64 --root-out " +
                       dir_.Sub("sim_root2.pem"),
                   false);
  ASSERT_EQ(b64.exit, 0) << b64.output;
  WriteFile(dir_.Sub("q.b64"), b64.output);
  Result r = RunCtl("attest verify " + dir_.Sub("q.b64") + " --root " + dir_.Sub("sim_root.pem") +
                 " -o json");
  EXPECT_EQ(r.exit, 0) << r.output;
  Result js = RunCtl("attest quote --tee sim --data-dir " + data + " --report-data 02 -o json");
  ASSERT_EQ(js.exit, 0) << js.output;
  EXPECT_EQ(js.j["tee_platform"], "sim");
  EXPECT_EQ(js.j["encoding"], "hex");
}

// RA-TLS certificates, made in-process with the sim platform.
class AttestCliCertTest : public AttestCliTest {
 protected:
  void SetUp() override {
    AttestCliTest::SetUp();
    auto sim = tee::SimPlatform::New({});
    ASSERT_TRUE(sim.ok());
    sim_ = std::move(*sim);
    WriteFile(dir_.Sub("sim_root.pem"), sim_->RootCaPem());
  }
  Result Verify(const std::string& file) {
    return RunCtl("attest verify " + dir_.Sub(file) + " --root " + dir_.Sub("sim_root.pem") +
               " -o json");
  }
  std::unique_ptr<tee::SimPlatform> sim_;
};

TEST_F(AttestCliCertTest, DiceCertificatePemAndDer) {
  auto id = tee::MakeRaTlsIdentity(*sim_);
  ASSERT_TRUE(id.ok()) << id.status();
  WriteFile(dir_.Sub("c.pem"), id->certificate_pem);
  WriteFile(dir_.Sub("c.der"), id->certificate_der);
  for (const char* f : {"c.pem", "c.der"}) {
    Result r = Verify(f);
    EXPECT_EQ(r.exit, 0) << f << ": " << r.output;
    ExpectAllKeys(r.j);
    EXPECT_EQ(r.j["mrenclave"], crypto::HexEncode(sim_->mrenclave()));
    EXPECT_EQ(r.j["errors"], json::array());
  }
  Result intel = RunCtl("attest verify " + dir_.Sub("c.pem") + " --root " + IntelRoot() + " -o json");
  EXPECT_EQ(intel.exit, 1);
}

TEST_F(AttestCliCertTest, GramineLegacyExtensionIsAccepted) {
  tee::RaTlsOptions o;
  o.dice_extension = false;
  o.legacy_extension = true;
  auto id = tee::MakeRaTlsIdentity(*sim_, o);
  ASSERT_TRUE(id.ok()) << id.status();
  WriteFile(dir_.Sub("legacy.pem"), id->certificate_pem);
  Result r = Verify("legacy.pem");
  EXPECT_EQ(r.exit, 0) << r.output;
}

TEST_F(AttestCliCertTest, PlainCertificateAndStolenEvidenceAreRefused) {
  auto id = tee::MakeRaTlsIdentity(*sim_);
  ASSERT_TRUE(id.ok());
  auto cert = tee::quote::ParsePemCertificate(id->certificate_pem);
  ASSERT_TRUE(cert.ok());

  // The same certificate re-keyed and re-signed: its evidence names another key.
  EVP_PKEY* other = EVP_EC_gen("P-256");
  ASSERT_EQ(X509_set_pubkey(cert->get(), other), 1);
  ASSERT_GT(X509_sign(cert->get(), other, EVP_sha256()), 0);
  WriteFile(dir_.Sub("stolen.pem"), ToPem(cert->get()));
  Result r = Verify("stolen.pem");
  EXPECT_EQ(r.exit, 1) << r.output;
  EXPECT_EQ(r.j["signature_valid"], true) << "the quote itself is genuine";
  ASSERT_FALSE(r.j["errors"].empty());
  EXPECT_NE(r.j["errors"].back().get<std::string>().find("binding"), std::string::npos)
      << r.j.dump();

  // A plain certificate: no evidence extension at all.
  X509* plain = X509_new();
  X509_set_version(plain, 2);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(plain), "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("plain"), -1, -1, 0);
  X509_set_issuer_name(plain, X509_get_subject_name(plain));
  X509_gmtime_adj(X509_getm_notBefore(plain), 0);
  X509_gmtime_adj(X509_getm_notAfter(plain), 3600);
  X509_set_pubkey(plain, other);
  ASSERT_GT(X509_sign(plain, other, EVP_sha256()), 0);
  WriteFile(dir_.Sub("plain.pem"), ToPem(plain));
  X509_free(plain);
  EVP_PKEY_free(other);
  r = Verify("plain.pem");
  EXPECT_EQ(r.exit, 1) << r.output;
  ASSERT_FALSE(r.j["errors"].empty());
  EXPECT_NE(r.j["errors"][0].get<std::string>().find("no attestation evidence"),
            std::string::npos)
      << r.j.dump();
}

}  // namespace
}  // namespace kshield
