// OfflineDecrypter against ciphertexts issued by the plugin's own path (KeysetManager +
// DekCipher) with KEKs the test knows: the offline path opens exactly what the plugin would.
#include "tools/offline_decrypter.h"

#include <gtest/gtest.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "common/testing/temp_dir.h"
#include "crypto/aead.h"
#include "crypto/random.h"
#include "envelope/envelope.h"
#include "keys/dek_cipher.h"
#include "keys/keyset.h"
#include "keys/keyset_manager.h"
#include "keys/keyset_store.h"
#include "tools/value_decryptor.h"

namespace kshield::tools {
namespace {

using kshield::keys::v1::KekVersionRecord;

// A provider whose KEKs the test can read back: material is the version's index into `keks`.
class KnownKekProvider final : public keys::KeyProvider {
 public:
  std::string_view name() const override { return "known"; }
  absl::StatusOr<std::string> CreateVersion(const keys::KekContext& ctx) override {
    keks[ctx.version] = crypto::RandomSecret(32);
    return absl::StrCat("v", ctx.version);
  }
  absl::StatusOr<std::shared_ptr<const crypto::Aead>> OpenVersion(const keys::KekContext& ctx,
                                                                   std::string_view) override {
    auto a = crypto::AesGcmAead::New(keks.at(ctx.version).Clone());
    if (!a.ok()) return a.status();
    return std::shared_ptr<const crypto::Aead>(std::move(*a));
  }
  absl::Status Probe() override { return absl::OkStatus(); }
  std::map<uint32_t, SecretBytes> keks;
};

class OfflineDecrypterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    provider_ = std::make_shared<KnownKekProvider>();
    manager_ = std::make_unique<keys::KeysetManager>(
        std::make_unique<keys::FileKeysetStore>(dir_.Sub("keyset.bin")), provider_);
    ASSERT_TRUE(manager_->Init().ok());
    keys::DekCipher cipher(manager_.get());
    for (int v = 1; v <= 3; ++v) {
      if (v > 1) {
        ASSERT_TRUE(manager_->Rotate().ok());
      }
      std::string dek = absl::StrCat("dek-of-version-", v, "-0123456789abcdef");
      auto w2 = cipher.Wrap(dek, keys::WrapFormat::kKmsV2);
      auto w1 = cipher.Wrap(dek, keys::WrapFormat::kKmsV1beta1);
      ASSERT_TRUE(w2.ok() && w1.ok());
      issued_.push_back({dek, w2->ciphertext, w2->key_id, w1->ciphertext});
    }
  }

  // The backup's view: every version's KEK, state from the record.
  std::vector<OfflineKek> Keks() {
    std::vector<OfflineKek> out;
    const kshield::keys::v1::KeysetRecord record = manager_->record();
    for (const auto& v : record.versions()) {
      out.push_back({v.version(), v.state(), v.created_unix(), provider_->keks[v.version()].Clone()});
    }
    return out;
  }
  std::string keyset_id() { return manager_->Current()->keyset_id(); }

  struct Issued {
    std::string dek, v2_ct, key_id, v1_ct;
  };
  testing::TempDir dir_;
  std::shared_ptr<KnownKekProvider> provider_;
  std::unique_ptr<keys::KeysetManager> manager_;
  std::vector<Issued> issued_;
};

TEST_F(OfflineDecrypterTest, OpensWhatThePluginIssuedUnderEveryVersion) {
  auto d = OfflineDecrypter::Create(keyset_id(), 4, Keks());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)->keyset().keyset_id(), keyset_id());
  EXPECT_EQ((*d)->keyset().primary().version, 3u);
  for (const auto& i : issued_) {
    auto v2 = (*d)->DecryptV2(i.v2_ct, i.key_id, {});
    ASSERT_TRUE(v2.ok()) << v2.status();
    EXPECT_EQ(std::string(v2->UnsafeStringView()), i.dek);
    auto v1 = (*d)->DecryptV1(i.v1_ct);
    ASSERT_TRUE(v1.ok()) << v1.status();
    EXPECT_EQ(std::string(v1->UnsafeStringView()), i.dek);
  }
  EXPECT_EQ((*d)->counters().v2_decrypt, 3u);
  EXPECT_EQ((*d)->counters().v1_decrypt, 3u);
}

TEST_F(OfflineDecrypterTest, RefusesWhatThePluginRefuses) {
  ASSERT_TRUE(manager_->Retire(1).ok());
  auto d = OfflineDecrypter::Create(keyset_id(), 4, Keks());
  ASSERT_TRUE(d.ok()) << d.status();
  // Retired: no longer decrypts (as in the plugin).
  auto retired = (*d)->DecryptV2(issued_[0].v2_ct, issued_[0].key_id, {});
  EXPECT_EQ(retired.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE((*d)->DecryptV1(issued_[0].v1_ct).ok());
  // Tampered bytes, a key_id naming another version, another keyset.
  std::string bad = issued_[1].v2_ct;
  bad.back() ^= 1;
  auto tampered = (*d)->DecryptV2(bad, issued_[1].key_id, {});
  EXPECT_EQ(tampered.status().message(), "authentication failed");
  EXPECT_FALSE((*d)->DecryptV2(issued_[1].v2_ct, issued_[2].key_id, {}).ok());
  EXPECT_FALSE((*d)->DecryptV2(issued_[1].v2_ct, "ksh1:ffffffffffffffff:2", {}).ok());
  // v2 ciphertext on the v1 API (domain separation).
  EXPECT_FALSE((*d)->DecryptV1(issued_[2].v2_ct).ok());
  // Still fine for the others.
  EXPECT_TRUE((*d)->DecryptV2(issued_[2].v2_ct, issued_[2].key_id, {}).ok());
}

TEST_F(OfflineDecrypterTest, WrongKekFailsAuthentication) {
  std::vector<OfflineKek> keks = Keks();
  keks[2].kek = crypto::RandomSecret(32);
  auto d = OfflineDecrypter::Create(keyset_id(), 4, std::move(keks));
  ASSERT_TRUE(d.ok()) << d.status();
  auto r = (*d)->DecryptV2(issued_[2].v2_ct, issued_[2].key_id, {});
  EXPECT_EQ(r.status().message(), "authentication failed");
}

TEST_F(OfflineDecrypterTest, RejectsMalformedKeysets) {
  EXPECT_FALSE(OfflineDecrypter::Create("not-a-keyset-id", 4, Keks()).ok());
  EXPECT_FALSE(OfflineDecrypter::Create(keyset_id(), 3, Keks()).ok());  // version >= next
  {
    auto keks = Keks();
    keks[1].kek = crypto::RandomSecret(16);
    EXPECT_FALSE(OfflineDecrypter::Create(keyset_id(), 4, std::move(keks)).ok());
  }
  {
    auto keks = Keks();
    keks[0].state = KekVersionRecord::PRIMARY;  // two primaries
    EXPECT_FALSE(OfflineDecrypter::Create(keyset_id(), 4, std::move(keks)).ok());
  }
  {
    auto keks = Keks();
    keks[1].version = 1;  // duplicate
    EXPECT_FALSE(OfflineDecrypter::Create(keyset_id(), 4, std::move(keks)).ok());
  }
  EXPECT_FALSE(OfflineDecrypter::Create(keyset_id(), 4, {}).ok());  // no primary
}

TEST_F(OfflineDecrypterTest, ValueDecryptorOpensAKmsV2ValueOffline) {
  auto d = OfflineDecrypter::Create(keyset_id(), 4, Keks());
  ASSERT_TRUE(d.ok()) << d.status();
  // A KMS v2 value as kube-apiserver writes it (legacy AES_GCM_KEY: the DEK is the wrapped bytes).
  SecretBytes dek = crypto::RandomSecret(32);
  keys::DekCipher cipher(manager_.get());
  auto w = cipher.Wrap(dek.UnsafeStringView(), keys::WrapFormat::kKmsV2);
  ASSERT_TRUE(w.ok());
  const std::string etcd_key = "/registry/secrets/ns/name";
  std::string nonce = crypto::RandomString(12);
  auto sealed = crypto::AesGcmSeal(dek, nonce, "k8s\\0payload", etcd_key);
  ASSERT_TRUE(sealed.ok());
  envelope::KmsV2Value v;
  v.provider = "kshield";
  v.key_id = w->key_id;
  v.encrypted_dek_source = w->ciphertext;
  v.dek_source_type = envelope::DekSourceType::kAesGcmKey;
  v.encrypted_data = nonce + *sealed;
  auto value = envelope::BuildKmsV2(v);
  ASSERT_TRUE(value.ok()) << value.status();
  ValueDecryptor vd(d->get(), "kshield");
  auto plain = vd.Decrypt(etcd_key, *value);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(*plain, "k8s\\0payload");
  EXPECT_FALSE(vd.Decrypt("/registry/secrets/ns/other", *value).ok());  // AAD is the etcd key
}

}  // namespace
}  // namespace kshield::tools
