#include "crypto/recipient.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "crypto/aead.h"
#include "crypto/hkdf.h"
#include "crypto/random.h"
#include "crypto/sha256.h"

namespace kshield::crypto {
namespace {

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter>;
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

constexpr uint8_t kKindX25519 = 0x01;
constexpr uint8_t kKindRsa = 0x02;
constexpr size_t kX25519Size = 32;
constexpr size_t kDataKeySize = 32;
constexpr size_t kMaxIdentityPemSize = 64 * 1024;
constexpr size_t kMaxRsaModulusBytes = kMaxRecipientRsaBits / 8;
constexpr size_t kMaxSealedSize =
    1 + 2 + kMaxRsaModulusBytes + kAesGcmNonceSize + kMaxRecipientPlaintextSize + kAesGcmTagSize;

enum class Kind { kX25519, kRsa };
struct KeyInfo {
  Kind kind = Kind::kX25519;
  int bits = 0;
};

const uint8_t* U8(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Failures inside OpenSSL leave entries in this thread's error queue; a later TLS call would
// misread them, and their text is never shown for private-key operations.
absl::Status Refuse(absl::StatusCode code, std::string_view message) {
  ERR_clear_error();
  return absl::Status(code, AV(message));
}

absl::Status AuthFailed() { return Refuse(absl::StatusCode::kInvalidArgument, kAuthFailed); }

absl::Status Internal(std::string_view what) {
  ERR_clear_error();
  return absl::InternalError(absl::StrCat(AV(what), " failed inside OpenSSL"));
}

size_t CountPemBlocks(std::string_view pem) {
  size_t n = 0;
  for (size_t pos = pem.find("-----BEGIN "); pos != std::string_view::npos;
       pos = pem.find("-----BEGIN ", pos + 1)) {
    ++n;
  }
  return n;
}

// One PEM block, base64-decoded by OpenSSL's plain PEM reader (PEM_read_bio_PUBKEY and friends
// go through the OpenSSL 3 decoder framework, several times slower). PEM_FLAG_SECURE: OpenSSL
// keeps its working buffers in its secure heap when one is set up and clears them either way;
// the DER (a private key, for an identity) is wiped on free.
struct PemDer {
  std::string name;
  bool has_headers = false;
  unsigned char* der = nullptr;
  long len = 0;
  PemDer() = default;
  PemDer(const PemDer&) = delete;
  PemDer& operator=(const PemDer&) = delete;
  ~PemDer() {
    if (der != nullptr) OPENSSL_secure_clear_free(der, static_cast<size_t>(len));
  }
};

bool ReadPem(std::string_view pem, PemDer& out) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return false;
  char* name = nullptr;
  char* headers = nullptr;
  const int ok = PEM_read_bio_ex(bio.get(), &name, &headers, &out.der, &out.len,
                                 PEM_FLAG_SECURE | PEM_FLAG_EAY_COMPATIBLE);
  if (ok == 1 && name != nullptr) out.name = name;
  out.has_headers = headers != nullptr && headers[0] != '\0';
  OPENSSL_secure_free(name);
  OPENSSL_secure_free(headers);
  ERR_clear_error();
  return ok == 1 && out.der != nullptr && out.len > 0;
}

absl::StatusOr<PkeyPtr> ParsePublicKey(std::string_view pem) {
  if (pem.size() > kMaxRecipientPemSize) {
    return absl::InvalidArgumentError(absl::StrCat("recipient public key is ", pem.size(),
                                                   " bytes; at most ", kMaxRecipientPemSize));
  }
  if (CountPemBlocks(pem) != 1) {
    return absl::InvalidArgumentError(
        "recipient public key must be exactly one PEM block (-----BEGIN PUBLIC KEY-----)");
  }
  constexpr std::string_view kNotSpki =
      "recipient public key is not a PEM SubjectPublicKeyInfo (-----BEGIN PUBLIC KEY-----)";
  PemDer block;
  if (!ReadPem(pem, block) || block.name != "PUBLIC KEY" || block.has_headers) {
    return Refuse(absl::StatusCode::kInvalidArgument, kNotSpki);
  }
  // X25519's one SPKI encoding (RFC 8410 §4) directly; see ParsePrivateKey.
  static constexpr unsigned char kX25519SpkiPrefix[] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                                        0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00};
  constexpr long kX25519SpkiSize = sizeof(kX25519SpkiPrefix) + kX25519Size;
  const unsigned char* p = block.der;
  PkeyPtr key;
  if (block.len == kX25519SpkiSize &&
      std::memcmp(block.der, kX25519SpkiPrefix, sizeof(kX25519SpkiPrefix)) == 0) {
    key.reset(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr,
                                          block.der + sizeof(kX25519SpkiPrefix), kX25519Size));
    p = block.der + block.len;
  } else {
    key.reset(d2i_PUBKEY(nullptr, &p, block.len));
  }
  if (key == nullptr || p != block.der + block.len) {
    return Refuse(absl::StatusCode::kInvalidArgument, kNotSpki);
  }
  return key;
}

absl::StatusOr<PkeyPtr> ParsePrivateKey(const SecretBytes& pem_secret) {
  const std::string_view pem = pem_secret.UnsafeStringView();
  if (pem.empty() || pem.size() > kMaxIdentityPemSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("identity key is ", pem.size(), " bytes; want 1..", kMaxIdentityPemSize));
  }
  if (CountPemBlocks(pem) != 1) {
    return absl::InvalidArgumentError(
        "identity key must be exactly one PEM block (-----BEGIN PRIVATE KEY-----)");
  }
  constexpr std::string_view kNotPrivate =
      "identity key is not a PEM private key (-----BEGIN PRIVATE KEY-----)";
  PemDer block;
  if (!ReadPem(pem, block)) return Refuse(absl::StatusCode::kInvalidArgument, kNotPrivate);
  if (block.name == "ENCRYPTED PRIVATE KEY" || block.has_headers) {
    return absl::InvalidArgumentError(
        "identity key is encrypted; give an unencrypted PEM private key (e.g. `openssl pkey -in "
        "KEY -out PLAIN`)");
  }
  const unsigned char* p = block.der;
  PkeyPtr key;
  // The one PKCS#8 encoding of an X25519 key (RFC 8410 §7, OneAsymmetricKey v1 without
  // attributes, as OpenSSL writes it) is read directly: OpenSSL 3.0's generic decoder costs
  // about a millisecond per call. Anything else takes the generic path.
  static constexpr unsigned char kX25519Pkcs8Prefix[] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30,
                                                         0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e,
                                                         0x04, 0x22, 0x04, 0x20};
  constexpr long kX25519Pkcs8Size = sizeof(kX25519Pkcs8Prefix) + kX25519Size;
  if (block.name == "PRIVATE KEY" && block.len == kX25519Pkcs8Size &&
      std::memcmp(block.der, kX25519Pkcs8Prefix, sizeof(kX25519Pkcs8Prefix)) == 0) {
    key.reset(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr,
                                           block.der + sizeof(kX25519Pkcs8Prefix), kX25519Size));
    p = block.der + block.len;
  } else if (block.name == "PRIVATE KEY") {
    key.reset(d2i_AutoPrivateKey(nullptr, &p, block.len));
  } else if (block.name == "RSA PRIVATE KEY") {
    key.reset(d2i_PrivateKey(EVP_PKEY_RSA, nullptr, &p, block.len));
  }
  if (key == nullptr || p != block.der + block.len) {
    return Refuse(absl::StatusCode::kInvalidArgument, kNotPrivate);
  }
  return key;
}

absl::StatusOr<KeyInfo> Classify(EVP_PKEY* key, std::string_view role) {
  if (EVP_PKEY_is_a(key, "X25519")) return KeyInfo{Kind::kX25519, 253};
  if (EVP_PKEY_is_a(key, "RSA")) {
    const int bits = EVP_PKEY_get_bits(key);
    if (bits < kMinRecipientRsaBits || bits > kMaxRecipientRsaBits) {
      return absl::InvalidArgumentError(
          absl::StrCat(AV(role), " is RSA-", bits, "; RSA recipients need ", kMinRecipientRsaBits,
                       "..", kMaxRecipientRsaBits, " bits (or use X25519)"));
    }
    return KeyInfo{Kind::kRsa, bits};
  }
  const char* type = EVP_PKEY_get0_type_name(key);
  return absl::InvalidArgumentError(
      absl::StrCat(AV(role), " is of unsupported type ", type != nullptr ? type : "(unknown)",
                   "; use X25519 or RSA with at least ", kMinRecipientRsaBits, " bits"));
}

std::string KindName(const KeyInfo& info) {
  return info.kind == Kind::kX25519 ? std::string("x25519") : absl::StrCat("rsa-", info.bits);
}

absl::StatusOr<std::string> RawPublic(EVP_PKEY* key) {
  std::string out(kX25519Size, '\0');
  size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(key, reinterpret_cast<uint8_t*>(out.data()), &len) != 1 ||
      len != kX25519Size) {
    return Internal("reading an X25519 public key");
  }
  return out;
}

// X25519(priv, peer) into protected memory. Fails (as AuthFailed) on a low-order peer point.
absl::StatusOr<SecretBytes> Derive(EVP_PKEY* priv, EVP_PKEY* peer) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, priv, nullptr));
  if (ctx == nullptr) return Internal("EVP_PKEY_CTX_new_from_pkey");
  size_t len = 0;
  if (EVP_PKEY_derive_init(ctx.get()) != 1 || EVP_PKEY_derive_set_peer(ctx.get(), peer) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &len) != 1 || len != kX25519Size) {
    return AuthFailed();
  }
  SecretBytes shared(len);
  if (EVP_PKEY_derive(ctx.get(), shared.UnsafeMutableData(), &len) != 1 || len != kX25519Size) {
    return AuthFailed();
  }
  // All-zero output = the peer was a low-order point (RFC 7748 §6.1). OpenSSL refuses it too.
  uint8_t any = 0;
  for (uint8_t b : shared.UnsafeView()) any |= b;
  if (any == 0) return AuthFailed();
  return shared;
}

absl::StatusOr<SecretBytes> X25519Key(const SecretBytes& shared, std::string_view ephemeral_pub,
                                      std::string_view recipient_pub) {
  return HkdfSha256(shared, absl::StrCat(AV(ephemeral_pub), AV(recipient_pub)), kRecipientHkdfInfo,
                    kDataKeySize);
}

absl::Status SetOaep(EVP_PKEY_CTX* ctx) {
  if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) != 1) {
    return Internal("configuring RSA-OAEP-SHA256");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> OaepWrap(EVP_PKEY* pub, const SecretBytes& key) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, pub, nullptr));
  if (ctx == nullptr || EVP_PKEY_encrypt_init(ctx.get()) != 1) return Internal("RSA-OAEP init");
  KSH_RETURN_IF_ERROR(SetOaep(ctx.get()));
  size_t len = 0;
  if (EVP_PKEY_encrypt(ctx.get(), nullptr, &len, key.UnsafeView().data(), key.size()) != 1) {
    return Internal("RSA-OAEP encryption");
  }
  std::string out(len, '\0');
  if (EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<uint8_t*>(out.data()), &len,
                       key.UnsafeView().data(), key.size()) != 1) {
    return Internal("RSA-OAEP encryption");
  }
  out.resize(len);
  return out;
}

absl::StatusOr<SecretBytes> OaepUnwrap(EVP_PKEY* priv, std::string_view wrapped) {
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, priv, nullptr));
  if (ctx == nullptr || EVP_PKEY_decrypt_init(ctx.get()) != 1) return Internal("RSA-OAEP init");
  KSH_RETURN_IF_ERROR(SetOaep(ctx.get()));
  const int size = EVP_PKEY_get_size(priv);
  if (size <= 0) return Internal("reading the RSA key size");
  SecretBytes out(static_cast<size_t>(size));
  size_t len = out.size();
  if (EVP_PKEY_decrypt(ctx.get(), out.UnsafeMutableData(), &len, U8(wrapped), wrapped.size()) !=
          1 ||
      len != kDataKeySize) {
    return AuthFailed();
  }
  return SecretBytes::CopyFrom(out.UnsafeView().subspan(0, kDataKeySize));
}

// AES-256-GCM decryption straight into protected memory (AesGcmOpen returns a std::string).
absl::StatusOr<SecretBytes> GcmOpen(const SecretBytes& key, std::string_view nonce,
                                    std::string_view ct_and_tag, std::string_view aad) {
  if (ct_and_tag.size() < kAesGcmTagSize || ct_and_tag.size() > INT_MAX || aad.size() > INT_MAX) {
    return AuthFailed();
  }
  const size_t ct_len = ct_and_tag.size() - kAesGcmTagSize;
  CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) return Internal("EVP_CIPHER_CTX_new");
  if (EVP_DecryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), key.UnsafeView().data(), U8(nonce),
                          nullptr) != 1) {
    return Internal("AES-256-GCM init");
  }
  int len = 0;
  if (!aad.empty() &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, U8(aad), static_cast<int>(aad.size())) != 1) {
    return AuthFailed();
  }
  SecretBytes out(ct_len);
  size_t written = 0;
  if (ct_len > 0) {
    if (EVP_DecryptUpdate(ctx.get(), out.UnsafeMutableData(), &len, U8(ct_and_tag),
                          static_cast<int>(ct_len)) != 1) {
      return AuthFailed();  // `out` is zeroized when it goes away
    }
    written = static_cast<size_t>(len);
  }
  uint8_t tag[kAesGcmTagSize];
  std::memcpy(tag, ct_and_tag.data() + ct_len, kAesGcmTagSize);
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kAesGcmTagSize), tag) !=
      1) {
    return AuthFailed();
  }
  if (EVP_DecryptFinal_ex(ctx.get(), out.UnsafeMutableData() + written, &len) != 1) {
    return AuthFailed();
  }
  written += static_cast<size_t>(len);
  if (written != ct_len) return AuthFailed();
  return out;
}

// SHA-256 of the SubjectPublicKeyInfo DER (of the public half, for a private key), lower-case hex.
absl::StatusOr<std::string> SpkiFingerprint(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int len = i2d_PUBKEY(key, &der);
  if (len <= 0 || der == nullptr) return Internal("encoding a public key as DER");
  std::string fp = HexEncode(Sha256(std::string_view(reinterpret_cast<char*>(der), len)));
  OPENSSL_free(der);
  return fp;
}

std::string U16(size_t v) {
  return std::string{static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}

}  // namespace

absl::StatusOr<std::string> SealToRecipient(std::string_view recipient_public_key_pem,
                                            const SecretBytes& plaintext, std::string_view aad) {
  KSH_ASSIGN_OR_RETURN(PkeyPtr recipient, ParsePublicKey(recipient_public_key_pem));
  KSH_ASSIGN_OR_RETURN(KeyInfo info, Classify(recipient.get(), "recipient key"));
  if (plaintext.size() > kMaxRecipientPlaintextSize) {
    return absl::InvalidArgumentError(absl::StrCat("plaintext of ", plaintext.size(),
                                                   " bytes; at most ", kMaxRecipientPlaintextSize));
  }
  if (aad.size() > INT_MAX / 2) return absl::InvalidArgumentError("associated data too large");

  std::string prefix;
  SecretBytes key;
  if (info.kind == Kind::kX25519) {
    KSH_ASSIGN_OR_RETURN(std::string recipient_raw, RawPublic(recipient.get()));
    PkeyPtr ephemeral(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
    if (ephemeral == nullptr) return Internal("generating an X25519 key");
    KSH_ASSIGN_OR_RETURN(std::string ephemeral_raw, RawPublic(ephemeral.get()));
    auto shared = Derive(ephemeral.get(), recipient.get());
    if (!shared.ok()) {
      return absl::InvalidArgumentError(
          "recipient key is not a usable X25519 public key (low-order point)");
    }
    KSH_ASSIGN_OR_RETURN(key, X25519Key(*shared, ephemeral_raw, recipient_raw));
    prefix.push_back(static_cast<char>(kKindX25519));
    prefix.append(ephemeral_raw);
  } else {
    key = RandomSecret(kDataKeySize);
    KSH_ASSIGN_OR_RETURN(std::string wrapped, OaepWrap(recipient.get(), key));
    if (wrapped.empty() || wrapped.size() > kMaxRsaModulusBytes) {
      return absl::InternalError("RSA-OAEP produced an unexpected size");
    }
    prefix.push_back(static_cast<char>(kKindRsa));
    prefix.append(U16(wrapped.size()));
    prefix.append(wrapped);
  }
  const std::string nonce = RandomString(kAesGcmNonceSize);
  KSH_ASSIGN_OR_RETURN(std::string ct, AesGcmSeal(key, nonce, plaintext.UnsafeStringView(),
                                                  absl::StrCat(prefix, AV(aad))));
  return absl::StrCat(prefix, nonce, ct);
}

absl::StatusOr<SecretBytes> OpenFromRecipient(const SecretBytes& identity_private_key_pem,
                                              std::string_view sealed, std::string_view aad) {
  if (sealed.empty()) return absl::InvalidArgumentError("sealed blob is empty");
  if (sealed.size() > kMaxSealedSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("sealed blob is ", sealed.size(), " bytes; at most ", kMaxSealedSize));
  }
  if (aad.size() > INT_MAX / 2) return absl::InvalidArgumentError("associated data too large");
  KSH_ASSIGN_OR_RETURN(PkeyPtr identity, ParsePrivateKey(identity_private_key_pem));
  KSH_ASSIGN_OR_RETURN(KeyInfo info, Classify(identity.get(), "identity key"));

  const auto kind = static_cast<uint8_t>(sealed[0]);
  size_t prefix_len = 0;
  SecretBytes key;
  if (kind == kKindX25519) {
    if (info.kind != Kind::kX25519) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the blob is sealed to an X25519 recipient; the identity is ", KindName(info)));
    }
    prefix_len = 1 + kX25519Size;
    if (sealed.size() < prefix_len + kAesGcmNonceSize + kAesGcmTagSize) {
      return absl::InvalidArgumentError("sealed blob is truncated");
    }
    const std::string_view ephemeral_raw = sealed.substr(1, kX25519Size);
    PkeyPtr ephemeral(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, U8(ephemeral_raw),
                                                  ephemeral_raw.size()));
    if (ephemeral == nullptr) return AuthFailed();
    KSH_ASSIGN_OR_RETURN(std::string recipient_raw, RawPublic(identity.get()));
    KSH_ASSIGN_OR_RETURN(SecretBytes shared, Derive(identity.get(), ephemeral.get()));
    KSH_ASSIGN_OR_RETURN(key, X25519Key(shared, ephemeral_raw, recipient_raw));
  } else if (kind == kKindRsa) {
    if (info.kind != Kind::kRsa) {
      return absl::InvalidArgumentError(
          absl::StrCat("the blob is sealed to an RSA recipient; the identity is ", KindName(info)));
    }
    if (sealed.size() < 3) return absl::InvalidArgumentError("sealed blob is truncated");
    const size_t wrapped_len = (static_cast<size_t>(static_cast<uint8_t>(sealed[1])) << 8) |
                               static_cast<uint8_t>(sealed[2]);
    prefix_len = 3 + wrapped_len;
    if (sealed.size() < prefix_len + kAesGcmNonceSize + kAesGcmTagSize) {
      return absl::InvalidArgumentError("sealed blob is truncated");
    }
    // A wrapped key of another size was made for another key: same answer as a wrong key.
    if (wrapped_len != static_cast<size_t>(EVP_PKEY_get_size(identity.get()))) return AuthFailed();
    KSH_ASSIGN_OR_RETURN(key, OaepUnwrap(identity.get(), sealed.substr(3, wrapped_len)));
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("sealed blob has unknown kind ", static_cast<int>(kind)));
  }
  const std::string_view prefix = sealed.substr(0, prefix_len);
  const std::string_view nonce = sealed.substr(prefix_len, kAesGcmNonceSize);
  const std::string_view ct = sealed.substr(prefix_len + kAesGcmNonceSize);
  return GcmOpen(key, nonce, ct, absl::StrCat(AV(prefix), AV(aad)));
}

absl::StatusOr<std::string> RecipientKind(std::string_view public_key_pem) {
  KSH_ASSIGN_OR_RETURN(PkeyPtr key, ParsePublicKey(public_key_pem));
  KSH_ASSIGN_OR_RETURN(KeyInfo info, Classify(key.get(), "recipient key"));
  return KindName(info);
}

absl::StatusOr<std::string> RecipientFingerprint(std::string_view public_key_pem) {
  KSH_ASSIGN_OR_RETURN(PkeyPtr key, ParsePublicKey(public_key_pem));
  return SpkiFingerprint(key.get());
}

absl::StatusOr<std::string> IdentityFingerprint(const SecretBytes& identity_private_key_pem) {
  KSH_ASSIGN_OR_RETURN(PkeyPtr key, ParsePrivateKey(identity_private_key_pem));
  KSH_RETURN_IF_ERROR(Classify(key.get(), "identity key").status());
  return SpkiFingerprint(key.get());
}

absl::StatusOr<std::string> IdentityPublicKey(const SecretBytes& identity_private_key_pem) {
  KSH_ASSIGN_OR_RETURN(PkeyPtr key, ParsePrivateKey(identity_private_key_pem));
  KSH_RETURN_IF_ERROR(Classify(key.get(), "identity key").status());
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (bio == nullptr || PEM_write_bio_PUBKEY(bio.get(), key.get()) != 1) {
    return Internal("encoding a public key as PEM");
  }
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  if (len <= 0 || data == nullptr) return Internal("encoding a public key as PEM");
  return std::string(data, static_cast<size_t>(len));
}

}  // namespace kshield::crypto
