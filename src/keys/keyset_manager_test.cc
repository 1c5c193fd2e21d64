#include "keys/keyset_manager.h"

#include <gtest/gtest.h>

#include <thread>

#include "common/testing/temp_dir.h"
#include "keys/dek_cipher.h"
#include "keys/key_id.h"
#include "keys/local_provider.h"
#include "tee/none_platform.h"

namespace kshield::keys {
namespace {

struct Env {
  testing::TempDir dir;
  tee::NonePlatform platform{dir.path()};
  std::unique_ptr<KeysetManager> Manager() {
    auto p = LocalProvider::New(platform);
    if (!p.ok()) abort();
    return std::make_unique<KeysetManager>(
        std::make_unique<FileKeysetStore>(dir.Sub("keyset.bin")),
        std::shared_ptr<KeyProvider>(std::move(*p)));
  }
};

TEST(KeysetManagerTest, CreatesKeysetOnFirstInit) {
  Env env;
  auto m = env.Manager();
  ASSERT_TRUE(m->Init().ok());
  auto ks = m->Current();
  EXPECT_TRUE(IsValidKeysetId(ks->keyset_id()));
  EXPECT_EQ(ks->versions().size(), 1u);
  EXPECT_EQ(ks->primary().version, 1u);
  EXPECT_EQ(ks->primary().key_id, FormatKeyId(ks->keyset_id(), 1));
}

TEST(KeysetManagerTest, ReloadKeepsKeysAndCiphertextsDecrypt) {
  Env env;
  std::string ct, key_id, keyset;
  {
    auto m = env.Manager();
    ASSERT_TRUE(m->Init().ok());
    DekCipher c(m.get());
    auto w = c.Wrap("0123456789abcdef0123456789abcdef", WrapFormat::kKmsV2);
    ASSERT_TRUE(w.ok());
    ct = w->ciphertext;
    key_id = w->key_id;
    keyset = m->Current()->keyset_id();
  }
  auto m = env.Manager();
  ASSERT_TRUE(m->Init().ok());
  EXPECT_EQ(m->Current()->keyset_id(), keyset);
  DekCipher c(m.get());
  auto p = c.Unwrap(ct, key_id, WrapFormat::kKmsV2);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, "0123456789abcdef0123456789abcdef");
}

TEST(KeysetManagerTest, RotatePromotesNewVersionAndOldStillDecrypts) {
  Env env;
  auto m = env.Manager();
  ASSERT_TRUE(m->Init().ok());
  DekCipher c(m.get());
  auto w1 = c.Wrap("dek-one", WrapFormat::kKmsV2);
  ASSERT_TRUE(w1.ok());
  auto r = m->Rotate();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->previous_key_id, w1->key_id);
  EXPECT_NE(r->key_id, w1->key_id);
  auto w2 = c.Wrap("dek-two", WrapFormat::kKmsV2);
  ASSERT_TRUE(w2.ok());
  EXPECT_EQ(w2->key_id, r->key_id);
  EXPECT_EQ(*c.Unwrap(w1->ciphertext, w1->key_id, WrapFormat::kKmsV2), "dek-one");
  EXPECT_EQ(*c.Unwrap(w2->ciphertext, w2->key_id, WrapFormat::kKmsV2), "dek-two");
  auto ks = m->Current();
  ASSERT_EQ(ks->versions().size(), 2u);
  EXPECT_EQ(ks->versions()[0].state, KeyState::kActive);
  EXPECT_EQ(ks->versions()[1].state, KeyState::kPrimary);
}

TEST(KeysetManagerTest, VersionsNeverReusedAfterRetire) {
  Env env;
  auto m = env.Manager();
  ASSERT_TRUE(m->Init().ok());
  ASSERT_TRUE(m->Rotate().ok());
  ASSERT_TRUE(m->Retire(1).ok());
  auto r = m->Rotate();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(m->Current()->primary().version, 3u);
  // Primary cannot be retired; unknown version is NotFound.
  EXPECT_EQ(m->Retire(3).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(m->Retire(99).code(), absl::StatusCode::kNotFound);
}

TEST(KeysetManagerTest, RetiredVersionNoLongerDecrypts) {
  Env env;
  auto m = env.Manager();
  ASSERT_TRUE(m->Init().ok());
  DekCipher c(m.get());
  auto w1 = c.Wrap("dek", WrapFormat::kKmsV2);
  ASSERT_TRUE(m->Rotate().ok());
  ASSERT_TRUE(m->Retire(1).ok());
  std::string_view reason;
  auto p = c.Unwrap(w1->ciphertext, w1->key_id, WrapFormat::kKmsV2, &reason);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(reason, "retired");
  EXPECT_NE(p.status().message().find("retired"), std::string::npos);
}

TEST(KeysetManagerTest, SealedKeysetDoesNotOpenUnderAnotherSealingKey) {
  Env env;
  {
    auto m = env.Manager();
    ASSERT_TRUE(m->Init().ok());
  }
  // Another "platform identity": a different sealing key in the same data dir.
  ASSERT_EQ(unlink((env.dir.path() + "/sealing.key").c_str()), 0);
  auto m = env.Manager();
  absl::Status s = m->Init();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("different platform identity"), std::string::npos) << s;
}

TEST(KeysetManagerTest, ValidateRejectsBrokenRecords) {
  v1::KeysetRecord good;
  good.set_format(1);
  good.set_keyset_id("0123456789abcdef");
  good.set_next_version(3);
  auto* a = good.add_versions();
  a->set_version(1);
  a->set_state(v1::KekVersionRecord::ACTIVE);
  auto* b = good.add_versions();
  b->set_version(2);
  b->set_state(v1::KekVersionRecord::PRIMARY);
  ASSERT_TRUE(KeysetManager::Validate(good).ok());

  auto mutate = [&](auto fn) {
    v1::KeysetRecord r = good;
    fn(r);
    return KeysetManager::Validate(r);
  };
  EXPECT_FALSE(mutate([](auto& r) { r.set_format(2); }).ok());
  EXPECT_FALSE(mutate([](auto& r) { r.set_keyset_id("xyz"); }).ok());
  EXPECT_FALSE(mutate([](auto& r) { r.set_next_version(2); }).ok());
  EXPECT_FALSE(mutate([](auto& r) { r.mutable_versions(0)->set_version(2); }).ok());
  EXPECT_FALSE(mutate([](auto& r) { r.mutable_versions(0)->set_version(0); }).ok());
  EXPECT_FALSE(
      mutate([](auto& r) { r.mutable_versions(0)->set_state(v1::KekVersionRecord::PRIMARY); })
          .ok());
  EXPECT_FALSE(
      mutate([](auto& r) { r.mutable_versions(1)->set_state(v1::KekVersionRecord::ACTIVE); })
          .ok());
  EXPECT_FALSE(mutate([](auto& r) {
                 r.mutable_versions(0)->set_state(v1::KekVersionRecord::STATE_UNSPECIFIED);
               }).ok());
}

TEST(KeysetManagerTest, ConcurrentWrapsDuringRotationsNeverFail) {
  Env env;
  auto m = env.Manager();
  ASSERT_TRUE(m->Init().ok());
  DekCipher c(m.get());
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, done{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&] {
      while (!stop) {
        auto w = c.Wrap("0123456789abcdef0123456789abcdef", WrapFormat::kKmsV2);
        if (!w.ok()) {
          ++failures;
          continue;
        }
        auto p = c.Unwrap(w->ciphertext, w->key_id, WrapFormat::kKmsV2);
        if (!p.ok()) ++failures;
        ++done;
      }
    });
  }
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(m->Rotate().ok());
  stop = true;
  for (auto& w : workers) w.join();
  EXPECT_EQ(failures, 0);
  EXPECT_GT(done, 0);
  EXPECT_EQ(m->Current()->primary().version, 21u);
}

}  // namespace
}  // namespace kshield::keys
