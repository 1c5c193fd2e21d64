// kshield-kms with provider pkcs11 (SoftHSM2) through a token outage, end to end (issue 3 §4):
// cached mode keeps serving loaded versions, Status fails after the next probe, rotate fails and
// loses nothing; direct mode fails fast with UNAVAILABLE; both recover without a restart.
#include <gtest/gtest.h>

#include <fstream>

#include "pkcs11_softhsm.h"
#include "support/kms_instance.h"

namespace kshield::testing {
namespace {

const std::string kSeed = "0123456789abcdef0123456789abcdef";

class KmsPkcs11OutageTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    std::string missing = SoftHsm::MissingTools();
    if (!missing.empty()) GTEST_SKIP() << missing;
    ASSERT_TRUE(hsm_.InitToken("kms-it", "12345678").ok());
    ASSERT_TRUE(hsm_.KeygenWithPkcs11Tool("kms-it", "12345678", "kshield-master").ok());
    std::string pin = hsm_.WritePinFile("12345678");
    cfg_ = dir_.Sub("kms.yaml");
    std::ofstream f(cfg_);
    f << "provider: pkcs11\npkcs11:\n  module: /usr/lib/softhsm/libsofthsm2.so\n"
      << "  token_label: kms-it\n  pin_file: " << pin << "\n  master_key_label: kshield-master\n"
      << "  mode: " << GetParam() << "\n  timeout: 1s\n";
  }
  SoftHsm hsm_;  // sets SOFTHSM2_CONF for this process and the kshield-kms it starts
  TempDir dir_;
  std::string cfg_;
};

TEST_P(KmsPkcs11OutageTest, OutageAndRecovery) {
  const bool cached = GetParam() == "cached";
  KmsInstance kms({"--config=" + cfg_}, &dir_);
  ASSERT_TRUE(kms.Start()) << kms.log();
  auto v2 = kms.V2();
  auto admin = kms.Admin();
  ::v2::EncryptResponse before;
  ASSERT_TRUE(V2Encrypt(v2.get(), kSeed, &before).ok());
  const std::string keyset_before = ReadWholeFile(kms.data_dir() + "/keyset.bin");

  ASSERT_TRUE(hsm_.MoveTokensAway().ok());
  ::v2::StatusResponse st;
  ASSERT_TRUE(WaitFor(
      [&] { return V2Status(v2.get(), &st).error_code() == grpc::StatusCode::UNAVAILABLE; },
      std::chrono::seconds(20)))
      << kms.log();
  std::string body;
  EXPECT_EQ(HttpGet(kms.http_port(), "/readyz", &body), 503) << body;
  std::string plain;
  if (cached) {
    ::v2::EncryptResponse during;
    EXPECT_TRUE(V2Encrypt(v2.get(), kSeed, &during).ok());
    EXPECT_TRUE(V2Decrypt(v2.get(), before.ciphertext(), before.key_id(), &plain).ok());
    EXPECT_EQ(plain, kSeed);
  } else {
    auto t0 = std::chrono::steady_clock::now();
    grpc::Status s = V2Decrypt(v2.get(), before.ciphertext(), before.key_id(), &plain);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - t0)
                  .count();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
    EXPECT_LT(ms, 1500) << "direct-mode call did not fail fast";
  }
  grpc::ClientContext rctx;
  rctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ::kshield::admin::v1::RotateResponse rr;
  EXPECT_FALSE(admin->Rotate(&rctx, {}, &rr).ok());
  EXPECT_EQ(ReadWholeFile(kms.data_dir() + "/keyset.bin"), keyset_before);

  ASSERT_TRUE(hsm_.MoveTokensBack().ok());
  ASSERT_TRUE(WaitFor([&] { return V2Status(v2.get(), &st).ok(); }, std::chrono::seconds(20)))
      << kms.log();
  grpc::ClientContext r2;
  r2.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ASSERT_TRUE(admin->Rotate(&r2, {}, &rr).ok());
  ASSERT_TRUE(V2Decrypt(v2.get(), before.ciphertext(), before.key_id(), &plain).ok());
  EXPECT_EQ(plain, kSeed);
  ::v2::EncryptResponse after;
  ASSERT_TRUE(V2Encrypt(v2.get(), kSeed, &after).ok());
  EXPECT_EQ(after.key_id(), rr.key_id());
  // The PIN never reached the log.
  EXPECT_EQ(kms.log().find("12345678"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Modes, KmsPkcs11OutageTest, ::testing::Values("cached", "direct"));

}  // namespace
}  // namespace kshield::testing
