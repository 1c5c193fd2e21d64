#include "tee/sim_platform.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"
#include "crypto/hkdf.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "tee/quote/quote.h"
#include "tee/quote/x509.h"

namespace kshield::tee {

using quote::EvpPkeyPtr;
using quote::X509Ptr;

namespace {

constexpr char kDefaultIdentity[] = "kshield-sim";
constexpr uint16_t kIsvProdId = 1;
constexpr uint16_t kIsvSvn = 1;
constexpr uint16_t kQeSvn = 8;
constexpr uint16_t kPceSvn = 13;
constexpr uint64_t kFlagInit = 0x1, kFlagDebug = 0x2, kFlagMode64 = 0x4;
// Certificates are valid 2020-01-01 .. 2049-12-31 (like Intel's root, the window is long).
constexpr time_t kNotBefore = 1577836800;
constexpr time_t kNotAfter = 2524607999;

struct BnDeleter {
  void operator()(BIGNUM* p) const { BN_clear_free(p); }
};
struct EcGroupDeleter {
  void operator()(EC_GROUP* p) const { EC_GROUP_free(p); }
};
struct EcPointDeleter {
  void operator()(EC_POINT* p) const { EC_POINT_free(p); }
};
struct ParamBldDeleter {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamDeleter {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct PkeyCtxDeleter {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BioDeleter {
  void operator()(BIO* p) const { BIO_free(p); }
};

absl::Status OpensslError(std::string_view what) {
  return absl::InternalError(absl::StrCat("sim platform: ", AV(what), " failed"));
}

struct SimKey {
  EvpPkeyPtr pkey;
  std::string raw_pub;  // x ‖ y, 64 bytes
};

// A P-256 key whose private scalar is derived from the machine secret and a label, so a data
// directory always gives the same simulated PKI.
absl::StatusOr<SimKey> DeriveKey(const SecretBytes& secret, std::string_view label) {
  KSH_ASSIGN_OR_RETURN(SecretBytes okm,
                       crypto::HkdfSha256(secret, "", absl::StrCat("kshield sim key: ", AV(label)),
                                          48));
  std::unique_ptr<EC_GROUP, EcGroupDeleter> group(
      EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1));
  std::unique_ptr<BIGNUM, BnDeleter> x(BN_bin2bn(okm.UnsafeView().data(), 48, nullptr));
  std::unique_ptr<BIGNUM, BnDeleter> nm1(BN_dup(EC_GROUP_get0_order(group.get())));
  std::unique_ptr<BIGNUM, BnDeleter> priv(BN_secure_new());
  BN_CTX* bn_ctx = BN_CTX_secure_new();
  bool ok = group && x && nm1 && priv && bn_ctx && BN_sub_word(nm1.get(), 1) &&
            BN_mod(priv.get(), x.get(), nm1.get(), bn_ctx) && BN_add_word(priv.get(), 1);
  std::unique_ptr<EC_POINT, EcPointDeleter> pub(ok ? EC_POINT_new(group.get()) : nullptr);
  ok = ok && pub && EC_POINT_mul(group.get(), pub.get(), priv.get(), nullptr, nullptr, bn_ctx);
  unsigned char pub_oct[65];
  ok = ok && EC_POINT_point2oct(group.get(), pub.get(), POINT_CONVERSION_UNCOMPRESSED, pub_oct,
                                sizeof(pub_oct), bn_ctx) == sizeof(pub_oct);
  BN_CTX_free(bn_ctx);
  if (!ok) return OpensslError("deriving a simulated key");

  std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, priv.get()) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, pub_oct,
                                        sizeof(pub_oct))) {
    return OpensslError("building key parameters");
  }
  std::unique_ptr<OSSL_PARAM, ParamDeleter> params(OSSL_PARAM_BLD_to_param(bld.get()));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxDeleter> ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC",
                                                                               nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_KEYPAIR, params.get()) <= 0) {
    return OpensslError("importing a simulated key");
  }
  SimKey key;
  key.pkey.reset(raw);
  key.raw_pub.assign(reinterpret_cast<const char*>(pub_oct + 1), 64);
  return key;
}

bool AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// issuer == nullptr: self-signed.
absl::StatusOr<X509Ptr> MakeCert(const char* cn, const SimKey& key, X509* issuer_cert,
                                 EVP_PKEY* issuer_key, long serial, bool ca) {
  X509Ptr cert(X509_new());
  if (!cert) return OpensslError("X509_new");
  X509* c = cert.get();
  X509_NAME* name = X509_get_subject_name(c);
  bool ok = X509_set_version(c, 2) && ASN1_INTEGER_set(X509_get_serialNumber(c), serial) &&
            ASN1_TIME_set(X509_getm_notBefore(c), kNotBefore) &&
            ASN1_TIME_set(X509_getm_notAfter(c), kNotAfter) &&
            X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                       reinterpret_cast<const unsigned char*>(
                                           "kshield simulation (not Intel)"),
                                       -1, -1, 0) &&
            X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                       reinterpret_cast<const unsigned char*>(cn), -1, -1, 0) &&
            X509_set_issuer_name(c, issuer_cert ? X509_get_subject_name(issuer_cert) : name) &&
            X509_set_pubkey(c, key.pkey.get());
  X509* issuer = issuer_cert ? issuer_cert : c;
  ok = ok && AddExt(c, issuer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  ok = ok && AddExt(c, issuer, NID_key_usage,
                    ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,nonRepudiation");
  ok = ok && AddExt(c, issuer, NID_subject_key_identifier, "hash");
  if (issuer_cert) ok = ok && AddExt(c, issuer, NID_authority_key_identifier, "keyid:always");
  ok = ok && X509_sign(c, issuer_key ? issuer_key : key.pkey.get(), EVP_sha256()) > 0;
  if (!ok) return OpensslError(absl::StrCat("making certificate ", cn));
  return cert;
}

absl::StatusOr<std::string> ToPem(X509* cert) {
  std::unique_ptr<BIO, BioDeleter> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return OpensslError("PEM encoding");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// ECDSA-P256-SHA256 as raw r ‖ s (the quote's signature encoding).
absl::StatusOr<std::string> SignRaw(EVP_PKEY* key, std::string_view data) {
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> md(EVP_MD_CTX_new());
  size_t len = 0;
  if (!md || EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(md.get(), nullptr, &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    return OpensslError("ECDSA sign init");
  }
  std::string der(len, '\0');
  if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(der.data()), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    return OpensslError("ECDSA sign");
  }
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len));
  if (sig == nullptr) return OpensslError("ECDSA signature decoding");
  std::string raw(64, '\0');
  const bool ok =
      BN_bn2binpad(ECDSA_SIG_get0_r(sig), reinterpret_cast<unsigned char*>(raw.data()), 32) == 32 &&
      BN_bn2binpad(ECDSA_SIG_get0_s(sig), reinterpret_cast<unsigned char*>(raw.data()) + 32, 32) ==
          32;
  ECDSA_SIG_free(sig);
  if (!ok) return OpensslError("ECDSA signature encoding");
  return raw;
}

void PutLe16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v & 0xff));
  out->push_back(static_cast<char>(v >> 8));
}
void PutLe32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutLe64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

struct ReportFields {
  std::string cpu_svn = std::string(16, '\0');
  uint64_t flags = kFlagInit | kFlagMode64;
  uint64_t xfrm = 0x3;
  std::string mr_enclave;  // 32
  std::string mr_signer;   // 32
  uint16_t isv_prod_id = 0;
  uint16_t isv_svn = 0;
  std::string report_data;  // 64
};

// sgx_report_body_t, 384 bytes (quote.h; Intel SGX SDK sgx_report.h).
std::string ReportBody(const ReportFields& f) {
  std::string b;
  b += f.cpu_svn;                     // 0   cpu_svn
  PutLe32(&b, 0);                     // 16  misc_select
  b.append(12, '\0');                 // 20  reserved1
  b.append(16, '\0');                 // 32  isv_ext_prod_id
  PutLe64(&b, f.flags);               // 48  attributes.flags
  PutLe64(&b, f.xfrm);                // 56  attributes.xfrm
  b += f.mr_enclave;                  // 64  mr_enclave
  b.append(32, '\0');                 // 96  reserved2
  b += f.mr_signer;                   // 128 mr_signer
  b.append(32, '\0');                 // 160 reserved3
  b.append(64, '\0');                 // 192 config_id
  PutLe16(&b, f.isv_prod_id);         // 256 isv_prod_id
  PutLe16(&b, f.isv_svn);             // 258 isv_svn
  PutLe16(&b, 0);                     // 260 config_svn
  b.append(42, '\0');                 // 262 reserved4
  b.append(16, '\0');                 // 304 isv_family_id
  b += f.report_data;                 // 320 report_data
  return b;
}

absl::StatusOr<SecretBytes> LoadOrCreateSecret(const std::string& data_dir) {
  const std::string path = SimPlatform::SecretPath(data_dir);
  if (!FileExists(path)) {
    KSH_RETURN_IF_ERROR(MakeDirs(data_dir, 0700));
    SecretBytes s = crypto::RandomSecret(32);
    KSH_RETURN_IF_ERROR(WriteFileAtomic(path, s.UnsafeStringView(), 0600));
    log::Info("tee.sim_machine_created", {{"path", path}});
    return s;
  }
  KSH_ASSIGN_OR_RETURN(SecretBytes s, ReadPrivateFile(path, 1024));
  if (s.size() != 32) {
    return absl::DataLossError(
        absl::StrCat("sim machine secret ", path, " holds ", s.size(), " bytes, expected 32"));
  }
  return s;
}

}  // namespace

struct SimPlatform::State {
  SecretBytes secret;
  bool persistent = false;
  std::string mrenclave, mrsigner;
  bool debug = false;
  SimKey root_key, pck_ca_key, pck_key, attestation_key;
  X509Ptr root, pck_ca, pck;
  std::string root_pem;
  std::string chain_pem;  // leaf ‖ PCK CA ‖ root, as in a real quote's certification data
};

absl::StatusOr<std::string> Sha256File(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::UnavailableError(absl::StrCat("cannot read ", path));
  std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> md(EVP_MD_CTX_new());
  if (!md || EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1) {
    return OpensslError("SHA-256 init");
  }
  std::array<char, 65536> buf;
  while (in) {
    in.read(buf.data(), buf.size());
    const std::streamsize n = in.gcount();
    if (n > 0 && EVP_DigestUpdate(md.get(), buf.data(), static_cast<size_t>(n)) != 1) {
      return OpensslError("SHA-256 update");
    }
  }
  if (in.bad()) return absl::UnavailableError(absl::StrCat("error reading ", path));
  unsigned char out[32];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(md.get(), out, &len) != 1 || len != 32) {
    return OpensslError("SHA-256 final");
  }
  return std::string(reinterpret_cast<char*>(out), 32);
}

SimPlatform::SimPlatform(std::unique_ptr<State> state) : state_(std::move(state)) {}
SimPlatform::~SimPlatform() = default;

absl::StatusOr<std::unique_ptr<SimPlatform>> SimPlatform::New(const PlatformOptions& options) {
  auto st = std::make_unique<State>();
  if (!options.data_dir.empty()) {
    KSH_ASSIGN_OR_RETURN(st->secret, LoadOrCreateSecret(options.data_dir));
    st->persistent = true;
  } else {
    st->secret = crypto::RandomSecret(32);
  }

  if (options.sim_mrenclave.has_value()) {
    if (options.sim_mrenclave->size() != 32) {
      return absl::InvalidArgumentError("sim MRENCLAVE must be 32 bytes");
    }
    st->mrenclave = *options.sim_mrenclave;
  } else {
    KSH_ASSIGN_OR_RETURN(st->mrenclave, Sha256File("/proc/self/exe"));
  }
  std::string identity = kDefaultIdentity;
  if (options.sim_identity.has_value()) {
    identity = *options.sim_identity;
  } else if (const char* env = std::getenv("KSHIELD_TEE_SIM_IDENTITY"); env && *env) {
    identity = env;
  }
  st->mrsigner = crypto::Sha256(absl::StrCat("kshield-sim-signer:", identity));
  if (options.sim_debug.has_value()) {
    st->debug = *options.sim_debug;
  } else if (const char* env = std::getenv("KSHIELD_TEE_SIM_DEBUG"); env) {
    st->debug = std::string_view(env) == "1" || std::string_view(env) == "true";
  }

  KSH_ASSIGN_OR_RETURN(st->root_key, DeriveKey(st->secret, "root ca"));
  KSH_ASSIGN_OR_RETURN(st->pck_ca_key, DeriveKey(st->secret, "pck processor ca"));
  KSH_ASSIGN_OR_RETURN(st->pck_key, DeriveKey(st->secret, "pck leaf"));
  KSH_ASSIGN_OR_RETURN(st->attestation_key, DeriveKey(st->secret, "qe attestation key"));
  KSH_ASSIGN_OR_RETURN(st->root, MakeCert("kshield Simulated SGX Root CA", st->root_key, nullptr,
                                          nullptr, 1, true));
  KSH_ASSIGN_OR_RETURN(st->pck_ca,
                       MakeCert("kshield Simulated SGX PCK Processor CA", st->pck_ca_key,
                                st->root.get(), st->root_key.pkey.get(), 2, true));
  KSH_ASSIGN_OR_RETURN(st->pck, MakeCert("kshield Simulated SGX PCK Certificate", st->pck_key,
                                         st->pck_ca.get(), st->pck_ca_key.pkey.get(), 3, false));
  KSH_ASSIGN_OR_RETURN(st->root_pem, ToPem(st->root.get()));
  KSH_ASSIGN_OR_RETURN(std::string pck_pem, ToPem(st->pck.get()));
  KSH_ASSIGN_OR_RETURN(std::string pck_ca_pem, ToPem(st->pck_ca.get()));
  st->chain_pem = pck_pem + pck_ca_pem + st->root_pem;

  log::Info("tee.sim_platform",
            {{"mrenclave", crypto::HexEncode(st->mrenclave)},
             {"mrsigner", crypto::HexEncode(st->mrsigner)},
             {"identity", identity},
             {"debug", st->debug},
             {"persistent", st->persistent}});
  return std::unique_ptr<SimPlatform>(new SimPlatform(std::move(st)));
}

const std::string& SimPlatform::RootCaPem() const { return state_->root_pem; }
const std::string& SimPlatform::mrenclave() const { return state_->mrenclave; }
const std::string& SimPlatform::mrsigner() const { return state_->mrsigner; }

absl::StatusOr<SecretBytes> SimPlatform::SealingKey() {
  if (!state_->persistent) {
    return absl::FailedPreconditionError(
        "the sim platform needs a data directory for its machine secret to give a sealing key");
  }
  return crypto::HkdfSha256(
      state_->secret, "",
      absl::StrCat("kshield sim sealing key v1", state_->mrenclave, state_->mrsigner),
      kSealingKeySize);
}

absl::StatusOr<std::string> SimPlatform::Quote(std::string_view report_data) {
  if (report_data.size() != kReportDataSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("report data must be 64 bytes, got ", report_data.size()));
  }
  const State& st = *state_;
  // Header (quote.h): version 3, ECDSA-P256, reserved tee_type 0, Intel's QE vendor id.
  std::string quote;
  PutLe16(&quote, 3);
  PutLe16(&quote, quote::kAttKeyTypeEcdsaP256);
  PutLe32(&quote, 0);
  PutLe16(&quote, kQeSvn);
  PutLe16(&quote, kPceSvn);
  quote.append(reinterpret_cast<const char*>(quote::kIntelQeVendorId.data()),
               quote::kIntelQeVendorId.size());
  std::string user_data = "kshield-sim-qe";
  user_data.resize(20, '\0');
  quote += user_data;

  ReportFields app;
  app.cpu_svn = std::string("\x0b\x0b\x02\x02\xff\x01\0\0\0\0\0\0\0\0\0\0", 16);
  app.flags = kFlagInit | kFlagMode64 | (st.debug ? kFlagDebug : 0);
  app.mr_enclave = st.mrenclave;
  app.mr_signer = st.mrsigner;
  app.isv_prod_id = kIsvProdId;
  app.isv_svn = kIsvSvn;
  app.report_data = std::string(report_data);
  quote += ReportBody(app);
  KSH_ASSIGN_OR_RETURN(std::string signature, SignRaw(st.attestation_key.pkey.get(), quote));

  // The QE report binds the attestation key: REPORTDATA = SHA-256(key ‖ auth data) ‖ 0^32.
  std::string qe_auth(32, '\0');
  for (size_t i = 0; i < qe_auth.size(); ++i) qe_auth[i] = static_cast<char>(i);
  ReportFields qe;
  qe.cpu_svn = app.cpu_svn;
  qe.flags = kFlagInit | kFlagMode64;
  qe.mr_enclave = crypto::Sha256("kshield simulated quoting enclave");
  qe.mr_signer = crypto::Sha256("kshield simulated quoting enclave signer");
  qe.isv_prod_id = 1;
  qe.isv_svn = kQeSvn;
  qe.report_data = crypto::Sha256(st.attestation_key.raw_pub + qe_auth) + std::string(32, '\0');
  const std::string qe_report = ReportBody(qe);
  KSH_ASSIGN_OR_RETURN(std::string qe_signature, SignRaw(st.pck_key.pkey.get(), qe_report));

  std::string auth;
  auth += signature;
  auth += st.attestation_key.raw_pub;
  auth += qe_report;
  auth += qe_signature;
  PutLe16(&auth, static_cast<uint16_t>(qe_auth.size()));
  auth += qe_auth;
  PutLe16(&auth, quote::kCertTypePckChain);
  PutLe32(&auth, static_cast<uint32_t>(st.chain_pem.size()));
  auth += st.chain_pem;

  PutLe32(&quote, static_cast<uint32_t>(auth.size()));
  quote += auth;
  return quote;
}

}  // namespace kshield::tee
