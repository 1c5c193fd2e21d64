// Test-only: a fresh OpenSSL key pair as PEM (private key in SecretBytes), for tests that need a
// recipient / identity key (backup, recipient encryption).
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <string>

#include "common/secret.h"

namespace kshield::testing {

struct TestKey {
  SecretBytes private_pem;  // PKCS#8 PEM
  std::string public_pem;   // SubjectPublicKeyInfo PEM
};

// `alg`: "X25519", "RSA" (with `bits`) or "EC" (P-256). Aborts if OpenSSL fails (test setup).
inline TestKey GenerateTestKey(const std::string& alg, size_t bits = 0) {
  EVP_PKEY* key = alg == "RSA"  ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", bits)
                  : alg == "EC" ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                                : EVP_PKEY_Q_keygen(nullptr, nullptr, alg.c_str());
  if (key == nullptr) abort();
  BIO* priv = BIO_new(BIO_s_mem());
  BIO* pub = BIO_new(BIO_s_mem());
  if (PEM_write_bio_PrivateKey(priv, key, nullptr, nullptr, 0, nullptr, nullptr) != 1 ||
      PEM_write_bio_PUBKEY(pub, key) != 1) {
    abort();
  }
  auto text = [](BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<size_t>(len));
  };
  TestKey out{SecretBytes::CopyFrom(text(priv)), text(pub)};
  BIO_free(priv);
  BIO_free(pub);
  EVP_PKEY_free(key);
  return out;
}

}  // namespace kshield::testing
