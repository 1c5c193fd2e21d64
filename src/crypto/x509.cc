#include "crypto/x509.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <ctime>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "crypto/sha256.h"

namespace kshield::crypto {
namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;
using NamePtr = std::unique_ptr<X509_NAME, Deleter<X509_NAME, X509_NAME_free>>;
using BnPtr = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

struct X509StackDeleter {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackDeleter>;

// Bounds on what we parse from outside.
constexpr size_t kMaxPemInput = 64 * 1024;
constexpr size_t kMaxBundleCertificates = 16;
constexpr size_t kMaxNameEntries = 32;

// The OpenSSL error queue's first reason, for messages (never contains key bytes).
std::string OpensslReason() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  const char* r = ERR_reason_error_string(e);
  return r ? r : "unknown OpenSSL error";
}

absl::Status Internal(std::string_view what) {
  return absl::InternalError(absl::StrCat(AV(what), ": ", OpensslReason()));
}

BioPtr MemReader(std::string_view s) {
  return BioPtr(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
}

std::string BioToString(BIO* bio) {
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio, &mem);
  return mem ? std::string(mem->data, mem->length) : std::string();
}

absl::StatusOr<PkeyPtr> LoadPrivateKey(const SecretBytes& pem) {
  auto v = pem.UnsafeView();
  if (v.empty() || v.size() > kMaxPemInput) {
    return absl::InvalidArgumentError("private key: empty or oversized PEM");
  }
  BioPtr bio(BIO_new_mem_buf(v.data(), static_cast<int>(v.size())));
  PkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) {
    ERR_clear_error();
    return absl::InvalidArgumentError("private key: not a PEM private key");
  }
  return key;
}

absl::StatusOr<PkeyPtr> LoadPublicKey(std::string_view pem) {
  if (pem.empty() || pem.size() > kMaxPemInput) {
    return absl::InvalidArgumentError("public key: empty or oversized PEM");
  }
  BioPtr bio = MemReader(pem);
  PkeyPtr key(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) {
    ERR_clear_error();
    return absl::InvalidArgumentError("public key: not a PEM SubjectPublicKeyInfo");
  }
  return key;
}

absl::StatusOr<X509Ptr> LoadCertificate(std::string_view pem) {
  if (pem.empty() || pem.size() > kMaxPemInput) {
    return absl::InvalidArgumentError("certificate: empty or oversized PEM");
  }
  BioPtr bio = MemReader(pem);
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) {
    ERR_clear_error();
    return absl::InvalidArgumentError("certificate: not a PEM certificate");
  }
  return cert;
}

absl::StatusOr<std::string> PublicKeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) return Internal("public key PEM");
  return BioToString(bio.get());
}

absl::StatusOr<SecretBytes> PrivateKeyPem(EVP_PKEY* key) {
  // A secure-memory BIO: its buffer is cleared when freed.
  BioPtr bio(BIO_new(BIO_s_secmem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return Internal("private key PEM");
  }
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(bio.get(), &mem);
  if (!mem) return Internal("private key PEM");
  return SecretBytes::CopyFrom(std::string_view(mem->data, mem->length));
}

absl::StatusOr<std::string> CertificatePem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return Internal("certificate PEM");
  return BioToString(bio.get());
}

absl::StatusOr<PkeyPtr> NewEcP256() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return Internal("EC P-256 key generation");
  return key;
}

// Letters, digits, '-', '.', and a leading "*." wildcard; 1..253 characters.
bool ValidDnsName(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  if (s.substr(0, 2) == "*.") s.remove_prefix(2);
  if (s.empty()) return false;
  for (char c : s) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.')) return false;
  }
  return true;
}

absl::Status ValidateNameText(std::string_view what, std::string_view s) {
  if (s.size() > 256) return absl::InvalidArgumentError(absl::StrCat(AV(what), ": too long"));
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(AV(what), ": control character"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<NamePtr> MakeName(const std::string& cn, const std::vector<std::string>& orgs) {
  KSH_RETURN_IF_ERROR(ValidateNameText("common name", cn));
  if (orgs.size() > kMaxNameEntries) return absl::InvalidArgumentError("too many organizations");
  NamePtr name(X509_NAME_new());
  if (!name) return Internal("X509_NAME_new");
  for (const auto& o : orgs) {
    KSH_RETURN_IF_ERROR(ValidateNameText("organization", o));
    if (o.empty()) return absl::InvalidArgumentError("organization: empty");
    if (X509_NAME_add_entry_by_txt(name.get(), "O", MBSTRING_UTF8,
                                   reinterpret_cast<const unsigned char*>(o.data()),
                                   static_cast<int>(o.size()), -1, 0) != 1) {
      return Internal("subject O");
    }
  }
  if (!cn.empty() &&
      X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.data()),
                                 static_cast<int>(cn.size()), -1, 0) != 1) {
    return Internal("subject CN");
  }
  return name;
}

std::string EntryText(X509_NAME_ENTRY* e) {
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(e);
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) {
    ERR_clear_error();
    return "";
  }
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

void ReadName(const X509_NAME* name, std::string* cn, std::vector<std::string>* orgs) {
  if (!name) return;
  int count = X509_NAME_entry_count(name);
  for (int i = 0; i < count && i < static_cast<int>(kMaxNameEntries) * 2; ++i) {
    X509_NAME_ENTRY* e = X509_NAME_get_entry(name, i);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
    if (nid == NID_commonName && cn) {
      *cn = EntryText(e);  // the last CN wins, as Kubernetes does
    } else if (nid == NID_organizationName && orgs) {
      orgs->push_back(EntryText(e));
    }
  }
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) return Internal(absl::StrCat("extension ", OBJ_nid2sn(nid)));
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) return Internal("X509_add_ext");
  return absl::OkStatus();
}

absl::Status AddSubjectAltNames(X509* cert, const CertSpec& spec) {
  if (spec.dns_names.empty() && spec.ip_addresses.empty()) return absl::OkStatus();
  GeneralNamesPtr names(GENERAL_NAMES_new());
  if (!names) return Internal("GENERAL_NAMES_new");
  for (const auto& dns : spec.dns_names) {
    if (!ValidDnsName(dns)) return absl::InvalidArgumentError("subjectAltName: invalid DNS name");
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
    if (!gn || !ia5 || ASN1_STRING_set(ia5, dns.data(), static_cast<int>(dns.size())) != 1) {
      GENERAL_NAME_free(gn);
      ASN1_IA5STRING_free(ia5);
      return Internal("subjectAltName DNS");
    }
    GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
    sk_GENERAL_NAME_push(names.get(), gn);
  }
  for (const auto& ip : spec.ip_addresses) {
    ASN1_OCTET_STRING* os = a2i_IPADDRESS(ip.c_str());
    if (!os) {
      ERR_clear_error();
      return absl::InvalidArgumentError("subjectAltName: invalid IP address");
    }
    GENERAL_NAME* gn = GENERAL_NAME_new();
    if (!gn) {
      ASN1_OCTET_STRING_free(os);
      return Internal("subjectAltName IP");
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, os);
    sk_GENERAL_NAME_push(names.get(), gn);
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return Internal("subjectAltName");
  }
  return absl::OkStatus();
}

int64_t ToUnix(const ASN1_TIME* t) {
  struct tm tm;
  std::memset(&tm, 0, sizeof(tm));
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

// Builds, extends and signs a certificate. `issuer_cert` null = self-signed.
absl::StatusOr<std::string> BuildCertificate(EVP_PKEY* subject_key, const CertSpec& spec,
                                             X509* issuer_cert, EVP_PKEY* issuer_key) {
  if (spec.validity <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("certificate validity must be positive");
  }
  KSH_ASSIGN_OR_RETURN(NamePtr subject, MakeName(spec.common_name, spec.organizations));
  X509Ptr cert(X509_new());
  if (!cert) return Internal("X509_new");
  X509* c = cert.get();

  BnPtr serial(BN_new());
  if (!serial || BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(c))) {
    return Internal("serial number");
  }
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  int64_t not_before = now - absl::ToInt64Seconds(spec.backdate);
  int64_t not_after = now + absl::ToInt64Seconds(spec.validity);
  if (issuer_cert) {
    const int64_t issuer_after = ToUnix(X509_get0_notAfter(issuer_cert));
    if (issuer_after != 0 && not_after > issuer_after) not_after = issuer_after;
    if (not_after <= now) return absl::FailedPreconditionError("issuer certificate has expired");
  }
  if (X509_set_version(c, 2) != 1 ||
      !ASN1_TIME_set(X509_getm_notBefore(c), static_cast<time_t>(not_before)) ||
      !ASN1_TIME_set(X509_getm_notAfter(c), static_cast<time_t>(not_after)) ||
      X509_set_subject_name(c, subject.get()) != 1 ||
      X509_set_issuer_name(c, issuer_cert ? X509_get_subject_name(issuer_cert) : subject.get()) !=
          1 ||
      X509_set_pubkey(c, subject_key) != 1) {
    return Internal("certificate fields");
  }
  X509* issuer_for_ext = issuer_cert ? issuer_cert : c;
  if (spec.is_ca) {
    std::string bc = "critical,CA:TRUE";
    if (spec.path_len >= 0) bc += absl::StrCat(",pathlen:", spec.path_len);
    KSH_RETURN_IF_ERROR(AddExtension(c, issuer_for_ext, NID_basic_constraints, bc.c_str()));
    KSH_RETURN_IF_ERROR(AddExtension(c, issuer_for_ext, NID_key_usage,
                                     "critical,keyCertSign,cRLSign,digitalSignature"));
  } else {
    KSH_RETURN_IF_ERROR(AddExtension(c, issuer_for_ext, NID_basic_constraints, "critical,CA:FALSE"));
    KSH_RETURN_IF_ERROR(
        AddExtension(c, issuer_for_ext, NID_key_usage, "critical,digitalSignature,keyEncipherment"));
  }
  if (spec.server_auth || spec.client_auth) {
    std::string eku;
    if (spec.server_auth) eku = "serverAuth";
    if (spec.client_auth) eku += eku.empty() ? "clientAuth" : ",clientAuth";
    KSH_RETURN_IF_ERROR(AddExtension(c, issuer_for_ext, NID_ext_key_usage, eku.c_str()));
  }
  KSH_RETURN_IF_ERROR(AddExtension(c, issuer_for_ext, NID_subject_key_identifier, "hash"));
  if (issuer_cert) {
    KSH_RETURN_IF_ERROR(
        AddExtension(c, issuer_for_ext, NID_authority_key_identifier, "keyid:always"));
  }
  KSH_RETURN_IF_ERROR(AddSubjectAltNames(c, spec));
  if (X509_sign(c, issuer_key, EVP_sha256()) <= 0) return Internal("certificate signature");
  return CertificatePem(c);
}

}  // namespace

absl::StatusOr<KeyPair> GenerateEcP256Key() {
  KSH_ASSIGN_OR_RETURN(PkeyPtr key, NewEcP256());
  KeyPair kp;
  KSH_ASSIGN_OR_RETURN(kp.private_key_pem, PrivateKeyPem(key.get()));
  KSH_ASSIGN_OR_RETURN(kp.public_key_pem, PublicKeyPem(key.get()));
  return kp;
}

absl::StatusOr<CertificateAuthority> MakeSelfSignedCa(const CertSpec& spec_in) {
  CertSpec spec = spec_in;
  spec.is_ca = true;
  KSH_ASSIGN_OR_RETURN(PkeyPtr key, NewEcP256());
  CertificateAuthority ca;
  KSH_ASSIGN_OR_RETURN(ca.certificate_pem, BuildCertificate(key.get(), spec, nullptr, key.get()));
  KSH_ASSIGN_OR_RETURN(ca.private_key_pem, PrivateKeyPem(key.get()));
  return ca;
}

absl::StatusOr<std::string> IssueCertificate(const CertificateAuthority& issuer,
                                             std::string_view subject_public_key_pem,
                                             const CertSpec& spec) {
  KSH_ASSIGN_OR_RETURN(X509Ptr issuer_cert, LoadCertificate(issuer.certificate_pem));
  KSH_ASSIGN_OR_RETURN(PkeyPtr issuer_key, LoadPrivateKey(issuer.private_key_pem));
  if (X509_check_private_key(issuer_cert.get(), issuer_key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("issuer key does not match the issuer certificate");
  }
  KSH_ASSIGN_OR_RETURN(PkeyPtr subject_key, LoadPublicKey(subject_public_key_pem));
  return BuildCertificate(subject_key.get(), spec, issuer_cert.get(), issuer_key.get());
}

absl::StatusOr<CertificateAuthority> MakeIntermediateCa(const CertificateAuthority& parent,
                                                        const CertSpec& spec_in) {
  CertSpec spec = spec_in;
  spec.is_ca = true;
  KSH_ASSIGN_OR_RETURN(PkeyPtr key, NewEcP256());
  KSH_ASSIGN_OR_RETURN(std::string pub, PublicKeyPem(key.get()));
  CertificateAuthority ca;
  KSH_ASSIGN_OR_RETURN(ca.certificate_pem, IssueCertificate(parent, pub, spec));
  KSH_ASSIGN_OR_RETURN(ca.private_key_pem, PrivateKeyPem(key.get()));
  return ca;
}

absl::StatusOr<std::string> MakeCsr(const SecretBytes& private_key_pem,
                                    std::string_view common_name,
                                    const std::vector<std::string>& organizations) {
  KSH_ASSIGN_OR_RETURN(PkeyPtr key, LoadPrivateKey(private_key_pem));
  KSH_ASSIGN_OR_RETURN(NamePtr name, MakeName(std::string(common_name), organizations));
  ReqPtr req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1 ||
      X509_REQ_set_subject_name(req.get(), name.get()) != 1 ||
      X509_REQ_set_pubkey(req.get(), key.get()) != 1 ||
      X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return Internal("CSR");
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) return Internal("CSR PEM");
  return BioToString(bio.get());
}

absl::StatusOr<CsrInfo> ParseAndVerifyCsr(std::string_view csr_pem) {
  if (csr_pem.empty() || csr_pem.size() > 16 * 1024) {
    return absl::InvalidArgumentError("CSR: empty or larger than 16 KiB");
  }
  static constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE REQUEST-----";
  size_t first = csr_pem.find(kBegin);
  if (first == std::string_view::npos) {
    return absl::InvalidArgumentError("CSR: no PEM CERTIFICATE REQUEST block");
  }
  if (csr_pem.find("-----BEGIN", first + kBegin.size()) != std::string_view::npos) {
    return absl::InvalidArgumentError("CSR: more than one PEM block");
  }
  BioPtr bio = MemReader(csr_pem);
  ReqPtr req(bio ? PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!req) {
    ERR_clear_error();
    return absl::InvalidArgumentError("CSR: not a valid PKCS#10 request");
  }
  EVP_PKEY* key = X509_REQ_get0_pubkey(req.get());
  if (!key) {
    ERR_clear_error();
    return absl::InvalidArgumentError("CSR: no public key");
  }
  const int bits = EVP_PKEY_get_bits(key);
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {0};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &len) != 1 ||
        (std::string_view(group) != "prime256v1" && std::string_view(group) != "secp384r1")) {
      ERR_clear_error();
      return absl::InvalidArgumentError("CSR: EC keys must be P-256 or P-384");
    }
  } else if (EVP_PKEY_is_a(key, "RSA")) {
    if (bits < 2048) return absl::InvalidArgumentError("CSR: RSA keys must have at least 2048 bits");
  } else {
    return absl::InvalidArgumentError("CSR: key type not accepted (EC P-256/P-384 or RSA)");
  }
  if (X509_REQ_verify(req.get(), key) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("CSR: self-signature does not verify");
  }
  CsrInfo info;
  KSH_ASSIGN_OR_RETURN(info.public_key_pem, PublicKeyPem(key));
  ReadName(X509_REQ_get_subject_name(req.get()), &info.common_name, &info.organizations);
  return info;
}

absl::StatusOr<CertInfo> ParseCertificate(std::string_view pem) {
  KSH_ASSIGN_OR_RETURN(X509Ptr cert, LoadCertificate(pem));
  CertInfo info;
  ReadName(X509_get_subject_name(cert.get()), &info.common_name, &info.organizations);
  ReadName(X509_get_issuer_name(cert.get()), &info.issuer_common_name, nullptr);
  info.not_before = absl::FromUnixSeconds(ToUnix(X509_get0_notBefore(cert.get())));
  info.not_after = absl::FromUnixSeconds(ToUnix(X509_get0_notAfter(cert.get())));
  info.is_ca = X509_check_ca(cert.get()) != 0;
  GeneralNamesPtr sans(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert.get(), NID_subject_alt_name, nullptr, nullptr)));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()) && i < 64; ++i) {
      const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
      if (gn->type == GEN_DNS) {
        const ASN1_IA5STRING* s = gn->d.dNSName;
        info.dns_names.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                    static_cast<size_t>(ASN1_STRING_length(s)));
      } else if (gn->type == GEN_IPADD) {
        const ASN1_OCTET_STRING* s = gn->d.iPAddress;
        char buf[INET6_ADDRSTRLEN] = {0};
        int len = ASN1_STRING_length(s);
        const unsigned char* d = ASN1_STRING_get0_data(s);
        if ((len == 4 && inet_ntop(AF_INET, d, buf, sizeof(buf))) ||
            (len == 16 && inet_ntop(AF_INET6, d, buf, sizeof(buf)))) {
          info.ip_addresses.emplace_back(buf);
        }
      }
    }
  }
  ERR_clear_error();
  EVP_PKEY* key = X509_get0_pubkey(cert.get());
  if (!key) return absl::InvalidArgumentError("certificate: unreadable public key");
  KSH_ASSIGN_OR_RETURN(info.public_key_pem, PublicKeyPem(key));
  unsigned char* der = nullptr;
  int der_len = i2d_X509(cert.get(), &der);
  if (der_len <= 0) return Internal("certificate DER");
  info.sha256_fingerprint_hex = HexEncode(
      Sha256(std::string_view(reinterpret_cast<const char*>(der), static_cast<size_t>(der_len))));
  OPENSSL_free(der);
  return info;
}

absl::StatusOr<std::vector<std::string>> SplitPemCertificates(std::string_view pem_bundle) {
  if (pem_bundle.size() > kMaxPemInput) {
    return absl::InvalidArgumentError("certificate bundle larger than 64 KiB");
  }
  BioPtr bio = MemReader(pem_bundle);
  if (!bio) return Internal("BIO");
  std::vector<std::string> out;
  while (true) {
    X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) break;
    if (out.size() == kMaxBundleCertificates) {
      return absl::InvalidArgumentError("certificate bundle holds more than 16 certificates");
    }
    KSH_ASSIGN_OR_RETURN(std::string one, CertificatePem(cert.get()));
    out.push_back(std::move(one));
  }
  ERR_clear_error();
  if (out.empty()) return absl::InvalidArgumentError("no PEM certificate found");
  return out;
}

absl::Status VerifyCertificateChain(std::string_view leaf_pem, std::string_view intermediates_pem,
                                    std::string_view root_pem, absl::Time at,
                                    std::string_view purpose) {
  KSH_ASSIGN_OR_RETURN(X509Ptr leaf, LoadCertificate(leaf_pem));
  KSH_ASSIGN_OR_RETURN(X509Ptr root, LoadCertificate(root_pem));
  X509StackPtr untrusted(sk_X509_new_null());
  if (!untrusted) return Internal("stack");
  if (!intermediates_pem.empty()) {
    KSH_ASSIGN_OR_RETURN(std::vector<std::string> pems, SplitPemCertificates(intermediates_pem));
    for (const auto& p : pems) {
      KSH_ASSIGN_OR_RETURN(X509Ptr c, LoadCertificate(p));
      // A self-signed certificate among the intermediates must never become an anchor.
      if (X509_check_issued(c.get(), c.get()) == X509_V_OK) continue;
      if (sk_X509_push(untrusted.get(), c.get()) <= 0) return Internal("stack push");
      c.release();
    }
  }
  StorePtr store(X509_STORE_new());
  if (!store || X509_STORE_add_cert(store.get(), root.get()) != 1) return Internal("X509 store");
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store.get(), leaf.get(), untrusted.get()) != 1) {
    return Internal("X509 store context");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, static_cast<time_t>(absl::ToUnixSeconds(at)));
  if (purpose == "client") {
    X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  } else if (purpose == "server") {
    X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_SERVER);
  } else if (!purpose.empty()) {
    return absl::InvalidArgumentError("purpose must be \"\", \"client\" or \"server\"");
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return absl::PermissionDeniedError(
        absl::StrCat("certificate chain: ", X509_verify_cert_error_string(err)));
  }
  return absl::OkStatus();
}

bool KeyMatchesPublicKey(const SecretBytes& private_key_pem, std::string_view public_key_pem) {
  auto priv = LoadPrivateKey(private_key_pem);
  auto pub = LoadPublicKey(public_key_pem);
  if (!priv.ok() || !pub.ok()) return false;
  return EVP_PKEY_eq(priv->get(), pub->get()) == 1;
}

}  // namespace kshield::crypto
