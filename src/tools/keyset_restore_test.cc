// RestoreKeyset / BuildRestoredRecord with providers the test controls: what is written, what is
// refused, and that nothing reaches the provider or the disk when a restore is refused.
#include "tools/keyset_restore.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "crypto/aead.h"
#include "crypto/random.h"
#include "keys/keyset_store.h"

namespace kshield::tools {
namespace {

using kshield::keys::v1::KekVersionRecord;

// Material = "m<version>"; remembers every imported KEK. `lie` hands out a different key on open.
class ImportingProvider final : public keys::KeyProvider {
 public:
  std::string_view name() const override { return "importing"; }
  absl::StatusOr<std::string> CreateVersion(const keys::KekContext&) override {
    return absl::UnimplementedError("not in this test");
  }
  absl::StatusOr<std::shared_ptr<const crypto::Aead>> OpenVersion(const keys::KekContext& ctx,
                                                                   std::string_view m) override {
    if (m != absl::StrCat("m", ctx.version)) return absl::DataLossError("bad material");
    auto a = crypto::AesGcmAead::New(lie ? crypto::RandomSecret(32)
                                         : imported.at(ctx.version).Clone());
    if (!a.ok()) return a.status();
    return std::shared_ptr<const crypto::Aead>(std::move(*a));
  }
  absl::Status Probe() override { return absl::OkStatus(); }
  absl::StatusOr<std::string> ImportVersion(const keys::KekContext& ctx,
                                            const SecretBytes& kek) override {
    ++imports;
    imported[ctx.version] = kek.Clone();
    return absl::StrCat("m", ctx.version);
  }
  std::map<uint32_t, SecretBytes> imported;
  int imports = 0;
  bool lie = false;
};

// Only the interface's defaults for export / import (a direct HSM mode).
class NoImportProvider final : public keys::KeyProvider {
 public:
  std::string_view name() const override { return "direct"; }
  absl::StatusOr<std::string> CreateVersion(const keys::KekContext&) override { return ""; }
  absl::StatusOr<std::shared_ptr<const crypto::Aead>> OpenVersion(const keys::KekContext&,
                                                                   std::string_view) override {
    return absl::UnimplementedError("not in this test");
  }
  absl::Status Probe() override { return absl::OkStatus(); }
};

keys::BackupContents Contents() {
  keys::BackupContents c;
  c.keyset_id = "0123456789abcdef";
  c.next_version = 5;
  c.provider = "local";
  c.created_unix = 1700000000;
  const KekVersionRecord::State states[] = {KekVersionRecord::RETIRED, KekVersionRecord::ACTIVE,
                                            KekVersionRecord::PRIMARY};
  uint32_t versions[] = {1, 3, 4};  // 2 was removed for good; numbers are never reused
  for (int i = 0; i < 3; ++i) {
    keys::BackupKek k;
    k.version = versions[i];
    k.state = states[i];
    k.created_unix = 1600000000 + i;
    k.kek = crypto::RandomSecret(32);
    c.keks.push_back(std::move(k));
  }
  return c;
}

TEST(KeysetRestoreTest, WritesTheBackupsKeysetUnderTheNewProvider) {
  testing::TempDir dir;
  ImportingProvider p;
  keys::BackupContents c = Contents();
  auto r = RestoreKeyset(c, p, {dir.Sub("keyset.bin"), false});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->keyset_id, c.keyset_id);
  EXPECT_EQ(r->primary_key_id, "ksh1:0123456789abcdef:4");
  EXPECT_EQ(r->versions, 3);
  EXPECT_EQ(r->provider, "importing");
  EXPECT_EQ(r->backup_provider, "local");
  EXPECT_EQ(r->replaced_path, "");
  auto loaded = keys::FileKeysetStore(dir.Sub("keyset.bin")).Load();
  ASSERT_TRUE(loaded.ok() && loaded->has_value());
  const auto& rec = **loaded;
  EXPECT_EQ(rec.keyset_id(), c.keyset_id);
  EXPECT_EQ(rec.next_version(), 5u);
  ASSERT_EQ(rec.versions_size(), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(rec.versions(i).version(), c.keks[i].version);
    EXPECT_EQ(rec.versions(i).state(), c.keks[i].state);
    EXPECT_EQ(rec.versions(i).created_unix(), c.keks[i].created_unix);
    EXPECT_EQ(rec.versions(i).provider(), "importing");
    EXPECT_EQ(rec.versions(i).material(), absl::StrCat("m", c.keks[i].version));
    EXPECT_TRUE(p.imported.at(c.keks[i].version).Equals(c.keks[i].kek));
  }
}

TEST(KeysetRestoreTest, RefusesAnExistingKeysetBeforeTouchingTheProvider) {
  testing::TempDir dir;
  const std::string path = dir.Sub("keyset.bin");
  ImportingProvider p;
  ASSERT_TRUE(RestoreKeyset(Contents(), p, {path, false}).ok());
  const std::string first = *ReadFileBounded(path, 1 << 20);
  ImportingProvider p2;
  auto again = RestoreKeyset(Contents(), p2, {path, false});
  EXPECT_EQ(again.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(again.status().message()).find("already holds keyset 0123456789abcdef"),
            std::string::npos)
      << again.status();
  EXPECT_EQ(p2.imports, 0);
  EXPECT_EQ(*ReadFileBounded(path, 1 << 20), first);
  // A file that does not decode is not silently replaced either.
  ASSERT_TRUE(WriteFileAtomic(path, "garbage").ok());
  EXPECT_FALSE(RestoreKeyset(Contents(), p2, {path, false}).ok());
  EXPECT_EQ(p2.imports, 0);
  // --force keeps the old file.
  auto forced = RestoreKeyset(Contents(), p2, {path, true});
  ASSERT_TRUE(forced.ok()) << forced.status();
  ASSERT_NE(forced->replaced_path, "");
  EXPECT_EQ(*ReadFileBounded(forced->replaced_path, 1 << 20), "garbage");
  EXPECT_TRUE(keys::FileKeysetStore(path).Load().ok());
  // A second forced restore in the same second keeps both old files.
  auto forced2 = RestoreKeyset(Contents(), p2, {path, true});
  ASSERT_TRUE(forced2.ok()) << forced2.status();
  EXPECT_NE(forced2->replaced_path, forced->replaced_path);
  EXPECT_TRUE(std::filesystem::exists(forced->replaced_path));
}

TEST(KeysetRestoreTest, NothingIsWrittenWhenTheProviderCannotHoldTheKeys) {
  testing::TempDir dir;
  const std::string path = dir.Sub("keyset.bin");
  ImportingProvider liar;
  liar.lie = true;
  auto r = RestoreKeyset(Contents(), liar, {path, false});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_FALSE(FileExists(path));
  NoImportProvider direct;
  auto d = RestoreKeyset(Contents(), direct, {path, false});
  EXPECT_FALSE(d.ok());
  EXPECT_NE(std::string(d.status().message()).find("into provider direct"), std::string::npos)
      << d.status();
  EXPECT_FALSE(FileExists(path));
  // A backup that is not a valid keyset (two primaries) never reaches the provider.
  keys::BackupContents bad = Contents();
  bad.keks[1].state = KekVersionRecord::PRIMARY;
  ImportingProvider p;
  EXPECT_FALSE(RestoreKeyset(bad, p, {path, false}).ok());
  EXPECT_EQ(p.imports, 0);
}

}  // namespace
}  // namespace kshield::tools
