#include "tee/quote/pck_extensions.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <climits>
#include <cstring>
#include <memory>
#include <string>

#include "common/status.h"

namespace kshield::tee::quote {
namespace {

struct SeqDeleter {
  void operator()(ASN1_SEQUENCE_ANY* p) const { sk_ASN1_TYPE_pop_free(p, ASN1_TYPE_free); }
};
struct ObjDeleter {
  void operator()(ASN1_OBJECT* p) const { ASN1_OBJECT_free(p); }
};
using SeqPtr = std::unique_ptr<ASN1_SEQUENCE_ANY, SeqDeleter>;

// Generous bounds: the real extension has 5-7 top-level entries and 18 TCB entries.
constexpr int kMaxTopEntries = 16;
constexpr int kMaxTcbEntries = 32;
constexpr size_t kMaxExtensionSize = 4096;

absl::Status Bad(const std::string& what) {
  return absl::InvalidArgumentError("PCK certificate SGX extension: " + what);
}

// Decodes a DER SEQUENCE into its elements; the whole input must be consumed.
absl::StatusOr<SeqPtr> DecodeSequence(std::string_view der, std::string_view what) {
  if (der.empty() || der.size() > kMaxExtensionSize) return Bad(std::string(what) + " size");
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  SeqPtr seq(d2i_ASN1_SEQUENCE_ANY(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  if (!seq) return Bad(std::string(what) + " is not a DER SEQUENCE");
  if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return Bad(std::string(what) + " has trailing bytes");
  }
  return seq;
}

std::string_view SequenceDer(const ASN1_TYPE* t) {
  return std::string_view(reinterpret_cast<const char*>(t->value.sequence->data),
                          static_cast<size_t>(t->value.sequence->length));
}

// A SEQUENCE { OID, value } entry: returns the dotted OID and the value.
absl::Status DecodeEntry(const ASN1_TYPE* entry, std::string_view what, std::string* oid,
                         SeqPtr* holder, const ASN1_TYPE** value) {
  if (ASN1_TYPE_get(entry) != V_ASN1_SEQUENCE) {
    return Bad(std::string(what) + " entry is not a SEQUENCE");
  }
  KSH_ASSIGN_OR_RETURN(SeqPtr inner, DecodeSequence(SequenceDer(entry), what));
  if (sk_ASN1_TYPE_num(inner.get()) != 2) {
    return Bad(std::string(what) + " entry does not have exactly two elements");
  }
  const ASN1_TYPE* o = sk_ASN1_TYPE_value(inner.get(), 0);
  if (ASN1_TYPE_get(o) != V_ASN1_OBJECT) {
    return Bad(std::string(what) + " entry does not start with an OID");
  }
  char buf[80];
  const int n = OBJ_obj2txt(buf, sizeof(buf), o->value.object, 1);
  if (n <= 0 || n >= static_cast<int>(sizeof(buf))) {
    ERR_clear_error();
    return Bad(std::string(what) + " entry has an unreadable OID");
  }
  *oid = std::string(buf, static_cast<size_t>(n));
  *value = sk_ASN1_TYPE_value(inner.get(), 1);
  *holder = std::move(inner);
  return absl::OkStatus();
}

template <size_t N>
absl::Status OctetString(const ASN1_TYPE* v, std::string_view what, std::array<uint8_t, N>* out) {
  if (ASN1_TYPE_get(v) != V_ASN1_OCTET_STRING ||
      ASN1_STRING_length(v->value.octet_string) != static_cast<int>(N)) {
    return Bad(std::string(what) + " is not an OCTET STRING of " + std::to_string(N) + " bytes");
  }
  std::memcpy(out->data(), ASN1_STRING_get0_data(v->value.octet_string), N);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> SmallInteger(const ASN1_TYPE* v, int type, std::string_view what,
                                     int64_t max) {
  int64_t x = -1;
  int ok = 0;
  if (type == V_ASN1_INTEGER && ASN1_TYPE_get(v) == V_ASN1_INTEGER) {
    ok = ASN1_INTEGER_get_int64(&x, v->value.integer);
  } else if (type == V_ASN1_ENUMERATED && ASN1_TYPE_get(v) == V_ASN1_ENUMERATED) {
    ok = ASN1_ENUMERATED_get_int64(&x, v->value.enumerated);
  }
  ERR_clear_error();
  if (ok != 1 || x < 0 || x > max) {
    return Bad(std::string(what) + " is not an integer in [0, " + std::to_string(max) + "]");
  }
  return x;
}

absl::Status ParseTcb(const ASN1_TYPE* v, PckExtensions* ext) {
  if (ASN1_TYPE_get(v) != V_ASN1_SEQUENCE) return Bad("TCB is not a SEQUENCE");
  KSH_ASSIGN_OR_RETURN(SeqPtr tcb, DecodeSequence(SequenceDer(v), "TCB"));
  const int n = sk_ASN1_TYPE_num(tcb.get());
  if (n > kMaxTcbEntries) return Bad("TCB has too many entries");
  const std::string prefix = std::string(kSgxExtensionsOid) + ".2.";
  uint32_t seen = 0;  // bit i-1 for component i (1..16), bit 16 PCESVN, bit 17 CPUSVN
  for (int i = 0; i < n; ++i) {
    std::string oid;
    SeqPtr holder;
    const ASN1_TYPE* value = nullptr;
    KSH_RETURN_IF_ERROR(
        DecodeEntry(sk_ASN1_TYPE_value(tcb.get(), i), "TCB", &oid, &holder, &value));
    if (oid.compare(0, prefix.size(), prefix) != 0) continue;  // not ours: ignore
    int index = 0;
    const std::string tail = oid.substr(prefix.size());
    if (tail.empty() || tail.size() > 2 ||
        tail.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    index = std::stoi(tail);
    if (index < 1 || index > 18) continue;
    const uint32_t bit = 1u << (index - 1);
    if (seen & bit) return Bad("TCB entry ." + tail + " appears twice");
    seen |= bit;
    if (index <= 16) {
      KSH_ASSIGN_OR_RETURN(int64_t svn,
                           SmallInteger(value, V_ASN1_INTEGER, "TCB component " + tail, 255));
      ext->tcb_components[index - 1] = static_cast<uint8_t>(svn);
    } else if (index == 17) {
      KSH_ASSIGN_OR_RETURN(int64_t svn, SmallInteger(value, V_ASN1_INTEGER, "PCESVN", 65535));
      ext->pce_svn = static_cast<uint16_t>(svn);
    } else {
      KSH_RETURN_IF_ERROR(OctetString(value, "CPUSVN", &ext->cpu_svn));
    }
  }
  if (seen != (1u << 18) - 1) return Bad("TCB lacks some of its 18 entries");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PckExtensions> ParseSgxExtensions(std::string_view der) {
  KSH_ASSIGN_OR_RETURN(SeqPtr top, DecodeSequence(der, "extension"));
  const int n = sk_ASN1_TYPE_num(top.get());
  if (n > kMaxTopEntries) return Bad("too many entries");
  const std::string prefix = std::string(kSgxExtensionsOid) + ".";
  PckExtensions ext;
  uint32_t seen = 0;  // bit i-1 for entry .i (1..5)
  for (int i = 0; i < n; ++i) {
    std::string oid;
    SeqPtr holder;
    const ASN1_TYPE* value = nullptr;
    KSH_RETURN_IF_ERROR(
        DecodeEntry(sk_ASN1_TYPE_value(top.get(), i), "extension", &oid, &holder, &value));
    if (oid.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string tail = oid.substr(prefix.size());
    if (tail.size() != 1 || tail[0] < '1' || tail[0] > '7') continue;  // unknown: ignore
    const int index = tail[0] - '0';
    const uint32_t bit = 1u << (index - 1);
    if (seen & bit) return Bad("entry ." + tail + " appears twice");
    seen |= bit;
    switch (index) {
      case 1:
        KSH_RETURN_IF_ERROR(OctetString(value, "PPID", &ext.ppid));
        break;
      case 2:
        KSH_RETURN_IF_ERROR(ParseTcb(value, &ext));
        break;
      case 3:
        KSH_RETURN_IF_ERROR(OctetString(value, "PCE-ID", &ext.pce_id));
        break;
      case 4:
        KSH_RETURN_IF_ERROR(OctetString(value, "FMSPC", &ext.fmspc));
        break;
      case 5: {
        KSH_ASSIGN_OR_RETURN(int64_t t, SmallInteger(value, V_ASN1_ENUMERATED, "SGX Type", 2));
        ext.sgx_type = static_cast<int>(t);
        break;
      }
      default:
        break;  // .6 PlatformInstanceID, .7 Configuration: not needed
    }
  }
  if ((seen & 0x1f) != 0x1f) {
    return Bad("lacks one of PPID, TCB, PCE-ID, FMSPC, SGX Type");
  }
  return ext;
}

absl::StatusOr<PckExtensions> ParsePckExtensions(X509* cert) {
  if (cert == nullptr) return absl::InvalidArgumentError("no PCK certificate");
  std::unique_ptr<ASN1_OBJECT, ObjDeleter> oid(OBJ_txt2obj(kSgxExtensionsOid, 1));
  if (!oid) return absl::InternalError("OBJ_txt2obj failed");
  const int idx = X509_get_ext_by_OBJ(cert, oid.get(), -1);
  if (idx < 0) {
    return absl::InvalidArgumentError("PCK certificate has no SGX extension (" +
                                      std::string(kSgxExtensionsOid) + ")");
  }
  if (X509_get_ext_by_OBJ(cert, oid.get(), idx) >= 0) {
    return Bad("present twice");
  }
  ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(X509_get_ext(cert, idx));
  if (data == nullptr) return Bad("empty");
  return ParseSgxExtensions(
      std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)),
                       static_cast<size_t>(ASN1_STRING_length(data))));
}

}  // namespace kshield::tee::quote
