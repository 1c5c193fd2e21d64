#include "crypto/x509.h"

#include <gtest/gtest.h>

#include <string>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "absl/time/clock.h"

namespace kshield::crypto {
namespace {

std::string Str(const SecretBytes& s) {
  auto v = s.UnsafeView();
  return std::string(reinterpret_cast<const char*>(v.data()), v.size());
}

CertificateAuthority Root() {
  auto ca = MakeSelfSignedCa({.common_name = "test root", .validity = absl::Hours(48)});
  EXPECT_TRUE(ca.ok()) << ca.status();
  return std::move(*ca);
}

TEST(X509Test, KeyPairIsPkcs8AndMatches) {
  auto kp = GenerateEcP256Key();
  ASSERT_TRUE(kp.ok()) << kp.status();
  EXPECT_NE(Str(kp->private_key_pem).find("-----BEGIN PRIVATE KEY-----"), std::string::npos);
  EXPECT_NE(kp->public_key_pem.find("-----BEGIN PUBLIC KEY-----"), std::string::npos);
  EXPECT_TRUE(KeyMatchesPublicKey(kp->private_key_pem, kp->public_key_pem));
  auto other = GenerateEcP256Key();
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(KeyMatchesPublicKey(kp->private_key_pem, other->public_key_pem));
  EXPECT_FALSE(KeyMatchesPublicKey(SecretBytes::CopyFrom(std::string_view("junk")),
                                   kp->public_key_pem));
}

TEST(X509Test, SelfSignedCaFields) {
  CertificateAuthority root = Root();
  auto info = ParseCertificate(root.certificate_pem);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->common_name, "test root");
  EXPECT_EQ(info->issuer_common_name, "test root");
  EXPECT_TRUE(info->is_ca);
  EXPECT_EQ(info->sha256_fingerprint_hex.size(), 64u);
  EXPECT_LT(info->not_before, absl::Now());
  EXPECT_GT(info->not_after, absl::Now() + absl::Hours(47));
  EXPECT_TRUE(VerifyCertificateChain(root.certificate_pem, "", root.certificate_pem, absl::Now())
                  .ok());
}

TEST(X509Test, IssuedLeafThroughIntermediate) {
  CertificateAuthority root = Root();
  auto inter = MakeIntermediateCa(root, {.common_name = "cluster prod", .validity = absl::Hours(24)});
  ASSERT_TRUE(inter.ok()) << inter.status();
  auto kp = GenerateEcP256Key();
  ASSERT_TRUE(kp.ok());
  auto leaf = IssueCertificate(*inter, kp->public_key_pem,
                               {.common_name = "alice",
                                .organizations = {"dev", "ops"},
                                .validity = absl::Hours(1),
                                .dns_names = {"localhost"},
                                .ip_addresses = {"127.0.0.1", "::1"},
                                .client_auth = true});
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  auto info = ParseCertificate(*leaf);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->common_name, "alice");
  EXPECT_EQ(info->organizations, (std::vector<std::string>{"dev", "ops"}));
  EXPECT_EQ(info->issuer_common_name, "cluster prod");
  EXPECT_FALSE(info->is_ca);
  EXPECT_EQ(info->dns_names, (std::vector<std::string>{"localhost"}));
  EXPECT_EQ(info->ip_addresses, (std::vector<std::string>{"127.0.0.1", "::1"}));
  EXPECT_EQ(info->public_key_pem, kp->public_key_pem);
  EXPECT_LE(info->not_after, absl::Now() + absl::Hours(1) + absl::Seconds(5));

  EXPECT_TRUE(VerifyCertificateChain(*leaf, inter->certificate_pem, root.certificate_pem,
                                     absl::Now(), "client")
                  .ok());
  // Not a server certificate.
  EXPECT_FALSE(VerifyCertificateChain(*leaf, inter->certificate_pem, root.certificate_pem,
                                      absl::Now(), "server")
                   .ok());
  // Missing intermediate, wrong root, expired at a later time.
  EXPECT_FALSE(VerifyCertificateChain(*leaf, "", root.certificate_pem, absl::Now()).ok());
  CertificateAuthority other = Root();
  EXPECT_FALSE(VerifyCertificateChain(*leaf, inter->certificate_pem, other.certificate_pem,
                                      absl::Now())
                   .ok());
  EXPECT_FALSE(VerifyCertificateChain(*leaf, inter->certificate_pem, root.certificate_pem,
                                      absl::Now() + absl::Hours(2))
                   .ok());
  // A self-signed "intermediate" is never an anchor: the other root in the bundle does not help.
  auto other_leaf = IssueCertificate(other, kp->public_key_pem, {.common_name = "mallory"});
  ASSERT_TRUE(other_leaf.ok());
  EXPECT_FALSE(VerifyCertificateChain(*other_leaf, other.certificate_pem, root.certificate_pem,
                                      absl::Now())
                   .ok());
}

TEST(X509Test, LeafValidityClampedToIssuer) {
  auto root = MakeSelfSignedCa({.common_name = "short", .validity = absl::Hours(1)});
  ASSERT_TRUE(root.ok());
  auto kp = GenerateEcP256Key();
  ASSERT_TRUE(kp.ok());
  auto leaf = IssueCertificate(*root, kp->public_key_pem,
                               {.common_name = "x", .validity = absl::Hours(100)});
  ASSERT_TRUE(leaf.ok());
  auto li = ParseCertificate(*leaf);
  auto ri = ParseCertificate(root->certificate_pem);
  ASSERT_TRUE(li.ok() && ri.ok());
  EXPECT_LE(li->not_after, ri->not_after);
}

TEST(X509Test, BadSpecsRefused) {
  CertificateAuthority root = Root();
  auto kp = GenerateEcP256Key();
  ASSERT_TRUE(kp.ok());
  EXPECT_FALSE(IssueCertificate(root, kp->public_key_pem, {.common_name = "a\nb"}).ok());
  EXPECT_FALSE(
      IssueCertificate(root, kp->public_key_pem, {.common_name = "a", .dns_names = {"a,b"}}).ok());
  EXPECT_FALSE(
      IssueCertificate(root, kp->public_key_pem, {.common_name = "a", .ip_addresses = {"1.2.3"}})
          .ok());
  EXPECT_FALSE(IssueCertificate(root, kp->public_key_pem,
                                {.common_name = "a", .validity = absl::ZeroDuration()})
                   .ok());
  EXPECT_FALSE(IssueCertificate(root, "not a key", {.common_name = "a"}).ok());
  // Issuer key that does not belong to the issuer certificate.
  CertificateAuthority mixed{.private_key_pem = std::move(kp->private_key_pem),
                             .certificate_pem = root.certificate_pem};
  auto kp2 = GenerateEcP256Key();
  ASSERT_TRUE(kp2.ok());
  EXPECT_FALSE(IssueCertificate(mixed, kp2->public_key_pem, {.common_name = "a"}).ok());
}

TEST(X509Test, CsrRoundTrip) {
  auto kp = GenerateEcP256Key();
  ASSERT_TRUE(kp.ok());
  auto csr = MakeCsr(kp->private_key_pem, "alice", {"dev"});
  ASSERT_TRUE(csr.ok()) << csr.status();
  auto info = ParseAndVerifyCsr(*csr);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->common_name, "alice");
  EXPECT_EQ(info->organizations, (std::vector<std::string>{"dev"}));
  EXPECT_EQ(info->public_key_pem, kp->public_key_pem);
}

// One valid CSR mutated a piece at a time: every variant is refused without a crash.
TEST(X509Test, CsrMutationsRefused) {
  auto kp = GenerateEcP256Key();
  ASSERT_TRUE(kp.ok());
  auto csr = MakeCsr(kp->private_key_pem, "alice", {"dev"});
  ASSERT_TRUE(csr.ok());
  const std::string valid = *csr;
  EXPECT_FALSE(ParseAndVerifyCsr("").ok());
  EXPECT_FALSE(ParseAndVerifyCsr(valid + valid).ok()) << "two PEM blocks";
  EXPECT_FALSE(ParseAndVerifyCsr(std::string(17 * 1024, 'A')).ok());
  for (size_t cut = 0; cut < valid.size(); cut += 7) {
    EXPECT_FALSE(ParseAndVerifyCsr(valid.substr(0, cut)).ok()) << "truncated at " << cut;
  }
  // Flip a character inside the base64 body (skip the header line and newlines).
  const size_t body_start = valid.find('\n') + 1;
  const size_t body_end = valid.rfind("-----END");
  int accepted = 0;
  for (size_t i = body_start; i < body_end; ++i) {
    if (valid[i] == '\n') continue;
    std::string m = valid;
    m[i] = (m[i] == 'A') ? 'B' : 'A';
    auto r = ParseAndVerifyCsr(m);
    if (r.ok()) {
      // Base64 padding bits can change without changing the decoded bytes; such a CSR is the
      // same request. Anything accepted must still carry the original key and subject.
      ++accepted;
      EXPECT_EQ(r->public_key_pem, kp->public_key_pem);
      EXPECT_EQ(r->common_name, "alice");
    }
  }
  EXPECT_LE(accepted, 2);
}

TEST(X509Test, CsrWeakRsaRefused) {
  // An RSA-1024 CSR made with OpenSSL directly.
  EVP_PKEY* rsa = EVP_RSA_gen(1024);
  ASSERT_NE(rsa, nullptr);
  X509_REQ* req = X509_REQ_new();
  X509_REQ_set_pubkey(req, rsa);
  X509_REQ_sign(req, rsa, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509_REQ(bio, req);
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio, &mem);
  std::string pem(mem->data, mem->length);
  BIO_free(bio);
  X509_REQ_free(req);
  EVP_PKEY_free(rsa);
  auto r = ParseAndVerifyCsr(pem);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("2048"), std::string::npos);
}

TEST(X509Test, SplitBundle) {
  CertificateAuthority a = Root();
  CertificateAuthority b = Root();
  auto parts = SplitPemCertificates(a.certificate_pem + "\n" + b.certificate_pem);
  ASSERT_TRUE(parts.ok());
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0], a.certificate_pem);
  EXPECT_FALSE(SplitPemCertificates("nothing here").ok());
  std::string many;
  for (int i = 0; i < 17; ++i) many += a.certificate_pem;
  EXPECT_FALSE(SplitPemCertificates(many).ok());
}

TEST(X509Test, ParseCertificateRefusesJunk) {
  EXPECT_FALSE(ParseCertificate("").ok());
  EXPECT_FALSE(ParseCertificate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                   .ok());
}

}  // namespace
}  // namespace kshield::crypto
