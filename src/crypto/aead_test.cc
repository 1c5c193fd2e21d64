#include "crypto/aead.h"

#include <openssl/err.h>

#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "crypto/random.h"
#include "gtest/gtest.h"

namespace kshield::crypto {
namespace {

// This abseil build's absl::string_view is its own type, not std::string_view.
std::string Hex(std::string_view hex) {
  return absl::HexStringToBytes(absl::string_view(hex.data(), hex.size()));
}
SecretBytes KeyFromHex(std::string_view hex) { return SecretBytes::CopyFrom(Hex(hex)); }

void ExpectAuthFailed(const absl::StatusOr<std::string>& r) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(r.status().message()), kAuthFailed);
}

// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", Appendix B, test cases 1-18
// (AES-128: 1-6, AES-192: 7-12, AES-256: 13-18). Cases 5/11/17 use an 8-byte IV, 6/12/18 a
// 60-byte IV; 4-6, 10-12, 16-18 carry AAD and a 60-byte plaintext.
struct GcmVector {
  int test_case;
  const char* key;
  const char* iv;
  const char* plaintext;
  const char* aad;
  const char* ciphertext;
  const char* tag;
};

constexpr char kKeyA128[] = "feffe9928665731c6d6a8f9467308308";
constexpr char kKeyA192[] = "feffe9928665731c6d6a8f9467308308feffe9928665731c";
constexpr char kKeyA256[] = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
constexpr char kIv96[] = "cafebabefacedbaddecaf888";
constexpr char kIv64[] = "cafebabefacedbad";
constexpr char kIv480[] =
    "9313225df88406e555909c5aff5269aa6a7a9538534f7da1e4c303d2a318a728"
    "c3c0c95156809539fcf0e2429a6b525416aedbf5a0de6a57a637b39b";
constexpr char kPt64[] =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
constexpr char kPt60[] =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
constexpr char kAad20[] = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
constexpr char kZero16[] = "00000000000000000000000000000000";
constexpr char kZero24[] = "000000000000000000000000000000000000000000000000";
constexpr char kZero32[] = "0000000000000000000000000000000000000000000000000000000000000000";
constexpr char kZeroIv[] = "000000000000000000000000";

const GcmVector kGcmSpecVectors[] = {
    {1, kZero16, kZeroIv, "", "", "", "58e2fccefa7e3061367f1d57a4e7455a"},
    {2, kZero16, kZeroIv, kZero16, "", "0388dace60b6a392f328c2b971b2fe78",
     "ab6e47d42cec13bdf53a67b21257bddf"},
    {3, kKeyA128, kIv96, kPt64, "",
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
     "4d5c2af327cd64a62cf35abd2ba6fab4"},
    {4, kKeyA128, kIv96, kPt60, kAad20,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
     "5bc94fbc3221a5db94fae95ae7121a47"},
    {5, kKeyA128, kIv64, kPt60, kAad20,
     "61353b4c2806934a777ff51fa22a4755699b2a714fcdc6f83766e5f97b6c7423"
     "73806900e49f24b22b097544d4896b424989b5e1ebac0f07c23f4598",
     "3612d2e79e3b0785561be14aaca2fccb"},
    {6, kKeyA128, kIv480, kPt60, kAad20,
     "8ce24998625615b603a033aca13fb894be9112a5c3a211a8ba262a3cca7e2ca7"
     "01e4a9a4fba43c90ccdcb281d48c7c6fd62875d2aca417034c34aee5",
     "619cc5aefffe0bfa462af43c1699d050"},
    {7, kZero24, kZeroIv, "", "", "", "cd33b28ac773f74ba00ed1f312572435"},
    {8, kZero24, kZeroIv, kZero16, "", "98e7247c07f0fe411c267e4384b0f600",
     "2ff58d80033927ab8ef4d4587514f0fb"},
    {9, kKeyA192, kIv96, kPt64, "",
     "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c"
     "7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710acade256",
     "9924a7c8587336bfb118024db8674a14"},
    {10, kKeyA192, kIv96, kPt60, kAad20,
     "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c"
     "7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710",
     "2519498e80f1478f37ba55bd6d27618c"},
    {11, kKeyA192, kIv64, kPt60, kAad20,
     "0f10f599ae14a154ed24b36e25324db8c566632ef2bbb34f8347280fc4507057"
     "fddc29df9a471f75c66541d4d4dad1c9e93a19a58e8b473fa0f062f7",
     "65dcc57fcf623a24094fcca40d3533f8"},
    {12, kKeyA192, kIv480, kPt60, kAad20,
     "d27e88681ce3243c4830165a8fdcf9ff1de9a1d8e6b447ef6ef7b79828666e45"
     "81e79012af34ddd9e2f037589b292db3e67c036745fa22e7e9b7373b",
     "dcf566ff291c25bbb8568fc3d376a6d9"},
    {13, kZero32, kZeroIv, "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {14, kZero32, kZeroIv, kZero16, "", "cea7403d4d606b6e074ec5d3baf39d18",
     "d0d1c8a799996bf0265b98b5d48ab919"},
    {15, kKeyA256, kIv96, kPt64, "",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {16, kKeyA256, kIv96, kPt60, kAad20,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
    {17, kKeyA256, kIv64, kPt60, kAad20,
     "c3762df1ca787d32ae47c13bf19844cbaf1ae14d0b976afac52ff7d79bba9de0"
     "feb582d33934a4f0954cc2363bc73f7862ac430e64abe499f47c9b1f",
     "3a337dbf46a792c45e454913fe2ea8f2"},
    {18, kKeyA256, kIv480, kPt60, kAad20,
     "5a8def2f0c9e53f1f75d7853659e2a20eeb2b22aafde6419a058ab4f6f746bf4"
     "0fc0c3b780f244452da3ebf1c5d82cdea2418997200ef82e44ae7e3f",
     "a44a8266ee1c8eb0c8b5d4cf5ae9f19a"},
};

// Keeps gtest/ctest names readable instead of dumping the struct's bytes.
void PrintTo(const GcmVector& v, std::ostream* os) { *os << "GCM spec test case " << v.test_case; }

class GcmSpecVectorTest : public ::testing::TestWithParam<GcmVector> {};

TEST_P(GcmSpecVectorTest, SealMatches) {
  const GcmVector& v = GetParam();
  SecretBytes key = KeyFromHex(v.key);
  absl::StatusOr<std::string> sealed = AesGcmSeal(key, Hex(v.iv), Hex(v.plaintext), Hex(v.aad));
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  EXPECT_EQ(absl::BytesToHexString(*sealed), std::string(v.ciphertext) + v.tag);
}

TEST_P(GcmSpecVectorTest, OpenMatches) {
  const GcmVector& v = GetParam();
  SecretBytes key = KeyFromHex(v.key);
  const std::string sealed = Hex(v.ciphertext) + Hex(v.tag);
  absl::StatusOr<std::string> opened = AesGcmOpen(key, Hex(v.iv), sealed, Hex(v.aad));
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(absl::BytesToHexString(*opened), v.plaintext);
}

TEST_P(GcmSpecVectorTest, OpenRejectsEveryBitFlip) {
  const GcmVector& v = GetParam();
  SecretBytes key = KeyFromHex(v.key);
  const std::string sealed = Hex(v.ciphertext) + Hex(v.tag);
  for (size_t bit = 0; bit < sealed.size() * 8; ++bit) {
    std::string bad = sealed;
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    SCOPED_TRACE(bit);
    ExpectAuthFailed(AesGcmOpen(key, Hex(v.iv), bad, Hex(v.aad)));
  }
}

INSTANTIATE_TEST_SUITE_P(McGrewViega, GcmSpecVectorTest, ::testing::ValuesIn(kGcmSpecVectors),
                         [](const ::testing::TestParamInfo<GcmVector>& info) {
                           return "TestCase" + std::to_string(info.param.test_case);
                         });

TEST(GcmSpecVectorSanity, HexLengths) {
  // Guards against a mistyped vector: every field must decode to the size the spec states.
  for (const GcmVector& v : kGcmSpecVectors) {
    SCOPED_TRACE(v.test_case);
    const size_t key_len = std::string_view(v.key).size() / 2;
    EXPECT_TRUE(key_len == 16 || key_len == 24 || key_len == 32);
    const size_t iv_len = std::string_view(v.iv).size() / 2;
    EXPECT_TRUE(iv_len == 8 || iv_len == 12 || iv_len == 60);
    EXPECT_EQ(std::string_view(v.plaintext).size(), std::string_view(v.ciphertext).size());
    EXPECT_EQ(std::string_view(v.tag).size(), 2 * kAesGcmTagSize);
  }
}

// From kube-apiserver's AES-GCM envelope transformer tests (staging/src/k8s.io/apiserver).
TEST(AesGcmKubernetesVectors, Aes128OpenAndSeal) {
  SecretBytes key = SecretBytes::CopyFrom(std::string_view("snorlax_awesomes"));
  ASSERT_EQ(key.size(), 16u);
  const std::string nonce = Hex("9f27c8fcea8a58c467d8e437");
  const std::string sealed =
      Hex("dbf2d85955f9b4bd912f4ef967d788a0cb0779") + Hex("7dac0a3f0a0845605ca85ac8562b4ae1");
  absl::StatusOr<std::string> opened = AesGcmOpen(key, nonce, sealed, "bamboo");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, "pandas are the best");

  absl::StatusOr<std::string> resealed = AesGcmSeal(key, nonce, "pandas are the best", "bamboo");
  ASSERT_TRUE(resealed.ok()) << resealed.status();
  EXPECT_EQ(*resealed, sealed);

  ExpectAuthFailed(AesGcmOpen(key, nonce, sealed, "bamboO"));
  ExpectAuthFailed(AesGcmOpen(key, nonce, sealed, ""));
}

TEST(AesGcmExplicitNonce, RejectsBadKeySizesAndEmptyNonce) {
  for (size_t n : {0, 1, 15, 17, 31, 33, 64}) {
    SecretBytes key(n);
    auto sealed = AesGcmSeal(key, std::string(12, 'n'), "pt", "");
    ASSERT_FALSE(sealed.ok());
    EXPECT_EQ(sealed.status().code(), absl::StatusCode::kInvalidArgument);
    auto opened = AesGcmOpen(key, std::string(12, 'n'), std::string(32, 'c'), "");
    ASSERT_FALSE(opened.ok());
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kInvalidArgument);
  }
  SecretBytes key(32);
  EXPECT_FALSE(AesGcmSeal(key, "", "pt", "").ok());
  EXPECT_FALSE(AesGcmOpen(key, "", std::string(32, 'c'), "").ok());
}

TEST(AesGcmExplicitNonce, ShortInputFailsAsAuth) {
  SecretBytes key(16);
  for (size_t n = 0; n < kAesGcmTagSize; ++n) {
    SCOPED_TRACE(n);
    ExpectAuthFailed(AesGcmOpen(key, std::string(12, '\0'), std::string(n, '\0'), ""));
  }
}

// --- AesGcmAead ---

std::unique_ptr<AesGcmAead> NewAead(size_t key_size) {
  auto aead = AesGcmAead::New(RandomSecret(key_size));
  EXPECT_TRUE(aead.ok()) << aead.status();
  return aead.ok() ? std::move(*aead) : nullptr;
}

TEST(AesGcmAead, RejectsBadKeySizes) {
  for (size_t n : {0, 1, 15, 17, 24, 31, 33, 64}) {
    SCOPED_TRACE(n);
    auto aead = AesGcmAead::New(SecretBytes(n));
    ASSERT_FALSE(aead.ok());
    EXPECT_EQ(aead.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(AesGcmAead, RoundTripsAes128AndAes256) {
  for (size_t key_size : {16, 32}) {
    SCOPED_TRACE(key_size);
    auto aead = NewAead(key_size);
    ASSERT_NE(aead, nullptr);
    for (size_t n : {0, 1, 15, 16, 17, 32, 100, 4096, 1 << 20}) {
      SCOPED_TRACE(n);
      const std::string pt = RandomString(n);
      auto ct = aead->Encrypt(pt, "aad");
      ASSERT_TRUE(ct.ok()) << ct.status();
      EXPECT_EQ(ct->size(), kAesGcmNonceSize + n + kAesGcmTagSize);
      auto back = aead->Decrypt(*ct, "aad");
      ASSERT_TRUE(back.ok()) << back.status();
      EXPECT_EQ(*back, pt);
    }
  }
}

TEST(AesGcmAead, EmptyPlaintextAndEmptyAad) {
  auto aead = NewAead(32);
  ASSERT_NE(aead, nullptr);
  auto ct = aead->Encrypt("", "");
  ASSERT_TRUE(ct.ok()) << ct.status();
  EXPECT_EQ(ct->size(), kAesGcmNonceSize + kAesGcmTagSize);
  auto back = aead->Decrypt(*ct, "");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->empty());
  ExpectAuthFailed(aead->Decrypt(*ct, "x"));
}

TEST(AesGcmAead, OutputIsNonceCiphertextTag) {
  SecretBytes key = RandomSecret(32);
  auto aead = AesGcmAead::New(key.Clone());
  ASSERT_TRUE(aead.ok());
  const std::string pt = "a 32-byte data encryption key...";
  auto ct = (*aead)->Encrypt(pt, "ctx");
  ASSERT_TRUE(ct.ok());
  auto opened =
      AesGcmOpen(key, ct->substr(0, kAesGcmNonceSize), ct->substr(kAesGcmNonceSize), "ctx");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, pt);
}

TEST(AesGcmAead, EveryBitFlipFailsIdentically) {
  auto aead = NewAead(32);
  ASSERT_NE(aead, nullptr);
  const std::string dek = RandomString(32);
  auto ct = aead->Encrypt(dek, "key-id-1");
  ASSERT_TRUE(ct.ok());
  ASSERT_EQ(ct->size(), 60u);
  for (size_t bit = 0; bit < ct->size() * 8; ++bit) {
    std::string bad = *ct;
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    SCOPED_TRACE(bit);
    ExpectAuthFailed(aead->Decrypt(bad, "key-id-1"));
  }
  // The failures left nothing in OpenSSL's per-thread error queue.
  EXPECT_EQ(ERR_peek_error(), 0u);
  // And the thread's context still works afterwards.
  auto back = aead->Decrypt(*ct, "key-id-1");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, dek);
}

TEST(AesGcmAead, TruncatedAndExtendedInputsFailIdentically) {
  auto aead = NewAead(16);
  ASSERT_NE(aead, nullptr);
  auto ct = aead->Encrypt("pandas are the best", "bamboo");
  ASSERT_TRUE(ct.ok());
  for (size_t n = 0; n < ct->size(); ++n) {
    SCOPED_TRACE(n);
    ExpectAuthFailed(aead->Decrypt(ct->substr(0, n), "bamboo"));
    ExpectAuthFailed(aead->Decrypt(ct->substr(ct->size() - n), "bamboo"));
  }
  ExpectAuthFailed(aead->Decrypt(*ct + '\0', "bamboo"));
}

TEST(AesGcmAead, WrongAadOrKeyFails) {
  auto aead = NewAead(32);
  auto other = NewAead(32);
  ASSERT_NE(aead, nullptr);
  ASSERT_NE(other, nullptr);
  auto ct = aead->Encrypt("secret", "bamboo");
  ASSERT_TRUE(ct.ok());
  ExpectAuthFailed(aead->Decrypt(*ct, "bamboO"));
  ExpectAuthFailed(aead->Decrypt(*ct, ""));
  ExpectAuthFailed(aead->Decrypt(*ct, std::string_view("bamboo\0", 7)));
  ExpectAuthFailed(other->Decrypt(*ct, "bamboo"));
  auto ok = aead->Decrypt(*ct, "bamboo");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, "secret");
}

TEST(AesGcmAead, NoncesDifferBetweenEncryptions) {
  auto aead = NewAead(32);
  ASSERT_NE(aead, nullptr);
  std::set<std::string> nonces;
  std::set<std::string> ciphertexts;
  constexpr int kN = 10000;
  for (int i = 0; i < kN; ++i) {
    auto ct = aead->Encrypt("same plaintext", "same aad");
    ASSERT_TRUE(ct.ok());
    nonces.insert(ct->substr(0, kAesGcmNonceSize));
    ciphertexts.insert(*ct);
  }
  EXPECT_EQ(nonces.size(), static_cast<size_t>(kN));
  EXPECT_EQ(ciphertexts.size(), static_cast<size_t>(kN));
}

TEST(AesGcmAead, ThreadSafetySmoke) {
  auto a = NewAead(32);
  auto b = NewAead(16);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  constexpr int kThreads = 8;
  constexpr int kIters = 2000;
  std::vector<int> failures(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kIters; ++i) {
        // Alternate keys (and key sizes) on the same thread-local context.
        const Aead& aead = (i + t) % 2 == 0 ? static_cast<const Aead&>(*a) : *b;
        const Aead& wrong = (i + t) % 2 == 0 ? static_cast<const Aead&>(*b) : *a;
        const std::string pt = RandomString(32);
        const std::string aad = "thread-" + std::to_string(t);
        auto ct = aead.Encrypt(pt, aad);
        if (!ct.ok()) {
          ++failures[t];
          continue;
        }
        auto back = aead.Decrypt(*ct, aad);
        if (!back.ok() || *back != pt) ++failures[t];
        if (wrong.Decrypt(*ct, aad).ok()) ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace kshield::crypto
