#include "keys/pkcs11/token_gcm.h"

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "crypto/random.h"

namespace kshield::keys::pkcs11 {
namespace {

constexpr CK_ULONG kTagBits = 128;

CK_BYTE_PTR Bytes(std::string_view s) {
  return reinterpret_cast<CK_BYTE_PTR>(const_cast<char*>(s.data()));
}

CK_GCM_PARAMS GcmParams(std::string_view iv, std::string_view aad) {
  CK_GCM_PARAMS p{};
  p.pIv = Bytes(iv);
  p.ulIvLen = iv.size();
  p.ulIvBits = iv.size() * 8;
  p.pAAD = Bytes(aad);
  p.ulAADLen = aad.size();
  p.ulTagBits = kTagBits;
  return p;
}

}  // namespace

absl::StatusOr<std::string> TokenGcmEncrypt(OpContext& c, CK_OBJECT_HANDLE key, std::string_view iv,
                                            absl::Span<const uint8_t> plaintext,
                                            std::string_view aad) {
  CK_GCM_PARAMS params = GcmParams(iv, aad);
  CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof(params)};
  CK_RV rv = c.fn()->C_EncryptInit(c.session(), &mech, key);
  if (rv != CKR_OK) return c.Fail("C_EncryptInit", rv);
  // Room for the tag plus a block: some modules size GCM output like a block mode.
  std::string out(plaintext.size() + 2 * crypto::kAesGcmTagSize, '\0');
  CK_ULONG out_len = out.size();
  rv = c.fn()->C_Encrypt(c.session(), const_cast<CK_BYTE_PTR>(plaintext.data()), plaintext.size(),
                         Bytes(out), &out_len);
  if (rv != CKR_OK) return c.Fail("C_Encrypt", rv);
  if (out_len != plaintext.size() + crypto::kAesGcmTagSize) {
    return absl::InternalError(absl::StrCat("C_Encrypt (CKM_AES_GCM) returned ", out_len,
                                            " bytes for ", plaintext.size(), " bytes of input"));
  }
  out.resize(out_len);
  return out;
}

absl::StatusOr<SecretBytes> TokenGcmDecrypt(OpContext& c, CK_OBJECT_HANDLE key, std::string_view iv,
                                            std::string_view ct_and_tag, std::string_view aad) {
  if (ct_and_tag.size() < crypto::kAesGcmTagSize) {
    return absl::InvalidArgumentError(AV(crypto::kAuthFailed));
  }
  CK_GCM_PARAMS params = GcmParams(iv, aad);
  CK_MECHANISM mech{CKM_AES_GCM, &params, sizeof(params)};
  CK_RV rv = c.fn()->C_DecryptInit(c.session(), &mech, key);
  if (rv != CKR_OK) return c.Fail("C_DecryptInit", rv);
  SecretBytes buf(ct_and_tag.size());  // >= plaintext size
  CK_ULONG out_len = buf.size();
  rv = c.fn()->C_Decrypt(c.session(), Bytes(ct_and_tag), ct_and_tag.size(), buf.UnsafeMutableData(),
                         &out_len);
  if (rv != CKR_OK) {
    c.Fail("C_Decrypt", rv).IgnoreError();
    return absl::InvalidArgumentError(AV(crypto::kAuthFailed));
  }
  if (out_len != ct_and_tag.size() - crypto::kAesGcmTagSize) {
    return absl::InvalidArgumentError(AV(crypto::kAuthFailed));
  }
  return SecretBytes::CopyFrom(buf.UnsafeView().subspan(0, out_len));
}

absl::StatusOr<std::string> TokenAead::Encrypt(std::string_view plaintext,
                                               std::string_view associated_data) const {
  // Owned by the op: if the call misses its deadline, the op may still run after we return.
  struct State {
    SecretBytes plaintext;
    std::string aad;
    std::string out;
  };
  auto st = std::make_shared<State>();
  st->plaintext = SecretBytes::CopyFrom(plaintext);
  st->aad = std::string(associated_data);
  absl::Status s = pool_->Run("encrypt", [st, ref = ref_](OpContext& c) -> absl::Status {
    KSH_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, c.FindKey(ref));
    std::string iv = crypto::RandomString(crypto::kAesGcmNonceSize);
    KSH_ASSIGN_OR_RETURN(std::string ct,
                         TokenGcmEncrypt(c, key, iv, st->plaintext.UnsafeView(), st->aad));
    st->out = iv + ct;
    return absl::OkStatus();
  });
  if (!s.ok()) return Annotate(s, absl::StrCat("HSM encrypt with key '", ref_.label, "'"));
  return std::move(st->out);
}

absl::StatusOr<std::string> TokenAead::Decrypt(std::string_view ciphertext,
                                               std::string_view associated_data) const {
  if (ciphertext.size() < crypto::kAesGcmNonceSize + crypto::kAesGcmTagSize) {
    return absl::InvalidArgumentError(AV(crypto::kAuthFailed));
  }
  struct State {
    std::string ciphertext;
    std::string aad;
    SecretBytes out;
  };
  auto st = std::make_shared<State>();
  st->ciphertext = std::string(ciphertext);
  st->aad = std::string(associated_data);
  absl::Status s = pool_->Run("decrypt", [st, ref = ref_](OpContext& c) -> absl::Status {
    KSH_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, c.FindKey(ref));
    std::string_view ct(st->ciphertext);
    KSH_ASSIGN_OR_RETURN(st->out, TokenGcmDecrypt(c, key, ct.substr(0, crypto::kAesGcmNonceSize),
                                                  ct.substr(crypto::kAesGcmNonceSize), st->aad));
    return absl::OkStatus();
  });
  if (s.ok()) return std::string(st->out.UnsafeStringView());
  if (s.code() == absl::StatusCode::kUnavailable) {
    return Annotate(s, absl::StrCat("HSM decrypt with key '", ref_.label, "'"));
  }
  if (s.code() != absl::StatusCode::kInvalidArgument) {
    // Not a tag mismatch (missing key, mechanism refused): worth an operator's attention; the
    // caller still sees only "authentication failed".
    log::Warn("pkcs11.decrypt_failed",
              {{"key_label", ref_.label}, {"reason", std::string(s.message())}});
  }
  return absl::InvalidArgumentError(AV(crypto::kAuthFailed));
}

}  // namespace kshield::keys::pkcs11
