// kshield-kms with the static (emergency) provider: keys from a 0600 file, warning and gauge
// while active, a version added to the file becomes primary after `kshieldctl refresh`, and
// kshield refuses to rotate static keys.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "absl/strings/escaping.h"
#include "crypto/random.h"
#include "support/kms_instance.h"

namespace kshield::testing {
namespace {

std::string KeyLine(uint32_t version) {
  return std::to_string(version) + ": " + absl::Base64Escape(crypto::RandomString(32)) + "\n";
}

TEST(KmsStaticTest, EmergencyKeysServeWarnAndRefresh) {
  TempDir dir;
  std::string keys = dir.Sub("static-keys.yaml");
  {
    std::ofstream f(keys);
    f << KeyLine(1) << KeyLine(2);
  }
  chmod(keys.c_str(), 0600);
  std::string cfg = dir.Sub("kms.yaml");
  {
    std::ofstream f(cfg);
    f << "provider: static\nstatic:\n  keys_file: " << keys << "\n";
  }
  KmsInstance kms({"--config=" + cfg}, &dir);
  ASSERT_TRUE(kms.Start()) << kms.log();
  auto v2 = kms.V2();
  ::v2::EncryptResponse enc;
  ASSERT_TRUE(V2Encrypt(v2.get(), "0123456789abcdef0123456789abcdef", &enc).ok());
  EXPECT_EQ(enc.key_id().substr(enc.key_id().rfind(':')), ":2");
  std::string metrics;
  ASSERT_EQ(HttpGet(kms.http_port(), "/metrics", &metrics), 200);
  EXPECT_NE(metrics.find("kshield_kms_static_keys_active 1"), std::string::npos);
  EXPECT_NE(kms.log().find("static"), std::string::npos);

  // Rotation is refused: static keys are not made by kshield.
  auto admin = kms.Admin();
  grpc::ClientContext rctx;
  ::kshield::admin::v1::RotateResponse rr;
  grpc::Status rs = admin->Rotate(&rctx, {}, &rr);
  EXPECT_EQ(rs.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << rs.error_message();

  // A new version in the file + refresh -> new primary; old ciphertexts still decrypt.
  {
    std::ofstream f(keys, std::ios::app);
    f << KeyLine(3);
  }
  std::string out;
  ASSERT_EQ(RunCommand(std::string(KSHIELD_BIN_DIR) + "/kshieldctl --admin-socket " +
                           kms.admin_socket() + " --socket " + kms.socket() + " refresh",
                       &out),
            0)
      << out;
  ::v2::StatusResponse st;
  ASSERT_TRUE(V2Status(v2.get(), &st).ok());
  EXPECT_EQ(st.key_id().substr(st.key_id().rfind(':')), ":3");
  std::string plain;
  ASSERT_TRUE(V2Decrypt(v2.get(), enc.ciphertext(), enc.key_id(), &plain).ok());
  EXPECT_EQ(plain, "0123456789abcdef0123456789abcdef");
}

TEST(KmsStaticTest, WorldReadableKeysFileRefused) {
  TempDir dir;
  std::string keys = dir.Sub("static-keys.yaml");
  {
    std::ofstream f(keys);
    f << KeyLine(1);
  }
  chmod(keys.c_str(), 0644);
  std::string cfg = dir.Sub("kms.yaml");
  {
    std::ofstream f(cfg);
    f << "provider: static\nstatic:\n  keys_file: " << keys << "\n";
  }
  std::string out;
  int rc = RunCommand(std::string(KSHIELD_BIN_DIR) + "/kshield-kms --config " + cfg +
                          " --socket " + dir.Sub("k.sock") + " --admin-socket " +
                          dir.Sub("a.sock") + " --data-dir " + dir.Sub("data") + " --http off",
                      &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("chmod 600"), std::string::npos) << out;
}

}  // namespace
}  // namespace kshield::testing
