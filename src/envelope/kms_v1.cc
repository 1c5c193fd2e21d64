#include "envelope/kms_v1.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <climits>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "crypto/aead.h"
#include "crypto/random.h"
#include "envelope/byte_reader.h"
#include "envelope/value_kind.h"

namespace kshield::envelope {
namespace {

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

absl::Status Invalid(std::string_view msg) {
  return absl::InvalidArgumentError(AV(absl::StrCat("KMS v1 value: ", AV(msg))));
}

absl::Status AuthFailed() {
  ERR_clear_error();  // nothing from OpenSSL may linger or reach the caller (no oracle)
  return absl::InvalidArgumentError(AV(crypto::kAuthFailed));
}

absl::Status CheckAesKey(const SecretBytes& key) {
  if (key.size() != 16 && key.size() != 24 && key.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("KMS v1: the DEK must be 16, 24 or 32 bytes, got ", key.size()));
  }
  return absl::OkStatus();
}

const EVP_CIPHER* CbcCipher(size_t key_size) {
  switch (key_size) {
    case 16:
      return EVP_aes_128_cbc();
    case 24:
      return EVP_aes_192_cbc();
    case 32:
      return EVP_aes_256_cbc();
  }
  return nullptr;
}

// Clears a plaintext buffer that must not be handed out.
void Wipe(std::string* s) {
  if (!s->empty()) OPENSSL_cleanse(s->data(), s->size());
  s->clear();
}

}  // namespace

absl::StatusOr<KmsV1Value> ParseKmsV1(std::string_view etcd_value) {
  if (etcd_value.size() > kMaxValueSize) return Invalid("larger than the maximum value size");
  const ValuePrefix prefix = SplitValuePrefix(etcd_value);
  if (prefix.kind != ValueKind::kKmsV1) {
    return Invalid(absl::StrCat("no k8s:enc:kms:v1:<provider>: prefix (value kind ",
                                AV(ValueKindName(prefix.kind)), ")"));
  }
  ByteReader r(prefix.payload);
  uint16_t dek_len = 0;
  if (!r.ReadU16BE(&dek_len)) return Invalid("shorter than the 2-byte DEK length");
  std::string_view wrapped;
  if (!r.Read(dek_len, &wrapped)) return Invalid("DEK length larger than the value");
  if (wrapped.empty()) return Invalid("the wrapped DEK is empty");
  KmsV1Value out;
  out.provider = std::string(prefix.provider);
  out.wrapped_dek = std::string(wrapped);
  out.data = std::string(r.rest());
  return out;
}

absl::StatusOr<std::string> BuildKmsV1(std::string_view provider, std::string_view wrapped_dek,
                                       std::string_view data) {
  if (provider.empty() || provider.find(':') != std::string_view::npos) {
    return Invalid("provider name must be non-empty and must not contain ':'");
  }
  if (wrapped_dek.empty() || wrapped_dek.size() > kKmsV1MaxWrappedDekSize) {
    return Invalid(absl::StrCat("the wrapped DEK must be 1..", kKmsV1MaxWrappedDekSize,
                                " bytes, got ", wrapped_dek.size()));
  }
  const size_t n = wrapped_dek.size();
  const char len[2] = {static_cast<char>((n >> 8) & 0xff), static_cast<char>(n & 0xff)};
  std::string out = absl::StrCat(AV(kKmsV1Prefix), AV(provider), ":", absl::string_view(len, 2),
                                 AV(wrapped_dek), AV(data));
  if (out.size() > kMaxValueSize) return Invalid("larger than the maximum value size");
  return out;
}

absl::StatusOr<std::string> DecryptKmsV1Data(std::string_view data, const SecretBytes& dek,
                                             std::string_view etcd_key) {
  KSH_RETURN_IF_ERROR(CheckAesKey(dek));
  ByteReader r(data);
  std::string_view nonce;
  if (!r.Read(crypto::kAesGcmNonceSize, &nonce)) return AuthFailed();
  return crypto::AesGcmOpen(dek, nonce, r.rest(), etcd_key);
}

absl::StatusOr<std::string> DecryptKmsV1CbcData(std::string_view data, const SecretBytes& dek) {
  KSH_RETURN_IF_ERROR(CheckAesKey(dek));
  ByteReader r(data);
  std::string_view iv;
  if (!r.Read(kAesCbcBlockSize, &iv)) return AuthFailed();
  const std::string_view ct = r.rest();
  if (ct.empty() || ct.size() % kAesCbcBlockSize != 0 || ct.size() > static_cast<size_t>(INT_MAX)) {
    return AuthFailed();
  }
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) return AuthFailed();
  std::string out(ct.size(), '\0');
  auto* o = reinterpret_cast<uint8_t*>(out.data());
  int len = 0;
  int tail = 0;
  // OpenSSL's padding removal is off: we check the padding ourselves below, so that every failure
  // takes the same path to the same answer.
  if (EVP_DecryptInit_ex(ctx.get(), CbcCipher(dek.size()), nullptr, dek.UnsafeView().data(),
                         reinterpret_cast<const uint8_t*>(iv.data())) != 1 ||
      EVP_CIPHER_CTX_set_padding(ctx.get(), 0) != 1 ||
      EVP_DecryptUpdate(ctx.get(), o, &len, reinterpret_cast<const uint8_t*>(ct.data()),
                        static_cast<int>(ct.size())) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), o + len, &tail) != 1 ||
      static_cast<size_t>(len) + static_cast<size_t>(tail) != ct.size()) {
    Wipe(&out);
    return AuthFailed();
  }
  // Strict PKCS#7, examined without branching on the secret bytes: p in 1..16 and the last p
  // bytes all equal p. out.size() >= 16, so the last 16 bytes exist.
  const uint8_t p = o[out.size() - 1];
  unsigned bad = static_cast<unsigned>(p == 0) | static_cast<unsigned>(p > kAesCbcBlockSize);
  for (size_t i = 0; i < kAesCbcBlockSize; ++i) {
    const unsigned in_pad = static_cast<unsigned>(i < p);
    bad |= in_pad & static_cast<unsigned>(o[out.size() - 1 - i] != p);
  }
  if (bad != 0) {
    Wipe(&out);
    return AuthFailed();
  }
  // Shrinking never reallocates; the padding bytes left in capacity are not secret.
  out.resize(out.size() - p);
  return out;
}

absl::StatusOr<std::string> DecryptKmsV1DataGcmOrCbc(std::string_view data, const SecretBytes& dek,
                                                     std::string_view etcd_key) {
  KSH_RETURN_IF_ERROR(CheckAesKey(dek));
  auto gcm = DecryptKmsV1Data(data, dek, etcd_key);
  if (gcm.ok()) return gcm;
  if (data.size() < 2 * kAesCbcBlockSize || data.size() % kAesCbcBlockSize != 0) {
    return AuthFailed();
  }
  auto cbc = DecryptKmsV1CbcData(data, dek);
  if (!cbc.ok()) return AuthFailed();
  if (!cbc->starts_with(kProtobufMagic) && !cbc->starts_with('{')) {
    Wipe(&*cbc);
    return AuthFailed();
  }
  return cbc;
}

absl::StatusOr<std::string> EncryptKmsV1Data(const SecretBytes& dek, std::string_view plaintext,
                                             std::string_view etcd_key) {
  KSH_RETURN_IF_ERROR(CheckAesKey(dek));
  const std::string nonce = crypto::RandomString(crypto::kAesGcmNonceSize);
  KSH_ASSIGN_OR_RETURN(std::string sealed, crypto::AesGcmSeal(dek, nonce, plaintext, etcd_key));
  return absl::StrCat(nonce, sealed);
}

absl::StatusOr<std::string> EncryptKmsV1CbcData(const SecretBytes& dek,
                                                std::string_view plaintext) {
  KSH_RETURN_IF_ERROR(CheckAesKey(dek));
  if (plaintext.size() > static_cast<size_t>(INT_MAX) - 2 * kAesCbcBlockSize) {
    return absl::InvalidArgumentError("KMS v1 CBC: plaintext too large");
  }
  const std::string iv = crypto::RandomString(kAesCbcBlockSize);
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) return absl::InternalError("EVP_CIPHER_CTX_new failed");
  std::string out(iv.size() + plaintext.size() + kAesCbcBlockSize, '\0');
  auto* o = reinterpret_cast<uint8_t*>(out.data()) + iv.size();
  int len = 0;
  int tail = 0;
  // OpenSSL's default padding is PKCS#7, as Go's apiserver wrote it.
  if (EVP_EncryptInit_ex(ctx.get(), CbcCipher(dek.size()), nullptr, dek.UnsafeView().data(),
                         reinterpret_cast<const uint8_t*>(iv.data())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), o, &len, reinterpret_cast<const uint8_t*>(plaintext.data()),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), o + len, &tail) != 1) {
    ERR_clear_error();
    return absl::InternalError("KMS v1 CBC: encryption failed");
  }
  out.replace(0, iv.size(), iv);
  out.resize(iv.size() + static_cast<size_t>(len) + static_cast<size_t>(tail));
  return out;
}

}  // namespace kshield::envelope
