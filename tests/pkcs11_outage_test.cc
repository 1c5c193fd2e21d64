// Outages of the pkcs11 provider (issue 3 §4): the SoftHSM token directory is moved away and back
// under a running provider, which is never recreated.
#include <chrono>
#include <iostream>
#include <string>

#include "common/status.h"
#include "crypto/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "keys/dek_cipher.h"
#include "keys/keyset_manager.h"
#include "keys/keyset_store.h"
#include "keys/pkcs11/provider.h"
#include "pkcs11_softhsm.h"
#include "support/process.h"

namespace kshield::keys {
namespace {

using ::testing::HasSubstr;
using testing::SoftHsm;
using Clock = std::chrono::steady_clock;

constexpr char kToken[] = "kshield-outage";
constexpr char kPin[] = "outage-pin-1234";
constexpr auto kTimeout = std::chrono::milliseconds(1500);

class Pkcs11OutageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string missing = SoftHsm::MissingTools();
    if (!missing.empty()) GTEST_SKIP() << missing;
    hsm_ = std::make_unique<SoftHsm>();
    absl::Status s = hsm_->InitToken(kToken, kPin);
    ASSERT_TRUE(s.ok()) << s;
  }
  std::shared_ptr<KeyProvider> Provider(Pkcs11Mode mode) {
    Pkcs11Options o = hsm_->Options(kToken, hsm_->WritePinFile(kPin), mode);
    o.timeout = kTimeout;
    o.sessions = 2;
    auto p = NewPkcs11Provider(o);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::shared_ptr<KeyProvider>(std::move(*p)) : nullptr;
  }
  std::string KeysetPath() const { return hsm_->dir() + "/keyset.bin"; }
  bool ProbeRecovers(KeyProvider& p) {
    return testing::WaitFor([&] { return p.Probe().ok(); }, std::chrono::seconds(15));
  }

  std::unique_ptr<SoftHsm> hsm_;
};

TEST_F(Pkcs11OutageTest, CachedModeKeepsServingLoadedVersionsAndRecovers) {
  ASSERT_TRUE(hsm_->KeygenWithPkcs11Tool(kToken, kPin, "kshield-master").ok());
  auto provider = Provider(Pkcs11Mode::kCached);
  ASSERT_NE(provider, nullptr);
  KeysetManager mgr(std::make_unique<FileKeysetStore>(KeysetPath()), provider);
  ASSERT_TRUE(mgr.Init().ok());
  DekCipher cipher(&mgr);
  const std::string dek = crypto::RandomString(32);
  auto before_outage = cipher.Wrap(dek, WrapFormat::kKmsV2);
  ASSERT_TRUE(before_outage.ok());
  ASSERT_TRUE(provider->Probe().ok());
  const std::string keyset_bytes = testing::ReadWholeFile(KeysetPath());
  const std::string primary = mgr.Current()->primary().key_id;

  ASSERT_TRUE(hsm_->MoveTokensAway().ok());

  absl::Status probe = provider->Probe();
  EXPECT_EQ(probe.code(), absl::StatusCode::kUnavailable) << probe;
  EXPECT_THAT(std::string(probe.message()), HasSubstr(kToken));

  // Loaded versions are in protected memory: wraps and unwraps never touch the token.
  for (int i = 0; i < 20; ++i) {
    auto w = cipher.Wrap(dek, WrapFormat::kKmsV2);
    ASSERT_TRUE(w.ok()) << w.status();
    auto back = cipher.Unwrap(w->ciphertext, w->key_id, WrapFormat::kKmsV2);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, dek);
  }
  auto old = cipher.Unwrap(before_outage->ciphertext, before_outage->key_id, WrapFormat::kKmsV2);
  ASSERT_TRUE(old.ok()) << old.status();

  // Rotate fails cleanly: nothing written, the primary unchanged.
  const auto t0 = Clock::now();
  auto rotated = mgr.Rotate();
  EXPECT_LT(Clock::now() - t0, kTimeout + std::chrono::milliseconds(500));
  ASSERT_FALSE(rotated.ok());
  EXPECT_EQ(rotated.status().code(), absl::StatusCode::kUnavailable) << rotated.status();
  EXPECT_THAT(std::string(rotated.status().message()), HasSubstr("rotate"));
  EXPECT_EQ(testing::ReadWholeFile(KeysetPath()), keyset_bytes);
  EXPECT_EQ(mgr.Current()->primary().key_id, primary);

  ASSERT_TRUE(hsm_->MoveTokensBack().ok());

  // Same provider object: the next probe finds the token again and logs in.
  ASSERT_TRUE(ProbeRecovers(*provider)) << provider->Probe();
  auto rotated_now = mgr.Rotate();
  ASSERT_TRUE(rotated_now.ok()) << rotated_now.status();
  EXPECT_EQ(rotated_now->previous_key_id, primary);
  auto w = cipher.Wrap(dek, WrapFormat::kKmsV2);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->key_id, rotated_now->key_id);
  EXPECT_EQ(*cipher.Unwrap(before_outage->ciphertext, before_outage->key_id, WrapFormat::kKmsV2),
            dek);
  // And a reload of the file (a restart) opens everything, through the same provider.
  KeysetManager reloaded(std::make_unique<FileKeysetStore>(KeysetPath()), provider);
  ASSERT_TRUE(reloaded.Init().ok());
  EXPECT_EQ(reloaded.Current()->primary().key_id, rotated_now->key_id);
}

TEST_F(Pkcs11OutageTest, DirectModeFailsFastWithUnavailableAndRecovers) {
  auto provider = Provider(Pkcs11Mode::kDirect);
  ASSERT_NE(provider, nullptr);
  KeysetManager mgr(std::make_unique<FileKeysetStore>(KeysetPath()), provider);
  ASSERT_TRUE(mgr.Init().ok());
  DekCipher cipher(&mgr);
  const std::string dek = crypto::RandomString(32);
  auto before_outage = cipher.Wrap(dek, WrapFormat::kKmsV2);
  ASSERT_TRUE(before_outage.ok()) << before_outage.status();
  ASSERT_TRUE(provider->Probe().ok());
  const std::string keyset_bytes = testing::ReadWholeFile(KeysetPath());

  ASSERT_TRUE(hsm_->MoveTokensAway().ok());

  // Every call fails with UNAVAILABLE (so the apiserver retries) before the deadline: never
  // "authentication failed", never a hang.
  Clock::duration slowest{0};
  for (int i = 0; i < 10; ++i) {
    auto t0 = Clock::now();
    auto w = cipher.Wrap(dek, WrapFormat::kKmsV2);
    slowest = std::max(slowest, Clock::now() - t0);
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.status().code(), absl::StatusCode::kUnavailable) << w.status();

    t0 = Clock::now();
    std::string_view reason;
    auto back = cipher.Unwrap(before_outage->ciphertext, before_outage->key_id, WrapFormat::kKmsV2,
                              &reason);
    slowest = std::max(slowest, Clock::now() - t0);
    ASSERT_FALSE(back.ok());
    EXPECT_EQ(back.status().code(), absl::StatusCode::kUnavailable) << back.status();
    EXPECT_EQ(reason, "provider_unavailable");
  }
  std::cout << "direct mode, token away: slowest failing call took "
            << std::chrono::duration_cast<std::chrono::microseconds>(slowest).count() << "us\n";
  EXPECT_LT(slowest, kTimeout)
      << "a call took " << std::chrono::duration_cast<std::chrono::milliseconds>(slowest).count()
      << "ms";
  EXPECT_EQ(provider->Probe().code(), absl::StatusCode::kUnavailable);
  auto rotated = mgr.Rotate();
  EXPECT_EQ(rotated.status().code(), absl::StatusCode::kUnavailable) << rotated.status();
  EXPECT_EQ(testing::ReadWholeFile(KeysetPath()), keyset_bytes);

  ASSERT_TRUE(hsm_->MoveTokensBack().ok());

  ASSERT_TRUE(ProbeRecovers(*provider)) << provider->Probe();
  auto back = cipher.Unwrap(before_outage->ciphertext, before_outage->key_id, WrapFormat::kKmsV2);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, dek);
  auto w = cipher.Wrap(dek, WrapFormat::kKmsV2);
  ASSERT_TRUE(w.ok()) << w.status();
  auto rotated_now = mgr.Rotate();
  ASSERT_TRUE(rotated_now.ok()) << rotated_now.status();
  auto w2 = cipher.Wrap(dek, WrapFormat::kKmsV2);
  ASSERT_TRUE(w2.ok()) << w2.status();
  EXPECT_EQ(w2->key_id, rotated_now->key_id);
  EXPECT_EQ(*cipher.Unwrap(w2->ciphertext, w2->key_id, WrapFormat::kKmsV2), dek);
}

// Direct mode recovers on its own, on the next call, even without a Probe.
TEST_F(Pkcs11OutageTest, DirectModeRecoversOnTheNextCallWithoutProbe) {
  auto provider = Provider(Pkcs11Mode::kDirect);
  ASSERT_NE(provider, nullptr);
  KeysetManager mgr(std::make_unique<FileKeysetStore>(KeysetPath()), provider);
  ASSERT_TRUE(mgr.Init().ok());
  DekCipher cipher(&mgr);
  const std::string dek = crypto::RandomString(32);
  ASSERT_TRUE(hsm_->MoveTokensAway().ok());
  EXPECT_FALSE(cipher.Wrap(dek, WrapFormat::kKmsV2).ok());
  ASSERT_TRUE(hsm_->MoveTokensBack().ok());
  EXPECT_TRUE(testing::WaitFor([&] { return cipher.Wrap(dek, WrapFormat::kKmsV2).ok(); },
                               std::chrono::seconds(15)));
}

}  // namespace
}  // namespace kshield::keys
