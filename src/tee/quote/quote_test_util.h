// Test helpers for tee/quote: the shared attestation vectors (PROVENANCE.md) and a throwaway CA.
#pragma once

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <initializer_list>
#include <sstream>
#include <string>

#include "absl/time/time.h"

namespace kshield::tee::quote::testing {

inline std::string AttestationDir() {
  return std::string(KSHIELD_SHARED_DIR) + "/testdata/attestation/";
}

inline std::string ReadTestFile(const std::string& name) {
  std::ifstream in(AttestationDir() + name, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string IntelRootPem() { return ReadTestFile("intel_sgx_root_ca.pem"); }

inline constexpr char kMobilecoinQuote[] = "sgx_v3_mobilecoin_hw_quote.bin";
inline constexpr char kSgxSampleQuote[] = "sgx_v3_dcap_qvl_sample.bin";
inline constexpr char kSgxSampleCollateral[] = "sgx_v3_dcap_qvl_sample_collateral.json";
inline constexpr char kTdxSampleQuote[] = "tdx_v4_dcap_qvl_sample.bin";
inline constexpr char kTdxSampleCollateral[] = "tdx_v4_dcap_qvl_sample_collateral.json";

// PROVENANCE.md's suggested pinned "now", inside every collateral window.
inline absl::Time PinnedNow() { return absl::FromUnixSeconds(1751328000); }  // 2025-07-01T00:00:00Z

inline absl::Time ParseRfc3339(const std::string& s) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, s, &t, &err)) << s << ": " << err;
  return t;
}

inline std::string Unhex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// A fresh self-signed P-256 CA certificate (PEM): "some other root" for negative tests.
inline std::string MakeOtherRootPem() {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -10L * 365 * 24 * 3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 30L * 365 * 24 * 3600);
  X509_NAME* name = X509_get_subject_name(cert);
  // Same subject as Intel's root: the verifier must not be fooled by a name.
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Intel SGX Root CA"), -1, -1,
                             0);
  X509_set_issuer_name(cert, name);
  X509_set_pubkey(cert, key);
  X509_sign(cert, key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(len));
  BIO_free(bio);
  X509_free(cert);
  EVP_PKEY_free(key);
  return pem;
}

// A throwaway PKI (root → intermediate → leaf, P-256) with CRLs, for chain / revocation tests.
struct TestPki {
  struct Node {
    EVP_PKEY* key = nullptr;
    X509* cert = nullptr;
  };
  Node root, intermediate, leaf;

  TestPki() {
    root = Make("Test Root CA", nullptr, 1, true);
    intermediate = Make("Test PCK CA", &root, 2, true);
    leaf = Make("Test SGX PCK Certificate", &intermediate, 3, false);
  }
  ~TestPki() {
    for (Node* n : {&root, &intermediate, &leaf}) {
      X509_free(n->cert);
      EVP_PKEY_free(n->key);
    }
  }
  TestPki(const TestPki&) = delete;
  TestPki& operator=(const TestPki&) = delete;

  // A DER CRL by `issuer` revoking `serials`, valid [this_update, next_update].
  static std::string Crl(const Node& issuer, std::initializer_list<long> serials,
                         absl::Time this_update, absl::Time next_update) {
    X509_CRL* crl = X509_CRL_new();
    X509_CRL_set_version(crl, 1);
    X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer.cert));
    ASN1_TIME* t = ASN1_TIME_set(nullptr, absl::ToTimeT(this_update));
    ASN1_TIME* n = ASN1_TIME_set(nullptr, absl::ToTimeT(next_update));
    X509_CRL_set1_lastUpdate(crl, t);
    X509_CRL_set1_nextUpdate(crl, n);
    for (long s : serials) {
      X509_REVOKED* r = X509_REVOKED_new();
      ASN1_INTEGER* serial = ASN1_INTEGER_new();
      ASN1_INTEGER_set(serial, s);
      X509_REVOKED_set_serialNumber(r, serial);
      X509_REVOKED_set_revocationDate(r, t);
      X509_CRL_add0_revoked(crl, r);
      ASN1_INTEGER_free(serial);
    }
    X509_CRL_sort(crl);
    X509_CRL_sign(crl, issuer.key, EVP_sha256());
    unsigned char* der = nullptr;
    const int len = i2d_X509_CRL(crl, &der);
    std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    ASN1_TIME_free(t);
    ASN1_TIME_free(n);
    X509_CRL_free(crl);
    return out;
  }

  static std::string Pem(X509* cert) {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    std::string pem(data, static_cast<size_t>(len));
    BIO_free(bio);
    return pem;
  }

 private:
  static Node Make(const char* cn, const Node* issuer, long serial, bool ca) {
    Node n;
    n.key = EVP_EC_gen("P-256");
    n.cert = X509_new();
    X509_set_version(n.cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(n.cert), serial);
    // Valid 2020-01-01 .. 2040-01-01.
    ASN1_TIME_set(X509_getm_notBefore(n.cert), 1577836800);
    ASN1_TIME_set(X509_getm_notAfter(n.cert), 2208988800);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(n.cert), "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
    X509_set_issuer_name(n.cert, X509_get_subject_name(issuer ? issuer->cert : n.cert));
    X509_set_pubkey(n.cert, n.key);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer->cert : n.cert, n.cert, nullptr, nullptr, 0);
    X509_EXTENSION* bc = X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints,
                                             ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
    X509_add_ext(n.cert, bc, -1);
    X509_EXTENSION_free(bc);
    if (ca) {
      X509_EXTENSION* ku =
          X509V3_EXT_conf_nid(nullptr, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
      X509_add_ext(n.cert, ku, -1);
      X509_EXTENSION_free(ku);
    }
    X509_sign(n.cert, issuer ? issuer->key : n.key, EVP_sha256());
    return n;
  }
};

}  // namespace kshield::tee::quote::testing
