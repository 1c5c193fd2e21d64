#include "crypto/recipient.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "crypto/aead.h"
#include "crypto/hkdf.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kshield::crypto {
namespace {

using ::testing::HasSubstr;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

struct TestKey {
  SecretBytes private_pem;
  std::string public_pem;
};

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

std::string BioString(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

enum class PrivForm { kPkcs8, kTraditional };

// Generated with OpenSSL in the test. `alg`: "X25519", "RSA" (bits), "EC" (P-256), "ED25519".
TestKey Generate(const char* alg, size_t bits = 0, PrivForm form = PrivForm::kPkcs8) {
  Pkey key;
  if (std::string(alg) == "RSA") {
    key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits));
  } else if (std::string(alg) == "EC") {
    key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  } else {
    key.reset(EVP_PKEY_Q_keygen(nullptr, nullptr, alg));
  }
  if (key == nullptr) abort();
  BIO* priv = BIO_new(BIO_s_mem());
  BIO* pub = BIO_new(BIO_s_mem());
  int ok = form == PrivForm::kPkcs8
               ? PEM_write_bio_PrivateKey(priv, key.get(), nullptr, nullptr, 0, nullptr, nullptr)
               : PEM_write_bio_PrivateKey_traditional(priv, key.get(), nullptr, nullptr, 0, nullptr,
                                                      nullptr);
  if (ok != 1 || PEM_write_bio_PUBKEY(pub, key.get()) != 1) abort();
  TestKey out{SecretBytes::CopyFrom(BioString(priv)), BioString(pub)};
  BIO_free(priv);
  BIO_free(pub);
  return out;
}

// Keys are generated once per process: RSA-3072 generation takes a while.
const TestKey& X25519A() {
  static const TestKey* k = new TestKey(Generate("X25519"));
  return *k;
}
const TestKey& X25519B() {
  static const TestKey* k = new TestKey(Generate("X25519"));
  return *k;
}
const TestKey& Rsa3072A() {
  static const TestKey* k = new TestKey(Generate("RSA", 3072));
  return *k;
}
const TestKey& Rsa3072B() {
  static const TestKey* k = new TestKey(Generate("RSA", 3072));
  return *k;
}

SecretBytes Secret(std::string_view s) { return SecretBytes::CopyFrom(s); }

// Base64 lines of a PEM body (each is key material for a private key).
std::vector<std::string> PemBodyLines(std::string_view pem) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < pem.size()) {
    size_t end = pem.find('\n', start);
    if (end == std::string_view::npos) end = pem.size();
    std::string_view line = pem.substr(start, end - start);
    if (!line.empty() && line.substr(0, 5) != "-----") out.emplace_back(line);
    start = end + 1;
  }
  return out;
}

void ExpectNoKeyMaterial(const absl::Status& s, const TestKey& k, std::string_view plaintext) {
  const std::string m = Msg(s);
  for (const std::string& line : PemBodyLines(k.private_pem.UnsafeStringView())) {
    EXPECT_EQ(m.find(line.substr(0, 16)), std::string::npos) << "error holds private key text";
  }
  if (plaintext.size() >= 8) {
    EXPECT_EQ(m.find(plaintext), std::string::npos);
  }
}

TEST(RecipientTest, X25519RoundTrip) {
  const TestKey& k = X25519A();
  for (std::string_view text : {std::string_view(""), std::string_view("x"),
                                std::string_view("a secret KEK list of some length")}) {
    auto sealed = SealToRecipient(k.public_pem, Secret(text), "header-bytes");
    ASSERT_TRUE(sealed.ok()) << sealed.status();
    EXPECT_EQ(sealed->size(), 1 + 32 + 12 + text.size() + 16);
    EXPECT_EQ((*sealed)[0], '\x01');
    auto opened = OpenFromRecipient(k.private_pem, *sealed, "header-bytes");
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(opened->UnsafeStringView(), text);
  }
  // Fresh ephemeral key and nonce every time.
  auto a = SealToRecipient(k.public_pem, Secret("same"), "");
  auto b = SealToRecipient(k.public_pem, Secret("same"), "");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(*a, *b);
  EXPECT_NE(a->substr(1, 32), b->substr(1, 32));
}

TEST(RecipientTest, Rsa3072RoundTripIncludingTraditionalPem) {
  const TestKey& k = Rsa3072A();
  auto sealed = SealToRecipient(k.public_pem, Secret("kek bytes"), "aad");
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(sealed->size(), 1 + 2 + 384 + 12 + 9 + 16);
  EXPECT_EQ(sealed->substr(0, 3), std::string("\x02\x01\x80", 3));
  auto opened = OpenFromRecipient(k.private_pem, *sealed, "aad");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->UnsafeStringView(), "kek bytes");

  // "-----BEGIN RSA PRIVATE KEY-----" (PKCS#1) identities work too.
  TestKey trad = Generate("RSA", 3072, PrivForm::kTraditional);
  ASSERT_THAT(std::string(trad.private_pem.UnsafeStringView()), HasSubstr("BEGIN RSA PRIVATE KEY"));
  sealed = SealToRecipient(trad.public_pem, Secret("kek bytes"), "aad");
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  opened = OpenFromRecipient(trad.private_pem, *sealed, "aad");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->UnsafeStringView(), "kek bytes");
}

// Re-derives the key exactly as the header comment documents, with OpenSSL directly, and opens
// the blob with AesGcmOpen: the layout is what recipient.h says.
TEST(RecipientTest, X25519BlobFollowsTheDocumentedConstruction) {
  const TestKey& k = X25519A();
  auto sealed = SealToRecipient(k.public_pem, Secret("documented"), "ctx");
  ASSERT_TRUE(sealed.ok());
  const std::string eph_raw = sealed->substr(1, 32);

  BIO* bio = BIO_new_mem_buf(k.private_pem.UnsafeView().data(), k.private_pem.size());
  Pkey priv(PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  ASSERT_NE(priv, nullptr);
  Pkey eph(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr,
                                       reinterpret_cast<const uint8_t*>(eph_raw.data()), 32));
  ASSERT_NE(eph, nullptr);
  std::string recipient_raw(32, '\0');
  size_t len = 32;
  ASSERT_EQ(EVP_PKEY_get_raw_public_key(priv.get(),
                                        reinterpret_cast<uint8_t*>(recipient_raw.data()), &len),
            1);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(priv.get(), nullptr);
  ASSERT_EQ(EVP_PKEY_derive_init(ctx), 1);
  ASSERT_EQ(EVP_PKEY_derive_set_peer(ctx, eph.get()), 1);
  SecretBytes shared(32);
  len = 32;
  ASSERT_EQ(EVP_PKEY_derive(ctx, shared.UnsafeMutableData(), &len), 1);
  EVP_PKEY_CTX_free(ctx);

  auto key = HkdfSha256(shared, eph_raw + recipient_raw, "kshield recipient v1", 32);
  ASSERT_TRUE(key.ok());
  auto pt =
      AesGcmOpen(*key, sealed->substr(33, 12), sealed->substr(45), sealed->substr(0, 33) + "ctx");
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_EQ(*pt, "documented");
}

TEST(RecipientTest, RsaBlobFollowsTheDocumentedConstruction) {
  const TestKey& k = Rsa3072A();
  auto sealed = SealToRecipient(k.public_pem, Secret("documented"), "ctx");
  ASSERT_TRUE(sealed.ok());
  const size_t wrapped_len =
      (static_cast<uint8_t>((*sealed)[1]) << 8) | static_cast<uint8_t>((*sealed)[2]);
  ASSERT_EQ(wrapped_len, 384u);
  BIO* bio = BIO_new_mem_buf(k.private_pem.UnsafeView().data(), k.private_pem.size());
  Pkey priv(PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  ASSERT_NE(priv, nullptr);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(priv.get(), nullptr);
  ASSERT_EQ(EVP_PKEY_decrypt_init(ctx), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()), 1);
  ASSERT_EQ(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()), 1);
  SecretBytes key(384);
  size_t len = key.size();
  ASSERT_EQ(EVP_PKEY_decrypt(ctx, key.UnsafeMutableData(), &len,
                             reinterpret_cast<const uint8_t*>(sealed->data() + 3), wrapped_len),
            1);
  EVP_PKEY_CTX_free(ctx);
  ASSERT_EQ(len, 32u);
  SecretBytes aes = SecretBytes::CopyFrom(key.UnsafeView().subspan(0, 32));
  const size_t prefix = 3 + wrapped_len;
  auto pt = AesGcmOpen(aes, sealed->substr(prefix, 12), sealed->substr(prefix + 12),
                       sealed->substr(0, prefix) + "ctx");
  ASSERT_TRUE(pt.ok()) << pt.status();
  EXPECT_EQ(*pt, "documented");
}

TEST(RecipientTest, KindsAndFingerprints) {
  EXPECT_EQ(*RecipientKind(X25519A().public_pem), "x25519");
  EXPECT_EQ(*RecipientKind(Rsa3072A().public_pem), "rsa-3072");

  // The X25519 SPKI DER is a fixed 12-byte prefix + the raw key (RFC 8410): check the
  // fingerprint against a DER built here, not by OpenSSL's encoder.
  BIO* bio = BIO_new_mem_buf(X25519A().public_pem.data(), X25519A().public_pem.size());
  Pkey pub(PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  ASSERT_NE(pub, nullptr);
  std::string raw(32, '\0');
  size_t len = 32;
  ASSERT_EQ(EVP_PKEY_get_raw_public_key(pub.get(), reinterpret_cast<uint8_t*>(raw.data()), &len),
            1);
  const std::string der = absl::HexStringToBytes("302a300506032b656e032100") + raw;
  auto fp = RecipientFingerprint(X25519A().public_pem);
  ASSERT_TRUE(fp.ok()) << fp.status();
  EXPECT_EQ(*fp, HexEncode(Sha256(der)));
  EXPECT_EQ(fp->size(), 64u);
  EXPECT_NE(*fp, *RecipientFingerprint(X25519B().public_pem));

  // IdentityPublicKey gives back the recipient key of an identity.
  for (const TestKey* k : {&X25519A(), &Rsa3072A()}) {
    auto pub_pem = IdentityPublicKey(k->private_pem);
    ASSERT_TRUE(pub_pem.ok()) << pub_pem.status();
    EXPECT_EQ(*RecipientFingerprint(*pub_pem), *RecipientFingerprint(k->public_pem));
    EXPECT_EQ(*IdentityFingerprint(k->private_pem), *RecipientFingerprint(k->public_pem));
  }
  // Fingerprints of keys that are not recipients still work (any SPKI).
  EXPECT_TRUE(RecipientFingerprint(Generate("EC").public_pem).ok());
}

// X25519 keys are read by a fast path when in their usual encoding (the only one OpenSSL 3.0
// writes and reads); anything near it goes to OpenSSL's generic decoder, which decides.
TEST(RecipientTest, X25519KeyEncodingsAroundTheFastPath) {
  const TestKey& k = X25519A();
  BIO* bio = BIO_new_mem_buf(k.private_pem.UnsafeView().data(), k.private_pem.size());
  Pkey priv(PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  ASSERT_NE(priv, nullptr);
  SecretBytes raw_priv(32);
  std::string raw_pub(32, '\0');
  size_t len = 32;
  ASSERT_EQ(EVP_PKEY_get_raw_private_key(priv.get(), raw_priv.UnsafeMutableData(), &len), 1);
  len = 32;
  ASSERT_EQ(
      EVP_PKEY_get_raw_public_key(priv.get(), reinterpret_cast<uint8_t*>(raw_pub.data()), &len), 1);
  auto pem = [](std::string_view type, std::string_view der) {
    return absl::StrCat("-----BEGIN ", AV(type), "-----\n", absl::Base64Escape(AV(der)),
                        "\n-----END ", AV(type), "-----\n");
  };
  auto sealed = SealToRecipient(k.public_pem, Secret("generic"), "");
  ASSERT_TRUE(sealed.ok());
  // PKCS#8 v2 (OneAsymmetricKey with the public key attached, RFC 8410 §7): OpenSSL 3.0 does not
  // read it, and neither do we (a clean refusal, not a crash or a wrong key).
  const std::string v2 = absl::HexStringToBytes("3051020101300506032b656e04220420") +
                         std::string(raw_priv.UnsafeStringView()) +
                         absl::HexStringToBytes("812100") + raw_pub;
  auto opened = OpenFromRecipient(SecretBytes::CopyFrom(pem("PRIVATE KEY", v2)), *sealed, "");
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kInvalidArgument);
  // The usual encoding, rebuilt here, opens; with a trailing byte it is refused.
  const std::string der48 = absl::HexStringToBytes("302e020100300506032b656e04220420") +
                            std::string(raw_priv.UnsafeStringView());
  EXPECT_TRUE(
      OpenFromRecipient(SecretBytes::CopyFrom(pem("PRIVATE KEY", der48)), *sealed, "").ok());
  auto trailing =
      OpenFromRecipient(SecretBytes::CopyFrom(pem("PRIVATE KEY", der48 + "x")), *sealed, "");
  EXPECT_EQ(trailing.status().code(), absl::StatusCode::kInvalidArgument);
  // Same for public keys: trailing bytes after the SPKI are refused.
  const std::string spki = absl::HexStringToBytes("302a300506032b656e032100") + raw_pub;
  EXPECT_EQ(*RecipientFingerprint(pem("PUBLIC KEY", spki)), *RecipientFingerprint(k.public_pem));
  EXPECT_FALSE(RecipientKind(pem("PUBLIC KEY", spki + "x")).ok());
  EXPECT_FALSE(RecipientKind(pem("RSA PUBLIC KEY", spki)).ok());
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(RecipientTest, UnsupportedRecipientsAreRefused) {
  const TestKey rsa2048 = Generate("RSA", 2048);
  const TestKey ec = Generate("EC");
  const TestKey ed = Generate("ED25519");
  struct Case {
    std::string pem;
    std::string want;
  };
  const Case cases[] = {
      {rsa2048.public_pem, "RSA-2048"},
      {ec.public_pem, "unsupported type"},
      {ed.public_pem, "unsupported type"},
      {"", "exactly one PEM block"},
      {"not a key", "exactly one PEM block"},
      {"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a PEM"},
      {X25519A().public_pem + X25519B().public_pem, "exactly one PEM block"},
      // A private key given where the public key belongs.
      {std::string(X25519A().private_pem.UnsafeStringView()), "not a PEM"},
      {std::string(kMaxRecipientPemSize + 1, 'A'), "at most"},
  };
  for (const Case& c : cases) {
    auto sealed = SealToRecipient(c.pem, Secret("x"), "");
    ASSERT_FALSE(sealed.ok());
    EXPECT_EQ(sealed.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(sealed.status()), HasSubstr(c.want));
    ExpectNoKeyMaterial(sealed.status(), X25519A(), "");
    auto kind = RecipientKind(c.pem);
    ASSERT_FALSE(kind.ok());
    EXPECT_EQ(kind.status().code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(ERR_peek_error(), 0u) << "OpenSSL error queue left non-empty";
}

TEST(RecipientTest, LowOrderRecipientKeyIsRefused) {
  // SPKI of the all-zero X25519 point (a low-order point: the shared secret would be zero).
  const std::string der =
      absl::HexStringToBytes("302a300506032b656e032100") + std::string(32, '\0');
  const std::string pem =
      "-----BEGIN PUBLIC KEY-----\n" + absl::Base64Escape(der) + "\n-----END PUBLIC KEY-----\n";
  ASSERT_EQ(*RecipientKind(pem), "x25519");
  auto sealed = SealToRecipient(pem, Secret("x"), "");
  ASSERT_FALSE(sealed.ok());
  EXPECT_EQ(sealed.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RecipientTest, WrongIdentityIsRefused) {
  auto x = SealToRecipient(X25519A().public_pem, Secret("for A only"), "aad");
  auto r = SealToRecipient(Rsa3072A().public_pem, Secret("for A only"), "aad");
  ASSERT_TRUE(x.ok() && r.ok());

  // Same kind, other key: authentication fails, nothing else is said.
  auto bad = OpenFromRecipient(X25519B().private_pem, *x, "aad");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Msg(bad.status()), kAuthFailed);
  bad = OpenFromRecipient(Rsa3072B().private_pem, *r, "aad");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(Msg(bad.status()), kAuthFailed);
  // Other kind: said plainly.
  bad = OpenFromRecipient(Rsa3072A().private_pem, *x, "aad");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(Msg(bad.status()), HasSubstr("sealed to an X25519 recipient"));
  bad = OpenFromRecipient(X25519A().private_pem, *r, "aad");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(Msg(bad.status()), HasSubstr("sealed to an RSA recipient"));
  // Wrong AAD.
  bad = OpenFromRecipient(X25519A().private_pem, *x, "aae");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(Msg(bad.status()), kAuthFailed);
  bad = OpenFromRecipient(Rsa3072A().private_pem, *r, "");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(Msg(bad.status()), kAuthFailed);
  for (const TestKey* k : {&X25519A(), &X25519B(), &Rsa3072A(), &Rsa3072B()}) {
    ExpectNoKeyMaterial(bad.status(), *k, "for A only");
  }
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(RecipientTest, UnusableIdentitiesAreRefusedWithoutPrompting) {
  auto sealed = SealToRecipient(X25519A().public_pem, Secret("x"), "");
  ASSERT_TRUE(sealed.ok());

  // An encrypted PKCS#8 key: refused (never a passphrase prompt).
  BIO* in =
      BIO_new_mem_buf(X25519A().private_pem.UnsafeView().data(), X25519A().private_pem.size());
  Pkey key(PEM_read_bio_PrivateKey(in, nullptr, nullptr, nullptr));
  BIO_free(in);
  ASSERT_NE(key, nullptr);
  BIO* out = BIO_new(BIO_s_mem());
  const char pass[] = "passphrase";
  ASSERT_EQ(PEM_write_bio_PKCS8PrivateKey(out, key.get(), EVP_aes_256_cbc(), pass, sizeof(pass) - 1,
                                          nullptr, nullptr),
            1);
  SecretBytes encrypted = SecretBytes::CopyFrom(BioString(out));
  BIO_free(out);

  const TestKey rsa2048 = Generate("RSA", 2048);
  const TestKey ec = Generate("EC");
  struct Case {
    SecretBytes pem;
    std::string want;
  };
  Case cases[] = {
      {std::move(encrypted), "encrypted"},
      {Secret(X25519A().public_pem), "not a PEM private key"},
      {Secret(""), "bytes; want"},
      {Secret("garbage"), "exactly one PEM block"},
      {rsa2048.private_pem.Clone(), "RSA-2048"},
      {ec.private_pem.Clone(), "unsupported type"},
  };
  for (const Case& c : cases) {
    auto opened = OpenFromRecipient(c.pem, *sealed, "");
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(opened.status()), HasSubstr(c.want));
    auto pub = IdentityPublicKey(c.pem);
    EXPECT_FALSE(pub.ok());
  }
  EXPECT_EQ(ERR_peek_error(), 0u);
}

// Start from one valid blob: every single-byte change, every truncation and every extension is
// refused, with no crash and no key material in the error.
void MutateAll(const TestKey& k, std::string_view plaintext) {
  auto sealed = SealToRecipient(k.public_pem, Secret(plaintext), "aad");
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  size_t refused = 0;
  for (size_t i = 0; i < sealed->size(); ++i) {
    for (uint8_t flip : {0x01, 0x80}) {
      std::string bad = *sealed;
      bad[i] = static_cast<char>(bad[i] ^ flip);
      auto r = OpenFromRecipient(k.private_pem, bad, "aad");
      ASSERT_FALSE(r.ok()) << "byte " << i << " ^ " << int(flip) << " accepted";
      ExpectNoKeyMaterial(r.status(), k, plaintext);
      ++refused;
    }
  }
  for (size_t n = 0; n < sealed->size(); ++n) {
    auto r = OpenFromRecipient(k.private_pem, sealed->substr(0, n), "aad");
    ASSERT_FALSE(r.ok()) << "truncated to " << n << " accepted";
    ++refused;
  }
  for (std::string_view tail : {std::string_view("\0", 1), std::string_view("extra bytes")}) {
    auto r = OpenFromRecipient(k.private_pem, *sealed + std::string(tail), "aad");
    ASSERT_FALSE(r.ok());
    ++refused;
  }
  EXPECT_GT(refused, sealed->size() * 3);
  EXPECT_EQ(ERR_peek_error(), 0u);
  auto good = OpenFromRecipient(k.private_pem, *sealed, "aad");
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->UnsafeStringView(), plaintext);
}

TEST(RecipientTest, EveryMutationOfAnX25519BlobIsRefused) {
  MutateAll(X25519A(), "0123456789abcdef0123456789abcdef");
}

TEST(RecipientTest, EveryMutationOfAnRsaBlobIsRefused) {
  MutateAll(Rsa3072A(), "0123456789abcdef0123456789abcdef");
}

TEST(RecipientTest, LowOrderEphemeralKeyIsAuthFailure) {
  auto sealed = SealToRecipient(X25519A().public_pem, Secret("x"), "");
  ASSERT_TRUE(sealed.ok());
  std::string bad = *sealed;
  for (size_t i = 1; i <= 32; ++i) bad[i] = '\0';
  auto r = OpenFromRecipient(X25519A().private_pem, bad, "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Msg(r.status()), kAuthFailed);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(RecipientTest, OversizedInputsAreRefused) {
  SecretBytes big(kMaxRecipientPlaintextSize + 1);
  auto sealed = SealToRecipient(X25519A().public_pem, big, "");
  ASSERT_FALSE(sealed.ok());
  EXPECT_EQ(sealed.status().code(), absl::StatusCode::kInvalidArgument);
  std::string huge(kMaxRecipientPlaintextSize + 4096, '\x01');
  auto opened = OpenFromRecipient(X25519A().private_pem, huge, "");
  ASSERT_FALSE(opened.ok());
  EXPECT_THAT(Msg(opened.status()), HasSubstr("at most"));
  auto unknown = OpenFromRecipient(X25519A().private_pem, std::string(100, '\x07'), "");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(Msg(unknown.status()), HasSubstr("unknown kind 7"));
}

}  // namespace
}  // namespace kshield::crypto
