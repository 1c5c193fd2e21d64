// ExportVersion / ImportVersion of the kmip provider against a real PyKMIP server (the fixture of
// tests/kmip_provider_test.cc): a keyset backed up from one server is restored, by KMIP Register,
// onto a fresh server with an empty database, and every earlier ciphertext decrypts.
#include "common/testing/test_keys.h"
#include "keys/backup.h"

#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/testing/temp_dir.h"
#include "crypto/random.h"
#include "gmock/gmock.h"
#include "keys/dek_cipher.h"
#include "keys/keyset_manager.h"
#include "keys/keyset_store.h"
#include "keys/kmip/kmip_provider.h"
#include "kmip_server_fixture.h"

namespace kshield::keys::kmip {
namespace {

using kshield::testing::PyKmipServer;
using ::testing::HasSubstr;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

using Identity = kshield::testing::TestKey;

class KmipBackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!PyKmipServer::Available()) GTEST_SKIP() << PyKmipServer::SkipReason();
    StartServer(first_dir_);
  }
  void TearDown() override { log::SetSinkForTesting(nullptr); }

  void StartServer(const kshield::testing::TempDir& dir) {
    server_.reset();
    server_ = std::make_unique<PyKmipServer>(dir.path());
    ASSERT_TRUE(server_->setup_status().ok()) << server_->setup_status();
    absl::Status started = server_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }
  std::shared_ptr<KmipProvider> NewProvider() {
    auto p = KmipProvider::New(server_->ProviderOptions());
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::shared_ptr<KmipProvider>(std::move(*p)) : nullptr;
  }

  kshield::testing::TempDir first_dir_, second_dir_;
  std::unique_ptr<PyKmipServer> server_;
};

TEST_F(KmipBackupTest, BackupFromOneServerRestoresOntoAFreshOne) {
  std::vector<std::string> lines;
  std::mutex mu;
  log::SetSinkForTesting([&](std::string_view line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.emplace_back(line);
  });
  const Identity identity = kshield::testing::GenerateTestKey("RSA", 3072);
  std::vector<Wrapped> wrapped;
  std::vector<std::string> keks;
  std::string file;
  {
    auto provider = NewProvider();
    ASSERT_NE(provider, nullptr);
    KeysetManager mgr(std::make_unique<FileKeysetStore>(first_dir_.Sub("keyset.bin")), provider);
    ASSERT_TRUE(mgr.Init().ok());
    DekCipher cipher(&mgr);
    for (int i = 0; i < 3; ++i) {
      if (i > 0) {
        ASSERT_TRUE(mgr.Rotate().ok());
      }
      auto w = cipher.Wrap("0123456789abcdef0123456789abcdef", WrapFormat::kKmsV2);
      ASSERT_TRUE(w.ok()) << w.status();
      wrapped.push_back(*w);
    }
    auto record = FileKeysetStore(first_dir_.Sub("keyset.bin")).Load();
    ASSERT_TRUE(record.ok() && record->has_value());
    const uint64_t gets_before = provider->stats().gets;
    auto contents = ExportKeysetForBackup(**record, *provider, 1712345678);
    ASSERT_TRUE(contents.ok()) << contents.status();
    EXPECT_EQ(provider->stats().gets, gets_before + 3) << "one KMIP Get per version";
    EXPECT_EQ(contents->provider, "kmip");
    for (const BackupKek& k : contents->keks) keks.emplace_back(k.kek.UnsafeStringView());
    auto sealed = SealBackup(*contents, identity.public_pem);
    ASSERT_TRUE(sealed.ok()) << sealed.status();
    file = *sealed;

    // An object that is gone cannot be exported; the error names it.
    auto missing = provider->ExportVersion({(*record)->keyset_id(), 9}, "999999");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
    EXPECT_THAT(Msg(missing.status()), HasSubstr("KMIP object 999999"));
    EXPECT_EQ(provider->ExportVersion({(*record)->keyset_id(), 9}, "").status().code(),
              absl::StatusCode::kDataLoss);
  }

  // The KMIP server and its database are lost: a new one, empty.
  StartServer(second_dir_);
  auto provider = NewProvider();
  ASSERT_NE(provider, nullptr);
  auto contents = OpenBackup(file, identity.private_pem);
  ASSERT_TRUE(contents.ok()) << contents.status();
  auto record = ImportKeysetFromBackup(*contents, *provider);
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(provider->stats().registers, 3u);
  EXPECT_EQ(provider->stats().activates, 3u);
  EXPECT_EQ(server_->CountInLog("Processing operation: Register"), 3);
  for (const auto& v : record->versions()) {
    EXPECT_EQ(v.provider(), "kmip");
    EXPECT_FALSE(v.material().empty());
  }
  ASSERT_TRUE(FileKeysetStore(second_dir_.Sub("keyset.bin")).Save(*record).ok());
  KeysetManager mgr(std::make_unique<FileKeysetStore>(second_dir_.Sub("keyset.bin")), provider);
  absl::Status init = mgr.Init();
  ASSERT_TRUE(init.ok()) << init;
  DekCipher cipher(&mgr);
  for (const Wrapped& w : wrapped) {
    auto dek = cipher.Unwrap(w.ciphertext, w.key_id, WrapFormat::kKmsV2);
    ASSERT_TRUE(dek.ok()) << dek.status();
    EXPECT_EQ(*dek, "0123456789abcdef0123456789abcdef");
  }
  // The registered objects carry the provider's names, are Active and hold the backed-up keys.
  for (const auto& v : record->versions()) {
    const std::string name = provider->ObjectName({record->keyset_id(), v.version()});
    auto exported = provider->ExportVersion({record->keyset_id(), v.version()}, v.material());
    ASSERT_TRUE(exported.ok()) << exported.status();
    EXPECT_EQ(exported->UnsafeStringView(), keks[v.version() - 1]) << name;
  }
  // Rotation continues on the new server.
  ASSERT_TRUE(mgr.Rotate().ok());
  EXPECT_EQ(mgr.Current()->primary().version, 4u);

  // Importing a version whose name exists already warns and registers a new object.
  auto again = provider->ImportVersion({record->keyset_id(), 1}, contents->keks[0].kek);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_NE(*again, record->versions(0).material());
  auto short_key = provider->ImportVersion({record->keyset_id(), 1}, SecretBytes(16));
  EXPECT_EQ(short_key.status().code(), absl::StatusCode::kInvalidArgument);

  std::lock_guard<std::mutex> lock(mu);
  bool warned = false;
  for (const std::string& line : lines) {
    warned = warned || line.find("kmip.leftover_objects") != std::string::npos;
    for (const std::string& k : keks) {
      const std::string hex = absl::BytesToHexString(k);
      EXPECT_EQ(line.find(k), std::string::npos);
      EXPECT_EQ(line.find(hex), std::string::npos) << line;
      EXPECT_EQ(line.find(absl::AsciiStrToUpper(hex)), std::string::npos) << line;
      EXPECT_EQ(line.find(absl::Base64Escape(k)), std::string::npos) << line;
    }
  }
  EXPECT_TRUE(warned);
}

TEST_F(KmipBackupTest, ImportFailsCleanlyWhileTheServerIsDown) {
  auto provider = NewProvider();
  ASSERT_NE(provider, nullptr);
  server_->Kill();
  auto r = provider->ImportVersion({"00112233aabbccdd", 1}, crypto::RandomSecret(32));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(Msg(r.status()), HasSubstr("registering restored KEK version 1"));
}

}  // namespace
}  // namespace kshield::keys::kmip
