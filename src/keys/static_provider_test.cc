#include "keys/static_provider.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/testing/log_capture.h"
#include "common/testing/temp_dir.h"
#include "crypto/aead.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "keys/keyset_manager.h"
#include "keys/keyset_store.h"
#include "tee/none_platform.h"

namespace kshield::keys {
namespace {

using ::kshield::testing::LogCapture;
using ::testing::HasSubstr;
using v1::KekVersionRecord;

// A test key: 32 bytes with its base64 and hex spellings (to search logs and errors for).
struct TestKey {
  std::string raw;
  std::string b64;
  std::string hex;
};

TestKey MakeKey() {
  TestKey k;
  k.raw = crypto::RandomString(kStaticKeySize);
  k.b64 = absl::Base64Escape(k.raw);
  k.hex = crypto::HexEncode(k.raw);
  return k;
}

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

// Fails if `text` holds any spelling of `key` (raw, base64, hex either case).
void ExpectNoKey(std::string_view text, const TestKey& key, std::string_view where) {
  const std::string t(text);
  EXPECT_EQ(t.find(key.raw), std::string::npos) << where << " holds raw key bytes";
  EXPECT_EQ(t.find(key.b64), std::string::npos) << where << " holds the base64 key";
  // A prefix long enough to be unmistakable, in case of line wrapping or truncation.
  EXPECT_EQ(t.find(key.b64.substr(0, 16)), std::string::npos) << where << " holds base64 key bytes";
  EXPECT_EQ(t.find(key.hex.substr(0, 16)), std::string::npos) << where << " holds hex key bytes";
  std::string upper = key.hex.substr(0, 16);
  for (auto& c : upper) c = static_cast<char>(toupper(c));
  EXPECT_EQ(t.find(upper), std::string::npos) << where << " holds HEX key bytes";
}

class StaticKeysTest : public ::testing::Test {
 protected:
  std::string Write(std::string_view contents, mode_t mode = 0600,
                    const std::string& name = "static-keys.yaml") {
    const std::string path = dir_.Sub(name);
    EXPECT_TRUE(WriteFileAtomic(path, contents, 0600).ok());
    EXPECT_EQ(chmod(path.c_str(), mode), 0);
    return path;
  }
  absl::StatusOr<StaticKeys> Load(const std::string& path, tee::Platform* platform = nullptr,
                                  bool require_sealed = false) {
    return LoadStaticKeys({.path = path, .platform = platform, .require_sealed = require_sealed});
  }

  testing::TempDir dir_;
  TestKey k1_ = MakeKey();
  TestKey k2_ = MakeKey();
  TestKey k5_ = MakeKey();
};

// --- parsing ------------------------------------------------------------------------------------

TEST_F(StaticKeysTest, ParsesBothSyntaxesCommentsBlankLinesCrlfAndQuotes) {
  const std::string text = absl::StrCat(
      "# kshield static emergency keys\n"
      "\n"
      "1: ", k1_.b64, "\r\n",
      "  2   ", k2_.b64, "  \n",
      "5: \"", k5_.b64, "\"");  // no final newline
  auto keys = ParseStaticKeys(text);
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->versions(), (std::vector<uint32_t>{1, 2, 5}));
  EXPECT_EQ(keys->highest_version(), 5u);
  EXPECT_FALSE(keys->sealed());
  ASSERT_NE(keys->Find(1), nullptr);
  EXPECT_EQ(std::string(keys->Find(1)->UnsafeStringView()), k1_.raw);
  EXPECT_EQ(std::string(keys->Find(2)->UnsafeStringView()), k2_.raw);
  EXPECT_EQ(std::string(keys->Find(5)->UnsafeStringView()), k5_.raw);
  EXPECT_EQ(keys->Find(3), nullptr);
}

TEST_F(StaticKeysTest, AcceptsTheHighestAllowedVersion) {
  auto keys = ParseStaticKeys(absl::StrCat("4294967294: ", k1_.b64, "\n"));
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->highest_version(), 4294967294u);
}

TEST_F(StaticKeysTest, RejectsEachMalformedVariantWithTheLineAndNoKeyBytes) {
  std::string b64_31 = absl::Base64Escape(k1_.raw.substr(0, 31));
  std::string b64_33 = absl::Base64Escape(k1_.raw + "x");
  std::string bad_char = k1_.b64;
  bad_char[10] = '*';
  std::string unpadded = k1_.b64.substr(0, 43);
  std::string non_canonical = k1_.b64;
  // The last symbol before '=' carries 2 unused bits; setting them gives a non-canonical spelling.
  {
    const std::string alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t idx = alphabet.find(non_canonical[42]);
    non_canonical[42] = alphabet[idx | 1];
  }
  struct Case {
    std::string name;
    std::string text;
    std::string want;  // substring of the error
  };
  const std::vector<Case> cases = {
      {"bad base64 character", absl::StrCat("1: ", bad_char, "\n"), "line 1: the key of version 1 is not valid base64"},
      {"unpadded base64", absl::StrCat("1: ", unpadded, "\n"), "not valid base64"},
      {"non-canonical base64", absl::StrCat("1: ", non_canonical, "\n"), "not valid base64"},
      {"31-byte key", absl::StrCat("# c\n1: ", b64_31, "\n"), "line 2: the key of version 1 is 31 bytes; want 32"},
      {"33-byte key", absl::StrCat("1: ", b64_33, "\n"), "is 33 bytes; want 32"},
      {"duplicate version", absl::StrCat("1: ", k1_.b64, "\n2: ", k2_.b64, "\n1: ", k5_.b64, "\n"),
       "line 3: version 1 appears twice (first on line 1)"},
      {"version 0", absl::StrCat("0: ", k1_.b64, "\n"), "line 1: the version must be"},
      {"leading zero", absl::StrCat("01: ", k1_.b64, "\n"), "line 1: the version must be"},
      {"negative version", absl::StrCat("-1: ", k1_.b64, "\n"), "the version must be"},
      {"version 2^32-1", absl::StrCat("4294967295: ", k1_.b64, "\n"), "the version must be"},
      {"version overflow", absl::StrCat("99999999999: ", k1_.b64, "\n"), "the version must be"},
      {"no version", absl::StrCat(k1_.b64, "\n"), "the version must be"},
      {"no key", "1:\n", "line 1: version 1 has no key"},
      {"empty file", "", "no key versions"},
      {"only comments", "# nothing here\n\n", "no key versions"},
      {"trailing junk after key", absl::StrCat("1: ", k1_.b64, " extra\n"), "not valid base64"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto keys = ParseStaticKeys(c.text);
    ASSERT_FALSE(keys.ok());
    EXPECT_EQ(keys.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(keys.status()), HasSubstr(c.want));
    for (const auto* k : {&k1_, &k2_, &k5_}) ExpectNoKey(Msg(keys.status()), *k, "error");
    EXPECT_EQ(Msg(keys.status()).find(bad_char.substr(0, 16)), std::string::npos);
  }
}

TEST_F(StaticKeysTest, RejectsTooManyVersions) {
  std::string text;
  for (uint32_t v = 1; v <= kMaxStaticKeyVersions + 1; ++v) absl::StrAppend(&text, v, ":", k1_.b64, "\n");
  ASSERT_LE(text.size(), kMaxStaticKeysFileSize);
  auto keys = ParseStaticKeys(text);
  ASSERT_FALSE(keys.ok());
  EXPECT_THAT(Msg(keys.status()), HasSubstr("more than 1000 versions"));
}

// --- loading files ------------------------------------------------------------------------------

TEST_F(StaticKeysTest, LoadsAPrivateFile) {
  auto keys = Load(Write(absl::StrCat("1: ", k1_.b64, "\n2: ", k2_.b64, "\n")));
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->versions(), (std::vector<uint32_t>{1, 2}));
}

TEST_F(StaticKeysTest, MissingFileIsNotFoundNamingThePath) {
  auto keys = Load(dir_.Sub("nope.yaml"));
  ASSERT_FALSE(keys.ok());
  EXPECT_EQ(keys.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(keys.status()), HasSubstr("static keys file " + dir_.Sub("nope.yaml")));
}

TEST_F(StaticKeysTest, RefusesMode0644) {
  auto keys = Load(Write(absl::StrCat("1: ", k1_.b64, "\n"), 0644));
  ASSERT_FALSE(keys.ok());
  EXPECT_EQ(keys.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(keys.status()), HasSubstr("chmod 600"));
  ExpectNoKey(Msg(keys.status()), k1_, "error");
}

TEST_F(StaticKeysTest, RefusesAnOversizeFile) {
  std::string text = absl::StrCat("1: ", k1_.b64, "\n");
  text.append(kMaxStaticKeysFileSize + 100 - text.size(), '#');
  auto keys = Load(Write(text));
  ASSERT_FALSE(keys.ok());
  EXPECT_THAT(Msg(keys.status()), HasSubstr("allowed"));
  // Just over the plain limit (but under the sealed one) is refused by the parser.
  std::string text2 = absl::StrCat("1: ", k1_.b64, "\n#");
  text2.append(kMaxStaticKeysFileSize + 1 - text2.size(), '#');
  auto keys2 = Load(Write(text2, 0600, "b.yaml"));
  ASSERT_FALSE(keys2.ok());
  EXPECT_THAT(Msg(keys2.status()), HasSubstr("more than 65536 bytes"));
}

TEST_F(StaticKeysTest, ParseErrorsInAFileNameTheFileAndLine) {
  const std::string path = Write(absl::StrCat("1: ", k1_.b64, "\n2: ", k2_.b64.substr(4), "\n"));
  auto keys = Load(path);
  ASSERT_FALSE(keys.ok());
  EXPECT_THAT(Msg(keys.status()), HasSubstr("static keys file " + path));
  EXPECT_THAT(Msg(keys.status()), HasSubstr("line 2"));
  ExpectNoKey(Msg(keys.status()), k1_, "error");
  EXPECT_EQ(Msg(keys.status()).find(k2_.b64.substr(4, 16)), std::string::npos);
}

// --- sealing ------------------------------------------------------------------------------------

TEST_F(StaticKeysTest, SealedFileRoundTrip) {
  tee::NonePlatform platform(dir_.Sub("tee"));
  const std::string plain = absl::StrCat("1: ", k1_.b64, "\n2: ", k2_.b64, "\n");
  auto sealed = SealStaticKeysFile(platform, plain);
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(sealed->substr(0, kStaticKeysSealedMagic.size()), kStaticKeysSealedMagic);
  ExpectNoKey(*sealed, k1_, "sealed file");
  ExpectNoKey(*sealed, k2_, "sealed file");

  const std::string path = Write(*sealed);
  auto keys = Load(path, &platform, /*require_sealed=*/true);
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_TRUE(keys->sealed());
  EXPECT_EQ(keys->versions(), (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(std::string(keys->Find(2)->UnsafeStringView()), k2_.raw);
}

TEST_F(StaticKeysTest, SealedFileWithWrongSealingKeyIsAClearError) {
  tee::NonePlatform sealer(dir_.Sub("tee-a"));
  tee::NonePlatform other(dir_.Sub("tee-b"));
  auto sealed = SealStaticKeysFile(sealer, absl::StrCat("1: ", k1_.b64, "\n"));
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  const std::string path = Write(*sealed);
  auto keys = Load(path, &other);
  ASSERT_FALSE(keys.ok());
  EXPECT_EQ(keys.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(keys.status()), HasSubstr("cannot unseal static keys file " + path));
  EXPECT_THAT(Msg(keys.status()), HasSubstr("different platform identity or sealing key"));
  EXPECT_THAT(Msg(keys.status()), HasSubstr("platform now: none"));
  ExpectNoKey(Msg(keys.status()), k1_, "error");
}

TEST_F(StaticKeysTest, TamperedSealedFileIsRefused) {
  tee::NonePlatform platform(dir_.Sub("tee"));
  auto sealed = SealStaticKeysFile(platform, absl::StrCat("1: ", k1_.b64, "\n"));
  ASSERT_TRUE(sealed.ok());
  for (size_t i : {kStaticKeysSealedMagic.size() + 2, sealed->size() / 2, sealed->size() - 1}) {
    std::string bad = *sealed;
    bad[i] ^= 0x01;
    auto keys = Load(Write(bad, 0600, absl::StrCat("t", i)), &platform);
    ASSERT_FALSE(keys.ok()) << i;
    EXPECT_THAT(Msg(keys.status()), HasSubstr("cannot unseal"));
  }
  auto truncated = Load(Write(sealed->substr(0, 20), 0600, "short"), &platform);
  EXPECT_FALSE(truncated.ok());
}

TEST_F(StaticKeysTest, SealedFileWithoutPlatformAndPlainWhenSealedRequired) {
  tee::NonePlatform platform(dir_.Sub("tee"));
  auto sealed = SealStaticKeysFile(platform, absl::StrCat("1: ", k1_.b64, "\n"));
  ASSERT_TRUE(sealed.ok());
  auto no_platform = Load(Write(*sealed));
  ASSERT_FALSE(no_platform.ok());
  EXPECT_THAT(Msg(no_platform.status()), HasSubstr("is sealed, but no TEE platform"));

  auto plain = Load(Write(absl::StrCat("1: ", k1_.b64, "\n"), 0600, "plain"), &platform,
                    /*require_sealed=*/true);
  ASSERT_FALSE(plain.ok());
  EXPECT_THAT(Msg(plain.status()), HasSubstr("is not sealed, and sealed keys are required"));
}

TEST_F(StaticKeysTest, SealRefusesInvalidOrAlreadySealedInput) {
  tee::NonePlatform platform(dir_.Sub("tee"));
  auto bad = SealStaticKeysFile(platform, "1: notbase64\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(Msg(bad.status()), HasSubstr("line 1"));
  auto sealed = SealStaticKeysFile(platform, absl::StrCat("1: ", k1_.b64, "\n"));
  ASSERT_TRUE(sealed.ok());
  auto twice = SealStaticKeysFile(platform, *sealed);
  ASSERT_FALSE(twice.ok());
  EXPECT_THAT(Msg(twice.status()), HasSubstr("already sealed"));
}

// --- keyset records -----------------------------------------------------------------------------

TEST_F(StaticKeysTest, StaticKeysetRecordHasAllVersionsHighestPrimary) {
  auto keys = ParseStaticKeys(absl::StrCat("2: ", k2_.b64, "\n1: ", k1_.b64, "\n5: ", k5_.b64, "\n"));
  ASSERT_TRUE(keys.ok());
  auto rec = StaticKeysetRecord(*keys, "0123456789abcdef");
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_TRUE(KeysetManager::Validate(*rec).ok());
  EXPECT_EQ(rec->keyset_id(), "0123456789abcdef");
  ASSERT_EQ(rec->versions_size(), 3);
  EXPECT_EQ(rec->versions(0).version(), 1u);
  EXPECT_EQ(rec->versions(0).state(), KekVersionRecord::ACTIVE);
  EXPECT_EQ(rec->versions(1).version(), 2u);
  EXPECT_EQ(rec->versions(1).state(), KekVersionRecord::ACTIVE);
  EXPECT_EQ(rec->versions(2).version(), 5u);
  EXPECT_EQ(rec->versions(2).state(), KekVersionRecord::PRIMARY);
  EXPECT_EQ(rec->next_version(), 6u);
  for (const auto& v : rec->versions()) {
    EXPECT_EQ(v.provider(), "static");
    EXPECT_TRUE(v.material().empty());
  }
  // Nothing secret in the record that gets persisted.
  ExpectNoKey(FileKeysetStore::Encode(*rec), k5_, "keyset file");

  EXPECT_FALSE(StaticKeysetRecord(*keys, "not-a-keyset-id").ok());
  auto highest = ParseStaticKeys(absl::StrCat("4294967294: ", k1_.b64, "\n"));
  ASSERT_TRUE(highest.ok());
  auto rec_max = StaticKeysetRecord(*highest, "0123456789abcdef");
  ASSERT_TRUE(rec_max.ok()) << rec_max.status();
  EXPECT_EQ(rec_max->next_version(), 4294967295u);
}

TEST_F(StaticKeysTest, UpdateAddsNewVersionsAsPrimaryAndNeverReusesNumbers) {
  auto keys = ParseStaticKeys(absl::StrCat("1: ", k1_.b64, "\n2: ", k2_.b64, "\n"));
  ASSERT_TRUE(keys.ok());
  auto rec = StaticKeysetRecord(*keys, "0123456789abcdef");
  ASSERT_TRUE(rec.ok());

  auto same = UpdateStaticKeysetRecord(*rec, *keys);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->SerializeAsString(), rec->SerializeAsString());

  auto more = ParseStaticKeys(absl::StrCat("1: ", k1_.b64, "\n2: ", k2_.b64, "\n5: ", k5_.b64, "\n"));
  ASSERT_TRUE(more.ok());
  auto updated = UpdateStaticKeysetRecord(*rec, *more);
  ASSERT_TRUE(updated.ok()) << updated.status();
  ASSERT_EQ(updated->versions_size(), 3);
  EXPECT_EQ(updated->versions(1).state(), KekVersionRecord::ACTIVE);  // old primary demoted
  EXPECT_EQ(updated->versions(2).version(), 5u);
  EXPECT_EQ(updated->versions(2).state(), KekVersionRecord::PRIMARY);
  EXPECT_EQ(updated->next_version(), 6u);

  // Version 3 was never in this record, but next_version is 6 now: 3 would be a reused number.
  auto reuse = ParseStaticKeys(absl::StrCat("3: ", k1_.b64, "\n5: ", k5_.b64, "\n"));
  ASSERT_TRUE(reuse.ok());
  auto refused = UpdateStaticKeysetRecord(*updated, *reuse);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(Msg(refused.status()), HasSubstr("never reused"));
}

// --- the provider -------------------------------------------------------------------------------

class StaticProviderTest : public StaticKeysTest {
 protected:
  absl::StatusOr<std::unique_ptr<StaticProvider>> NewProvider(
      const std::string& path, std::chrono::milliseconds interval = std::chrono::hours(1)) {
    StaticProvider::Options o;
    o.keys.path = path;
    o.warning_interval = interval;
    return StaticProvider::New(std::move(o), registry_);
  }
  std::string TwoKeys() { return absl::StrCat("1: ", k1_.b64, "\n2: ", k2_.b64, "\n"); }

  metrics::Registry registry_;  // declared before providers: outlives them
};

TEST_F(StaticProviderTest, OpenVersionGivesTheFilesKeyAndIgnoresMaterial) {
  auto p = NewProvider(Write(TwoKeys()));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->name(), "static");
  EXPECT_TRUE((*p)->Probe().ok());
  auto kek = (*p)->OpenVersion({"0123456789abcdef", 2}, "whatever material");
  ASSERT_TRUE(kek.ok()) << kek.status();
  // Proof it is version 2's key: an independent AES-GCM over the file's bytes opens its output.
  auto ct = (*kek)->Encrypt("dek", "aad");
  ASSERT_TRUE(ct.ok());
  auto independent = crypto::AesGcmAead::New(SecretBytes::CopyFrom(k2_.raw));
  ASSERT_TRUE(independent.ok());
  auto pt = (*independent)->Decrypt(*ct, "aad");
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_EQ(*pt, "dek");
  auto wrong = crypto::AesGcmAead::New(SecretBytes::CopyFrom(k1_.raw));
  EXPECT_FALSE((*wrong)->Decrypt(*ct, "aad").ok());
}

TEST_F(StaticProviderTest, UnknownVersionIsNotFoundNamingIt) {
  auto p = NewProvider(Write(TwoKeys()));
  ASSERT_TRUE(p.ok()) << p.status();
  auto kek = (*p)->OpenVersion({"0123456789abcdef", 7}, "");
  ASSERT_FALSE(kek.ok());
  EXPECT_EQ(kek.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(kek.status()), HasSubstr("no key for version 7"));
  EXPECT_THAT(Msg(kek.status()), HasSubstr("it has versions 1, 2"));
}

TEST_F(StaticProviderTest, CreateVersionIsRefused) {
  auto p = NewProvider(Write(TwoKeys()));
  ASSERT_TRUE(p.ok()) << p.status();
  auto v = (*p)->CreateVersion({"0123456789abcdef", 3});
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Msg(v.status()),
            "static keys cannot be rotated by kshield; add a version to the keys file and Refresh");
}

TEST_F(StaticProviderTest, BadFileFailsNew) {
  auto p = NewProvider(Write(TwoKeys(), 0644));
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(Msg(p.status()), HasSubstr("chmod 600"));
  // A failed New() registered nothing.
  EXPECT_EQ(registry_.Render().find("kshield_kms_static_keys_active"), std::string::npos);
}

TEST_F(StaticProviderTest, GaugeIsOneWhileActiveAndZeroAfter) {
  {
    auto p = NewProvider(Write(TwoKeys()));
    ASSERT_TRUE(p.ok()) << p.status();
    const std::string page = registry_.Render();
    EXPECT_THAT(page, HasSubstr("# TYPE kshield_kms_static_keys_active gauge"));
    EXPECT_THAT(page, HasSubstr("\nkshield_kms_static_keys_active 1\n"));
    // One static provider per registry.
    auto second = NewProvider(Write(TwoKeys(), 0600, "other.yaml"));
    ASSERT_FALSE(second.ok());
    EXPECT_THAT(Msg(second.status()), HasSubstr("already registered"));
  }
  EXPECT_THAT(registry_.Render(), HasSubstr("\nkshield_kms_static_keys_active 0\n"));
}

TEST_F(StaticProviderTest, WarnsAtStartOnlyUntilTheIntervalPasses) {
  LogCapture logs;
  auto p = NewProvider(Write(TwoKeys()));  // 1 h interval
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->warnings_logged(), 1u);
  ASSERT_EQ(logs.Count("keys.static_keys_active"), 1u);
  const std::string line = logs.Lines().back();
  EXPECT_THAT(line, HasSubstr("\"level\":\"warn\""));
  EXPECT_THAT(line, HasSubstr("\"versions\":2"));
  EXPECT_THAT(line, HasSubstr("root of trust is bypassed"));
  // Destruction stops the thread promptly, though the next warning is an hour away.
  auto start = std::chrono::steady_clock::now();
  p->reset();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST_F(StaticProviderTest, WarnsPeriodicallyAndStops) {
  LogCapture logs;
  auto p = NewProvider(Write(TwoKeys()), std::chrono::milliseconds(20));
  ASSERT_TRUE(p.ok()) << p.status();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while ((*p)->warnings_logged() < 4 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GE((*p)->warnings_logged(), 4u);
  EXPECT_GE(logs.Count("keys.static_keys_active"), 4u);
  (*p)->Stop();
  const uint64_t after_stop = (*p)->warnings_logged();
  // Several intervals with the thread stopped: no further warning.
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ((*p)->warnings_logged(), after_stop);
  (*p)->Stop();  // idempotent
}

TEST_F(StaticProviderTest, ReloadPicksUpANewVersionAndKeepsOldKeysOnError) {
  const std::string path = Write(TwoKeys());
  auto p = NewProvider(path);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->OpenVersion({"0123456789abcdef", 5}, "").status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(WriteFileAtomic(path, TwoKeys() + absl::StrCat("5: ", k5_.b64, "\n"), 0600).ok());
  ASSERT_TRUE((*p)->Reload().ok());
  EXPECT_EQ((*p)->keys()->versions(), (std::vector<uint32_t>{1, 2, 5}));
  EXPECT_TRUE((*p)->OpenVersion({"0123456789abcdef", 5}, "").ok());

  ASSERT_TRUE(WriteFileAtomic(path, "garbage\n", 0600).ok());
  auto r = (*p)->Reload();
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Msg(r), HasSubstr("line 1"));
  EXPECT_EQ((*p)->keys()->versions(), (std::vector<uint32_t>{1, 2, 5}));
  EXPECT_TRUE((*p)->OpenVersion({"0123456789abcdef", 1}, "").ok());
}

// The whole path the lead wires: seed the store from the file, Init a KeysetManager, wrap with
// the primary, then add a version to the file and Refresh.
TEST_F(StaticProviderTest, SeedsAKeysetManagerAndRotatesThroughTheFile) {
  const std::string path = Write(TwoKeys());
  auto created = NewProvider(path);
  ASSERT_TRUE(created.ok()) << created.status();
  std::shared_ptr<StaticProvider> provider = std::move(*created);
  const std::string store_path = dir_.Sub("keyset.bin");

  // Without seeding, Init would have to create version 1, which the provider refuses.
  {
    KeysetManager unseeded(std::make_unique<FileKeysetStore>(store_path), provider);
    absl::Status s = unseeded.Init();
    ASSERT_FALSE(s.ok());
    EXPECT_THAT(Msg(s), HasSubstr("add a version to the keys file"));
  }

  auto store = std::make_unique<FileKeysetStore>(store_path);
  auto existing = store->Load();
  ASSERT_TRUE(existing.ok());
  ASSERT_FALSE(existing->has_value());
  auto record = StaticKeysetRecord(*provider->keys(), crypto::RandomHex(8));
  ASSERT_TRUE(record.ok()) << record.status();
  ASSERT_TRUE(store->Save(*record).ok());

  KeysetManager manager(std::move(store), provider);
  ASSERT_TRUE(manager.Init().ok());
  auto ks = manager.Current();
  EXPECT_EQ(ks->primary().version, 2u);
  auto ct = ks->primary().kek->Encrypt("seed", "ad");
  ASSERT_TRUE(ct.ok());
  auto k2 = crypto::AesGcmAead::New(SecretBytes::CopyFrom(k2_.raw));
  EXPECT_TRUE((*k2)->Decrypt(*ct, "ad").ok());
  EXPECT_FALSE(manager.Rotate().ok());  // CreateVersion refused; nothing lost
  EXPECT_EQ(manager.Current()->primary().version, 2u);

  // Static rotation: add version 5 to the file, reload, update the record, refresh.
  ASSERT_TRUE(WriteFileAtomic(path, TwoKeys() + absl::StrCat("5: ", k5_.b64, "\n"), 0600).ok());
  ASSERT_TRUE(provider->Reload().ok());
  FileKeysetStore direct(store_path);
  auto current = direct.Load();
  ASSERT_TRUE(current.ok() && current->has_value());
  auto updated = UpdateStaticKeysetRecord(**current, *provider->keys());
  ASSERT_TRUE(updated.ok()) << updated.status();
  ASSERT_TRUE(direct.Save(*updated).ok());
  ASSERT_TRUE(manager.Refresh().ok());
  EXPECT_EQ(manager.Current()->primary().version, 5u);
  ASSERT_NE(manager.Current()->Find(2), nullptr);
  EXPECT_TRUE(manager.Current()->Find(2)->kek->Decrypt(*ct, "ad").ok());
}

TEST_F(StaticProviderTest, KeyBytesNeverReachLogsOrErrors) {
  LogCapture logs;
  std::vector<std::string> errors;
  tee::NonePlatform platform(dir_.Sub("tee"));
  tee::NonePlatform other(dir_.Sub("tee-other"));
  const std::string text = TwoKeys();
  {
    const std::string path = Write(text);
    auto p = NewProvider(path, std::chrono::milliseconds(10));
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_TRUE((*p)->OpenVersion({"0123456789abcdef", 1}, "").ok());
    errors.push_back(Msg((*p)->OpenVersion({"0123456789abcdef", 9}, "").status()));
    errors.push_back(Msg((*p)->CreateVersion({"0123456789abcdef", 3}).status()));
    ASSERT_TRUE(WriteFileAtomic(path, absl::StrCat("1: ", k1_.b64.substr(0, 40), "\n"), 0600).ok());
    errors.push_back(Msg((*p)->Reload()));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while ((*p)->warnings_logged() < 3 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  auto sealed = SealStaticKeysFile(platform, text);
  ASSERT_TRUE(sealed.ok());
  errors.push_back(Msg(Load(Write(*sealed, 0600, "sealed"), &other).status()));
  errors.push_back(Msg(Load(Write(text, 0644, "open")).status()));
  errors.push_back(Msg(ParseStaticKeys(absl::StrCat("1: ", k1_.b64, "\n1: ", k2_.b64)).status()));
  errors.push_back(Msg(ParseStaticKeys(absl::StrCat("1: ", k2_.b64, "==\n")).status()));

  ASSERT_GE(logs.Count("keys.static_keys_active"), 3u);
  ASSERT_EQ(logs.Count("keys.static_keys_reload_failed"), 1u);
  for (const auto& e : errors) EXPECT_FALSE(e.empty());
  for (const auto* k : {&k1_, &k2_}) {
    for (const auto& line : logs.Lines()) ExpectNoKey(line, *k, "log line");
    for (const auto& e : errors) ExpectNoKey(e, *k, "error");
  }
}

}  // namespace
}  // namespace kshield::keys
