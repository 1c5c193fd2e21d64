// The keyset backup file (keys/backup.h) and the ExportVersion / ImportVersion of the `local`
// and `static` providers: round trips with X25519 and RSA-3072 recipients (keys generated with
// OpenSSL here), refusals, a mutation test over one valid file, and a full backup -> wipe ->
// restore under another sealing key.
#include "common/testing/test_keys.h"
#include "keys/backup.h"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "common/testing/temp_dir.h"
#include "crypto/aead.h"
#include "crypto/random.h"
#include "crypto/recipient.h"
#include "crypto/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "keys/dek_cipher.h"
#include "keys/keyset_manager.h"
#include "keys/keyset_store.h"
#include "keys/local_provider.h"
#include "keys/static_provider.h"
#include "metrics/registry.h"
#include "tee/none_platform.h"

namespace kshield::keys {
namespace {

using ::testing::HasSubstr;
using v1::KekVersionRecord;
using v1::KeysetRecord;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

using kshield::testing::TestKey;

const TestKey& X25519() {
  static const TestKey* k = new TestKey(kshield::testing::GenerateTestKey("X25519"));
  return *k;
}
const TestKey& OtherX25519() {
  static const TestKey* k = new TestKey(kshield::testing::GenerateTestKey("X25519"));
  return *k;
}
const TestKey& Rsa3072() {
  static const TestKey* k = new TestKey(kshield::testing::GenerateTestKey("RSA", 3072));
  return *k;
}

constexpr char kKeysetId[] = "0123456789abcdef";

BackupKek Kek(uint32_t version, KekVersionRecord::State state, std::string_view bytes) {
  BackupKek k;
  k.version = version;
  k.state = state;
  k.created_unix = 1700000000 + version;
  k.kek = SecretBytes::CopyFrom(bytes);
  return k;
}

// Three versions (one retired, one active, the primary), version 2 removed earlier.
struct Sample {
  std::vector<std::string> raw = {crypto::RandomString(32), crypto::RandomString(32),
                                  crypto::RandomString(32)};
  BackupContents Contents() const {
    BackupContents c;
    c.keyset_id = kKeysetId;
    c.next_version = 5;
    c.provider = "local";
    c.created_unix = 1712345678;
    c.keks.push_back(Kek(1, KekVersionRecord::RETIRED, raw[0]));
    c.keks.push_back(Kek(3, KekVersionRecord::ACTIVE, raw[1]));
    c.keks.push_back(Kek(4, KekVersionRecord::PRIMARY, raw[2]));
    return c;
  }
};

void ExpectSame(const BackupContents& got, const BackupContents& want) {
  EXPECT_EQ(got.keyset_id, want.keyset_id);
  EXPECT_EQ(got.next_version, want.next_version);
  EXPECT_EQ(got.provider, want.provider);
  EXPECT_EQ(got.created_unix, want.created_unix);
  ASSERT_EQ(got.keks.size(), want.keks.size());
  for (size_t i = 0; i < got.keks.size(); ++i) {
    EXPECT_EQ(got.keks[i].version, want.keks[i].version);
    EXPECT_EQ(got.keks[i].state, want.keks[i].state);
    EXPECT_EQ(got.keks[i].created_unix, want.keks[i].created_unix);
    EXPECT_TRUE(got.keks[i].kek.Equals(want.keks[i].kek))
        << "KEK of version " << got.keks[i].version;
  }
}

// No spelling of any KEK and no private-key text in `text`.
void ExpectNoSecrets(std::string_view text, const Sample& s, const TestKey& identity) {
  const std::string t(text);
  for (const std::string& raw : s.raw) {
    EXPECT_EQ(t.find(raw.substr(0, 8)), std::string::npos) << "raw KEK bytes in: " << t;
    EXPECT_EQ(t.find(crypto::HexEncode(raw).substr(0, 16)), std::string::npos) << t;
    EXPECT_EQ(t.find(absl::Base64Escape(raw).substr(0, 16)), std::string::npos) << t;
  }
  std::string_view pem = identity.private_pem.UnsafeStringView();
  const size_t body = pem.find('\n') + 1;
  EXPECT_EQ(t.find(std::string(pem.substr(body, 16))), std::string::npos) << "PEM text in: " << t;
}

TEST(BackupTest, RoundTripX25519AndRsa3072) {
  const Sample s;
  for (const TestKey* k : {&X25519(), &Rsa3072()}) {
    auto file = SealBackup(s.Contents(), k->public_pem);
    ASSERT_TRUE(file.ok()) << file.status();
    EXPECT_EQ(file->substr(0, 8), "KSHBAK1\n");
    ExpectNoSecrets(*file, s, *k);

    auto header = InspectBackup(*file);
    ASSERT_TRUE(header.ok()) << header.status();
    EXPECT_EQ(header->format, 1u);
    EXPECT_EQ(header->keyset_id, kKeysetId);
    EXPECT_EQ(header->created_unix, 1712345678);
    EXPECT_EQ(header->recipient_kind, k == &X25519() ? "x25519" : "rsa-3072");
    EXPECT_EQ(header->recipient_fingerprint, *crypto::RecipientFingerprint(k->public_pem));
    EXPECT_EQ(header->kek_count, 3u);

    auto opened = OpenBackup(*file, k->private_pem);
    ASSERT_TRUE(opened.ok()) << opened.status();
    ExpectSame(*opened, s.Contents());
  }
}

TEST(BackupTest, LayoutIsTheDocumentedOne) {
  const Sample s;
  auto file = SealBackup(s.Contents(), X25519().public_pem);
  ASSERT_TRUE(file.ok());
  const std::string fp = *crypto::RecipientFingerprint(X25519().public_pem);
  std::string header;
  header += std::string("\0\0\0\x01", 4);                // format
  header += std::string("\x10") + kKeysetId;             // keyset_id
  header += absl::HexStringToBytes("000000006610524e");  // 1712345678
  header += std::string("\x06") + "x25519";              // kind
  header += std::string("\x40") + fp;                    // fingerprint
  header += std::string("\0\0\0\x03", 4);                // kek_count
  std::string prefix = "KSHBAK1\n";
  prefix += std::string("\0\0\0", 3) + static_cast<char>(header.size());
  prefix += header;
  ASSERT_EQ(file->substr(0, prefix.size()), prefix);
  // Then the sealed blob: X25519 kind, ephemeral key, nonce, payload, tag. Payload =
  // u32 next_version + str8 provider + u32 count + 3 * (4 + 1 + 8 + 1 + 32).
  const size_t payload = 4 + 1 + 5 + 4 + 3 * 46;
  EXPECT_EQ(file->size(), prefix.size() + 1 + 32 + 12 + payload + 16);
  EXPECT_EQ((*file)[prefix.size()], '\x01');
  // The blob opens with the header bytes as AAD.
  auto pt = crypto::OpenFromRecipient(X25519().private_pem, file->substr(prefix.size()), prefix);
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_EQ(pt->size(), payload);
  EXPECT_EQ(pt->UnsafeStringView().substr(0, 10), std::string("\0\0\0\x05\x05local", 10));
}

TEST(BackupTest, WrongIdentityIsRefused) {
  const Sample s;
  auto file = SealBackup(s.Contents(), X25519().public_pem);
  ASSERT_TRUE(file.ok());
  for (const TestKey* wrong : {&OtherX25519(), &Rsa3072()}) {
    auto opened = OpenBackup(*file, wrong->private_pem);
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_THAT(Msg(opened.status()), HasSubstr("not this backup's recipient"));
    EXPECT_THAT(Msg(opened.status()),
                HasSubstr(*crypto::RecipientFingerprint(X25519().public_pem)));
    ExpectNoSecrets(Msg(opened.status()), s, *wrong);
  }
  // Not a key at all.
  auto opened = OpenBackup(*file, SecretBytes::CopyFrom("not a key"));
  ASSERT_FALSE(opened.ok());
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(BackupTest, SmallRsaAndEcRecipientsAreRefused) {
  const Sample s;
  struct Case {
    std::string pem;
    std::string want;
  };
  const Case cases[] = {
      {kshield::testing::GenerateTestKey("RSA", 2048).public_pem, "RSA-2048"},
      {kshield::testing::GenerateTestKey("EC").public_pem, "unsupported type"},
      {"", "PEM"},
  };
  for (const Case& c : cases) {
    auto file = SealBackup(s.Contents(), c.pem);
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(file.status()), HasSubstr(c.want));
  }
}

TEST(BackupTest, InvalidContentsAreRefusedBySeal) {
  const Sample s;
  struct Case {
    std::string name;
    std::function<void(BackupContents&)> mutate;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"bad keyset_id", [](BackupContents& c) { c.keyset_id = "XYZ"; }, "keyset_id"},
      {"no KEKs", [](BackupContents& c) { c.keks.clear(); }, "0 KEK versions"},
      {"short KEK", [](BackupContents& c) { c.keks[0].kek = SecretBytes(16); }, "16 bytes"},
      {"unordered", [](BackupContents& c) { std::swap(c.keks[0].version, c.keks[1].version); },
       "strictly increasing"},
      {"version 0", [](BackupContents& c) { c.keks[0].version = 0; }, "strictly increasing"},
      {"next_version", [](BackupContents& c) { c.next_version = 4; }, ">= next_version"},
      {"two primaries", [](BackupContents& c) { c.keks[1].state = KekVersionRecord::PRIMARY; },
       "2 primary"},
      {"no primary", [](BackupContents& c) { c.keks[2].state = KekVersionRecord::ACTIVE; },
       "0 primary"},
      {"unspecified state",
       [](BackupContents& c) { c.keks[0].state = KekVersionRecord::STATE_UNSPECIFIED; },
       "no valid state"},
      {"bad provider", [](BackupContents& c) { c.provider = "Local Provider"; }, "provider"},
      {"negative time", [](BackupContents& c) { c.created_unix = -1; }, "negative"},
  };
  for (const Case& tc : cases) {
    BackupContents c = s.Contents();
    tc.mutate(c);
    auto file = SealBackup(c, X25519().public_pem);
    ASSERT_FALSE(file.ok()) << tc.name;
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << tc.name;
    EXPECT_THAT(Msg(file.status()), HasSubstr(tc.want)) << tc.name;
  }
}

TEST(BackupTest, InspectRefusesMalformedFramingWithReasons) {
  const Sample s;
  auto file = SealBackup(s.Contents(), X25519().public_pem);
  ASSERT_TRUE(file.ok());
  auto with = [&](size_t offset, std::string bytes) {
    std::string f = *file;
    f.replace(offset, bytes.size(), bytes);
    return f;
  };
  struct Case {
    std::string bytes;
    std::string want;
  };
  const Case cases[] = {
      {"", "bad magic"},
      {"KSHBAK2\n" + file->substr(8), "bad magic"},
      {file->substr(0, 10), "header length at offset 8 needs 4 bytes"},
      {with(8, std::string("\0\0\x10\0", 4)), "header length 4096"},
      {with(8, std::string("\0\0\0\0", 4)), "header length 0"},
      {file->substr(0, 40), "header at offset 12 needs"},
      {with(12, std::string("\0\0\0\x02", 4)), "unsupported backup format 2"},
      {with(16, "\x0f"), "keyset_id at offset 16 has length 15"},
      {with(17, "X"), "keyset_id is not"},
      {with(33, "\x80"), "created time is negative"},
      {with(42, "x25518"), "recipient kind"},
      {with(48, "\x3f"), "recipient fingerprint at offset 48 has length 63"},
      {with(49, "G"), "not lower-case hex"},
      {with(113, std::string("\0\0\0\0", 4)), "KEK count 0"},
      {with(113, std::string("\0\x01\0\0", 4)), "KEK count 65536"},
      {file->substr(0, 117 + 20), "sealed part is 20 bytes"},
      {*file + std::string(kMaxBackupFileSize, 'x'), "at most"},
  };
  ASSERT_EQ(file->substr(42, 6), "x25519");  // the offsets above
  for (const Case& c : cases) {
    auto h = InspectBackup(c.bytes);
    ASSERT_FALSE(h.ok()) << c.want;
    EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(h.status()), HasSubstr(c.want));
    auto o = OpenBackup(c.bytes, X25519().private_pem);
    ASSERT_FALSE(o.ok()) << c.want;
    EXPECT_EQ(Msg(o.status()), Msg(h.status()));
  }
  // Header lengths that leave header bytes unread, or a header that claims more.
  std::string longer = *file;
  longer[11] = static_cast<char>(longer[11] + 1);
  EXPECT_FALSE(InspectBackup(longer).ok());
  std::string shorter = *file;
  shorter[11] = static_cast<char>(shorter[11] - 1);
  EXPECT_FALSE(InspectBackup(shorter).ok());
}

// One valid file; every byte changed (two ways), every truncation, several extensions: each
// variant is refused by OpenBackup, with no crash and no secret in the error. Bytes of the
// header are covered by the AAD, so a change InspectBackup cannot see is still refused.
void MutateAll(const TestKey& k, std::vector<uint8_t> flips) {
  const Sample s;
  auto file = SealBackup(s.Contents(), k.public_pem);
  ASSERT_TRUE(file.ok());
  size_t inspect_ok_but_refused = 0;
  for (size_t i = 0; i < file->size(); ++i) {
    for (uint8_t flip : flips) {
      std::string bad = *file;
      bad[i] = static_cast<char>(bad[i] ^ flip);
      auto r = OpenBackup(bad, k.private_pem);
      ASSERT_FALSE(r.ok()) << "byte " << i << " ^ 0x" << std::hex << int(flip) << " accepted";
      ExpectNoSecrets(Msg(r.status()), s, k);
      if (InspectBackup(bad).ok()) ++inspect_ok_but_refused;
    }
  }
  // Header fields InspectBackup accepts when changed (created time, fingerprint digits, ...)
  // plus every byte of the sealed blob.
  EXPECT_GT(inspect_ok_but_refused, file->size() * flips.size() / 2);
  for (size_t n = 0; n < file->size(); ++n) {
    auto r = OpenBackup(file->substr(0, n), k.private_pem);
    ASSERT_FALSE(r.ok()) << "truncated to " << n << " accepted";
    ExpectNoSecrets(Msg(r.status()), s, k);
  }
  for (const std::string& tail :
       {std::string(1, '\0'), std::string("x"), std::string(16, 'A'), file->substr(117)}) {
    auto r = OpenBackup(*file + tail, k.private_pem);
    ASSERT_FALSE(r.ok()) << "extension of " << tail.size() << " accepted";
  }
  auto good = OpenBackup(*file, k.private_pem);
  ASSERT_TRUE(good.ok()) << good.status();
  ExpectSame(*good, s.Contents());
}

TEST(BackupTest, EveryMutationOfAnX25519FileIsRefused) { MutateAll(X25519(), {0x01, 0xff}); }
// One flip per byte: each open costs an RSA-3072 decryption.
TEST(BackupTest, EveryMutationOfAnRsaFileIsRefused) { MutateAll(Rsa3072(), {0x80}); }

// A well-formed file whose payload breaks the contents rules (only a buggy or hostile sealer can
// make one: the payload is authenticated) is refused after opening.
TEST(BackupTest, AuthenticPayloadBreakingTheRulesIsRefused) {
  const Sample s;
  auto file = SealBackup(s.Contents(), X25519().public_pem);
  ASSERT_TRUE(file.ok());
  const size_t prefix = 12 + 105;
  const std::string aad = file->substr(0, prefix);
  auto payload = crypto::OpenFromRecipient(X25519().private_pem, file->substr(prefix), aad);
  ASSERT_TRUE(payload.ok());
  auto reseal = [&](std::string p) {
    auto blob = crypto::SealToRecipient(X25519().public_pem, SecretBytes::CopyFrom(p), aad);
    EXPECT_TRUE(blob.ok());
    return aad + *blob;
  };
  const std::string good(payload->UnsafeStringView());
  struct Case {
    std::string payload;
    std::string want;
  };
  std::string two_primaries = good;
  two_primaries[14 + 4] = '\x01';  // state of the first KEK (version 1)
  std::string count_mismatch = good;
  count_mismatch[13] = '\x02';
  std::string bad_state = good;
  bad_state[14 + 4] = '\x09';
  std::string kek_len = good;
  kek_len[14 + 13] = '\x1f';
  const Case cases[] = {
      {two_primaries, "2 primary versions"},
      {count_mismatch, "holds 2 KEK versions, the header says 3"},
      {bad_state, "no valid state"},
      {kek_len, "KEK at offset 27 has length 31"},
      {good + "x", "1 unexpected bytes"},
      {good.substr(0, good.size() - 1), "truncated"},
      {std::string("\0\0\0\x05\x00", 5), "provider at offset 4 has length 0"},
  };
  for (const Case& c : cases) {
    auto r = OpenBackup(reseal(c.payload), X25519().private_pem);
    ASSERT_FALSE(r.ok()) << c.want;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(r.status()), HasSubstr(c.want));
    ExpectNoSecrets(Msg(r.status()), s, X25519());
  }
  // Sanity: the resealed good payload opens.
  EXPECT_TRUE(OpenBackup(reseal(good), X25519().private_pem).ok());
}

// --- providers --------------------------------------------------------------------------------

struct LocalEnv {
  kshield::testing::TempDir dir;
  tee::NonePlatform platform{dir.path()};
  std::shared_ptr<KeyProvider> provider;
  LocalEnv() {
    auto p = LocalProvider::New(platform);
    if (!p.ok()) abort();
    provider = std::move(*p);
  }
  std::string keyset_path() const { return dir.Sub("keyset.bin"); }
};

TEST(LocalProviderBackupTest, ExportImportRoundTripAndRefusals) {
  LocalEnv env;
  const KekContext ctx{kKeysetId, 3};
  auto material = env.provider->CreateVersion(ctx);
  ASSERT_TRUE(material.ok());
  auto kek = env.provider->ExportVersion(ctx, *material);
  ASSERT_TRUE(kek.ok()) << kek.status();
  EXPECT_EQ(kek->size(), 32u);
  // The exported key is the one OpenVersion uses.
  auto aead = env.provider->OpenVersion(ctx, *material);
  ASSERT_TRUE(aead.ok());
  auto ct = (*aead)->Encrypt("dek", "aad");
  ASSERT_TRUE(ct.ok());
  auto direct = crypto::AesGcmAead::New(kek->Clone());
  ASSERT_TRUE(direct.ok());
  EXPECT_EQ(*(*direct)->Decrypt(*ct, "aad"), "dek");

  // Import under another platform identity: new material, same key.
  LocalEnv other;
  auto imported = other.provider->ImportVersion(ctx, *kek);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_NE(*imported, *material);
  auto reopened = other.provider->OpenVersion(ctx, *imported);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(*(*reopened)->Decrypt(*ct, "aad"), "dek");
  // Material is bound to keyset and version, as CreateVersion's is.
  EXPECT_FALSE(other.provider->ExportVersion(KekContext{kKeysetId, 4}, *imported).ok());
  EXPECT_FALSE(env.provider->ExportVersion(ctx, *imported).ok());  // other sealing key
  auto wrong = env.provider->ExportVersion(ctx, "P11C1junk");
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kDataLoss);
  auto short_key = other.provider->ImportVersion(ctx, SecretBytes(16));
  EXPECT_EQ(short_key.status().code(), absl::StatusCode::kInvalidArgument);
}

// The whole path the issue asks for: a keyset in use, backup, wipe the data dir (sealing key
// included), restore under a NEW sealing key, and every earlier ciphertext decrypts.
TEST(LocalProviderBackupTest, BackupWipeRestoreKeepsEveryCiphertext) {
  const TestKey& identity = X25519();
  struct Issued {
    Wrapped wrapped;
    std::string dek;
    WrapFormat format;
  };
  std::vector<Issued> issued;
  std::string file;
  {
    LocalEnv env;
    KeysetManager mgr(std::make_unique<FileKeysetStore>(env.keyset_path()), env.provider);
    ASSERT_TRUE(mgr.Init().ok());
    DekCipher cipher(&mgr);
    for (int round = 0; round < 3; ++round) {
      for (WrapFormat f : {WrapFormat::kKmsV2, WrapFormat::kKmsV1beta1}) {
        std::string dek = crypto::RandomString(32);
        auto w = cipher.Wrap(dek, f);
        ASSERT_TRUE(w.ok()) << w.status();
        issued.push_back({*w, dek, f});
      }
      ASSERT_TRUE(mgr.Rotate().ok());
    }
    auto record = FileKeysetStore(env.keyset_path()).Load();
    ASSERT_TRUE(record.ok() && record->has_value());
    auto contents = ExportKeysetForBackup(**record, *env.provider, 1712345678);
    ASSERT_TRUE(contents.ok()) << contents.status();
    EXPECT_EQ(contents->keks.size(), 4u);
    EXPECT_EQ(contents->provider, "local");
    auto sealed = SealBackup(*contents, identity.public_pem);
    ASSERT_TRUE(sealed.ok()) << sealed.status();
    file = *sealed;
  }  // the data dir, keyset file and sealing key are gone

  LocalEnv fresh;
  auto contents = OpenBackup(file, identity.private_pem);
  ASSERT_TRUE(contents.ok()) << contents.status();
  auto record = ImportKeysetFromBackup(*contents, *fresh.provider);
  ASSERT_TRUE(record.ok()) << record.status();
  ASSERT_TRUE(FileKeysetStore(fresh.keyset_path()).Save(*record).ok());
  KeysetManager mgr(std::make_unique<FileKeysetStore>(fresh.keyset_path()), fresh.provider);
  absl::Status init = mgr.Init();
  ASSERT_TRUE(init.ok()) << init;
  EXPECT_EQ(mgr.Current()->keyset_id(), contents->keyset_id);
  DekCipher cipher(&mgr);
  ASSERT_EQ(issued.size(), 6u);
  for (const Issued& i : issued) {
    auto back = cipher.Unwrap(i.wrapped.ciphertext,
                              i.format == WrapFormat::kKmsV2
                                  ? std::optional<std::string_view>(i.wrapped.key_id)
                                  : std::nullopt,
                              i.format);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, i.dek);
  }
  // Rotation continues above the restored next_version (key_ids are never reused).
  auto rotated = mgr.Rotate();
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ(mgr.Current()->primary().version, contents->next_version);
}

class StaticProviderBackupTest : public ::testing::Test {
 protected:
  kshield::testing::TempDir dir_;
  metrics::Registry registry_;
};

TEST_F(StaticProviderBackupTest, ExportsTheFileKeyAndRefusesImport) {
  const std::string k1 = crypto::RandomString(32), k2 = crypto::RandomString(32);
  const std::string path = dir_.Sub("keys");
  ASSERT_TRUE(
      WriteFileAtomic(
          path, absl::StrCat("1: ", absl::Base64Escape(k1), "\n2: ", absl::Base64Escape(k2), "\n"),
          0600)
          .ok());
  StaticProvider::Options o;
  o.keys.path = path;
  auto p = StaticProvider::New(o, registry_);
  ASSERT_TRUE(p.ok()) << p.status();
  auto kek = (*p)->ExportVersion(KekContext{kKeysetId, 2}, "");
  ASSERT_TRUE(kek.ok()) << kek.status();
  EXPECT_EQ(kek->UnsafeStringView(), k2);
  auto missing = (*p)->ExportVersion(KekContext{kKeysetId, 3}, "");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  auto imported = (*p)->ImportVersion(KekContext{kKeysetId, 3}, *kek);
  ASSERT_FALSE(imported.ok());
  EXPECT_EQ(imported.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(imported.status()), HasSubstr("static keys come from the keys file"));
  EXPECT_EQ(Msg(imported.status()).find(absl::Base64Escape(k2)), std::string::npos);

  // A static keyset backs up, and restores into the local provider.
  auto record = StaticKeysetRecord(*(*p)->keys(), kKeysetId);
  ASSERT_TRUE(record.ok()) << record.status();
  auto contents = ExportKeysetForBackup(*record, **p, 1);
  ASSERT_TRUE(contents.ok()) << contents.status();
  EXPECT_EQ(contents->provider, "static");
  auto file = SealBackup(*contents, Rsa3072().public_pem);
  ASSERT_TRUE(file.ok());
  auto opened = OpenBackup(*file, Rsa3072().private_pem);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->keks[1].kek.UnsafeStringView(), k2);
  auto into_static = ImportKeysetFromBackup(*opened, **p);
  ASSERT_FALSE(into_static.ok());
  EXPECT_THAT(Msg(into_static.status()), HasSubstr("static keys come from the keys file"));
  LocalEnv local;
  auto into_local = ImportKeysetFromBackup(*opened, *local.provider);
  ASSERT_TRUE(into_local.ok()) << into_local.status();
  EXPECT_EQ(into_local->versions(1).provider(), "local");
}

// A provider that keeps the defaults refuses both directions.
class BareProvider final : public KeyProvider {
 public:
  std::string_view name() const override { return "bare"; }
  absl::StatusOr<std::string> CreateVersion(const KekContext&) override { return "m"; }
  absl::StatusOr<std::shared_ptr<const crypto::Aead>> OpenVersion(const KekContext&,
                                                                  std::string_view) override {
    return absl::UnimplementedError("no");
  }
  absl::Status Probe() override { return absl::OkStatus(); }
};

TEST(ProviderDefaultsTest, ExportAndImportRefuse) {
  BareProvider p;
  auto e = p.ExportVersion(KekContext{kKeysetId, 1}, "m");
  EXPECT_EQ(e.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(e.status()), HasSubstr("bare provider cannot export"));
  auto i = p.ImportVersion(KekContext{kKeysetId, 1}, SecretBytes(32));
  EXPECT_EQ(i.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Msg(i.status()), HasSubstr("bare provider cannot import"));
}

}  // namespace
}  // namespace kshield::keys
