// Integration tests of the pkcs11 key provider against a real SoftHSM2 token made by each test in
// a temp SOFTHSM2_CONF (tokens initialised with softhsm2-util, master keys made with opensc's
// pkcs11-tool).
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/status.h"
#include "crypto/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "keys/dek_cipher.h"
#include "keys/keyset_manager.h"
#include "keys/keyset_store.h"
#include "keys/pkcs11/options.h"
#include "keys/pkcs11/provider.h"
#include "keys/pkcs11/session_pool.h"
#include "pkcs11_softhsm.h"
#include "support/process.h"

namespace kshield::keys {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::SoftHsm;
using ::testing::StartsWith;

constexpr char kToken[] = "kshield-test";
constexpr char kPin[] = "pin-7f3a9c1e-never-log";
constexpr char kMaster[] = "kshield-master";

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

class Pkcs11ProviderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string missing = SoftHsm::MissingTools();
    if (!missing.empty()) GTEST_SKIP() << missing;
    hsm_ = std::make_unique<SoftHsm>();
    absl::Status s = hsm_->InitToken(kToken, kPin);
    ASSERT_TRUE(s.ok()) << s;
  }
  void CreateMasterKey() {
    absl::Status s = hsm_->KeygenWithPkcs11Tool(kToken, kPin, kMaster);
    ASSERT_TRUE(s.ok()) << s;
  }
  Pkcs11Options Opts(Pkcs11Mode mode) {
    return hsm_->Options(kToken, hsm_->WritePinFile(kPin), mode);
  }
  std::shared_ptr<KeyProvider> MustProvider(const Pkcs11Options& o) {
    auto p = NewPkcs11Provider(o);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::shared_ptr<KeyProvider>(std::move(*p)) : nullptr;
  }
  std::string KeysetPath() const { return hsm_->dir() + "/keyset.bin"; }

  std::unique_ptr<SoftHsm> hsm_;
};

TEST_F(Pkcs11ProviderTest, CachedRoundTripWithRotationAndReload) {
  CreateMasterKey();  // made by pkcs11-tool: keys from a standard tool work
  const Pkcs11Options opts = Opts(Pkcs11Mode::kCached);
  const std::string dek1 = crypto::RandomString(32), dek2 = crypto::RandomString(32);
  Wrapped w1, w2, w1beta;
  std::string keyset_id;
  {
    auto provider = MustProvider(opts);
    ASSERT_NE(provider, nullptr);
    EXPECT_EQ(provider->name(), "pkcs11");
    KeysetManager mgr(std::make_unique<FileKeysetStore>(KeysetPath()), provider);
    ASSERT_TRUE(mgr.Init().ok());
    keyset_id = mgr.Current()->keyset_id();
    DekCipher cipher(&mgr);
    auto w = cipher.Wrap(dek1, WrapFormat::kKmsV2);
    ASSERT_TRUE(w.ok()) << w.status();
    w1 = *w;
    auto back = cipher.Unwrap(w1.ciphertext, w1.key_id, WrapFormat::kKmsV2);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, dek1);

    auto rotated = mgr.Rotate();
    ASSERT_TRUE(rotated.ok()) << rotated.status();
    EXPECT_EQ(rotated->previous_key_id, w1.key_id);
    EXPECT_NE(rotated->key_id, w1.key_id);
    w = cipher.Wrap(dek2, WrapFormat::kKmsV2);
    ASSERT_TRUE(w.ok()) << w.status();
    w2 = *w;
    EXPECT_EQ(w2.key_id, rotated->key_id);
    w = cipher.Wrap(dek1, WrapFormat::kKmsV1beta1);
    ASSERT_TRUE(w.ok()) << w.status();
    w1beta = *w;
    EXPECT_EQ(*cipher.Unwrap(w1.ciphertext, w1.key_id, WrapFormat::kKmsV2), dek1);
    EXPECT_EQ(*cipher.Unwrap(w2.ciphertext, w2.key_id, WrapFormat::kKmsV2), dek2);
    EXPECT_EQ(*cipher.Unwrap(w1beta.ciphertext, std::nullopt, WrapFormat::kKmsV1beta1), dek1);
  }

  // The keyset file holds only wrapped KEKs: "P11C1" || iv || ct || tag, each version different.
  auto record = FileKeysetStore(KeysetPath()).Load();
  ASSERT_TRUE(record.ok() && record->has_value());
  ASSERT_EQ((*record)->versions_size(), 2);
  for (const auto& v : (*record)->versions()) {
    EXPECT_THAT(v.material(), StartsWith("P11C1"));
    EXPECT_EQ(v.material().size(), 5u + 12 + 32 + 16);
    EXPECT_EQ(v.provider(), "pkcs11");
  }
  EXPECT_NE((*record)->versions(0).material(), (*record)->versions(1).material());

  // A fresh provider and manager (as after a restart) open both versions from the file.
  auto provider = MustProvider(opts);
  ASSERT_NE(provider, nullptr);
  KeysetManager mgr(std::make_unique<FileKeysetStore>(KeysetPath()), provider);
  ASSERT_TRUE(mgr.Init().ok());
  EXPECT_EQ(mgr.Current()->keyset_id(), keyset_id);
  DekCipher cipher(&mgr);
  auto back1 = cipher.Unwrap(w1.ciphertext, w1.key_id, WrapFormat::kKmsV2);
  auto back2 = cipher.Unwrap(w2.ciphertext, w2.key_id, WrapFormat::kKmsV2);
  ASSERT_TRUE(back1.ok() && back2.ok());
  EXPECT_EQ(*back1, dek1);
  EXPECT_EQ(*back2, dek2);
  EXPECT_TRUE(provider->Probe().ok());
}

TEST_F(Pkcs11ProviderTest, CachedKeysetUnderAnotherMasterKeyFailsClearly) {
  CreateMasterKey();
  const Pkcs11Options opts = Opts(Pkcs11Mode::kCached);
  {
    auto provider = MustProvider(opts);
    ASSERT_NE(provider, nullptr);
    KeysetManager mgr(std::make_unique<FileKeysetStore>(KeysetPath()), provider);
    ASSERT_TRUE(mgr.Init().ok());
  }
  // The operator replaces the master key with a new one under the same label.
  ASSERT_TRUE(hsm_->DeleteKeyWithPkcs11Tool(kToken, kPin, kMaster).ok());
  CreateMasterKey();
  auto provider = MustProvider(opts);
  ASSERT_NE(provider, nullptr);
  KeysetManager mgr(std::make_unique<FileKeysetStore>(KeysetPath()), provider);
  absl::Status s = mgr.Init();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(Msg(s), HasSubstr("wrapped by a different master key"));
  EXPECT_THAT(Msg(s), HasSubstr("'kshield-master'"));
}

TEST_F(Pkcs11ProviderTest, DirectRoundTripAuthFailuresAndHsmKeys) {
  const Pkcs11Options opts = Opts(Pkcs11Mode::kDirect);  // no master key needed
  const std::string dek = crypto::RandomString(32);
  Wrapped w1;
  std::string keyset_id;
  {
    auto provider = MustProvider(opts);
    ASSERT_NE(provider, nullptr);
    KeysetManager mgr(std::make_unique<FileKeysetStore>(KeysetPath()), provider);
    ASSERT_TRUE(mgr.Init().ok());
    keyset_id = mgr.Current()->keyset_id();
    DekCipher cipher(&mgr);
    auto w = cipher.Wrap(dek, WrapFormat::kKmsV2);
    ASSERT_TRUE(w.ok()) << w.status();
    w1 = *w;
    auto back = cipher.Unwrap(w1.ciphertext, w1.key_id, WrapFormat::kKmsV2);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, dek);

    // Tampered ciphertext: the HSM refuses the tag (SoftHSM says CKR_GENERAL_ERROR).
    for (size_t pos : {w1.ciphertext.size() - 1, w1.ciphertext.size() - 20}) {
      std::string bad = w1.ciphertext;
      bad[pos] ^= 0x01;
      std::string_view reason;
      auto r = cipher.Unwrap(bad, w1.key_id, WrapFormat::kKmsV2, &reason);
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(Msg(r.status()), crypto::kAuthFailed);
      EXPECT_EQ(reason, "auth");
    }

    // The version's Aead itself: wrong AAD, tampered and truncated input.
    const crypto::Aead& kek = *mgr.Current()->primary().kek;
    auto ct = kek.Encrypt("secret-seed", "aad-1");
    ASSERT_TRUE(ct.ok()) << ct.status();
    EXPECT_EQ(ct->size(), 12u + 11 + 16);  // nonce || ct || tag
    EXPECT_EQ(*kek.Decrypt(*ct, "aad-1"), "secret-seed");
    auto wrong_aad = kek.Decrypt(*ct, "aad-2");
    EXPECT_EQ(wrong_aad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Msg(wrong_aad.status()), crypto::kAuthFailed);
    std::string tampered = *ct;
    tampered[0] ^= 0x80;  // the nonce
    EXPECT_EQ(Msg(kek.Decrypt(tampered, "aad-1").status()), crypto::kAuthFailed);
    EXPECT_EQ(Msg(kek.Decrypt(ct->substr(0, 20), "aad-1").status()), crypto::kAuthFailed);
    EXPECT_EQ(Msg(kek.Decrypt("", "aad-1").status()), crypto::kAuthFailed);
    auto again = kek.Encrypt("secret-seed", "aad-1");
    ASSERT_TRUE(again.ok());
    EXPECT_NE(*again, *ct) << "nonces must be fresh";

    auto rotated = mgr.Rotate();
    ASSERT_TRUE(rotated.ok()) << rotated.status();
    EXPECT_EQ(*cipher.Unwrap(w1.ciphertext, w1.key_id, WrapFormat::kKmsV2), dek);
    EXPECT_TRUE(provider->Probe().ok());
  }

  // Each version is a sensitive, non-extractable token key labelled <master>-<keyset>-<version>.
  const std::string objects = hsm_->ListObjects(kToken, kPin);
  for (int v : {1, 2}) {
    const std::string label = std::string(kMaster) + "-" + keyset_id + "-" + std::to_string(v);
    EXPECT_THAT(objects, HasSubstr(label));
  }
  size_t access_lines = 0;
  for (size_t pos = objects.find("Access:"); pos != std::string::npos;
       pos = objects.find("Access:", pos + 1)) {
    const std::string line = objects.substr(pos, objects.find('\n', pos) - pos);
    EXPECT_THAT(line, HasSubstr("never extractable"));
    EXPECT_THAT(line, HasSubstr("always sensitive"));
    ++access_lines;
  }
  EXPECT_EQ(access_lines, 2u);

  auto record = FileKeysetStore(KeysetPath()).Load();
  ASSERT_TRUE(record.ok() && record->has_value());
  for (const auto& v : (*record)->versions()) EXPECT_THAT(v.material(), StartsWith("P11D1"));

  // Reload: the version keys are found again by label + CKA_ID.
  auto provider = MustProvider(opts);
  ASSERT_NE(provider, nullptr);
  KeysetManager mgr(std::make_unique<FileKeysetStore>(KeysetPath()), provider);
  ASSERT_TRUE(mgr.Init().ok());
  DekCipher cipher(&mgr);
  auto back = cipher.Unwrap(w1.ciphertext, w1.key_id, WrapFormat::kKmsV2);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, dek);
}

// A version key deleted from the token behind kshield's back is a clear error, not an outage and
// not a retry storm: the cached handle is dropped, the lookup says what is missing.
TEST_F(Pkcs11ProviderTest, DirectVersionKeyDeletedFromTheTokenIsNamed) {
  auto provider = MustProvider(Opts(Pkcs11Mode::kDirect));
  ASSERT_NE(provider, nullptr);
  KeysetManager mgr(std::make_unique<FileKeysetStore>(KeysetPath()), provider);
  ASSERT_TRUE(mgr.Init().ok());
  DekCipher cipher(&mgr);
  auto w = cipher.Wrap("0123456789abcdef0123456789abcdef", WrapFormat::kKmsV2);
  ASSERT_TRUE(w.ok()) << w.status();
  const std::string label = std::string(kMaster) + "-" + mgr.Current()->keyset_id() + "-1";
  ASSERT_TRUE(hsm_->DeleteKeyWithPkcs11Tool(kToken, kPin, label).ok());

  auto again = cipher.Wrap("0123456789abcdef0123456789abcdef", WrapFormat::kKmsV2);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), absl::StatusCode::kNotFound) << again.status();
  EXPECT_THAT(Msg(again.status()), HasSubstr(label));
  // Decrypt reveals nothing to its caller...
  auto back = cipher.Unwrap(w->ciphertext, w->key_id, WrapFormat::kKmsV2);
  EXPECT_EQ(Msg(back.status()), crypto::kAuthFailed);
  // ...but the probe tells the operator.
  absl::Status probe = provider->Probe();
  EXPECT_EQ(probe.code(), absl::StatusCode::kNotFound) << probe;
  EXPECT_THAT(Msg(probe), HasSubstr(label));
}

TEST_F(Pkcs11ProviderTest, DirectDestroyVersionRemovesOnlyThatHsmKey) {
  auto provider = MustProvider(Opts(Pkcs11Mode::kDirect));
  ASSERT_NE(provider, nullptr);
  auto m1 = provider->CreateVersion({"00112233aabbccdd", 1});
  auto m2 = provider->CreateVersion({"00112233aabbccdd", 2});
  ASSERT_TRUE(m1.ok() && m2.ok());
  ASSERT_TRUE(provider->OpenVersion({"00112233aabbccdd", 1}, *m1).ok());
  absl::Status s = provider->DestroyVersion({"00112233aabbccdd", 1}, *m1);
  ASSERT_TRUE(s.ok()) << s;
  const std::string objects = hsm_->ListObjects(kToken, kPin);
  EXPECT_THAT(objects, Not(HasSubstr("kshield-master-00112233aabbccdd-1")));
  EXPECT_THAT(objects, HasSubstr("kshield-master-00112233aabbccdd-2"));
  auto reopened = provider->OpenVersion({"00112233aabbccdd", 1}, *m1);
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(reopened.status()), HasSubstr("is missing from token"));
  EXPECT_TRUE(provider->OpenVersion({"00112233aabbccdd", 2}, *m2).ok());
  // Material from another provider or a corrupted file is refused without an HSM call.
  EXPECT_EQ(provider->OpenVersion({"00112233aabbccdd", 3}, "L1xxxx").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(provider->OpenVersion({"00112233aabbccdd", 3}, "P11D1short").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(provider->OpenVersion({"00112233aabbccdd", 3}, "P11C1short").status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(Pkcs11ProviderTest, WrongPinIsAClearErrorWithoutThePin) {
  CreateMasterKey();
  Pkcs11Options opts = hsm_->Options(kToken, hsm_->WritePinFile("wrong-pin-4242"));
  auto p = NewPkcs11Provider(opts);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition) << p.status();
  EXPECT_THAT(Msg(p.status()), HasSubstr("refused the PIN"));
  EXPECT_THAT(Msg(p.status()), HasSubstr("CKR_PIN_INCORRECT"));
  EXPECT_THAT(Msg(p.status()), HasSubstr(opts.pin_file));
  EXPECT_THAT(Msg(p.status()), Not(HasSubstr("wrong-pin-4242")));
  EXPECT_THAT(Msg(p.status()), Not(HasSubstr(kPin)));
}

TEST_F(Pkcs11ProviderTest, MissingTokenLabelIsAClearError) {
  CreateMasterKey();
  Pkcs11Options opts = hsm_->Options("no-such-token", hsm_->WritePinFile(kPin));
  auto p = NewPkcs11Provider(opts);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kNotFound) << p.status();
  EXPECT_THAT(Msg(p.status()), HasSubstr("no token labelled 'no-such-token'"));
  EXPECT_THAT(Msg(p.status()), HasSubstr("'kshield-test'"));  // what is there instead
}

TEST_F(Pkcs11ProviderTest, MissingMasterKeyNamesLabelAndTheCommandThatCreatesIt) {
  Pkcs11Options opts = Opts(Pkcs11Mode::kCached);
  auto p = NewPkcs11Provider(opts);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition) << p.status();
  EXPECT_THAT(Msg(p.status()), HasSubstr("master key 'kshield-master' not found"));
  const std::string hint =
      "pkcs11-tool --module /usr/lib/softhsm/libsofthsm2.so --token-label 'kshield-test' "
      "--login --keygen --key-type AES:32 --label 'kshield-master'";
  EXPECT_THAT(Msg(p.status()), HasSubstr(hint));
  // Following the hint (plus the PIN) makes it work.
  std::string out;
  ASSERT_EQ(testing::RunCommand("SOFTHSM2_CONF=" + hsm_->conf() + " " +
                                    hint.substr(0, hint.find(" --keygen")) + " --pin '" + kPin +
                                    "'" + hint.substr(hint.find(" --keygen")),
                                &out),
            0)
      << out;
  auto again = NewPkcs11Provider(opts);
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST_F(Pkcs11ProviderTest, PinFileReadableByOthersIsRefused) {
  CreateMasterKey();
  Pkcs11Options opts = hsm_->Options(kToken, hsm_->WritePinFile(kPin, 0644));
  auto p = NewPkcs11Provider(opts);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(p.status()), HasSubstr("0644"));
  EXPECT_THAT(Msg(p.status()), Not(HasSubstr(kPin)));
}

TEST_F(Pkcs11ProviderTest, PinFromEnvironmentVariable) {
  CreateMasterKey();
  Pkcs11Options opts = hsm_->Options(kToken, "");
  opts.pin_env = "KSHIELD_TEST_HSM_PIN";
  setenv("KSHIELD_TEST_HSM_PIN", kPin, 1);
  auto p = NewPkcs11Provider(opts);
  unsetenv("KSHIELD_TEST_HSM_PIN");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE((*p)->Probe().ok());
}

TEST_F(Pkcs11ProviderTest, ConcurrentDirectCallsShareASmallPool) {
  Pkcs11Options opts = Opts(Pkcs11Mode::kDirect);
  opts.sessions = 4;
  opts.timeout = std::chrono::seconds(10);  // 2 shared cores: contention, not outage
  auto provider = MustProvider(opts);
  ASSERT_NE(provider, nullptr);
  KeysetManager mgr(std::make_unique<FileKeysetStore>(KeysetPath()), provider);
  ASSERT_TRUE(mgr.Init().ok());
  DekCipher cipher(&mgr);
  constexpr int kThreads = 16, kCalls = 40;
  std::atomic<int> ok{0};
  std::mutex mu;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kCalls; ++i) {
        const std::string dek = crypto::RandomString(32);
        auto w = cipher.Wrap(dek, WrapFormat::kKmsV2);
        absl::StatusOr<std::string> back =
            w.ok() ? cipher.Unwrap(w->ciphertext, w->key_id, WrapFormat::kKmsV2)
                   : absl::StatusOr<std::string>(w.status());
        if (back.ok() && *back == dek) {
          ++ok;
        } else {
          std::lock_guard<std::mutex> lock(mu);
          errors.push_back(back.ok() ? "mismatch" : Msg(back.status()));
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kCalls);
  EXPECT_TRUE(errors.empty()) << errors.size() << " errors, first: " << errors.front();
}

// The pool's deadline holds even when a call hangs inside the module: simulated by an op that
// blocks longer than the timeout on the pool's only session.
TEST_F(Pkcs11ProviderTest, SessionPoolNeverWaitsPastTheDeadline) {
  using Clock = std::chrono::steady_clock;
  pkcs11::SessionPoolOptions po;
  po.module_path = testing::kSoftHsmModule;
  po.token_label = kToken;
  po.pin = SecretBytes::CopyFrom(std::string_view(kPin));
  po.pin_source = "test";
  po.sessions = 1;
  po.timeout = std::chrono::milliseconds(300);
  auto pool = pkcs11::SessionPool::New(std::move(po));
  ASSERT_TRUE(pool.ok()) << pool.status();

  auto release = std::make_shared<std::atomic<bool>>(false);
  auto hung_op = [release](pkcs11::OpContext&) {
    while (!release->load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return absl::OkStatus();
  };
  const auto t0 = Clock::now();
  absl::Status hung = (*pool)->Run("hung call", hung_op);
  const auto hung_took = Clock::now() - t0;
  EXPECT_EQ(hung.code(), absl::StatusCode::kUnavailable) << hung;
  EXPECT_THAT(Msg(hung), HasSubstr("did not complete within 300ms"));
  EXPECT_LT(hung_took, std::chrono::milliseconds(600));

  // The only session is still busy: the next call waits at most the timeout too.
  const auto t1 = Clock::now();
  absl::Status queued =
      (*pool)->Run("queued call", [](pkcs11::OpContext&) { return absl::OkStatus(); });
  EXPECT_EQ(queued.code(), absl::StatusCode::kUnavailable) << queued;
  EXPECT_LT(Clock::now() - t1, std::chrono::milliseconds(600));

  // When the call returns, the session serves again.
  release->store(true);
  EXPECT_TRUE(testing::WaitFor(
      [&] {
        return (*pool)
            ->Run("after",
                  [](pkcs11::OpContext& c) -> absl::Status {
                    CK_TOKEN_INFO info;
                    CK_RV rv = c.fn()->C_GetTokenInfo(c.slot(), &info);
                    return rv == CKR_OK ? absl::OkStatus() : c.Fail("C_GetTokenInfo", rv);
                  })
            .ok();
      },
      std::chrono::seconds(5)));
}

TEST_F(Pkcs11ProviderTest, PinNeverAppearsInLogsOrErrors) {
  std::mutex mu;
  std::vector<std::string> lines;
  log::SetLevel(log::Level::kDebug);
  log::SetSinkForTesting([&](std::string_view line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.emplace_back(line);
  });
  std::vector<std::string> errors;
  const char kWrongPin[] = "wrong-pin-31337";
  CreateMasterKey();
  {
    // A refused PIN, a world-readable PIN file, a missing token.
    auto p = NewPkcs11Provider(hsm_->Options(kToken, hsm_->WritePinFile(kWrongPin)));
    errors.push_back(Msg(p.status()));
    p = NewPkcs11Provider(hsm_->Options(kToken, hsm_->WritePinFile(kPin, 0644)));
    errors.push_back(Msg(p.status()));
    p = NewPkcs11Provider(hsm_->Options("absent", hsm_->WritePinFile(kPin)));
    errors.push_back(Msg(p.status()));
    // A full life: both modes, rotation, an outage and the recovery.
    for (Pkcs11Mode mode : {Pkcs11Mode::kCached, Pkcs11Mode::kDirect}) {
      Pkcs11Options o = Opts(mode);
      o.timeout = std::chrono::milliseconds(1000);
      auto provider = MustProvider(o);
      ASSERT_NE(provider, nullptr);
      KeysetManager mgr(std::make_unique<FileKeysetStore>(hsm_->dir() + "/keyset-" +
                                                          std::string(Pkcs11ModeName(mode))),
                        provider);
      ASSERT_TRUE(mgr.Init().ok());
      ASSERT_TRUE(mgr.Rotate().ok());
      DekCipher cipher(&mgr);
      ASSERT_TRUE(hsm_->MoveTokensAway().ok());
      errors.push_back(Msg(provider->Probe()));
      auto r = mgr.Rotate();
      errors.push_back(Msg(r.status()));
      auto w = cipher.Wrap("0123456789abcdef", WrapFormat::kKmsV2);
      if (mode == Pkcs11Mode::kDirect) {
        errors.push_back(Msg(w.status()));
      } else {
        EXPECT_TRUE(w.ok()) << w.status();  // cached: local
      }
      ASSERT_TRUE(hsm_->MoveTokensBack().ok());
      EXPECT_TRUE(
          testing::WaitFor([&] { return provider->Probe().ok(); }, std::chrono::seconds(10)));
    }
  }
  log::SetSinkForTesting(nullptr);
  log::SetLevel(log::Level::kInfo);
  ASSERT_FALSE(lines.empty());
  bool saw_pin_rejected = false, saw_unavailable = false, saw_recovered = false;
  for (const std::string& line : lines) {
    EXPECT_THAT(line, Not(HasSubstr(kPin)));
    EXPECT_THAT(line, Not(HasSubstr(kWrongPin)));
    saw_pin_rejected |= line.find("pkcs11.pin_rejected") != std::string::npos;
    saw_unavailable |= line.find("pkcs11.token_unavailable") != std::string::npos;
    saw_recovered |= line.find("pkcs11.token_recovered") != std::string::npos;
  }
  EXPECT_TRUE(saw_pin_rejected && saw_unavailable && saw_recovered)
      << "the scenarios above should have logged these events";
  for (const std::string& e : errors) {
    EXPECT_FALSE(e.empty());
    EXPECT_THAT(e, Not(HasSubstr(kPin)));
    EXPECT_THAT(e, Not(HasSubstr(kWrongPin)));
  }
}

}  // namespace
}  // namespace kshield::keys
