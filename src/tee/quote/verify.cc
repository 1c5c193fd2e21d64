#include "tee/quote/verify.h"

#include <openssl/x509.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <utility>

#include "crypto/sha256.h"
#include "tee/quote/x509.h"

namespace kshield::tee::quote {
namespace {

template <size_t N>
std::string Hex(const std::array<uint8_t, N>& a) {
  return crypto::HexEncode(std::string_view(reinterpret_cast<const char*>(a.data()), N));
}

std::string_view View(const std::array<uint8_t, 64>& a) {
  return std::string_view(reinterpret_cast<const char*>(a.data()), a.size());
}

void FillFields(const ParsedQuote& q, VerifiedQuote* v) {
  v->version = q.header.version;
  if (q.tee == TeeType::kSgx) {
    v->tee_type = "sgx";
    v->mrenclave = Hex(q.sgx.mr_enclave);
    v->mrsigner = Hex(q.sgx.mr_signer);
    v->isv_prod_id = q.sgx.isv_prod_id;
    v->isv_svn = q.sgx.isv_svn;
    v->debug = q.sgx.debug();
    v->report_data = Hex(q.sgx.report_data);
  } else {
    v->tee_type = "tdx";
    v->mrtd = Hex(q.td.mr_td);
    for (const auto& r : q.td.rtmr) v->rtmr.push_back(Hex(r));
    v->debug = q.td.debug();
    v->report_data = Hex(q.td.report_data);
  }
}

// QE report REPORTDATA = SHA-256(attestation key ‖ QE auth data) ‖ 32 zero bytes (QVL 4.1.2.4.13).
bool QeReportDataBinds(const ParsedQuote& q) {
  std::string bound(reinterpret_cast<const char*>(q.attestation_key.data()),
                    q.attestation_key.size());
  bound += q.qe_auth_data;
  const std::string digest = crypto::Sha256(bound);
  const auto& rd = q.qe_report_body.report_data;
  if (std::memcmp(rd.data(), digest.data(), 32) != 0) return false;
  for (size_t i = 32; i < rd.size(); ++i) {
    if (rd[i] != 0) return false;
  }
  return true;
}

}  // namespace

absl::Status VerifiedQuote::status() const {
  if (ok()) return absl::OkStatus();
  if (!errors.empty()) return absl::PermissionDeniedError(errors.front());
  return absl::PermissionDeniedError("quote did not verify");
}

VerifiedQuote VerifyQuote(std::string_view quote_bytes, const VerifyOptions& options) {
  VerifiedQuote v;
  const absl::Time at = options.at.value_or(absl::Now());

  auto parsed = ParseQuote(quote_bytes);
  if (!parsed.ok()) {
    v.errors.push_back("parse: " + std::string(parsed.status().message()));
    return v;
  }
  const ParsedQuote& q = *parsed;
  FillFields(q, &v);
  if (q.header.qe_vendor_id != kIntelQeVendorId) {
    v.errors.push_back("header.qe_vendor_id " + Hex(q.header.qe_vendor_id) +
                       " is not Intel's QE vendor id");
  }

  // --- PCK chain ---------------------------------------------------------------------------------
  auto root = ParsePemCertificate(options.root_pem);
  if (!root.ok()) {
    v.errors.push_back("pinned root: " + std::string(root.status().message()));
  }
  std::vector<X509CrlPtr> owned_crls;
  std::vector<X509_CRL*> crls;
  for (size_t i = 0; i < options.crls_der.size(); ++i) {
    auto crl = ParseDerCrl(options.crls_der[i]);
    if (!crl.ok()) {
      v.errors.push_back("CRL " + std::to_string(i) + ": " + std::string(crl.status().message()));
      continue;
    }
    crls.push_back(crl->get());
    owned_crls.push_back(std::move(*crl));
  }
  std::optional<VerifiedCollateral> collateral;
  if (options.collateral != nullptr && root.ok()) {
    auto vc = VerifyCollateral(*options.collateral, root->get(), at);
    if (vc.ok()) {
      collateral = std::move(*vc);
      crls.push_back(collateral->root_ca_crl.get());
      crls.push_back(collateral->pck_crl.get());
    } else {
      v.errors.push_back("collateral: " + std::string(vc.status().message()));
    }
  }

  std::vector<X509Ptr> chain;
  if (q.cert_type != kCertTypePckChain) {
    v.errors.push_back("certification data type " + std::to_string(q.cert_type) +
                       " is not supported (expected 5, PCK certificate chain)");
  } else {
    auto parsed_chain = ParsePemChain(q.cert_data);
    if (!parsed_chain.ok()) {
      v.errors.push_back("PCK chain: " + std::string(parsed_chain.status().message()));
    } else {
      chain = std::move(*parsed_chain);
    }
  }
  if (!chain.empty()) {
    X509* leaf = chain[0].get();
    bool leaf_ok = true;
    if (SubjectCommonName(leaf).find("SGX PCK Certificate") == std::string::npos) {
      v.errors.push_back("PCK chain: leaf CN \"" + SubjectCommonName(leaf) +
                         "\" is not an SGX PCK Certificate");
      leaf_ok = false;
    }
    if (collateral.has_value() && X509_NAME_cmp(X509_CRL_get_issuer(collateral->pck_crl.get()),
                                                X509_get_issuer_name(leaf)) != 0) {
      v.errors.push_back("collateral: PCK CRL issuer (" + collateral->pck_crl_issuer +
                         ") is not the PCK certificate's issuer");
      leaf_ok = false;
    }
    if (root.ok()) {
      absl::Status s = VerifyChain(chain, root->get(), crls, at);
      if (s.ok()) {
        v.chain_valid = leaf_ok;
      } else {
        v.errors.push_back("PCK chain: " + std::string(s.message()));
      }
    }
    auto ext = ParsePckExtensions(leaf);
    if (ext.ok()) {
      v.pck = *ext;
    } else if (collateral.has_value()) {
      v.errors.push_back("PCK extensions: " + std::string(ext.status().message()));
    }
  }

  // --- signatures --------------------------------------------------------------------------------
  bool qe_sig_ok = false;
  if (!chain.empty()) {
    qe_sig_ok = VerifyEcdsaP256Sha256(X509_get0_pubkey(chain[0].get()), q.qe_report,
                                      View(q.qe_report_signature));
    if (!qe_sig_ok) {
      v.errors.push_back("QE report signature does not verify with the PCK certificate key");
    }
  } else {
    v.errors.push_back("QE report signature not checked: no PCK certificate");
  }
  const bool binding_ok = QeReportDataBinds(q);
  if (!binding_ok) {
    v.errors.push_back(
        "QE report data does not bind the attestation key: REPORTDATA is not "
        "SHA-256(attestation key || QE auth data) || 32 zero bytes");
  }
  bool quote_sig_ok = false;
  auto key = P256KeyFromRaw(std::string_view(
      reinterpret_cast<const char*>(q.attestation_key.data()), q.attestation_key.size()));
  if (!key.ok()) {
    v.errors.push_back(std::string(key.status().message()));
  } else {
    quote_sig_ok = VerifyEcdsaP256Sha256(key->get(), q.signed_data, View(q.signature));
    if (!quote_sig_ok) {
      v.errors.push_back(
          "quote signature over header and report body does not verify with the attestation "
          "key");
    }
  }
  v.signature_valid = qe_sig_ok && binding_ok && quote_sig_ok;

  // --- TCB status
  // ----------------------------------------------------------------------------------
  if (collateral.has_value() && v.signature_valid && v.chain_valid && v.pck.has_value()) {
    auto tcb = EvaluateTcb(collateral->tcb_info, collateral->qe_identity, *v.pck, q);
    if (tcb.ok()) {
      v.tcb_status = std::string(TcbStatusName(tcb->status));
      v.advisories = tcb->advisory_ids;
      if (tcb->status == TcbStatus::kRevoked) v.errors.push_back("TCB status is Revoked");
    } else {
      v.errors.push_back("TCB: " + std::string(tcb.status().message()));
    }
  }
  v.quote = std::move(*parsed);
  return v;
}

nlohmann::json ToJson(const VerifiedQuote& v) {
  using nlohmann::json;
  const bool sgx = v.tee_type == "sgx";
  const bool tdx = v.tee_type == "tdx";
  const bool parsed = sgx || tdx;
  json j;
  j["tee_type"] = parsed ? json(v.tee_type) : json(nullptr);
  j["version"] = parsed ? json(v.version) : json(nullptr);
  j["mrenclave"] = sgx ? json(v.mrenclave) : json(nullptr);
  j["mrsigner"] = sgx ? json(v.mrsigner) : json(nullptr);
  j["isv_prod_id"] = sgx ? json(v.isv_prod_id) : json(nullptr);
  j["isv_svn"] = sgx ? json(v.isv_svn) : json(nullptr);
  j["debug"] = parsed ? json(v.debug) : json(nullptr);
  j["mrtd"] = tdx ? json(v.mrtd) : json(nullptr);
  j["rtmr"] = tdx ? json(v.rtmr) : json(nullptr);
  j["report_data"] = parsed ? json(v.report_data) : json(nullptr);
  j["signature_valid"] = v.signature_valid;
  j["chain_valid"] = v.chain_valid;
  j["tcb_status"] = v.tcb_status.empty() ? json(nullptr) : json(v.tcb_status);
  j["advisories"] = v.advisories;
  j["errors"] = v.errors;
  return j;
}

}  // namespace kshield::tee::quote
