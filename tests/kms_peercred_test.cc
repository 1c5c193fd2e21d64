// The SO_PEERCRED allow-list, proven with a client running as another uid (setpriv / nobody).
#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "support/kms_instance.h"

namespace kshield::testing {
namespace {

class PeerCredTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another uid";
    if (access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "setpriv (util-linux) missing";
    passwd* pw = getpwnam("nobody");
    if (pw == nullptr) GTEST_SKIP() << "no user 'nobody'";
    nobody_ = pw->pw_uid;
    // nobody must be able to reach the socket for the uid check (not the file mode) to decide.
    chmod(dir_.path().c_str(), 0711);
  }
  std::string RunAs(uid_t uid, const std::string& socket, const std::string& op) {
    std::string out;
    RunCommand("/usr/bin/setpriv --reuid=" + std::to_string(uid) + " --regid=" +
                   std::to_string(uid) + " --clear-groups " + KSHIELD_BIN_DIR +
                   "/../tests/kms_client_tool " + socket + " " + op,
               &out);
    return out;
  }
  TempDir dir_;
  uid_t nobody_ = 0;
};

TEST_F(PeerCredTest, UidNotInAllowListGetsPermissionDenied) {
  KmsInstance kms({"--socket-mode=0666"}, &dir_);
  chmod((dir_.path() + "/run").c_str(), 0755);
  ASSERT_TRUE(kms.Start()) << kms.log();
  chmod((dir_.path() + "/run").c_str(), 0755);
  std::string out = RunAs(nobody_, kms.socket(), "encrypt");
  EXPECT_NE(out.find("code=7"), std::string::npos) << out;  // PERMISSION_DENIED
  EXPECT_NE(out.find("is not allowed"), std::string::npos) << out;
  out = RunAs(nobody_, kms.socket(), "status");
  EXPECT_NE(out.find("code=7"), std::string::npos) << out;
  out = RunAs(nobody_, kms.socket(), "v1-version");
  EXPECT_NE(out.find("code=7"), std::string::npos) << out;
  // Root (in the default allow-list) is served.
  out = RunAs(0, kms.socket(), "encrypt");
  EXPECT_NE(out.find("code=0"), std::string::npos) << out;
  // Rejection is logged with the uid and counted.
  EXPECT_NE(kms.log().find("\"uid\":" + std::to_string(nobody_)), std::string::npos);
  std::string metrics;
  HttpGet(kms.http_port(), "/metrics", &metrics);
  EXPECT_NE(metrics.find("kshield_kms_rejected_callers_total{socket=\"kms\","
                         "reason=\"uid_not_allowed\"}"),
            std::string::npos)
      << metrics.substr(0, 2000);
}

TEST_F(PeerCredTest, AllowListedUidIsServed) {
  KmsInstance kms({"--socket-mode=0666", "--allow-uid=0," + std::to_string(nobody_)}, &dir_);
  ASSERT_TRUE(kms.Start()) << kms.log();
  chmod((dir_.path() + "/run").c_str(), 0755);
  std::string out = RunAs(nobody_, kms.socket(), "encrypt");
  EXPECT_NE(out.find("code=0"), std::string::npos) << out;
}

TEST_F(PeerCredTest, DefaultSocketModeKeepsOthersOut) {
  KmsInstance kms({}, &dir_);
  ASSERT_TRUE(kms.Start()) << kms.log();
  chmod((dir_.path() + "/run").c_str(), 0755);
  struct stat st;
  ASSERT_EQ(stat(kms.socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string out = RunAs(nobody_, kms.socket(), "status");
  EXPECT_EQ(out.find("code=0"), std::string::npos) << out;  // cannot even connect
}

TEST_F(PeerCredTest, AdminSocketChecksUidToo) {
  KmsInstance kms({}, &dir_);
  ASSERT_TRUE(kms.Start()) << kms.log();
  chmod((dir_.path() + "/run").c_str(), 0755);
  // Widen the admin socket by hand to prove the uid check holds even if the mode is wrong.
  chmod(kms.admin_socket().c_str(), 0666);
  std::string out = RunAs(nobody_, kms.admin_socket(), "admin-info");
  EXPECT_NE(out.find("code=7"), std::string::npos) << out;
}

}  // namespace
}  // namespace kshield::testing
