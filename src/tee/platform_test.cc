#include "tee/platform.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "tee/none_platform.h"

namespace kshield::tee {
namespace {

TEST(PlatformTest, AutoAndNoneGiveNone) {
  testing::TempDir dir;
  for (const char* name : {"auto", "none"}) {
    PlatformOptions options{dir.path()};
    options.root = dir.Sub("emptyroot");  // no TEE devices under it
    auto p = MakePlatform(name, options);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ((*p)->name(), "none");
  }
}

TEST(PlatformTest, UnknownPlatformNamesChoices) {
  auto p = MakePlatform("sgx-magic", {"/tmp"});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("available: auto, none, sim, gramine, occlum, tsm"), std::string::npos);
}

TEST(NonePlatformTest, SealingKeyIsCreatedOnceWithMode0600AndStable) {
  testing::TempDir dir;
  NonePlatform p(dir.Sub("data"));
  auto k1 = p.SealingKey();
  ASSERT_TRUE(k1.ok()) << k1.status();
  EXPECT_EQ(k1->size(), kSealingKeySize);
  struct stat st;
  ASSERT_EQ(stat(p.sealing_key_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto k2 = p.SealingKey();
  ASSERT_TRUE(k2.ok());
  EXPECT_TRUE(k1->Equals(*k2));
}

TEST(NonePlatformTest, RefusesGroupReadableKeyFile) {
  testing::TempDir dir;
  NonePlatform p(dir.path());
  ASSERT_TRUE(p.SealingKey().ok());
  ASSERT_EQ(chmod(p.sealing_key_path().c_str(), 0640), 0);
  auto k = p.SealingKey();
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("0640"), std::string::npos);
}

TEST(NonePlatformTest, RefusesWrongSizedKeyFile) {
  testing::TempDir dir;
  NonePlatform p(dir.path());
  ASSERT_TRUE(WriteFileAtomic(p.sealing_key_path(), "short", 0600).ok());
  auto k = p.SealingKey();
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), absl::StatusCode::kDataLoss);
  // The error never echoes the file contents.
  EXPECT_EQ(k.status().message().find("short"), std::string::npos);
}

TEST(NonePlatformTest, NoAttestation) {
  NonePlatform p("/nonexistent");
  auto q = p.Quote(std::string(64, '\0'));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace kshield::tee
