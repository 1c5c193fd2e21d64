#include "keys/keyset_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/file_util.h"
#include "common/testing/temp_dir.h"

namespace kshield::keys {
namespace {

v1::KeysetRecord Sample() {
  v1::KeysetRecord r;
  r.set_format(1);
  r.set_keyset_id("0123456789abcdef");
  r.set_next_version(3);
  for (uint32_t v : {1u, 2u}) {
    auto* kv = r.add_versions();
    kv->set_version(v);
    kv->set_state(v == 2 ? v1::KekVersionRecord::PRIMARY : v1::KekVersionRecord::ACTIVE);
    kv->set_material("sealed-" + std::to_string(v));
  }
  return r;
}

TEST(FileKeysetStoreTest, MissingFileIsNoKeyset) {
  testing::TempDir dir;
  FileKeysetStore store(dir.Sub("keyset.bin"));
  auto loaded = store.Load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_FALSE(loaded->has_value());
}

TEST(FileKeysetStoreTest, SaveLoadRoundTripWithPrivateMode) {
  testing::TempDir dir;
  FileKeysetStore store(dir.Sub("keyset.bin"));
  ASSERT_TRUE(store.Save(Sample()).ok());
  struct stat st;
  ASSERT_EQ(stat(dir.Sub("keyset.bin").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = store.Load();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ((*loaded)->SerializeAsString(), Sample().SerializeAsString());
}

TEST(FileKeysetStoreTest, EveryByteFlipIsDetected) {
  std::string enc = FileKeysetStore::Encode(Sample());
  ASSERT_TRUE(FileKeysetStore::Decode(enc).ok());
  for (size_t i = 0; i < enc.size(); ++i) {
    std::string bad = enc;
    bad[i] ^= 0x20;
    EXPECT_FALSE(FileKeysetStore::Decode(bad).ok()) << "byte " << i;
  }
}

TEST(FileKeysetStoreTest, TruncationsAndExtensionsAreDetected) {
  std::string enc = FileKeysetStore::Encode(Sample());
  for (size_t n = 0; n < enc.size(); ++n) {
    EXPECT_FALSE(FileKeysetStore::Decode(enc.substr(0, n)).ok()) << n;
  }
  EXPECT_FALSE(FileKeysetStore::Decode(enc + "x").ok());
}

TEST(FileKeysetStoreTest, RefusesWorldReadableFile) {
  testing::TempDir dir;
  FileKeysetStore store(dir.Sub("keyset.bin"));
  ASSERT_TRUE(store.Save(Sample()).ok());
  ASSERT_EQ(chmod(dir.Sub("keyset.bin").c_str(), 0644), 0);
  auto loaded = store.Load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("chmod 600"), std::string::npos);
}

TEST(FileKeysetStoreTest, CorruptFileIsAnErrorNotANewKeyset) {
  testing::TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("keyset.bin"), "garbage", 0600).ok());
  FileKeysetStore store(dir.Sub("keyset.bin"));
  auto loaded = store.Load();
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace kshield::keys
