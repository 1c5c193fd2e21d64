#include "tee/quote/collateral.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/status.h"

namespace kshield::tee::quote {
namespace {

using nlohmann::json;

constexpr size_t kMaxAdvisories = 128;
constexpr size_t kMaxAdvisoryIdLength = 64;
constexpr size_t kMaxModuleIdentities = 64;
constexpr char kTcbSigningCn[] = "Intel SGX TCB Signing";

absl::Status Bad(std::string_view what, std::string_view why) {
  return absl::InvalidArgumentError(std::string(what) + ": " + std::string(why));
}

absl::StatusOr<std::string> HexDecode(std::string_view hex, std::string_view what) {
  if (hex.size() % 2 != 0) return Bad(what, "hex string of odd length");
  std::string out;
  out.reserve(hex.size() / 2);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]);
    const int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return Bad(what, "not a hex string");
    out.push_back(static_cast<char>((hi << 4) | lo));
  }
  return out;
}

// Parses without exceptions; nlohmann's parser is iterative, so nesting depth cannot overflow the
// stack, and the input size is bounded by the caller.
absl::StatusOr<json> ParseJson(std::string_view text, std::string_view what) {
  json j;
  try {
    j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  } catch (const std::exception&) {
    return Bad(what, "is not valid JSON");
  }
  if (j.is_discarded()) return Bad(what, "is not valid JSON");
  if (!j.is_object()) return Bad(what, "is not a JSON object");
  return j;
}

// --- typed accessors: every one checks presence and type first, so nothing below throws -------

absl::StatusOr<const json*> Member(const json& obj, const char* key, std::string_view what) {
  if (!obj.is_object()) return Bad(what, "is not an object");
  auto it = obj.find(key);
  if (it == obj.end()) return Bad(what, std::string("lacks \"") + key + "\"");
  return &*it;
}

absl::StatusOr<std::string> GetString(const json& obj, const char* key, std::string_view what) {
  KSH_ASSIGN_OR_RETURN(const json* v, Member(obj, key, what));
  if (!v->is_string()) return Bad(what, std::string("\"") + key + "\" is not a string");
  return v->get_ref<const std::string&>();
}

absl::StatusOr<int64_t> GetInt(const json& obj, const char* key, std::string_view what, int64_t min,
                               int64_t max) {
  KSH_ASSIGN_OR_RETURN(const json* v, Member(obj, key, what));
  int64_t x = 0;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(max)) {
      return Bad(what, std::string("\"") + key + "\" is out of range");
    }
    x = static_cast<int64_t>(u);
  } else if (v->is_number_integer()) {
    x = v->get<int64_t>();
  } else {
    return Bad(what, std::string("\"") + key + "\" is not an integer");
  }
  if (x < min || x > max) return Bad(what, std::string("\"") + key + "\" is out of range");
  return x;
}

template <size_t N>
absl::Status GetHex(const json& obj, const char* key, std::string_view what,
                    std::array<uint8_t, N>* out) {
  KSH_ASSIGN_OR_RETURN(std::string hex, GetString(obj, key, what));
  const std::string field = std::string(what) + "." + key;
  KSH_ASSIGN_OR_RETURN(std::string raw, HexDecode(hex, field));
  if (raw.size() != N) return Bad(field, "must be " + std::to_string(N) + " bytes of hex");
  std::memcpy(out->data(), raw.data(), N);
  return absl::OkStatus();
}

absl::StatusOr<absl::Time> GetTime(const json& obj, const char* key, std::string_view what) {
  KSH_ASSIGN_OR_RETURN(std::string text, GetString(obj, key, what));
  absl::Time t;
  std::string err;
  if (text.size() > 64 || !absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return Bad(what, std::string("\"") + key + "\" is not an RFC 3339 time");
  }
  return t;
}

absl::StatusOr<std::vector<std::string>> GetAdvisories(const json& level, std::string_view what) {
  std::vector<std::string> out;
  auto it = level.find("advisoryIDs");
  if (it == level.end()) return out;
  if (!it->is_array() || it->size() > kMaxAdvisories) {
    return Bad(what, "\"advisoryIDs\" is not a list of at most " + std::to_string(kMaxAdvisories) +
                         " strings");
  }
  for (const json& a : *it) {
    if (!a.is_string()) return Bad(what, "an advisory ID is not a string");
    const std::string& id = a.get_ref<const std::string&>();
    if (id.empty() || id.size() > kMaxAdvisoryIdLength ||
        !std::all_of(id.begin(), id.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; })) {
      return Bad(what, "an advisory ID is empty, too long or not printable");
    }
    out.push_back(id);
  }
  return out;
}

absl::StatusOr<const json*> GetArray(const json& obj, const char* key, std::string_view what,
                                     size_t min, size_t max) {
  KSH_ASSIGN_OR_RETURN(const json* v, Member(obj, key, what));
  if (!v->is_array() || v->size() < min || v->size() > max) {
    return Bad(what, std::string("\"") + key + "\" is not a list of " + std::to_string(min) + ".." +
                         std::to_string(max) + " entries");
  }
  return v;
}

absl::StatusOr<std::vector<IdentityTcbLevel>> GetIdentityLevels(const json& obj,
                                                                std::string_view what) {
  KSH_ASSIGN_OR_RETURN(const json* levels, GetArray(obj, "tcbLevels", what, 1, kMaxTcbLevels));
  std::vector<IdentityTcbLevel> out;
  for (size_t i = 0; i < levels->size(); ++i) {
    const json& l = (*levels)[i];
    const std::string lw = std::string(what) + ".tcbLevels[" + std::to_string(i) + "]";
    IdentityTcbLevel level;
    KSH_ASSIGN_OR_RETURN(const json* tcb, Member(l, "tcb", lw));
    KSH_ASSIGN_OR_RETURN(int64_t isvsvn, GetInt(*tcb, "isvsvn", lw + ".tcb", 0, 65535));
    level.isv_svn = static_cast<uint16_t>(isvsvn);
    KSH_ASSIGN_OR_RETURN(level.tcb_date, GetTime(l, "tcbDate", lw));
    KSH_ASSIGN_OR_RETURN(std::string status, GetString(l, "tcbStatus", lw));
    KSH_ASSIGN_OR_RETURN(level.status, ParseTcbStatus(status));
    KSH_ASSIGN_OR_RETURN(level.advisory_ids, GetAdvisories(l, lw));
    out.push_back(std::move(level));
  }
  return out;
}

absl::StatusOr<std::array<uint8_t, 16>> GetComponents(const json& tcb, const char* key,
                                                      std::string_view what) {
  KSH_ASSIGN_OR_RETURN(const json* comps, GetArray(tcb, key, what, 16, 16));
  std::array<uint8_t, 16> out{};
  for (size_t i = 0; i < 16; ++i) {
    KSH_ASSIGN_OR_RETURN(
        int64_t svn, GetInt((*comps)[i], "svn",
                            std::string(what) + "." + key + "[" + std::to_string(i) + "]", 0, 255));
    out[i] = static_cast<uint8_t>(svn);
  }
  return out;
}

absl::Status GetModule(const json& obj, std::string_view what, TdxModule* out) {
  KSH_RETURN_IF_ERROR(GetHex(obj, "mrsigner", what, &out->mrsigner));
  KSH_RETURN_IF_ERROR(GetHex(obj, "attributes", what, &out->attributes));
  KSH_RETURN_IF_ERROR(GetHex(obj, "attributesMask", what, &out->attributes_mask));
  return absl::OkStatus();
}

absl::StatusOr<TcbInfo> ParseTcbInfoJson(const json& j) {
  constexpr std::string_view w = "TCB info";
  TcbInfo info;
  KSH_ASSIGN_OR_RETURN(int64_t version, GetInt(j, "version", w, 2, 3));
  info.version = static_cast<int>(version);
  if (j.contains("id") || info.version >= 3) {
    KSH_ASSIGN_OR_RETURN(info.id, GetString(j, "id", w));
  } else {
    info.id = "SGX";
  }
  if (info.id != "SGX" && info.id != "TDX") return Bad(w, "unknown id \"" + info.id + "\"");
  if (info.id == "TDX" && info.version < 3) return Bad(w, "id TDX needs version 3");
  KSH_ASSIGN_OR_RETURN(info.issue_date, GetTime(j, "issueDate", w));
  KSH_ASSIGN_OR_RETURN(info.next_update, GetTime(j, "nextUpdate", w));
  KSH_RETURN_IF_ERROR(GetHex(j, "fmspc", w, &info.fmspc));
  KSH_RETURN_IF_ERROR(GetHex(j, "pceId", w, &info.pce_id));
  if (j.contains("tcbType")) {
    KSH_ASSIGN_OR_RETURN(int64_t t, GetInt(j, "tcbType", w, 0, 255));
    info.tcb_type = static_cast<int>(t);
  }
  if (j.contains("tcbEvaluationDataNumber")) {
    KSH_ASSIGN_OR_RETURN(int64_t n, GetInt(j, "tcbEvaluationDataNumber", w, 0, INT32_MAX));
    info.tcb_evaluation_data_number = static_cast<int>(n);
  }
  const bool tdx = info.id == "TDX";
  if (tdx) {
    KSH_ASSIGN_OR_RETURN(const json* m, Member(j, "tdxModule", w));
    KSH_RETURN_IF_ERROR(GetModule(*m, "TCB info.tdxModule", &info.tdx_module));
    info.has_tdx_module = true;
    if (j.contains("tdxModuleIdentities")) {
      KSH_ASSIGN_OR_RETURN(const json* ids,
                           GetArray(j, "tdxModuleIdentities", w, 0, kMaxModuleIdentities));
      for (size_t i = 0; i < ids->size(); ++i) {
        const std::string mw = "TCB info.tdxModuleIdentities[" + std::to_string(i) + "]";
        TdxModuleIdentity mi;
        KSH_ASSIGN_OR_RETURN(mi.id, GetString((*ids)[i], "id", mw));
        KSH_RETURN_IF_ERROR(GetModule((*ids)[i], mw, &mi.module));
        KSH_ASSIGN_OR_RETURN(mi.tcb_levels, GetIdentityLevels((*ids)[i], mw));
        info.tdx_module_identities.push_back(std::move(mi));
      }
    }
  }
  KSH_ASSIGN_OR_RETURN(const json* levels, GetArray(j, "tcbLevels", w, 1, kMaxTcbLevels));
  for (size_t i = 0; i < levels->size(); ++i) {
    const json& l = (*levels)[i];
    const std::string lw = "TCB info.tcbLevels[" + std::to_string(i) + "]";
    TcbLevel level;
    KSH_ASSIGN_OR_RETURN(const json* tcb, Member(l, "tcb", lw));
    const std::string tw = lw + ".tcb";
    if (info.version >= 3) {
      KSH_ASSIGN_OR_RETURN(level.sgx_components, GetComponents(*tcb, "sgxtcbcomponents", tw));
      if (tdx) {
        KSH_ASSIGN_OR_RETURN(level.tdx_components, GetComponents(*tcb, "tdxtcbcomponents", tw));
        level.has_tdx_components = true;
      }
    } else {
      for (int c = 0; c < 16; ++c) {
        char key[20];
        std::snprintf(key, sizeof(key), "sgxtcbcomp%02dsvn", c + 1);
        KSH_ASSIGN_OR_RETURN(int64_t svn, GetInt(*tcb, key, tw, 0, 255));
        level.sgx_components[c] = static_cast<uint8_t>(svn);
      }
    }
    KSH_ASSIGN_OR_RETURN(int64_t pcesvn, GetInt(*tcb, "pcesvn", tw, 0, 65535));
    level.pce_svn = static_cast<uint16_t>(pcesvn);
    KSH_ASSIGN_OR_RETURN(level.tcb_date, GetTime(l, "tcbDate", lw));
    KSH_ASSIGN_OR_RETURN(std::string status, GetString(l, "tcbStatus", lw));
    KSH_ASSIGN_OR_RETURN(level.status, ParseTcbStatus(status));
    KSH_ASSIGN_OR_RETURN(level.advisory_ids, GetAdvisories(l, lw));
    info.tcb_levels.push_back(std::move(level));
  }
  return info;
}

absl::StatusOr<EnclaveIdentity> ParseEnclaveIdentityJson(const json& j) {
  constexpr std::string_view w = "QE identity";
  EnclaveIdentity id;
  KSH_ASSIGN_OR_RETURN(id.id, GetString(j, "id", w));
  KSH_ASSIGN_OR_RETURN(int64_t version, GetInt(j, "version", w, 2, 2));
  id.version = static_cast<int>(version);
  KSH_ASSIGN_OR_RETURN(id.issue_date, GetTime(j, "issueDate", w));
  KSH_ASSIGN_OR_RETURN(id.next_update, GetTime(j, "nextUpdate", w));
  if (j.contains("tcbEvaluationDataNumber")) {
    KSH_ASSIGN_OR_RETURN(int64_t n, GetInt(j, "tcbEvaluationDataNumber", w, 0, INT32_MAX));
    id.tcb_evaluation_data_number = static_cast<int>(n);
  }
  KSH_RETURN_IF_ERROR(GetHex(j, "miscselect", w, &id.miscselect));
  KSH_RETURN_IF_ERROR(GetHex(j, "miscselectMask", w, &id.miscselect_mask));
  KSH_RETURN_IF_ERROR(GetHex(j, "attributes", w, &id.attributes));
  KSH_RETURN_IF_ERROR(GetHex(j, "attributesMask", w, &id.attributes_mask));
  KSH_RETURN_IF_ERROR(GetHex(j, "mrsigner", w, &id.mrsigner));
  KSH_ASSIGN_OR_RETURN(int64_t prod, GetInt(j, "isvprodid", w, 0, 65535));
  id.isv_prod_id = static_cast<uint16_t>(prod);
  KSH_ASSIGN_OR_RETURN(id.tcb_levels, GetIdentityLevels(j, w));
  return id;
}

// --- collateral verification helpers -------------------------------------------------------------

absl::Time AsnTime(const ASN1_TIME* t, bool* ok) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ERR_clear_error();
    *ok = false;
    return absl::InfinitePast();
  }
  *ok = true;
  return absl::FromTimeT(timegm(&tm));
}

absl::Status CheckWindow(std::string_view what, std::string_view from_name, absl::Time from,
                         std::string_view to_name, absl::Time to, absl::Time at) {
  if (at < from) {
    return absl::FailedPreconditionError(
        std::string(what) + " is not yet valid: " + std::string(from_name) + " " + Rfc3339(from) +
        " is after the verification time " + Rfc3339(at));
  }
  if (at > to) {
    return absl::FailedPreconditionError(
        std::string(what) + " has expired: " + std::string(to_name) + " " + Rfc3339(to) +
        " is before the verification time " + Rfc3339(at));
  }
  return absl::OkStatus();
}

absl::Status CheckCrlWindow(std::string_view what, X509_CRL* crl, absl::Time at) {
  bool ok_this = false;
  bool ok_next = false;
  const absl::Time this_update = AsnTime(X509_CRL_get0_lastUpdate(crl), &ok_this);
  const absl::Time next_update = AsnTime(X509_CRL_get0_nextUpdate(crl), &ok_next);
  if (!ok_this || !ok_next) {
    return absl::InvalidArgumentError(std::string(what) + " lacks thisUpdate or nextUpdate");
  }
  return CheckWindow(what, "thisUpdate", this_update, "nextUpdate", next_update, at);
}

// Verifies a signed JSON body: the issuer chain to the root (with the root CA CRL), the leaf is
// Intel's TCB signing certificate, and `signature` (raw r ‖ s) over the exact body bytes.
absl::Status VerifySignedBody(std::string_view what, std::string_view body,
                              std::string_view signature, std::string_view chain_pem, X509* root,
                              X509_CRL* root_crl, absl::Time at) {
  auto chain = ParsePemChain(chain_pem);
  if (!chain.ok()) return Annotate(chain.status(), std::string(what) + " issuer chain");
  const std::string cn = SubjectCommonName((*chain)[0].get());
  if (cn != kTcbSigningCn) {
    return absl::PermissionDeniedError(std::string(what) + " is signed by \"" + cn +
                                       "\", not by \"" + kTcbSigningCn + "\"");
  }
  absl::Status chain_ok = VerifyChain(*chain, root, {root_crl}, at);
  if (!chain_ok.ok()) return Annotate(chain_ok, std::string(what) + " issuer chain");
  EVP_PKEY* key = X509_get0_pubkey((*chain)[0].get());
  if (signature.size() != 64 || !VerifyEcdsaP256Sha256(key, body, signature)) {
    return absl::PermissionDeniedError(std::string(what) +
                                       " signature does not verify with the TCB signing key");
  }
  return absl::OkStatus();
}

TcbStatus ConvergeWithModule(TcbStatus tcb, TcbStatus module) {
  // TdxModuleCheck.cpp convergeTcbStatusWithTdxModuleStatus.
  if (module == TcbStatus::kOutOfDate) {
    if (tcb == TcbStatus::kUpToDate || tcb == TcbStatus::kSwHardeningNeeded) {
      return TcbStatus::kOutOfDate;
    }
    if (tcb == TcbStatus::kConfigurationNeeded ||
        tcb == TcbStatus::kConfigurationAndSwHardeningNeeded) {
      return TcbStatus::kOutOfDateConfigurationNeeded;
    }
  }
  if (module == TcbStatus::kRevoked) return TcbStatus::kRevoked;
  return tcb;
}

// QE identity statuses are UpToDate, OutOfDate or Revoked (EnclaveReportVerifier.cpp maps any
// other non-UpToDate level status to OutOfDate), so the module rule applies unchanged.
TcbStatus ConvergeWithQe(TcbStatus tcb, TcbStatus qe) { return ConvergeWithModule(tcb, qe); }

TcbStatus IdentityStatus(TcbStatus s) {
  if (s == TcbStatus::kUpToDate || s == TcbStatus::kRevoked) return s;
  return TcbStatus::kOutOfDate;
}

void AppendUnique(std::vector<std::string>* into, const std::vector<std::string>& from) {
  for (const std::string& a : from) {
    if (std::find(into->begin(), into->end(), a) == into->end()) into->push_back(a);
  }
}

std::string Hex(const uint8_t* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 0xf]);
  }
  return out;
}

}  // namespace

std::string_view TcbStatusName(TcbStatus s) {
  switch (s) {
    case TcbStatus::kUpToDate:
      return "UpToDate";
    case TcbStatus::kSwHardeningNeeded:
      return "SWHardeningNeeded";
    case TcbStatus::kConfigurationNeeded:
      return "ConfigurationNeeded";
    case TcbStatus::kConfigurationAndSwHardeningNeeded:
      return "ConfigurationAndSWHardeningNeeded";
    case TcbStatus::kOutOfDate:
      return "OutOfDate";
    case TcbStatus::kOutOfDateConfigurationNeeded:
      return "OutOfDateConfigurationNeeded";
    case TcbStatus::kRevoked:
      return "Revoked";
  }
  return "Revoked";
}

absl::StatusOr<TcbStatus> ParseTcbStatus(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(TcbStatus::kRevoked); ++i) {
    const auto s = static_cast<TcbStatus>(i);
    if (TcbStatusName(s) == name) return s;
  }
  std::string shown(name.substr(0, 64));
  for (char& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  return absl::InvalidArgumentError(
      "unknown TCB status \"" + shown +
      "\" (known: UpToDate, SWHardeningNeeded, ConfigurationNeeded, "
      "ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded, Revoked)");
}

absl::StatusOr<Collateral> ParseCollateralJson(std::string_view json_text) {
  constexpr std::string_view w = "collateral";
  if (json_text.size() > kMaxCollateralFileSize) return Bad(w, "file is too large");
  KSH_ASSIGN_OR_RETURN(json j, ParseJson(json_text, w));
  Collateral c;
  KSH_ASSIGN_OR_RETURN(c.tcb_info, GetString(j, "tcb_info", w));
  KSH_ASSIGN_OR_RETURN(c.tcb_info_issuer_chain, GetString(j, "tcb_info_issuer_chain", w));
  KSH_ASSIGN_OR_RETURN(c.qe_identity, GetString(j, "qe_identity", w));
  KSH_ASSIGN_OR_RETURN(c.qe_identity_issuer_chain, GetString(j, "qe_identity_issuer_chain", w));
  KSH_ASSIGN_OR_RETURN(c.pck_crl_issuer_chain, GetString(j, "pck_crl_issuer_chain", w));
  struct HexField {
    const char* key;
    std::string* out;
  };
  for (const HexField& f :
       {HexField{"tcb_info_signature", &c.tcb_info_signature},
        HexField{"qe_identity_signature", &c.qe_identity_signature},
        HexField{"pck_crl", &c.pck_crl}, HexField{"root_ca_crl", &c.root_ca_crl}}) {
    KSH_ASSIGN_OR_RETURN(std::string hex, GetString(j, f.key, w));
    KSH_ASSIGN_OR_RETURN(*f.out, HexDecode(hex, std::string("collateral.") + f.key));
  }
  if (c.tcb_info_signature.size() != 64 || c.qe_identity_signature.size() != 64) {
    return Bad(w, "signatures must be 64 bytes (r||s) of hex");
  }
  if (c.tcb_info.size() > kMaxCollateralJsonSize || c.qe_identity.size() > kMaxCollateralJsonSize) {
    return Bad(w, "tcb_info or qe_identity is too large");
  }
  return c;
}

absl::StatusOr<TcbInfo> ParseTcbInfo(std::string_view json_text) {
  if (json_text.size() > kMaxCollateralJsonSize) return Bad("TCB info", "is too large");
  KSH_ASSIGN_OR_RETURN(json j, ParseJson(json_text, "TCB info"));
  try {
    return ParseTcbInfoJson(j);
  } catch (const std::exception&) {  // defensive: accessors check types before reading
    return Bad("TCB info", "has an unexpected shape");
  }
}

absl::StatusOr<EnclaveIdentity> ParseEnclaveIdentity(std::string_view json_text) {
  if (json_text.size() > kMaxCollateralJsonSize) return Bad("QE identity", "is too large");
  KSH_ASSIGN_OR_RETURN(json j, ParseJson(json_text, "QE identity"));
  try {
    return ParseEnclaveIdentityJson(j);
  } catch (const std::exception&) {
    return Bad("QE identity", "has an unexpected shape");
  }
}

absl::StatusOr<VerifiedCollateral> VerifyCollateral(const Collateral& c, X509* root,
                                                    absl::Time at) {
  if (root == nullptr) return absl::InvalidArgumentError("no pinned root certificate");
  VerifiedCollateral out;

  // Root CA CRL: issued and signed by the pinned root, current.
  auto root_crl = ParseDerCrl(c.root_ca_crl);
  if (!root_crl.ok()) return Annotate(root_crl.status(), "root CA CRL");
  if (X509_NAME_cmp(X509_CRL_get_issuer(root_crl->get()), X509_get_subject_name(root)) != 0 ||
      X509_CRL_verify(root_crl->get(), X509_get0_pubkey(root)) != 1) {
    ERR_clear_error();
    return absl::PermissionDeniedError("root CA CRL is not signed by the pinned root");
  }
  KSH_RETURN_IF_ERROR(CheckCrlWindow("root CA CRL", root_crl->get(), at));

  // PCK CRL: signed by its issuer chain, which chains to the root.
  auto pck_crl = ParseDerCrl(c.pck_crl);
  if (!pck_crl.ok()) return Annotate(pck_crl.status(), "PCK CRL");
  auto crl_chain = ParsePemChain(c.pck_crl_issuer_chain);
  if (!crl_chain.ok()) return Annotate(crl_chain.status(), "PCK CRL issuer chain");
  absl::Status crl_chain_ok = VerifyChain(*crl_chain, root, {root_crl->get()}, at);
  if (!crl_chain_ok.ok()) return Annotate(crl_chain_ok, "PCK CRL issuer chain");
  X509* crl_issuer = (*crl_chain)[0].get();
  if (X509_NAME_cmp(X509_CRL_get_issuer(pck_crl->get()), X509_get_subject_name(crl_issuer)) != 0 ||
      X509_CRL_verify(pck_crl->get(), X509_get0_pubkey(crl_issuer)) != 1) {
    ERR_clear_error();
    return absl::PermissionDeniedError(
        "PCK CRL is not signed by the first certificate of its "
        "issuer chain");
  }
  KSH_RETURN_IF_ERROR(CheckCrlWindow("PCK CRL", pck_crl->get(), at));
  out.pck_crl_issuer = SubjectOneLine(crl_issuer);

  // TCB info and QE identity: signature first, then parse the signed bytes, then their windows.
  KSH_RETURN_IF_ERROR(VerifySignedBody("TCB info", c.tcb_info, c.tcb_info_signature,
                                       c.tcb_info_issuer_chain, root, root_crl->get(), at));
  KSH_RETURN_IF_ERROR(VerifySignedBody("QE identity", c.qe_identity, c.qe_identity_signature,
                                       c.qe_identity_issuer_chain, root, root_crl->get(), at));
  KSH_ASSIGN_OR_RETURN(out.tcb_info, ParseTcbInfo(c.tcb_info));
  KSH_ASSIGN_OR_RETURN(out.qe_identity, ParseEnclaveIdentity(c.qe_identity));
  KSH_RETURN_IF_ERROR(CheckWindow("TCB info", "issueDate", out.tcb_info.issue_date, "nextUpdate",
                                  out.tcb_info.next_update, at));
  KSH_RETURN_IF_ERROR(CheckWindow("QE identity", "issueDate", out.qe_identity.issue_date,
                                  "nextUpdate", out.qe_identity.next_update, at));
  out.root_ca_crl = std::move(*root_crl);
  out.pck_crl = std::move(*pck_crl);
  return out;
}

absl::StatusOr<TcbResult> EvaluateTcb(const TcbInfo& info, const EnclaveIdentity& qe_identity,
                                      const PckExtensions& pck, const ParsedQuote& quote) {
  const bool tdx_quote = quote.tee == TeeType::kTdx;
  // 4.1.2.4.9: the TCB info is for this quote's TEE.
  if (info.version >= 3) {
    if ((info.id == "TDX") != tdx_quote) {
      return absl::FailedPreconditionError("TCB info is for " + info.id + " but the quote is " +
                                           (tdx_quote ? "TDX" : "SGX"));
    }
  } else if (tdx_quote) {
    return absl::FailedPreconditionError("TCB info version 2 cannot evaluate a TDX quote");
  }
  // 4.1.2.4.10: FMSPC and PCE-ID from the PCK certificate.
  if (pck.fmspc != info.fmspc) {
    return absl::FailedPreconditionError("FMSPC mismatch: PCK certificate " +
                                         Hex(pck.fmspc.data(), 6) + ", TCB info " +
                                         Hex(info.fmspc.data(), 6));
  }
  if (pck.pce_id != info.pce_id) {
    return absl::FailedPreconditionError("PCE-ID mismatch: PCK certificate " +
                                         Hex(pck.pce_id.data(), 2) + ", TCB info " +
                                         Hex(info.pce_id.data(), 2));
  }

  // 4.1.2.4.11: the TDX module (SEAM) that made the TD report.
  const TdxModuleIdentity* module_identity = nullptr;
  if (tdx_quote) {
    const uint8_t module_version = quote.td.tee_tcb_svn[1];
    const TdxModule* expected = &info.tdx_module;
    if (quote.header.version > 3 && module_version > 0) {
      char want[8];
      std::snprintf(want, sizeof(want), "TDX_%02X", module_version);
      for (const TdxModuleIdentity& mi : info.tdx_module_identities) {
        std::string id = mi.id;
        for (char& ch : id) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        if (id == want) {
          module_identity = &mi;
          break;
        }
      }
      if (module_identity == nullptr) {
        return absl::FailedPreconditionError(std::string("TDX module mismatch: TCB info has no "
                                                         "module identity ") +
                                             want);
      }
      expected = &module_identity->module;
    }
    if (quote.td.mr_signer_seam != expected->mrsigner) {
      return absl::FailedPreconditionError("TDX module mismatch: MRSIGNERSEAM " +
                                           Hex(quote.td.mr_signer_seam.data(), 48) +
                                           " is not the module's MRSIGNER");
    }
    for (size_t i = 0; i < 8; ++i) {
      if (quote.td.seam_attributes[i] != 0 || expected->attributes[i] != 0) {
        return absl::FailedPreconditionError(
            "TDX module mismatch: SEAMATTRIBUTES must be zero and equal the module's attributes");
      }
    }
  }

  // 4.1.2.4.14-15: the QE that signed the quote, against its identity.
  const std::string want_qe = tdx_quote ? "TD_QE" : "QE";
  if (qe_identity.id != want_qe) {
    return absl::FailedPreconditionError("QE identity is \"" + qe_identity.id + "\" but a " +
                                         (tdx_quote ? "TDX" : "SGX") + " quote needs \"" + want_qe +
                                         "\"");
  }
  const SgxReportBody& qe = quote.qe_report_body;
  std::array<uint8_t, 4> misc{};
  for (int i = 0; i < 4; ++i) misc[i] = static_cast<uint8_t>(qe.misc_select >> (8 * i));
  for (int i = 0; i < 4; ++i) {
    if ((misc[i] & qe_identity.miscselect_mask[i]) != qe_identity.miscselect[i]) {
      return absl::FailedPreconditionError("QE identity mismatch: MISCSELECT");
    }
  }
  for (int i = 0; i < 16; ++i) {
    if ((qe.attributes[i] & qe_identity.attributes_mask[i]) != qe_identity.attributes[i]) {
      return absl::FailedPreconditionError("QE identity mismatch: ATTRIBUTES");
    }
  }
  if (qe.mr_signer != qe_identity.mrsigner) {
    return absl::FailedPreconditionError("QE identity mismatch: MRSIGNER " +
                                         Hex(qe.mr_signer.data(), 32));
  }
  if (qe.isv_prod_id != qe_identity.isv_prod_id) {
    return absl::FailedPreconditionError("QE identity mismatch: ISVPRODID " +
                                         std::to_string(qe.isv_prod_id) + ", expected " +
                                         std::to_string(qe_identity.isv_prod_id));
  }
  const IdentityTcbLevel* qe_level = nullptr;
  for (const IdentityTcbLevel& l : qe_identity.tcb_levels) {
    if (qe.isv_svn >= l.isv_svn) {
      qe_level = &l;
      break;
    }
  }
  if (qe_level == nullptr) {
    return absl::FailedPreconditionError("TCB not supported: QE ISVSVN " +
                                         std::to_string(qe.isv_svn) +
                                         " is below every QE identity TCB level");
  }
  const TcbStatus qe_status = IdentityStatus(qe_level->status);

  // 4.1.2.4.17: the platform TCB level.
  const TcbLevel* sgx_level = nullptr;
  const TcbLevel* tdx_level = nullptr;
  for (const TcbLevel& l : info.tcb_levels) {
    bool sgx_ok = pck.pce_svn >= l.pce_svn;
    for (int i = 0; i < 16 && sgx_ok; ++i) sgx_ok = pck.tcb_components[i] >= l.sgx_components[i];
    if (!sgx_ok) continue;
    if (sgx_level == nullptr) sgx_level = &l;
    if (!tdx_quote) break;
    if (!l.has_tdx_components) continue;
    bool tdx_ok = true;
    for (int i = quote.td.tee_tcb_svn[1] > 0 ? 2 : 0; i < 16 && tdx_ok; ++i) {
      tdx_ok = quote.td.tee_tcb_svn[i] >= l.tdx_components[i];
    }
    if (tdx_ok) {
      tdx_level = &l;
      break;
    }
  }
  if (sgx_level == nullptr) {
    return absl::FailedPreconditionError("TCB not supported: the PCK certificate's TCB (PCESVN " +
                                         std::to_string(pck.pce_svn) +
                                         ") is below every TCB level");
  }
  TcbResult result;
  if (!tdx_quote) {
    result.status = ConvergeWithQe(sgx_level->status, qe_status);
    AppendUnique(&result.advisory_ids, sgx_level->advisory_ids);
  } else {
    if (tdx_level == nullptr) {
      return absl::FailedPreconditionError("TCB not supported: TEE_TCB_SVN " +
                                           Hex(quote.td.tee_tcb_svn.data(), 16) +
                                           " is below every TDX TCB level");
    }
    TcbStatus module_status = TcbStatus::kUpToDate;
    const IdentityTcbLevel* module_level = nullptr;
    if (module_identity != nullptr) {
      for (const IdentityTcbLevel& l : module_identity->tcb_levels) {
        if (quote.td.tee_tcb_svn[0] >= l.isv_svn) {
          module_level = &l;
          break;
        }
      }
      if (module_level == nullptr) {
        return absl::FailedPreconditionError("TCB not supported: TDX module SVN " +
                                             std::to_string(quote.td.tee_tcb_svn[0]) +
                                             " is below every level of " + module_identity->id);
      }
      module_status = IdentityStatus(module_level->status);
    }
    result.status = ConvergeWithQe(ConvergeWithModule(tdx_level->status, module_status), qe_status);
    AppendUnique(&result.advisory_ids, tdx_level->advisory_ids);
    if (module_level != nullptr) AppendUnique(&result.advisory_ids, module_level->advisory_ids);
  }
  AppendUnique(&result.advisory_ids, qe_level->advisory_ids);
  return result;
}

}  // namespace kshield::tee::quote
