#include "crypto/aead.h"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "common/status.h"
#include "crypto/random.h"

namespace kshield::crypto {
namespace {

struct CipherDeleter {
  void operator()(EVP_CIPHER* c) const { EVP_CIPHER_free(c); }
};
struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherPtr = std::unique_ptr<EVP_CIPHER, CipherDeleter>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

// Explicitly fetched ciphers: with EVP_aes_*_gcm() OpenSSL 3 does an implicit fetch (a locked
// method-store lookup) on every init, which costs about as much as sealing a 32-byte DEK. Fetched once and never
// freed, on purpose: thread_local contexts of threads still running during static teardown may
// reference them.
struct GcmCiphers {
  CipherPtr aes128{EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr)};
  CipherPtr aes192{EVP_CIPHER_fetch(nullptr, "AES-192-GCM", nullptr)};
  CipherPtr aes256{EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr)};
};

const GcmCiphers& Ciphers() {
  static const GcmCiphers* const ciphers = [] {
    auto* c = new GcmCiphers();
    // A failed fetch is reported by the calls that need that cipher; don't leave it queued.
    if (!c->aes128 || !c->aes192 || !c->aes256) ERR_clear_error();
    return c;
  }();
  return *ciphers;
}

const EVP_CIPHER* CipherForKeySize(size_t key_size) {
  switch (key_size) {
    case 16:
      return Ciphers().aes128.get();
    case 24:
      return Ciphers().aes192.get();
    case 32:
      return Ciphers().aes256.get();
    default:
      return nullptr;
  }
}

// One context per thread, reset after every operation so no key schedule outlives the call.
// Resetting keeps the EVP_CIPHER_CTX allocation itself.
EVP_CIPHER_CTX* ThreadCtx() {
  thread_local CipherCtxPtr ctx;
  if (ctx == nullptr) ctx.reset(EVP_CIPHER_CTX_new());
  return ctx.get();
}

const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

bool FitsInt(size_t n) { return n <= static_cast<size_t>(INT_MAX); }

// Sets up `ctx` for AES-GCM with `key` and `nonce`. The caller resets ctx afterwards.
bool InitGcm(EVP_CIPHER_CTX* ctx, const EVP_CIPHER* cipher, bool encrypt, const SecretBytes& key,
             std::string_view nonce) {
  const int enc = encrypt ? 1 : 0;
  const uint8_t* key_bytes = key.UnsafeView().data();
  if (nonce.size() == kAesGcmNonceSize) {
    return EVP_CipherInit_ex2(ctx, cipher, key_bytes, Bytes(nonce), enc, nullptr) == 1;
  }
  if (EVP_CipherInit_ex2(ctx, cipher, nullptr, nullptr, enc, nullptr) != 1) return false;
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce.size()), nullptr) !=
      1) {
    return false;
  }
  return EVP_CipherInit_ex2(ctx, nullptr, key_bytes, Bytes(nonce), enc, nullptr) == 1;
}

// Encrypts into `out`, which must have room for plaintext.size() + kAesGcmTagSize bytes:
// ciphertext || tag. Returns false on any OpenSSL failure.
bool SealInto(const EVP_CIPHER* cipher, const SecretBytes& key, std::string_view nonce,
              std::string_view plaintext, std::string_view aad, uint8_t* out) {
  EVP_CIPHER_CTX* ctx = ThreadCtx();
  if (ctx == nullptr) return false;
  absl::Cleanup reset = [ctx] { EVP_CIPHER_CTX_reset(ctx); };
  if (!InitGcm(ctx, cipher, /*encrypt=*/true, key, nonce)) return false;
  int len = 0;
  if (!aad.empty() &&
      EVP_EncryptUpdate(ctx, nullptr, &len, Bytes(aad), static_cast<int>(aad.size())) != 1) {
    return false;
  }
  size_t written = 0;
  if (!plaintext.empty()) {
    if (EVP_EncryptUpdate(ctx, out, &len, Bytes(plaintext), static_cast<int>(plaintext.size())) !=
        1) {
      return false;
    }
    written = static_cast<size_t>(len);
  }
  if (EVP_EncryptFinal_ex(ctx, out + written, &len) != 1) return false;
  written += static_cast<size_t>(len);
  if (written != plaintext.size()) return false;
  return EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kAesGcmTagSize),
                             out + written) == 1;
}

// Decrypts ciphertext || tag into `out` (room for ciphertext_and_tag.size() - kAesGcmTagSize
// bytes). GCM releases plaintext before the tag is checked, so on failure `out` is cleared here.
bool OpenInto(const EVP_CIPHER* cipher, const SecretBytes& key, std::string_view nonce,
              std::string_view ciphertext_and_tag, std::string_view aad, uint8_t* out) {
  const size_t ct_len = ciphertext_and_tag.size() - kAesGcmTagSize;
  EVP_CIPHER_CTX* ctx = ThreadCtx();
  if (ctx == nullptr) return false;
  absl::Cleanup reset = [ctx] { EVP_CIPHER_CTX_reset(ctx); };
  bool ok = false;
  absl::Cleanup clear_out = [&ok, out, ct_len] {
    if (!ok && ct_len > 0) OPENSSL_cleanse(out, ct_len);
  };
  if (!InitGcm(ctx, cipher, /*encrypt=*/false, key, nonce)) return false;
  int len = 0;
  if (!aad.empty() &&
      EVP_DecryptUpdate(ctx, nullptr, &len, Bytes(aad), static_cast<int>(aad.size())) != 1) {
    return false;
  }
  size_t written = 0;
  if (ct_len > 0) {
    if (EVP_DecryptUpdate(ctx, out, &len, Bytes(ciphertext_and_tag), static_cast<int>(ct_len)) !=
        1) {
      return false;
    }
    written = static_cast<size_t>(len);
  }
  // SET_TAG takes a non-const pointer; hand it a local copy rather than casting away const.
  uint8_t tag[kAesGcmTagSize];
  std::memcpy(tag, ciphertext_and_tag.data() + ct_len, kAesGcmTagSize);
  if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kAesGcmTagSize), tag) != 1) {
    return false;
  }
  if (EVP_DecryptFinal_ex(ctx, out + written, &len) != 1) return false;
  written += static_cast<size_t>(len);
  ok = written == ct_len;
  return ok;
}

absl::Status AuthFailed() {
  // Whatever failed inside OpenSSL must not linger in this thread's error queue (a later TLS
  // call would misread it) nor reach the caller (no oracle).
  ERR_clear_error();
  // absl::string_view is not std::string_view in this abseil build.
  return absl::InvalidArgumentError(absl::string_view(kAuthFailed.data(), kAuthFailed.size()));
}

absl::Status OpenSslError(absl::string_view what) {
  unsigned long err = ERR_get_error();
  char buf[256] = {0};
  if (err != 0) ERR_error_string_n(err, buf, sizeof(buf));
  ERR_clear_error();
  return absl::InternalError(absl::StrCat(what, " failed", err != 0 ? ": " : "", buf));
}

absl::Status CheckExplicitArgs(const SecretBytes& key, std::string_view nonce) {
  if (key.size() != 16 && key.size() != 24 && key.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("AES-GCM key must be 16, 24 or 32 bytes, got ", key.size()));
  }
  if (nonce.empty() || !FitsInt(nonce.size())) {
    return absl::InvalidArgumentError("AES-GCM nonce must be non-empty");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<AesGcmAead>> AesGcmAead::New(SecretBytes key) {
  if (key.size() != 16 && key.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("AES-GCM key must be 16 or 32 bytes, got ", key.size()));
  }
  if (CipherForKeySize(key.size()) == nullptr) {
    return OpenSslError("fetching AES-GCM from the OpenSSL provider");
  }
  return std::unique_ptr<AesGcmAead>(new AesGcmAead(std::move(key)));
}

absl::StatusOr<std::string> AesGcmAead::Encrypt(std::string_view plaintext,
                                                std::string_view associated_data) const {
  if (!FitsInt(plaintext.size()) || !FitsInt(associated_data.size()) ||
      plaintext.size() > static_cast<size_t>(INT_MAX) - kAesGcmNonceSize - kAesGcmTagSize) {
    return absl::InvalidArgumentError("AES-GCM input too large");
  }
  // One allocation: nonce || ciphertext || tag written in place.
  std::string out(kAesGcmNonceSize + plaintext.size() + kAesGcmTagSize, '\0');
  auto* p = reinterpret_cast<uint8_t*>(out.data());
  KSH_RETURN_IF_ERROR(RandomFill(absl::MakeSpan(p, kAesGcmNonceSize)));
  std::string_view nonce(out.data(), kAesGcmNonceSize);
  if (!SealInto(CipherForKeySize(key_.size()), key_, nonce, plaintext, associated_data,
                p + kAesGcmNonceSize)) {
    return OpenSslError("AES-GCM encrypt");
  }
  return out;
}

absl::StatusOr<std::string> AesGcmAead::Decrypt(std::string_view ciphertext,
                                                std::string_view associated_data) const {
  if (ciphertext.size() < kAesGcmNonceSize + kAesGcmTagSize || !FitsInt(ciphertext.size()) ||
      !FitsInt(associated_data.size())) {
    return AuthFailed();
  }
  std::string out(ciphertext.size() - kAesGcmNonceSize - kAesGcmTagSize, '\0');
  if (!OpenInto(CipherForKeySize(key_.size()), key_, ciphertext.substr(0, kAesGcmNonceSize),
                ciphertext.substr(kAesGcmNonceSize), associated_data,
                reinterpret_cast<uint8_t*>(out.data()))) {
    return AuthFailed();
  }
  return out;
}

absl::StatusOr<std::string> AesGcmSeal(const SecretBytes& key, std::string_view nonce,
                                       std::string_view plaintext, std::string_view aad) {
  KSH_RETURN_IF_ERROR(CheckExplicitArgs(key, nonce));
  if (!FitsInt(aad.size()) || plaintext.size() > static_cast<size_t>(INT_MAX) - kAesGcmTagSize) {
    return absl::InvalidArgumentError("AES-GCM input too large");
  }
  const EVP_CIPHER* cipher = CipherForKeySize(key.size());
  if (cipher == nullptr) return OpenSslError("fetching AES-GCM from the OpenSSL provider");
  std::string out(plaintext.size() + kAesGcmTagSize, '\0');
  if (!SealInto(cipher, key, nonce, plaintext, aad, reinterpret_cast<uint8_t*>(out.data()))) {
    return OpenSslError("AES-GCM encrypt");
  }
  return out;
}

absl::StatusOr<std::string> AesGcmOpen(const SecretBytes& key, std::string_view nonce,
                                       std::string_view ciphertext_and_tag, std::string_view aad) {
  KSH_RETURN_IF_ERROR(CheckExplicitArgs(key, nonce));
  const EVP_CIPHER* cipher = CipherForKeySize(key.size());
  if (cipher == nullptr) return OpenSslError("fetching AES-GCM from the OpenSSL provider");
  if (ciphertext_and_tag.size() < kAesGcmTagSize || !FitsInt(ciphertext_and_tag.size()) ||
      !FitsInt(aad.size())) {
    return AuthFailed();
  }
  std::string out(ciphertext_and_tag.size() - kAesGcmTagSize, '\0');
  if (!OpenInto(cipher, key, nonce, ciphertext_and_tag, aad,
                reinterpret_cast<uint8_t*>(out.data()))) {
    return AuthFailed();
  }
  return out;
}

}  // namespace kshield::crypto
