#include "keys/pkcs11/provider.h"

#include <atomic>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "crypto/aead.h"
#include "crypto/random.h"
#include "keys/pkcs11/session_pool.h"
#include "keys/pkcs11/token_gcm.h"

namespace kshield::keys {
namespace {

using pkcs11::KeyRef;
using pkcs11::OpContext;
using pkcs11::SessionPool;

constexpr std::string_view kCachedPrefix = "P11C1";
constexpr std::string_view kDirectPrefix = "P11D1";
constexpr size_t kKekSize = 32;
constexpr size_t kKeyIdSize = 16;
constexpr size_t kCachedMaterialSize =
    kCachedPrefix.size() + crypto::kAesGcmNonceSize + kKekSize + crypto::kAesGcmTagSize;

std::string KekAad(const KekContext& ctx) {
  return absl::StrCat("kshield/pkcs11/kek/v1:", ctx.keyset_id, ":", ctx.version);
}

std::string CreateMasterKeyHint(const Pkcs11Options& o) {
  return absl::StrCat("create it once with: pkcs11-tool --module ", o.module, " --token-label '",
                      o.token_label, "' --login --keygen --key-type AES:32 --label '",
                      o.master_key_label, "'");
}

// The one check every call makes before trusting a token: it is there, with our label.
absl::Status CheckTokenInfo(OpContext& c) {
  CK_TOKEN_INFO info{};
  CK_RV rv = c.fn()->C_GetTokenInfo(c.slot(), &info);
  if (rv != CKR_OK) return c.Fail("C_GetTokenInfo", rv);
  if (pkcs11::PaddedField(info.label, sizeof(info.label)) != c.token_label()) {
    return absl::UnavailableError("the token in the slot has another label now");
  }
  return absl::OkStatus();
}

absl::Status CheckGcmSupport(OpContext& c) {
  CK_MECHANISM_INFO info{};
  CK_RV rv = c.fn()->C_GetMechanismInfo(c.slot(), CKM_AES_GCM, &info);
  if (rv != CKR_OK || (info.flags & CKF_ENCRYPT) == 0 || (info.flags & CKF_DECRYPT) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("token '", c.token_label(), "' does not offer CKM_AES_GCM encrypt/decrypt",
                     rv != CKR_OK ? absl::StrCat(" (", pkcs11::RvName(rv), ")") : ""));
  }
  return absl::OkStatus();
}

class Pkcs11Provider final : public KeyProvider {
 public:
  Pkcs11Provider(Pkcs11Options options, std::shared_ptr<SessionPool> pool)
      : options_(std::move(options)), pool_(std::move(pool)) {}

  std::string_view name() const override { return "pkcs11"; }

  absl::StatusOr<std::string> CreateVersion(const KekContext& ctx) override {
    return options_.mode == Pkcs11Mode::kCached ? CreateCached(ctx) : CreateDirect(ctx);
  }

  absl::StatusOr<std::shared_ptr<const crypto::Aead>> OpenVersion(
      const KekContext& ctx, std::string_view material) override {
    if (material.substr(0, kCachedPrefix.size()) == kCachedPrefix) return OpenCached(ctx, material);
    if (material.substr(0, kDirectPrefix.size()) == kDirectPrefix) return OpenDirect(ctx, material);
    return absl::DataLossError(
        absl::StrCat("KEK version ", ctx.version, " was not made by the pkcs11 provider"));
  }

  absl::Status Probe() override;
  absl::Status DestroyVersion(const KekContext& ctx, std::string_view material) override;

  // Cached-mode material: one unwrap on the token. Direct-mode keys never leave the HSM.
  absl::StatusOr<SecretBytes> ExportVersion(const KekContext& ctx,
                                            std::string_view material) override {
    if (material.substr(0, kCachedPrefix.size()) == kCachedPrefix) {
      return UnwrapCached(ctx, material);
    }
    if (material.substr(0, kDirectPrefix.size()) == kDirectPrefix) {
      return absl::FailedPreconditionError(absl::StrCat(
          "pkcs11 direct mode keys are non-extractable: KEK version ", ctx.version, " of keyset ",
          ctx.keyset_id, " exists only inside token '", options_.token_label,
          "' and cannot go into a backup file; back the token up with the HSM's own tools"));
    }
    return absl::DataLossError(
        absl::StrCat("KEK version ", ctx.version, " was not made by the pkcs11 provider"));
  }
  // Cached mode: wraps the KEK with the master key, exactly as CreateVersion wraps a new one.
  absl::StatusOr<std::string> ImportVersion(const KekContext& ctx,
                                            const SecretBytes& kek) override {
    if (options_.mode != Pkcs11Mode::kCached) {
      return absl::FailedPreconditionError(absl::StrCat(
          "pkcs11 direct mode keys are non-extractable and generated inside the HSM, so KEK "
          "version ",
          ctx.version,
          " from a backup cannot become one; restore into the pkcs11 provider in "
          "cached mode (mode: cached) instead"));
    }
    if (kek.size() != kKekSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("KEK version ", ctx.version, " is ", kek.size(), " bytes, want ", kKekSize));
    }
    return WrapCached(ctx, kek.Clone());
  }

  // Construction-time checks: mechanism support and, in cached mode, a usable master key.
  absl::Status SelfTest();

 private:
  absl::StatusOr<std::string> CreateCached(const KekContext& ctx) {
    return WrapCached(ctx, crypto::RandomSecret(kKekSize));
  }
  absl::StatusOr<std::string> WrapCached(const KekContext& ctx, SecretBytes kek);
  absl::StatusOr<SecretBytes> UnwrapCached(const KekContext& ctx, std::string_view material);
  absl::StatusOr<std::string> CreateDirect(const KekContext& ctx);
  absl::StatusOr<std::shared_ptr<const crypto::Aead>> OpenCached(const KekContext& ctx,
                                                                 std::string_view material);
  absl::StatusOr<std::shared_ptr<const crypto::Aead>> OpenDirect(const KekContext& ctx,
                                                                 std::string_view material);
  absl::Status MasterKeyError(const absl::Status& s) const;
  KeyRef MasterRef() const { return KeyRef{options_.master_key_label, ""}; }

  const Pkcs11Options options_;
  const std::shared_ptr<SessionPool> pool_;
  // Direct mode: the newest opened version, for Probe's canary.
  std::mutex probe_mu_;
  std::shared_ptr<const KeyRef> probe_key_;  // guarded by probe_mu_; may be null
};

absl::Status Pkcs11Provider::MasterKeyError(const absl::Status& s) const {
  if (s.code() == absl::StatusCode::kNotFound) {
    return absl::FailedPreconditionError(
        absl::StrCat("master key '", options_.master_key_label, "' not found on PKCS#11 token '",
                     options_.token_label, "'; ", CreateMasterKeyHint(options_)));
  }
  return s;
}

absl::Status Pkcs11Provider::SelfTest() {
  Pkcs11Mode mode = options_.mode;
  KeyRef master = MasterRef();
  absl::Status s = pool_->Run("self-test", [mode, master](OpContext& c) -> absl::Status {
    KSH_RETURN_IF_ERROR(CheckGcmSupport(c));
    if (mode == Pkcs11Mode::kDirect) return absl::OkStatus();
    KSH_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, c.FindKey(master));
    // A canary through the master key proves it may encrypt and decrypt with CKM_AES_GCM.
    const std::string iv = crypto::RandomString(crypto::kAesGcmNonceSize);
    const std::string canary = crypto::RandomString(16);
    const std::string aad = "kshield/pkcs11/self-test";
    auto ct = pkcs11::TokenGcmEncrypt(
        c, key, iv, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(canary.data()), 16), aad);
    if (!ct.ok()) return Annotate(ct.status(), "encrypting a canary with the master key");
    auto back = pkcs11::TokenGcmDecrypt(c, key, iv, *ct, aad);
    if (!back.ok() || back->UnsafeStringView() != canary) {
      return absl::FailedPreconditionError(
          "the master key encrypted a canary but did not decrypt it back (CKA_DECRYPT false?)");
    }
    return absl::OkStatus();
  });
  if (!s.ok()) {
    return Annotate(MasterKeyError(s),
                    absl::StrCat("pkcs11 provider (", AV(Pkcs11ModeName(options_.mode)), " mode)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Pkcs11Provider::WrapCached(const KekContext& ctx, SecretBytes kek) {
  struct State {
    SecretBytes kek;
    std::string aad;
    std::string material;
  };
  auto st = std::make_shared<State>();
  st->kek = std::move(kek);
  st->aad = KekAad(ctx);
  absl::Status s =
      pool_->Run("wrap a new KEK", [st, master = MasterRef()](OpContext& c) -> absl::Status {
        KSH_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, c.FindKey(master));
        const std::string iv = crypto::RandomString(crypto::kAesGcmNonceSize);
        KSH_ASSIGN_OR_RETURN(std::string ct,
                             pkcs11::TokenGcmEncrypt(c, key, iv, st->kek.UnsafeView(), st->aad));
        // Prove the token can unwrap it before the caller persists it.
        auto back = pkcs11::TokenGcmDecrypt(c, key, iv, ct, st->aad);
        if (!back.ok()) return Annotate(back.status(), "unwrapping the new KEK for a check");
        if (!back->Equals(st->kek)) {
          return absl::InternalError("the token unwrapped the new KEK to different bytes");
        }
        st->material = absl::StrCat(AV(kCachedPrefix), iv, ct);
        return absl::OkStatus();
      });
  if (!s.ok()) {
    return Annotate(MasterKeyError(s),
                    absl::StrCat("wrapping KEK version ", ctx.version, " with the HSM master key"));
  }
  return std::move(st->material);
}

absl::StatusOr<std::shared_ptr<const crypto::Aead>> Pkcs11Provider::OpenCached(
    const KekContext& ctx, std::string_view material) {
  KSH_ASSIGN_OR_RETURN(SecretBytes kek, UnwrapCached(ctx, material));
  KSH_ASSIGN_OR_RETURN(auto aead, crypto::AesGcmAead::New(std::move(kek)));
  return std::shared_ptr<const crypto::Aead>(std::move(aead));
}

absl::StatusOr<SecretBytes> Pkcs11Provider::UnwrapCached(const KekContext& ctx,
                                                         std::string_view material) {
  if (material.size() != kCachedMaterialSize) {
    return absl::DataLossError(absl::StrCat("wrapped KEK version ", ctx.version, " has ",
                                            material.size(), " bytes, want ", kCachedMaterialSize));
  }
  struct State {
    std::string material;
    std::string aad;
    SecretBytes kek;
  };
  auto st = std::make_shared<State>();
  st->material = std::string(material.substr(kCachedPrefix.size()));
  st->aad = KekAad(ctx);
  absl::Status s =
      pool_->Run("unwrap a KEK", [st, master = MasterRef()](OpContext& c) -> absl::Status {
        KSH_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, c.FindKey(master));
        std::string_view m(st->material);
        KSH_ASSIGN_OR_RETURN(st->kek,
                             pkcs11::TokenGcmDecrypt(c, key, m.substr(0, crypto::kAesGcmNonceSize),
                                                     m.substr(crypto::kAesGcmNonceSize), st->aad));
        return absl::OkStatus();
      });
  if (s.code() == absl::StatusCode::kInvalidArgument) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot unwrap KEK version ", ctx.version, " of keyset ", ctx.keyset_id,
        " with master key '", options_.master_key_label, "' on token '", options_.token_label,
        "': it was wrapped by a different master key, or the keyset file is corrupted"));
  }
  if (!s.ok()) {
    return Annotate(
        s, absl::StrCat("unwrapping KEK version ", ctx.version, " of keyset ", ctx.keyset_id));
  }
  if (st->kek.size() != kKekSize) {
    return absl::DataLossError(absl::StrCat("KEK version ", ctx.version, " has a wrong size"));
  }
  return std::move(st->kek);
}

absl::StatusOr<std::string> Pkcs11Provider::CreateDirect(const KekContext& ctx) {
  struct State {
    KeyRef ref;
  };
  auto st = std::make_shared<State>();
  st->ref.label = absl::StrCat(options_.master_key_label, "-", ctx.keyset_id, "-", ctx.version);
  st->ref.id = crypto::RandomString(kKeyIdSize);
  absl::Status s = pool_->Run("generate a KEK", [st](OpContext& c) -> absl::Status {
    // Keys with this label but another CKA_ID are left from a rotation that failed before it was
    // persisted; nothing references them.
    auto leftovers = c.FindAllKeys(KeyRef{st->ref.label, ""});
    if (leftovers.ok() && !leftovers->empty()) {
      log::Warn("pkcs11.unused_keys_with_label",
                {{"key_label", st->ref.label},
                 {"count", static_cast<uint64_t>(leftovers->size())},
                 {"note", "left by a rotation that was not persisted; unused, may be deleted"}});
    }
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ULONG len = kKekSize;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &type, sizeof(type)},
        {CKA_VALUE_LEN, &len, sizeof(len)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
        {CKA_EXTRACTABLE, &no, sizeof(no)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_DECRYPT, &yes, sizeof(yes)},
        {CKA_WRAP, &no, sizeof(no)},
        {CKA_UNWRAP, &no, sizeof(no)},
        {CKA_LABEL, st->ref.label.data(), st->ref.label.size()},
        {CKA_ID, st->ref.id.data(), st->ref.id.size()},
    };
    CK_MECHANISM mech{CKM_AES_KEY_GEN, nullptr, 0};
    CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
    CK_RV rv =
        c.fn()->C_GenerateKey(c.session(), &mech, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &key);
    if (rv != CKR_OK) return c.Fail("C_GenerateKey", rv);
    return absl::OkStatus();
  });
  if (!s.ok()) {
    return Annotate(s, absl::StrCat("generating HSM key for KEK version ", ctx.version));
  }
  log::Info("pkcs11.key_generated", {{"key_label", st->ref.label}, {"version", ctx.version}});
  return absl::StrCat(AV(kDirectPrefix), st->ref.id, st->ref.label);
}

absl::StatusOr<std::shared_ptr<const crypto::Aead>> Pkcs11Provider::OpenDirect(
    const KekContext& ctx, std::string_view material) {
  std::string_view rest = material.substr(kDirectPrefix.size());
  if (rest.size() <= kKeyIdSize || rest.size() > kKeyIdSize + 256) {
    return absl::DataLossError(
        absl::StrCat("HSM key reference of KEK version ", ctx.version, " is malformed"));
  }
  KeyRef ref{std::string(rest.substr(kKeyIdSize)), std::string(rest.substr(0, kKeyIdSize))};
  absl::Status s = pool_->Run("find a KEK", [ref](OpContext& c) -> absl::Status {
    return c.FindKey(ref, /*fresh=*/true).status();
  });
  if (s.code() == absl::StatusCode::kNotFound) {
    return absl::FailedPreconditionError(
        absl::StrCat("HSM key '", ref.label, "' of KEK version ", ctx.version, " (keyset ",
                     ctx.keyset_id, ") is missing from token '", options_.token_label, "'"));
  }
  if (!s.ok()) return Annotate(s, absl::StrCat("opening HSM key '", ref.label, "'"));
  {
    std::lock_guard<std::mutex> lock(probe_mu_);
    probe_key_ = std::make_shared<const KeyRef>(ref);
  }
  return std::shared_ptr<const crypto::Aead>(std::make_shared<pkcs11::TokenAead>(pool_, ref));
}

absl::Status Pkcs11Provider::Probe() {
  std::shared_ptr<const KeyRef> canary_key;
  {
    std::lock_guard<std::mutex> lock(probe_mu_);
    canary_key = probe_key_;
  }
  const bool cached = options_.mode == Pkcs11Mode::kCached;
  KeyRef master = MasterRef();
  absl::Status s = pool_->Run("probe", [cached, master, canary_key](OpContext& c) -> absl::Status {
    KSH_RETURN_IF_ERROR(CheckTokenInfo(c));
    if (cached) {
      KSH_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> keys, c.FindAllKeys(master));
      if (keys.size() != 1) {
        return absl::NotFoundError(absl::StrCat(keys.size(), " keys labelled '", master.label,
                                                "' on the token; want exactly one"));
      }
      return absl::OkStatus();
    }
    if (canary_key == nullptr) return absl::OkStatus();
    KSH_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE key, c.FindKey(*canary_key));
    const std::string iv = crypto::RandomString(crypto::kAesGcmNonceSize);
    const uint8_t canary[16] = {0};
    return pkcs11::TokenGcmEncrypt(c, key, iv, canary, "kshield/pkcs11/probe").status();
  });
  return Annotate(s, absl::StrCat("pkcs11 probe of token '", options_.token_label, "'"));
}

absl::Status Pkcs11Provider::DestroyVersion(const KekContext& ctx, std::string_view material) {
  if (material.substr(0, kDirectPrefix.size()) != kDirectPrefix) return absl::OkStatus();
  std::string_view rest = material.substr(kDirectPrefix.size());
  if (rest.size() <= kKeyIdSize) return absl::DataLossError("malformed HSM key reference");
  KeyRef ref{std::string(rest.substr(kKeyIdSize)), std::string(rest.substr(0, kKeyIdSize))};
  absl::Status s = pool_->Run("destroy a KEK", [ref](OpContext& c) -> absl::Status {
    KSH_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> keys, c.FindAllKeys(ref));
    c.ForgetKey(ref);
    for (CK_OBJECT_HANDLE k : keys) {
      CK_RV rv = c.fn()->C_DestroyObject(c.session(), k);
      if (rv != CKR_OK) return c.Fail("C_DestroyObject", rv);
    }
    return absl::OkStatus();
  });
  if (s.ok())
    log::Info("pkcs11.key_destroyed", {{"key_label", ref.label}, {"version", ctx.version}});
  return Annotate(s, absl::StrCat("destroying HSM key '", ref.label, "'"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<KeyProvider>> NewPkcs11Provider(const Pkcs11Options& options) {
  KSH_RETURN_IF_ERROR(ValidatePkcs11Options(options));
  KSH_ASSIGN_OR_RETURN(SecretBytes pin, LoadPkcs11Pin(options));
  pkcs11::SessionPoolOptions po;
  po.module_path = options.module;
  po.token_label = options.token_label;
  po.pin = std::move(pin);
  po.pin_source = DescribePinSource(options);
  po.sessions = options.sessions;
  po.timeout = options.timeout;
  auto pool = SessionPool::New(std::move(po));
  if (!pool.ok()) return Annotate(pool.status(), "pkcs11 provider");
  auto provider = std::make_unique<Pkcs11Provider>(options, std::move(*pool));
  KSH_RETURN_IF_ERROR(provider->SelfTest());
  log::Info("pkcs11.provider_ready", {{"module", options.module},
                                      {"token_label", options.token_label},
                                      {"mode", std::string(Pkcs11ModeName(options.mode))},
                                      {"master_key_label", options.master_key_label}});
  return std::unique_ptr<KeyProvider>(std::move(provider));
}

}  // namespace kshield::keys
