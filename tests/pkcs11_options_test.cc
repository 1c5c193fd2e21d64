// Unit tests of the pkcs11 provider's options parser, PIN loading and return-value helpers.
// No PKCS#11 module is loaded.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <string>

#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "keys/pkcs11/options.h"
#include "keys/pkcs11/p11.h"

namespace kshield::keys {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const char kBase[] =
    "module: /usr/lib/softhsm/libsofthsm2.so\n"
    "token_label: kshield\n"
    "pin_file: /etc/kshield/pin\n";

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

absl::Status Parse(const std::string& yaml, Pkcs11Options* out) {
  return ParsePkcs11OptionsYaml(yaml, out);
}

TEST(Pkcs11Options, MinimalConfigGetsDefaults) {
  Pkcs11Options o;
  ASSERT_TRUE(Parse(kBase, &o).ok());
  EXPECT_EQ(o.module, "/usr/lib/softhsm/libsofthsm2.so");
  EXPECT_EQ(o.token_label, "kshield");
  EXPECT_EQ(o.pin_file, "/etc/kshield/pin");
  EXPECT_EQ(o.pin_env, "");
  EXPECT_EQ(o.master_key_label, "kshield-master");
  EXPECT_EQ(o.mode, Pkcs11Mode::kCached);
  EXPECT_EQ(o.sessions, 8u);
  EXPECT_EQ(o.timeout, std::chrono::milliseconds(2000));
}

TEST(Pkcs11Options, EveryKeySet) {
  Pkcs11Options o;
  absl::Status s = Parse(
      "module: /opt/hsm/lib.so\n"
      "token_label: prod-hsm\n"
      "pin_env: HSM_PIN\n"
      "master_key_label: root-2024\n"
      "mode: direct\n"
      "sessions: 32\n"
      "timeout: 750ms\n",
      &o);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(o.pin_env, "HSM_PIN");
  EXPECT_EQ(o.master_key_label, "root-2024");
  EXPECT_EQ(o.mode, Pkcs11Mode::kDirect);
  EXPECT_EQ(o.sessions, 32u);
  EXPECT_EQ(o.timeout, std::chrono::milliseconds(750));
  ASSERT_TRUE(Parse(std::string(kBase) + "timeout: 3s\n", &o).ok());
  EXPECT_EQ(o.timeout, std::chrono::milliseconds(3000));
  ASSERT_TRUE(Parse(std::string(kBase) + "timeout: 1m\nmode: cached\n", &o).ok());
  EXPECT_EQ(o.timeout, std::chrono::milliseconds(60000));
  EXPECT_EQ(o.mode, Pkcs11Mode::kCached);
}

TEST(Pkcs11Options, TimeoutSpellings) {
  const std::pair<const char*, int64_t> good[] = {
      {"2", 2000},                                     // a bare number is seconds
      {"0.5", 500},     {"1.5s", 1500}, {"10ms", 10},  // the minimum is inclusive
      {"300s", 300000}, {"5m", 300000},                // and so is the maximum
      {"1m30s", 90000}, {"+2s", 2000},
  };
  for (const auto& [text, ms] : good) {
    Pkcs11Options o;
    absl::Status s = Parse(std::string(kBase) + "timeout: " + text + "\n", &o);
    ASSERT_TRUE(s.ok()) << text << ": " << s;
    EXPECT_EQ(o.timeout, std::chrono::milliseconds(ms)) << text;
  }
  for (const char* text : {"9.9ms", "300001ms", "nan", "1e3ms", "2x", "\"2 s\""}) {
    Pkcs11Options o;
    absl::Status s = Parse(std::string(kBase) + "timeout: " + text + "\n", &o);
    EXPECT_FALSE(s.ok()) << text;
    EXPECT_THAT(Msg(s), HasSubstr("pkcs11 option \"timeout\": ")) << text;
  }
}

struct BadCase {
  const char* name;
  std::string yaml;
  const char* want;  // substring of the error
};

TEST(Pkcs11Options, EachBadFieldIsNamed) {
  const std::string no_pin =
      "module: /usr/lib/softhsm/libsofthsm2.so\n"
      "token_label: kshield\n";
  const BadCase cases[] = {
      {"unknown key", std::string(kBase) + "slot: 0\n", "unknown pkcs11 option \"slot\""},
      {"typo", std::string(kBase) + "token-label: x\n", "unknown pkcs11 option \"token-label\""},
      {"mode", std::string(kBase) + "mode: fast\n", "\"mode\": must be cached or direct"},
      {"sessions zero", std::string(kBase) + "sessions: 0\n", "\"sessions\""},
      {"sessions text", std::string(kBase) + "sessions: many\n", "\"sessions\""},
      {"sessions huge", std::string(kBase) + "sessions: 100000\n", "\"sessions\""},
      {"sessions negative", std::string(kBase) + "sessions: -1\n", "\"sessions\""},
      {"timeout text", std::string(kBase) + "timeout: soon\n", "\"timeout\""},
      {"timeout negative", std::string(kBase) + "timeout: -1s\n", "\"timeout\""},
      {"timeout too small", std::string(kBase) + "timeout: 1ms\n", "\"timeout\""},
      {"timeout too large", std::string(kBase) + "timeout: 1000m\n", "\"timeout\""},
      {"module missing", "token_label: a\npin_file: /p\n", "\"module\": is required"},
      {"module relative", "module: lib.so\ntoken_label: a\npin_file: /p\n",
       "\"module\": must be an absolute path"},
      {"token label missing", "module: /m.so\npin_file: /p\n", "\"token_label\": is required"},
      {"token label too long", "module: /m.so\npin_file: /p\ntoken_label: " + std::string(33, 'x'),
       "\"token_label\": is longer than 32"},
      {"no pin source", no_pin, "exactly one of \"pin_file\" and \"pin_env\""},
      {"two pin sources", std::string(kBase) + "pin_env: X\n",
       "exactly one of \"pin_file\" and \"pin_env\""},
      {"pin file relative", no_pin + "pin_file: pin.txt\n", "\"pin_file\": must be an absolute"},
      {"master label empty", std::string(kBase) + "master_key_label: \"\"\n",
       "\"master_key_label\""},
      {"non-scalar value", std::string(kBase) + "sessions: [1, 2]\n",
       "\"sessions\": must be a scalar"},
      {"not a mapping", "- a\n- b\n", "must be a YAML mapping"},
      {"empty", "", "missing"},
      {"bad yaml", "module: [unclosed\n", "not valid YAML"},
  };
  for (const BadCase& c : cases) {
    Pkcs11Options o;
    o.token_label = "untouched";
    absl::Status s = Parse(c.yaml, &o);
    EXPECT_FALSE(s.ok()) << c.name;
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.name << ": " << s;
    EXPECT_THAT(Msg(s), HasSubstr(c.want)) << c.name;
    EXPECT_EQ(o.token_label, "untouched") << c.name << ": output modified on error";
  }
}

TEST(Pkcs11Options, YamlNodeApiWrapsExceptions) {
  // A node whose scalar cannot be iterated as a map: yaml-cpp would throw if we let it.
  YAML::Node scalar = YAML::Load("just a string");
  Pkcs11Options o;
  absl::Status s = ParsePkcs11Options(scalar, &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  YAML::Node undefined = YAML::Load("a: 1")["nope"];
  EXPECT_FALSE(ParsePkcs11Options(undefined, &o).ok());
}

class Pkcs11PinTest : public ::testing::Test {
 protected:
  std::string WriteFile(const std::string& name, const std::string& text, mode_t mode) {
    std::string path = tmp_.Sub(name);
    std::ofstream(path) << text;
    chmod(path.c_str(), mode);
    return path;
  }
  testing::TempDir tmp_;
};

TEST_F(Pkcs11PinTest, PinFile0600IsReadAndNewlineDropped) {
  Pkcs11Options o;
  o.pin_file = WriteFile("pin", "s3cret-pin\n", 0600);
  auto pin = LoadPkcs11Pin(o);
  ASSERT_TRUE(pin.ok()) << pin.status();
  EXPECT_EQ(std::string(pin->UnsafeStringView()), "s3cret-pin");
  o.pin_file = WriteFile("pin-crlf", "abcd\r\n", 0400);
  pin = LoadPkcs11Pin(o);
  ASSERT_TRUE(pin.ok()) << pin.status();
  EXPECT_EQ(std::string(pin->UnsafeStringView()), "abcd");
}

TEST_F(Pkcs11PinTest, PinFile0644IsRefusedWithoutShowingThePin) {
  Pkcs11Options o;
  o.pin_file = WriteFile("pin", "visible-pin-123\n", 0644);
  auto pin = LoadPkcs11Pin(o);
  ASSERT_FALSE(pin.ok());
  EXPECT_EQ(pin.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(pin.status()), HasSubstr("0644"));
  EXPECT_THAT(Msg(pin.status()), HasSubstr(o.pin_file));
  EXPECT_THAT(Msg(pin.status()), Not(HasSubstr("visible-pin-123")));
  o.pin_file = WriteFile("pin-g", "x\n", 0640);
  EXPECT_FALSE(LoadPkcs11Pin(o).ok());
}

// A Kubernetes Secret volume (defaultMode: 0400): pin -> ..data/pin -> ..<timestamp>/pin.
TEST_F(Pkcs11PinTest, PinFromASecretVolumeThroughSymlinks) {
  ASSERT_EQ(mkdir(tmp_.Sub("..2026_11_28_06_00_00.123").c_str(), 0755), 0);
  WriteFile("..2026_11_28_06_00_00.123/pin", "k8s-pin\n", 0400);
  ASSERT_EQ(symlink("..2026_11_28_06_00_00.123", tmp_.Sub("..data").c_str()), 0);
  ASSERT_EQ(symlink("..data/pin", tmp_.Sub("pin").c_str()), 0);
  Pkcs11Options o;
  o.pin_file = tmp_.Sub("pin");
  auto pin = LoadPkcs11Pin(o);
  ASSERT_TRUE(pin.ok()) << pin.status();
  EXPECT_EQ(std::string(pin->UnsafeStringView()), "k8s-pin");
  // The kubelet's default mode (0644) is still refused, behind the links too.
  ASSERT_EQ(chmod(tmp_.Sub("..2026_11_28_06_00_00.123/pin").c_str(), 0644), 0);
  pin = LoadPkcs11Pin(o);
  ASSERT_FALSE(pin.ok());
  EXPECT_THAT(Msg(pin.status()), HasSubstr("has mode 0644"));
  EXPECT_THAT(Msg(pin.status()), Not(HasSubstr("k8s-pin")));
}

TEST_F(Pkcs11PinTest, EmptyOrMissingPinFileIsAnError) {
  Pkcs11Options o;
  o.pin_file = WriteFile("empty", "\n", 0600);
  EXPECT_THAT(Msg(LoadPkcs11Pin(o).status()), HasSubstr("is empty"));
  o.pin_file = tmp_.Sub("absent");
  EXPECT_FALSE(LoadPkcs11Pin(o).ok());
}

TEST_F(Pkcs11PinTest, PinFromEnvironment) {
  Pkcs11Options o;
  o.pin_env = "KSHIELD_TEST_PKCS11_PIN";
  setenv(o.pin_env.c_str(), "env-pin-987", 1);
  auto pin = LoadPkcs11Pin(o);
  ASSERT_TRUE(pin.ok()) << pin.status();
  EXPECT_EQ(std::string(pin->UnsafeStringView()), "env-pin-987");
  EXPECT_EQ(DescribePinSource(o), "environment variable KSHIELD_TEST_PKCS11_PIN");
  unsetenv(o.pin_env.c_str());
  auto missing = LoadPkcs11Pin(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(Msg(missing.status()), HasSubstr("KSHIELD_TEST_PKCS11_PIN is not set"));
}

TEST(Pkcs11Rv, NamesAndClasses) {
  EXPECT_EQ(pkcs11::RvName(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT (0xa0)");
  EXPECT_EQ(pkcs11::RvName(CKR_GENERAL_ERROR), "CKR_GENERAL_ERROR (0x5)");
  EXPECT_THAT(pkcs11::RvName(CKR_VENDOR_DEFINED + 7), HasSubstr("VENDOR"));
  for (CK_RV rv : {CKR_SESSION_HANDLE_INVALID, CKR_SESSION_CLOSED, CKR_TOKEN_NOT_PRESENT,
                   CKR_DEVICE_REMOVED, CKR_DEVICE_ERROR, CKR_USER_NOT_LOGGED_IN}) {
    EXPECT_TRUE(pkcs11::IsTokenGoneRv(rv)) << pkcs11::RvName(rv);
  }
  for (CK_RV rv : {CKR_OK, CKR_GENERAL_ERROR, CKR_ENCRYPTED_DATA_INVALID, CKR_PIN_INCORRECT,
                   CKR_OBJECT_HANDLE_INVALID}) {
    EXPECT_FALSE(pkcs11::IsTokenGoneRv(rv)) << pkcs11::RvName(rv);
  }
  EXPECT_TRUE(pkcs11::IsStaleHandleRv(CKR_OBJECT_HANDLE_INVALID));
  EXPECT_TRUE(pkcs11::IsStaleHandleRv(CKR_KEY_HANDLE_INVALID));
  EXPECT_FALSE(pkcs11::IsStaleHandleRv(CKR_GENERAL_ERROR));
  EXPECT_TRUE(pkcs11::IsPinRejectedRv(CKR_PIN_INCORRECT));
  EXPECT_TRUE(pkcs11::IsPinRejectedRv(CKR_PIN_LOCKED));
  EXPECT_FALSE(pkcs11::IsPinRejectedRv(CKR_DEVICE_ERROR));
  const unsigned char label[8] = {'a', 'b', ' ', ' ', ' ', ' ', ' ', ' '};
  EXPECT_EQ(pkcs11::PaddedField(label, sizeof(label)), "ab");
}

}  // namespace
}  // namespace kshield::keys
