// Sealing (issue 5 §5): the `local` provider seals its keyset with the platform's sealing key, so
// a keyset moved to another platform identity — another sim signer identity, another simulated
// machine, or off the `none` platform — does not open, and says why.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "common/testing/temp_dir.h"
#include "keys/keyset_manager.h"
#include "keys/keyset_store.h"
#include "keys/local_provider.h"
#include "support/kms_instance.h"
#include "tee/platform.h"

namespace kshield {
namespace {

using keys::KeysetManager;

struct Opened {
  absl::Status status;
  std::string primary_key_id;
  std::string ciphertext;  // a test message encrypted under the primary (when opened)
};

// Opens (or creates) the keyset at `dir`/keyset.bin with a local provider on `platform`.
Opened OpenKeyset(tee::Platform& platform, const std::string& keyset_path) {
  Opened out;
  auto provider = keys::LocalProvider::New(platform);
  if (!provider.ok()) {
    out.status = provider.status();
    return out;
  }
  KeysetManager mgr(std::make_unique<keys::FileKeysetStore>(keyset_path),
                    std::shared_ptr<keys::KeyProvider>(std::move(*provider)));
  out.status = mgr.Init();
  if (out.status.ok()) {
    out.primary_key_id = mgr.Current()->primary().key_id;
    auto ct = mgr.Current()->primary().kek->Encrypt("sealed message", "aad");
    EXPECT_TRUE(ct.ok());
    out.ciphertext = *ct;
  }
  return out;
}

std::unique_ptr<tee::Platform> Sim(const std::string& data_dir, const std::string& identity) {
  tee::PlatformOptions options{data_dir};
  options.sim_identity = identity;
  auto p = tee::MakePlatform("sim", options);
  EXPECT_TRUE(p.ok()) << p.status();
  return std::move(*p);
}

void ExpectRefusedAsOtherIdentity(const Opened& o, std::string_view platform_now) {
  ASSERT_FALSE(o.status.ok());
  EXPECT_EQ(o.status.code(), absl::StatusCode::kFailedPrecondition) << o.status;
  const std::string msg(o.status.message());
  EXPECT_NE(msg.find("sealed under a different platform identity"), std::string::npos) << msg;
  EXPECT_NE(msg.find("platform now: " + std::string(platform_now)), std::string::npos) << msg;
}

TEST(TeeSealingTest, KeysetSealedUnderOneSimIdentityDoesNotOpenUnderAnother) {
  testing::TempDir dir;
  const std::string keyset = dir.Sub("keyset.bin");
  auto alpha = Sim(dir.path(), "alpha");
  Opened created = OpenKeyset(*alpha, keyset);
  ASSERT_TRUE(created.status.ok()) << created.status;

  // Same identity, a "restart" (a new platform object from the same data dir): opens.
  auto alpha_again = Sim(dir.path(), "alpha");
  Opened reopened = OpenKeyset(*alpha_again, keyset);
  ASSERT_TRUE(reopened.status.ok()) << reopened.status;
  EXPECT_EQ(reopened.primary_key_id, created.primary_key_id);

  // Another signer identity on the same simulated machine: refused, and the file is untouched.
  const std::string before = testing::ReadWholeFile(keyset);
  auto beta = Sim(dir.path(), "beta");
  ExpectRefusedAsOtherIdentity(OpenKeyset(*beta, keyset), "sim");
  EXPECT_EQ(testing::ReadWholeFile(keyset), before);
}

TEST(TeeSealingTest, KeysetMovedToAnotherSimMachineOrPlatformDoesNotOpen) {
  testing::TempDir a, b;
  auto alpha = Sim(a.path(), "alpha");
  ASSERT_TRUE(OpenKeyset(*alpha, a.Sub("keyset.bin")).status.ok());
  std::filesystem::copy_file(a.Sub("keyset.bin"), b.Sub("keyset.bin"));
  // Same identity, same binary, another machine secret.
  auto elsewhere = Sim(b.path(), "alpha");
  ExpectRefusedAsOtherIdentity(OpenKeyset(*elsewhere, b.Sub("keyset.bin")), "sim");
  // The none platform in the same data directory.
  auto none = tee::MakePlatform("none", {a.path()});
  ASSERT_TRUE(none.ok());
  ExpectRefusedAsOtherIdentity(OpenKeyset(**none, a.Sub("keyset.bin")), "none");
}

TEST(TeeSealingTest, TsmHasNoSealingKeyAndTheLocalProviderSaysSo) {
  testing::TempDir root;
  std::filesystem::create_directories(root.Sub("sys/kernel/config/tsm/report"));
  tee::PlatformOptions options{root.Sub("data")};
  options.root = root.path();
  auto tsm = tee::MakePlatform("auto", options);
  ASSERT_TRUE(tsm.ok());
  ASSERT_EQ((*tsm)->name(), "tsm");
  Opened o = OpenKeyset(**tsm, root.Sub("keyset.bin"));
  ASSERT_FALSE(o.status.ok());
  EXPECT_EQ(o.status.code(), absl::StatusCode::kFailedPrecondition);
  const std::string msg(o.status.message());
  EXPECT_NE(msg.find("platform tsm"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pkcs11"), std::string::npos) << msg;
}

// The same rule end to end: kshield-kms --tee sim, restarted under another sim identity.
TEST(TeeSealingTest, KmsUnderAnotherSimIdentityRefusesToStart) {
  testing::TempDir dir;
  setenv("KSHIELD_TEE_SIM_IDENTITY", "alpha", 1);
  {
    testing::KmsInstance kms({"--tee", "sim"}, &dir);
    ASSERT_TRUE(kms.Start()) << kms.log();
    ::kshield::admin::v1::KeysetInfoResponse info;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    ASSERT_TRUE(kms.Admin()->KeysetInfo(&ctx, {}, &info).ok());
    EXPECT_EQ(info.tee_platform(), "sim");
    kms.Stop();
    EXPECT_EQ(kms.WaitExit(), 0);
  }
  setenv("KSHIELD_TEE_SIM_IDENTITY", "beta", 1);
  {
    testing::KmsInstance kms({"--tee", "sim"}, &dir);
    EXPECT_FALSE(kms.Start(std::chrono::seconds(10)));
    EXPECT_NE(kms.log().find("sealed under a different platform identity"), std::string::npos)
        << kms.log();
  }
  setenv("KSHIELD_TEE_SIM_IDENTITY", "alpha", 1);
  {
    testing::KmsInstance kms({"--tee", "sim"}, &dir);
    EXPECT_TRUE(kms.Start()) << kms.log();
  }
  unsetenv("KSHIELD_TEE_SIM_IDENTITY");
}

}  // namespace
}  // namespace kshield
