#include "keys/dek_cipher.h"

#include <gtest/gtest.h>

#include "common/testing/temp_dir.h"
#include "crypto/aead.h"
#include "keys/key_id.h"
#include "keys/local_provider.h"
#include "tee/none_platform.h"

namespace kshield::keys {
namespace {

class DekCipherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    platform_ = std::make_unique<tee::NonePlatform>(dir_.path());
    auto p = LocalProvider::New(*platform_);
    ASSERT_TRUE(p.ok());
    manager_ = std::make_unique<KeysetManager>(
        std::make_unique<FileKeysetStore>(dir_.Sub("keyset.bin")),
        std::shared_ptr<KeyProvider>(std::move(*p)));
    ASSERT_TRUE(manager_->Init().ok());
    cipher_ = std::make_unique<DekCipher>(manager_.get());
  }
  std::string Reason(std::string_view ct, std::optional<std::string_view> key_id,
                     WrapFormat f = WrapFormat::kKmsV2) {
    std::string_view reason = "none";
    auto p = cipher_->Unwrap(ct, key_id, f, &reason);
    if (p.ok()) return "ok";
    return std::string(reason);
  }

  testing::TempDir dir_;
  std::unique_ptr<tee::NonePlatform> platform_;
  std::unique_ptr<KeysetManager> manager_;
  std::unique_ptr<DekCipher> cipher_;
};

TEST_F(DekCipherTest, RoundTripBothFormats) {
  for (WrapFormat f : {WrapFormat::kKmsV2, WrapFormat::kKmsV1beta1}) {
    auto w = cipher_->Wrap("seed-seed-seed-seed-seed-seed-32", f);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(w->ciphertext.size(), kWrappedDekHeaderSize + 12 + 32 + 16);
    std::optional<std::string_view> kid;
    if (f == WrapFormat::kKmsV2) kid = w->key_id;
    auto p = cipher_->Unwrap(w->ciphertext, kid, f);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(*p, "seed-seed-seed-seed-seed-seed-32");
  }
}

TEST_F(DekCipherTest, PlaintextBounds) {
  EXPECT_EQ(cipher_->Wrap("", WrapFormat::kKmsV2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(cipher_->Wrap(std::string(kMaxDekSize, 'x'), WrapFormat::kKmsV2).ok());
  EXPECT_EQ(cipher_->Wrap(std::string(kMaxDekSize + 1, 'x'), WrapFormat::kKmsV2).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(DekCipherTest, EveryBitFlipFailsGenerically) {
  auto w = cipher_->Wrap("0123456789abcdef0123456789abcdef", WrapFormat::kKmsV2);
  ASSERT_TRUE(w.ok());
  for (size_t i = 0; i < w->ciphertext.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = w->ciphertext;
      bad[i] ^= static_cast<char>(1 << bit);
      auto p = cipher_->Unwrap(bad, w->key_id, WrapFormat::kKmsV2);
      ASSERT_FALSE(p.ok()) << i << ":" << bit;
      // Header bytes 3..6 name the version: a flipped version may name an unknown version, which
      // is a public fact (NotFound); everything else is the generic authentication failure.
      if (p.status().code() != absl::StatusCode::kNotFound) {
        EXPECT_EQ(std::string(p.status().message()), crypto::kAuthFailed) << i << ":" << bit;
      }
    }
  }
}

TEST_F(DekCipherTest, ReasonsAreCountedNotTold) {
  auto w = cipher_->Wrap("0123456789abcdef0123456789abcdef", WrapFormat::kKmsV2);
  ASSERT_TRUE(w.ok());
  const std::string& ct = w->ciphertext;
  EXPECT_EQ(Reason(ct, w->key_id), "ok");
  EXPECT_EQ(Reason(ct.substr(0, 10), w->key_id), "too_short");
  EXPECT_EQ(Reason(ct + std::string(2000, 'x'), w->key_id), "too_long");
  std::string bad_tag = ct;
  bad_tag.back() ^= 1;
  EXPECT_EQ(Reason(bad_tag, w->key_id), "auth");
  EXPECT_EQ(Reason(ct, std::nullopt, WrapFormat::kKmsV1beta1), "wrong_api");
  std::string ks = manager_->Current()->keyset_id();
  EXPECT_EQ(Reason(ct, FormatKeyId(ks, 7)), "key_id_mismatch");
  EXPECT_EQ(Reason(ct, FormatKeyId("ffffffffffffffff", 1)), "other_keyset");
  EXPECT_EQ(Reason(ct, "1"), "malformed_key_id");
  EXPECT_EQ(Reason(ct, ""), "malformed_key_id");
  std::string unknown = BuildWrappedDekHeader(WrapFormat::kKmsV2, 9) + ct.substr(7);
  EXPECT_EQ(Reason(unknown, FormatKeyId(ks, 9)), "unknown_version");
}

TEST_F(DekCipherTest, OtherKeysetErrorIsClear) {
  auto w = cipher_->Wrap("dek", WrapFormat::kKmsV2);
  auto p = cipher_->Unwrap(w->ciphertext, "ksh1:ffffffffffffffff:1", WrapFormat::kKmsV2);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("belongs to keyset ffffffffffffffff"), std::string::npos);
}

TEST_F(DekCipherTest, CiphertextOfAnotherKeysetFailsAuthentication) {
  // Same sealing key, different keyset: a v1beta1 ciphertext (no key_id) moved between keysets
  // must not decrypt, because the AAD binds the keyset id.
  testing::TempDir other_dir;
  tee::NonePlatform other_platform(other_dir.path());
  auto p = LocalProvider::New(other_platform);
  ASSERT_TRUE(p.ok());
  KeysetManager other(std::make_unique<FileKeysetStore>(other_dir.Sub("keyset.bin")),
                      std::shared_ptr<KeyProvider>(std::move(*p)));
  ASSERT_TRUE(other.Init().ok());
  DekCipher other_cipher(&other);
  auto w = other_cipher.Wrap("dek", WrapFormat::kKmsV1beta1);
  ASSERT_TRUE(w.ok());
  std::string_view reason;
  auto r = cipher_->Unwrap(w->ciphertext, std::nullopt, WrapFormat::kKmsV1beta1, &reason);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(reason, "auth");
}

}  // namespace
}  // namespace kshield::keys
