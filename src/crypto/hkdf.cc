#include "crypto/hkdf.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace kshield::crypto {
namespace {

constexpr size_t kSha256Size = 32;
constexpr size_t kMaxOutLen = 255 * kSha256Size;  // RFC 5869 §2.3: L <= 255*HashLen

struct KdfDeleter {
  void operator()(EVP_KDF* k) const { EVP_KDF_free(k); }
};
struct KdfCtxDeleter {
  // EVP_KDF_CTX_free clears the key it copied (OPENSSL_clear_free in the HKDF provider).
  void operator()(EVP_KDF_CTX* c) const { EVP_KDF_CTX_free(c); }
};
using KdfPtr = std::unique_ptr<EVP_KDF, KdfDeleter>;
using KdfCtxPtr = std::unique_ptr<EVP_KDF_CTX, KdfCtxDeleter>;

// Fetched once; never freed (see the same choice in aead.cc).
EVP_KDF* HkdfAlgorithm() {
  static KdfPtr* const kdf = [] {
    auto* k = new KdfPtr(EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_HKDF, nullptr));
    if (*k == nullptr) ERR_clear_error();  // reported by each call instead
    return k;
  }();
  return kdf->get();
}

absl::Status OpenSslError(absl::string_view what) {
  unsigned long err = ERR_get_error();
  char buf[256] = {0};
  if (err != 0) ERR_error_string_n(err, buf, sizeof(buf));
  ERR_clear_error();
  return absl::InternalError(absl::StrCat(what, " failed", err != 0 ? ": " : "", buf));
}

absl::Status CheckOutLen(size_t out_len) {
  if (out_len == 0 || out_len > kMaxOutLen) {
    return absl::InvalidArgumentError(
        absl::StrCat("HKDF output length must be in 1..", kMaxOutLen, ", got ", out_len));
  }
  return absl::OkStatus();
}

// OSSL_PARAM wants non-const pointers for inputs it only reads.
void* Mutable(const void* p) { return const_cast<void*>(p); }

absl::StatusOr<SecretBytes> Derive(int mode, const SecretBytes& key, std::string_view salt,
                                   std::string_view info, size_t out_len) {
  EVP_KDF* kdf = HkdfAlgorithm();
  if (kdf == nullptr) return OpenSslError("fetching HKDF from the OpenSSL provider");
  KdfCtxPtr ctx(EVP_KDF_CTX_new(kdf));
  if (ctx == nullptr) return OpenSslError("EVP_KDF_CTX_new");

  char digest[] = "SHA256";
  OSSL_PARAM params[6];
  size_t n = 0;
  params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                  Mutable(key.UnsafeView().data()), key.size());
  // Empty salt and info are simply not passed: RFC 5869 treats a missing salt as HashLen zeros,
  // which is what HMAC does with an empty key anyway.
  if (!salt.empty()) {
    params[n++] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, Mutable(salt.data()), salt.size());
  }
  if (!info.empty()) {
    params[n++] =
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, Mutable(info.data()), info.size());
  }
  params[n] = OSSL_PARAM_construct_end();

  SecretBytes out(out_len);  // zeroized on every return path by its destructor
  if (EVP_KDF_derive(ctx.get(), out.UnsafeMutableData(), out_len, params) != 1) {
    return OpenSslError("HKDF-SHA256 derive");
  }
  return out;
}

}  // namespace

absl::StatusOr<SecretBytes> HkdfSha256(const SecretBytes& ikm, std::string_view salt,
                                       std::string_view info, size_t out_len) {
  if (absl::Status s = CheckOutLen(out_len); !s.ok()) return s;
  if (ikm.empty()) return absl::InvalidArgumentError("HKDF input key material is empty");
  return Derive(EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, ikm, salt, info, out_len);
}

absl::StatusOr<SecretBytes> HkdfExpandSha256(const SecretBytes& prk, std::string_view info,
                                             size_t out_len) {
  if (absl::Status s = CheckOutLen(out_len); !s.ok()) return s;
  // RFC 5869 §2.3: PRK is "of at least HashLen octets".
  if (prk.size() < kSha256Size) {
    return absl::InvalidArgumentError(
        absl::StrCat("HKDF-Expand PRK must be at least ", kSha256Size, " bytes, got ", prk.size()));
  }
  return Derive(EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk, /*salt=*/{}, info, out_len);
}

}  // namespace kshield::crypto
