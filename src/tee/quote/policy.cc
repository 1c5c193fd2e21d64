#include "tee/quote/policy.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <set>

#include "absl/strings/numbers.h"
#include "common/file_util.h"
#include "common/status.h"

namespace kshield::tee::quote {
namespace {

constexpr char kKnownKeys[] =
    "tee_type, mrenclave, mrsigner, isv_prod_id, min_isv_svn, allow_debug, min_tcb_status, mrtd, "
    "rtmr";
constexpr size_t kMaxListEntries = 1024;

absl::Status Bad(std::string_view key, std::string_view why) {
  return absl::InvalidArgumentError("policy: " + std::string(key) + ": " + std::string(why));
}

absl::Status Refuse(std::string_view field, std::string_view why) {
  return absl::PermissionDeniedError("policy: " + std::string(field) + ": " + std::string(why));
}

absl::StatusOr<std::string> Scalar(const YAML::Node& n, std::string_view key) {
  if (!n.IsScalar()) return Bad(key, "must be a scalar");
  return n.Scalar();
}

absl::StatusOr<uint16_t> U16(const YAML::Node& n, std::string_view key) {
  KSH_ASSIGN_OR_RETURN(std::string s, Scalar(n, key));
  uint32_t v = 0;
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos ||
      !absl::SimpleAtoi(AV(s), &v) || v > 65535) {
    return Bad(key, "must be an integer in [0, 65535]");
  }
  return static_cast<uint16_t>(v);
}

absl::StatusOr<std::vector<std::string>> HexList(const YAML::Node& n, std::string_view key,
                                                 size_t bytes) {
  if (!n.IsSequence()) return Bad(key, "must be a list of hex strings");
  if (n.size() > kMaxListEntries) return Bad(key, "has too many entries");
  std::vector<std::string> out;
  for (size_t i = 0; i < n.size(); ++i) {
    KSH_ASSIGN_OR_RETURN(std::string s, Scalar(n[i], key));
    if (s.size() != bytes * 2 ||
        s.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
      return Bad(key, "entry " + std::to_string(i) + " is not " + std::to_string(bytes * 2) +
                          " hex digits");
    }
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<Policy> ParseNode(const YAML::Node& root) {
  if (!root.IsMap()) return absl::InvalidArgumentError("policy: must be a YAML mapping");
  Policy p;
  std::set<std::string> seen;
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) return absl::InvalidArgumentError("policy: a key is not a string");
    const std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) return Bad(key, "appears twice");
    const YAML::Node& v = kv.second;
    if (key == "tee_type") {
      KSH_ASSIGN_OR_RETURN(std::string t, Scalar(v, key));
      if (t != "sgx" && t != "tdx") return Bad(key, "must be sgx or tdx");
      p.tee_type = t;
    } else if (key == "mrenclave") {
      KSH_ASSIGN_OR_RETURN(p.mrenclave, HexList(v, key, 32));
    } else if (key == "mrsigner") {
      KSH_ASSIGN_OR_RETURN(p.mrsigner, HexList(v, key, 32));
    } else if (key == "isv_prod_id") {
      KSH_ASSIGN_OR_RETURN(p.isv_prod_id, U16(v, key));
    } else if (key == "min_isv_svn") {
      KSH_ASSIGN_OR_RETURN(p.min_isv_svn, U16(v, key));
    } else if (key == "allow_debug") {
      KSH_ASSIGN_OR_RETURN(std::string b, Scalar(v, key));
      if (b != "true" && b != "false") return Bad(key, "must be true or false");
      p.allow_debug = b == "true";
    } else if (key == "min_tcb_status") {
      KSH_ASSIGN_OR_RETURN(std::string s, Scalar(v, key));
      auto status = ParseTcbStatus(s);
      if (!status.ok()) return Bad(key, SV(status.status().message()));
      if (*status == TcbStatus::kRevoked) return Bad(key, "Revoked is never acceptable");
      p.min_tcb_status = *status;
    } else if (key == "mrtd") {
      KSH_ASSIGN_OR_RETURN(p.mrtd, HexList(v, key, 48));
    } else if (key == "rtmr") {
      if (!v.IsMap()) return Bad(key, "must map RTMR indexes (0..3) to lists of hex strings");
      std::set<std::string> indexes;
      for (const auto& r : v) {
        const std::string index = r.first.IsScalar() ? r.first.Scalar() : "";
        if (index.size() != 1 || index[0] < '0' || index[0] > '3') {
          return Bad(key, "index must be 0, 1, 2 or 3");
        }
        if (!indexes.insert(index).second) return Bad(key, "index " + index + " appears twice");
        const std::string field = "rtmr[" + index + "]";
        KSH_ASSIGN_OR_RETURN(p.rtmr[index[0] - '0'], HexList(r.second, field, 48));
        if (p.rtmr[index[0] - '0'].empty()) return Bad(field, "must list at least one value");
      }
    } else {
      std::string shown = key.substr(0, 64);
      for (char& c : shown) {
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
      }
      return absl::InvalidArgumentError("policy: unknown key \"" + shown +
                                        "\" (known: " + kKnownKeys + ")");
    }
  }
  return p;
}

bool Contains(const std::vector<std::string>& list, const std::string& v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

}  // namespace

absl::StatusOr<Policy> ParsePolicyYaml(std::string_view yaml) {
  if (yaml.size() > kMaxPolicySize) return absl::InvalidArgumentError("policy: file is too large");
  try {
    const YAML::Node root = YAML::Load(std::string(yaml));
    if (!root.IsDefined() || root.IsNull()) {
      return absl::InvalidArgumentError("policy: is empty");
    }
    return ParseNode(root);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError("policy: invalid YAML at line " +
                                      std::to_string(e.mark.line + 1) + ": " + e.msg);
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(std::string("policy: invalid YAML: ") + e.what());
  }
}

absl::StatusOr<Policy> LoadPolicyFile(const std::string& path) {
  auto text = ReadFileBounded(path, kMaxPolicySize);
  if (!text.ok()) return Annotate(text.status(), "policy file " + path);
  auto p = ParsePolicyYaml(*text);
  if (!p.ok()) return Annotate(p.status(), path);
  return p;
}

absl::Status CheckPolicy(const Policy& policy, const VerifiedQuote& q) {
  if (!q.signature_valid) return Refuse("signature_valid", "the quote's signatures did not verify");
  if (!q.chain_valid)
    return Refuse("chain_valid", "the PCK chain did not verify to the pinned root");
  if (!q.errors.empty()) return Refuse("errors", "verification failed: " + q.errors.front());
  if (q.tee_type != "sgx" && q.tee_type != "tdx") return Refuse("tee_type", "unknown");
  if (policy.tee_type && *policy.tee_type != q.tee_type) {
    return Refuse("tee_type",
                  "the quote is " + q.tee_type + ", the policy accepts " + *policy.tee_type);
  }

  if (q.tee_type == "sgx") {
    if (!policy.mrtd.empty()) return Refuse("mrtd", "an SGX quote has no MRTD");
    for (int i = 0; i < 4; ++i) {
      if (!policy.rtmr[i].empty()) {
        return Refuse("rtmr[" + std::to_string(i) + "]", "an SGX quote has no RTMRs");
      }
    }
    if (policy.mrenclave.empty() && policy.mrsigner.empty()) {
      return Refuse("mrenclave", "the policy accepts no MRENCLAVE or MRSIGNER, so no SGX enclave");
    }
    if (!policy.mrenclave.empty() && !Contains(policy.mrenclave, q.mrenclave)) {
      return Refuse("mrenclave", q.mrenclave + " is not an accepted value");
    }
    if (!policy.mrsigner.empty() && !Contains(policy.mrsigner, q.mrsigner)) {
      return Refuse("mrsigner", q.mrsigner + " is not an accepted value");
    }
    if (policy.isv_prod_id && q.isv_prod_id != *policy.isv_prod_id) {
      return Refuse("isv_prod_id", std::to_string(q.isv_prod_id) + ", the policy requires " +
                                       std::to_string(*policy.isv_prod_id));
    }
    if (policy.min_isv_svn && q.isv_svn < *policy.min_isv_svn) {
      return Refuse("isv_svn", std::to_string(q.isv_svn) + " is below min_isv_svn " +
                                   std::to_string(*policy.min_isv_svn));
    }
  } else {
    if (!policy.mrenclave.empty()) return Refuse("mrenclave", "a TDX quote has no MRENCLAVE");
    if (!policy.mrsigner.empty()) return Refuse("mrsigner", "a TDX quote has no MRSIGNER");
    if (policy.isv_prod_id) return Refuse("isv_prod_id", "a TDX quote has no ISVPRODID");
    if (policy.min_isv_svn) return Refuse("isv_svn", "a TDX quote has no ISVSVN");
    if (policy.mrtd.empty()) return Refuse("mrtd", "the policy accepts no MRTD, so no TD");
    if (!Contains(policy.mrtd, q.mrtd)) return Refuse("mrtd", q.mrtd + " is not an accepted value");
    for (int i = 0; i < 4; ++i) {
      if (policy.rtmr[i].empty()) continue;
      const std::string field = "rtmr[" + std::to_string(i) + "]";
      if (static_cast<size_t>(i) >= q.rtmr.size()) return Refuse(field, "missing from the quote");
      if (!Contains(policy.rtmr[i], q.rtmr[i])) {
        return Refuse(field, q.rtmr[i] + " is not an accepted value");
      }
    }
  }

  if (q.debug && !policy.allow_debug) {
    return Refuse("debug", std::string("the quote is from a debug ") +
                               (q.tee_type == "sgx" ? "enclave" : "TD") +
                               " and allow_debug is false");
  }
  if (policy.min_tcb_status) {
    const std::string want(TcbStatusName(*policy.min_tcb_status));
    if (q.tcb_status.empty()) {
      return Refuse("tcb_status",
                    "unknown (no collateral); the policy requires " + want + " or better");
    }
    auto status = ParseTcbStatus(q.tcb_status);
    if (!status.ok()) return Refuse("tcb_status", "unknown status \"" + q.tcb_status + "\"");
    if (*status == TcbStatus::kRevoked ||
        static_cast<int>(*status) > static_cast<int>(*policy.min_tcb_status)) {
      return Refuse("tcb_status", q.tcb_status + " is worse than min_tcb_status " + want);
    }
  }
  return absl::OkStatus();
}

}  // namespace kshield::tee::quote
