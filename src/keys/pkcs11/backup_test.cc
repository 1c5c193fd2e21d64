// ExportVersion / ImportVersion of the pkcs11 provider against a real SoftHSM2 token (made per
// test in a temp SOFTHSM2_CONF, master keys from opensc's pkcs11-tool, as in
// tests/pkcs11_provider_test.cc): cached mode backs up and restores onto a token with another
// master key; direct mode refuses both directions.
#include "common/testing/log_capture.h"
#include "common/testing/test_keys.h"
#include "keys/backup.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/log.h"
#include "common/status.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "keys/dek_cipher.h"
#include "keys/keyset_manager.h"
#include "keys/keyset_store.h"
#include "keys/pkcs11/provider.h"
#include "pkcs11_softhsm.h"

namespace kshield::keys {
namespace {

using ::kshield::testing::LogCapture;
using ::testing::HasSubstr;
using testing::SoftHsm;

constexpr char kToken[] = "kshield-backup";
constexpr char kPin[] = "pin-5d2e8b71-never-log";
constexpr char kMaster[] = "kshield-master";

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

using Identity = kshield::testing::TestKey;

class Pkcs11BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string missing = SoftHsm::MissingTools();
    if (!missing.empty()) GTEST_SKIP() << missing;
    NewToken();
  }
  // A fresh SoftHSM (new temp dir, new token, new master key). The previous one, and every
  // provider using it, must be gone first (SoftHSM reads SOFTHSM2_CONF at C_Initialize).
  void NewToken() {
    hsm_.reset();
    hsm_ = std::make_unique<SoftHsm>();
    absl::Status s = hsm_->InitToken(kToken, kPin);
    ASSERT_TRUE(s.ok()) << s;
    s = hsm_->KeygenWithPkcs11Tool(kToken, kPin, kMaster);
    ASSERT_TRUE(s.ok()) << s;
  }
  std::shared_ptr<KeyProvider> Provider(Pkcs11Mode mode) {
    auto p = NewPkcs11Provider(hsm_->Options(kToken, hsm_->WritePinFile(kPin), mode));
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::shared_ptr<KeyProvider>(std::move(*p)) : nullptr;
  }
  std::string KeysetPath() const { return hsm_->dir() + "/keyset.bin"; }

  std::unique_ptr<SoftHsm> hsm_;
};

TEST_F(Pkcs11BackupTest, CachedBackupRestoresOntoAnotherTokenAndMasterKey) {
  const Identity identity = kshield::testing::GenerateTestKey("X25519");
  struct Issued {
    Wrapped w;
    std::string dek;
  };
  std::vector<Issued> issued;
  std::string file;
  std::vector<std::string> kek_hex;
  LogCapture logs;
  {
    auto provider = Provider(Pkcs11Mode::kCached);
    ASSERT_NE(provider, nullptr);
    KeysetManager mgr(std::make_unique<FileKeysetStore>(KeysetPath()), provider);
    ASSERT_TRUE(mgr.Init().ok());
    DekCipher cipher(&mgr);
    for (int i = 0; i < 3; ++i) {
      std::string dek = crypto::RandomString(32);
      auto w = cipher.Wrap(dek, WrapFormat::kKmsV2);
      ASSERT_TRUE(w.ok()) << w.status();
      issued.push_back({*w, dek});
      ASSERT_TRUE(mgr.Rotate().ok());
    }
    auto record = FileKeysetStore(KeysetPath()).Load();
    ASSERT_TRUE(record.ok() && record->has_value());
    // Export is one unwrap on the token: the same key OpenVersion uses.
    const auto& v1 = (*record)->versions(0);
    auto kek = provider->ExportVersion({(*record)->keyset_id(), v1.version()}, v1.material());
    ASSERT_TRUE(kek.ok()) << kek.status();
    ASSERT_EQ(kek->size(), 32u);
    auto aead = crypto::AesGcmAead::New(kek->Clone());
    ASSERT_TRUE(aead.ok());
    auto own = provider->OpenVersion({(*record)->keyset_id(), v1.version()}, v1.material());
    ASSERT_TRUE(own.ok());
    auto ct = (*own)->Encrypt("probe", "aad");
    ASSERT_TRUE(ct.ok());
    EXPECT_EQ(*(*aead)->Decrypt(*ct, "aad"), "probe");
    // Material moved to another version is refused (AAD binds keyset and version).
    auto moved = provider->ExportVersion({(*record)->keyset_id(), 99}, v1.material());
    EXPECT_EQ(moved.status().code(), absl::StatusCode::kFailedPrecondition) << moved.status();

    auto contents = ExportKeysetForBackup(**record, *provider, 1712345678);
    ASSERT_TRUE(contents.ok()) << contents.status();
    EXPECT_EQ(contents->provider, "pkcs11");
    EXPECT_EQ(contents->keks.size(), 4u);
    for (const BackupKek& k : contents->keks) {
      kek_hex.push_back(crypto::HexEncode(k.kek.UnsafeStringView()));
    }
    auto sealed = SealBackup(*contents, identity.public_pem);
    ASSERT_TRUE(sealed.ok()) << sealed.status();
    file = *sealed;
  }

  // The HSM is lost: a new token with a new master key, and no keyset file.
  NewToken();
  auto provider = Provider(Pkcs11Mode::kCached);
  ASSERT_NE(provider, nullptr);
  auto contents = OpenBackup(file, identity.private_pem);
  ASSERT_TRUE(contents.ok()) << contents.status();
  auto record = ImportKeysetFromBackup(*contents, *provider);
  ASSERT_TRUE(record.ok()) << record.status();
  for (const auto& v : record->versions()) {
    EXPECT_EQ(v.material().substr(0, 5), "P11C1");
    EXPECT_EQ(v.provider(), "pkcs11");
  }
  ASSERT_TRUE(FileKeysetStore(KeysetPath()).Save(*record).ok());
  KeysetManager mgr(std::make_unique<FileKeysetStore>(KeysetPath()), provider);
  absl::Status init = mgr.Init();
  ASSERT_TRUE(init.ok()) << init;
  DekCipher cipher(&mgr);
  for (const Issued& i : issued) {
    auto back = cipher.Unwrap(i.w.ciphertext, i.w.key_id, WrapFormat::kKmsV2);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, i.dek);
  }
  EXPECT_TRUE(mgr.Rotate().ok());

  const std::string all_logs = logs.Text();
  EXPECT_FALSE(all_logs.empty());
  for (const std::string& hex : kek_hex) {
    EXPECT_EQ(all_logs.find(hex.substr(0, 16)), std::string::npos) << "KEK in the logs";
  }
  EXPECT_EQ(all_logs.find(kPin), std::string::npos);

  auto short_key = provider->ImportVersion({contents->keyset_id, 50}, SecretBytes(16));
  EXPECT_EQ(short_key.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(Pkcs11BackupTest, DirectModeKeysAreNonExtractable) {
  auto provider = Provider(Pkcs11Mode::kDirect);
  ASSERT_NE(provider, nullptr);
  KeysetManager mgr(std::make_unique<FileKeysetStore>(KeysetPath()), provider);
  ASSERT_TRUE(mgr.Init().ok());
  auto record = FileKeysetStore(KeysetPath()).Load();
  ASSERT_TRUE(record.ok() && record->has_value());
  const auto& v = (*record)->versions(0);
  auto kek = provider->ExportVersion({(*record)->keyset_id(), v.version()}, v.material());
  ASSERT_FALSE(kek.ok());
  EXPECT_EQ(kek.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(kek.status()), HasSubstr("pkcs11 direct mode keys are non-extractable"));
  EXPECT_THAT(Msg(kek.status()), HasSubstr(kToken));

  auto contents = ExportKeysetForBackup(**record, *provider, 1);
  ASSERT_FALSE(contents.ok());
  EXPECT_THAT(Msg(contents.status()), HasSubstr("non-extractable"));
  EXPECT_THAT(Msg(contents.status()), HasSubstr("exporting KEK version 1"));

  auto imported = provider->ImportVersion({(*record)->keyset_id(), 7}, crypto::RandomSecret(32));
  ASSERT_FALSE(imported.ok());
  EXPECT_EQ(imported.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(imported.status()), HasSubstr("pkcs11 direct mode keys are non-extractable"));
  EXPECT_THAT(Msg(imported.status()), HasSubstr("mode: cached"));

  // Material that is neither form is refused without a token call.
  auto junk = provider->ExportVersion({(*record)->keyset_id(), 1}, "L1xxxx");
  EXPECT_EQ(junk.status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace kshield::keys
