#include "kms/config.h"

#include <gtest/gtest.h>

namespace kshield::kms {
namespace {

TEST(ConfigTest, DefaultsAreValid) {
  KmsConfig c;
  EXPECT_TRUE(ValidateConfig(c).ok());
  EXPECT_EQ(c.socket, "var/run/kshield-kms.sock");
  EXPECT_EQ(c.admin_socket, "var/run/kshield-kms-admin.sock");
  EXPECT_EQ(c.http, "127.0.0.1:8787");
  EXPECT_EQ(c.socket_mode, 0600u);
}

TEST(ConfigTest, AppliesEveryKey) {
  KmsConfig c;
  absl::Status s = ApplyYamlConfig(R"(
socket: "@kshield"
socket_mode: "0660"
socket_owner: root
socket_group: root
admin_socket: /run/admin.sock
http: "off"
data_dir: /var/lib/k
provider: local
tee: none
allow_uid: [0, 1000]
log_level: debug
probe_interval: 2s
shutdown_grace: 500ms
max_connections: 10
)",
                                   &c);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(c.socket, "@kshield");
  EXPECT_EQ(c.socket_mode, 0660u);
  EXPECT_EQ(c.admin_socket, "/run/admin.sock");
  EXPECT_EQ(c.http, "off");
  EXPECT_EQ(c.allow_uid, "0,1000");
  EXPECT_EQ(c.probe_interval.count(), 2000);
  EXPECT_EQ(c.shutdown_grace.count(), 500);
  EXPECT_EQ(c.max_connections, 10);
  EXPECT_TRUE(ValidateConfig(c).ok());
}

TEST(ConfigTest, UnknownKeyIsNamed) {
  KmsConfig c;
  absl::Status s = ApplyYamlConfig("socket: /x\nsokcet_mode: 600\n", &c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("unknown config key \"sokcet_mode\""), std::string::npos) << s;
}

TEST(ConfigTest, BadValuesAreErrors) {
  const char* bad[] = {
      "socket_mode: 0999",  "socket_mode: abc",        "probe_interval: soon",
      "max_connections: x", "allow_uid: {a: b}",       "- a\n- b",
      "socket: [1, 2]",     "probe_interval: -5s",     "{{{{",
  };
  for (const char* y : bad) {
    KmsConfig c;
    EXPECT_FALSE(ApplyYamlConfig(y, &c).ok()) << y;
  }
}

TEST(ConfigTest, CrossFieldValidation) {
  KmsConfig c;
  c.admin_socket = c.socket;
  EXPECT_FALSE(ValidateConfig(c).ok());
  c = KmsConfig();
  c.provider = "vault";
  absl::Status s = ValidateConfig(c);
  EXPECT_NE(s.message().find("unknown provider \"vault\""), std::string::npos);
  c = KmsConfig();
  c.probe_interval = std::chrono::milliseconds(1);
  EXPECT_FALSE(ValidateConfig(c).ok());
}

TEST(ConfigTest, Durations) {
  EXPECT_EQ(ParseDuration("5s")->count(), 5000);
  EXPECT_EQ(ParseDuration("250ms")->count(), 250);
  EXPECT_EQ(ParseDuration("2m")->count(), 120000);
  EXPECT_EQ(ParseDuration("3")->count(), 3000);
  EXPECT_FALSE(ParseDuration("").ok());
  EXPECT_FALSE(ParseDuration("s").ok());
}

// Spellings the former parser took without a test, and the Go-style ones common/duration.h adds.
TEST(ConfigTest, DurationSpellings) {
  EXPECT_EQ(ParseDuration("1.5s")->count(), 1500);
  EXPECT_EQ(ParseDuration("0.5")->count(), 500);
  EXPECT_EQ(ParseDuration(".5m")->count(), 30000);
  EXPECT_EQ(ParseDuration("+5s")->count(), 5000);
  EXPECT_EQ(ParseDuration("0")->count(), 0);
  EXPECT_EQ(ParseDuration("1h30m")->count(), 5400000);
  EXPECT_EQ(ParseDuration("86400000m")->count(), int64_t{86400000} * 60000);  // the old ceiling
  for (const char* bad : {"nan", "inf", "5 s", "1e3ms", "-5s", "5S", "99999999999h"}) {
    EXPECT_FALSE(ParseDuration(bad).ok()) << bad;
  }
  // Errors from the config file name the key.
  KmsConfig c;
  absl::Status s = ApplyYamlConfig("shutdown_grace: 5x\n", &c);
  EXPECT_NE(s.message().find("shutdown_grace: invalid duration \"5x\": unknown unit"),
            std::string::npos)
      << s;
}

}  // namespace
}  // namespace kshield::kms
