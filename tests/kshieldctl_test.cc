// kshieldctl against a real kshield-kms: status, rotate, refresh, keyset list, output formats,
// exit codes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/kms_instance.h"

namespace kshield::testing {
namespace {

class KshieldctlTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(kms_.Start()) << kms_.log(); }
  int Ctl(const std::string& args, std::string* out) {
    return RunCommand(std::string(KSHIELD_BIN_DIR) + "/kshieldctl --socket " + kms_.socket() +
                          " --admin-socket " + kms_.admin_socket() + " " + args,
                      out);
  }
  KmsInstance kms_;
};

TEST_F(KshieldctlTest, StatusTableAndJson) {
  std::string out;
  ASSERT_EQ(Ctl("status", &out), 0) << out;
  EXPECT_NE(out.find("KMS status:   ok (v2, ksh1:"), std::string::npos) << out;
  EXPECT_NE(out.find("Provider:     local"), std::string::npos) << out;
  EXPECT_NE(out.find("TEE platform: none"), std::string::npos) << out;
  ASSERT_EQ(Ctl("-o json status", &out), 0) << out;
  auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["kms_status"]["healthz"], "ok");
  EXPECT_EQ(j["kms_status"]["key_id"], j["primary_key_id"]);
  EXPECT_EQ(j["versions"].size(), 1u);
  EXPECT_EQ(j["tee_platform"], "none");
}

TEST_F(KshieldctlTest, RotateThenListAndRefresh) {
  std::string out;
  ASSERT_EQ(Ctl("-o json rotate", &out), 0) << out;
  auto r = nlohmann::json::parse(out);
  std::string new_id = r["key_id"];
  EXPECT_NE(r["previous_key_id"], r["key_id"]);
  ASSERT_EQ(Ctl("keyset list -o json", &out), 0) << out;  // flags after the subcommand work too
  auto list = nlohmann::json::parse(out);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["state"], "active");
  EXPECT_EQ(list[1]["state"], "primary");
  EXPECT_EQ(list[1]["key_id"], new_id);
  ASSERT_EQ(Ctl("-o yaml refresh", &out), 0) << out;
  EXPECT_NE(out.find("key_id: " + new_id), std::string::npos) << out;
  EXPECT_NE(out.find("healthy: true"), std::string::npos) << out;
  // The KMS Status now reports the new key id.
  ::v2::StatusResponse st;
  ASSERT_TRUE(V2Status(kms_.V2().get(), &st).ok());
  EXPECT_EQ(st.key_id(), new_id);
}

TEST_F(KshieldctlTest, ExitCodes) {
  std::string out;
  EXPECT_EQ(RunCommand(std::string(KSHIELD_BIN_DIR) +
                           "/kshieldctl --admin-socket /nonexistent/admin.sock --timeout 1 rotate",
                       &out),
            3)
      << out;
  EXPECT_NE(out.find("kshieldctl: rotate:"), std::string::npos) << out;
  EXPECT_EQ(Ctl("no-such-command", &out), 2);
  EXPECT_EQ(Ctl("-o xml status", &out), 2);
  EXPECT_EQ(Ctl("--help", &out), 0);
  EXPECT_NE(out.find("Exit codes"), std::string::npos);
  EXPECT_EQ(Ctl("keyset --help", &out), 0);
  EXPECT_NE(out.find("list"), std::string::npos);
}

}  // namespace
}  // namespace kshield::testing
