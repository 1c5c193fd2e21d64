#include "tee/quote/quote.h"

#include <utility>

#include "common/status.h"
#include "tee/quote/reader.h"

namespace kshield::tee::quote {
namespace {

// Field sizes of the wire layouts; the static_asserts tie them to the documented totals so a typo
// in one field cannot silently shift every later offset.
// sgx_report_body_t (sgx_report.h): cpu_svn 16 @0, misc_select 4 @16, reserved 12 @20,
// isv_ext_prod_id 16 @32, attributes 16 @48, mr_enclave 32 @64, reserved 32 @96, mr_signer 32 @128,
// reserved 32 @160, config_id 64 @192, isv_prod_id 2 @256, isv_svn 2 @258, config_svn 2 @260,
// reserved 42 @262, isv_family_id 16 @304, report_data 64 @320.
static_assert(16 + 4 + 12 + 16 + 16 + 32 + 32 + 32 + 32 + 64 + 2 + 2 + 2 + 42 + 16 + 64 ==
              kSgxReportBodySize);
// TD report 1.0 (TDX DCAP Quoting Library API §A.3.2): tee_tcb_svn 16 @0, mr_seam 48 @16,
// mr_signer_seam 48 @64, seam_attributes 8 @112, td_attributes 8 @120, xfam 8 @128, mr_td 48 @136,
// mr_config_id 48 @184, mr_owner 48 @232, mr_owner_config 48 @280, rtmr0..3 4×48 @328,
// report_data 64 @520.
static_assert(16 + 48 + 48 + 8 + 8 + 8 + 48 + 48 + 48 + 48 + 4 * 48 + 64 == kTdReport10Size);
// TD report 1.5 appends tee_tcb_svn2 16 @584 and mr_service_td 48 @600.
static_assert(kTdReport10Size + 16 + 48 == kTdReport15Size);
// Quote header (§A.4.3 / §A.3.1): version 2, att_key_type 2, tee_type 4, qe_svn 2, pce_svn 2,
// qe_vendor_id 16, user_data 20.
static_assert(2 + 2 + 4 + 2 + 2 + 16 + 20 == kHeaderSize);

absl::Status Invalid(std::string msg) { return absl::InvalidArgumentError(std::move(msg)); }

uint64_t LoadLe64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

absl::Status ReadHeader(ByteReader& r, QuoteHeader* out) {
  QuoteHeader h;
  KSH_RETURN_IF_ERROR(r.ReadU16("header.version", &h.version));
  KSH_RETURN_IF_ERROR(r.ReadU16("header.att_key_type", &h.att_key_type));
  KSH_RETURN_IF_ERROR(r.ReadU32("header.tee_type", &h.tee_type));
  KSH_RETURN_IF_ERROR(r.ReadU16("header.qe_svn", &h.qe_svn));
  KSH_RETURN_IF_ERROR(r.ReadU16("header.pce_svn", &h.pce_svn));
  KSH_RETURN_IF_ERROR(r.ReadArray("header.qe_vendor_id", &h.qe_vendor_id));
  KSH_RETURN_IF_ERROR(r.ReadArray("header.user_data", &h.user_data));
  if (h.version != 3 && h.version != 4 && h.version != 5) {
    return Invalid("unsupported quote version " + std::to_string(h.version) +
                   " (supported: 3, 4, 5)");
  }
  if (h.att_key_type != kAttKeyTypeEcdsaP256) {
    return Invalid("unsupported attestation key type " + std::to_string(h.att_key_type) +
                   " (supported: 2, ECDSA-256-with-P-256)");
  }
  if (h.tee_type != kTeeTypeSgx && h.tee_type != kTeeTypeTdx) {
    return Invalid("unknown header.tee_type " + std::to_string(h.tee_type));
  }
  if (h.version == 3 && h.tee_type != kTeeTypeSgx) {
    return Invalid("header.tee_type must be 0 (SGX) in a v3 quote");
  }
  *out = h;
  return absl::OkStatus();
}

absl::Status ReadSgxReportBody(ByteReader& r, std::string_view what, SgxReportBody* out) {
  const std::string p(what);
  SgxReportBody b;
  KSH_RETURN_IF_ERROR(r.ReadArray(p + ".cpu_svn", &b.cpu_svn));
  KSH_RETURN_IF_ERROR(r.ReadU32(p + ".misc_select", &b.misc_select));
  KSH_RETURN_IF_ERROR(r.Skip(p + ".reserved1", 12));
  KSH_RETURN_IF_ERROR(r.ReadArray(p + ".isv_ext_prod_id", &b.isv_ext_prod_id));
  KSH_RETURN_IF_ERROR(r.ReadArray(p + ".attributes", &b.attributes));
  KSH_RETURN_IF_ERROR(r.ReadArray(p + ".mr_enclave", &b.mr_enclave));
  KSH_RETURN_IF_ERROR(r.Skip(p + ".reserved2", 32));
  KSH_RETURN_IF_ERROR(r.ReadArray(p + ".mr_signer", &b.mr_signer));
  KSH_RETURN_IF_ERROR(r.Skip(p + ".reserved3", 32));
  KSH_RETURN_IF_ERROR(r.ReadArray(p + ".config_id", &b.config_id));
  KSH_RETURN_IF_ERROR(r.ReadU16(p + ".isv_prod_id", &b.isv_prod_id));
  KSH_RETURN_IF_ERROR(r.ReadU16(p + ".isv_svn", &b.isv_svn));
  KSH_RETURN_IF_ERROR(r.ReadU16(p + ".config_svn", &b.config_svn));
  KSH_RETURN_IF_ERROR(r.Skip(p + ".reserved4", 42));
  KSH_RETURN_IF_ERROR(r.ReadArray(p + ".isv_family_id", &b.isv_family_id));
  KSH_RETURN_IF_ERROR(r.ReadArray(p + ".report_data", &b.report_data));
  b.attributes_flags = LoadLe64(b.attributes.data());
  b.attributes_xfrm = LoadLe64(b.attributes.data() + 8);
  *out = b;
  return absl::OkStatus();
}

absl::Status ReadTdReportBody(ByteReader& r, bool td15, TdReportBody* out) {
  TdReportBody b;
  KSH_RETURN_IF_ERROR(r.ReadArray("td_report.tee_tcb_svn", &b.tee_tcb_svn));
  KSH_RETURN_IF_ERROR(r.ReadArray("td_report.mr_seam", &b.mr_seam));
  KSH_RETURN_IF_ERROR(r.ReadArray("td_report.mr_signer_seam", &b.mr_signer_seam));
  KSH_RETURN_IF_ERROR(r.ReadArray("td_report.seam_attributes", &b.seam_attributes));
  KSH_RETURN_IF_ERROR(r.ReadArray("td_report.td_attributes", &b.td_attributes));
  KSH_RETURN_IF_ERROR(r.ReadArray("td_report.xfam", &b.xfam));
  KSH_RETURN_IF_ERROR(r.ReadArray("td_report.mr_td", &b.mr_td));
  KSH_RETURN_IF_ERROR(r.ReadArray("td_report.mr_config_id", &b.mr_config_id));
  KSH_RETURN_IF_ERROR(r.ReadArray("td_report.mr_owner", &b.mr_owner));
  KSH_RETURN_IF_ERROR(r.ReadArray("td_report.mr_owner_config", &b.mr_owner_config));
  for (int i = 0; i < 4; ++i) {
    KSH_RETURN_IF_ERROR(r.ReadArray("td_report.rtmr" + std::to_string(i), &b.rtmr[i]));
  }
  KSH_RETURN_IF_ERROR(r.ReadArray("td_report.report_data", &b.report_data));
  if (td15) {
    b.is_td15 = true;
    KSH_RETURN_IF_ERROR(r.ReadArray("td_report.tee_tcb_svn2", &b.tee_tcb_svn2));
    KSH_RETURN_IF_ERROR(r.ReadArray("td_report.mr_service_td", &b.mr_service_td));
  }
  *out = b;
  return absl::OkStatus();
}

// QE report ‖ QE report signature ‖ qe_auth_len ‖ qe_auth_data ‖ cert_type ‖ cert_size ‖ cert data:
// the tail of a v3 auth data, and the whole of a v4/v5 type-6 certification data.
absl::Status ReadQeReportAndCertData(ByteReader& r, ParsedQuote* q) {
  std::string_view qe_report;
  KSH_RETURN_IF_ERROR(r.ReadBytes("qe_report", kSgxReportBodySize, &qe_report));
  ByteReader qr(qe_report);
  KSH_RETURN_IF_ERROR(ReadSgxReportBody(qr, "qe_report", &q->qe_report_body));
  q->qe_report.assign(qe_report);
  KSH_RETURN_IF_ERROR(r.ReadArray("qe_report_signature", &q->qe_report_signature));
  uint16_t auth_len = 0;
  KSH_RETURN_IF_ERROR(r.ReadU16("qe_auth_data.size", &auth_len));
  std::string_view auth;
  KSH_RETURN_IF_ERROR(r.ReadBytes("qe_auth_data", auth_len, &auth));
  q->qe_auth_data.assign(auth);
  KSH_RETURN_IF_ERROR(r.ReadU16("certification_data.type", &q->cert_type));
  uint32_t cert_size = 0;
  KSH_RETURN_IF_ERROR(r.ReadU32("certification_data.size", &cert_size));
  std::string_view cert;
  KSH_RETURN_IF_ERROR(r.ReadBytes("certification_data", cert_size, &cert));
  q->cert_data.assign(cert);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SgxReportBody> ParseSgxReportBody(std::string_view bytes) {
  if (bytes.size() != kSgxReportBodySize) {
    return Invalid("an SGX report body is " + std::to_string(kSgxReportBodySize) + " bytes, got " +
                   std::to_string(bytes.size()));
  }
  ByteReader r(bytes);
  SgxReportBody b;
  KSH_RETURN_IF_ERROR(ReadSgxReportBody(r, "report", &b));
  return b;
}

absl::StatusOr<ParsedQuote> ParseQuote(std::string_view bytes) {
  if (bytes.size() > kMaxQuoteSize) {
    return Invalid("quote of " + std::to_string(bytes.size()) + " bytes exceeds the limit of " +
                   std::to_string(kMaxQuoteSize));
  }
  ByteReader r(bytes);
  ParsedQuote q;
  KSH_RETURN_IF_ERROR(ReadHeader(r, &q.header));
  q.tee = q.header.tee_type == kTeeTypeTdx ? TeeType::kTdx : TeeType::kSgx;

  // Body: v3/v4 imply it from tee_type; v5 names it (type u16, size u32) and both are signed.
  if (q.header.version == 5) {
    uint16_t body_type = 0;
    uint32_t body_size = 0;
    KSH_RETURN_IF_ERROR(r.ReadU16("body.type", &body_type));
    KSH_RETURN_IF_ERROR(r.ReadU32("body.size", &body_size));
    size_t want = 0;
    switch (body_type) {
      case kBodyTypeSgx:
        want = kSgxReportBodySize;
        break;
      case kBodyTypeTd10:
        want = kTdReport10Size;
        break;
      case kBodyTypeTd15:
        want = kTdReport15Size;
        break;
      default:
        return Invalid("unknown v5 body.type " + std::to_string(body_type));
    }
    if (body_size != want) {
      return Invalid("v5 body.size " + std::to_string(body_size) + " does not match body.type " +
                     std::to_string(body_type) + " (" + std::to_string(want) + " bytes)");
    }
    if ((body_type == kBodyTypeSgx) != (q.tee == TeeType::kSgx)) {
      return Invalid("v5 body.type " + std::to_string(body_type) +
                     " does not match header.tee_type " + std::to_string(q.header.tee_type));
    }
    q.body_type = body_type;
  } else {
    q.body_type = q.tee == TeeType::kSgx ? kBodyTypeSgx : kBodyTypeTd10;
  }
  if (q.body_type == kBodyTypeSgx) {
    KSH_RETURN_IF_ERROR(ReadSgxReportBody(r, "report", &q.sgx));
  } else {
    KSH_RETURN_IF_ERROR(ReadTdReportBody(r, q.body_type == kBodyTypeTd15, &q.td));
  }
  const size_t signed_len = r.offset();

  uint32_t sig_len = 0;
  KSH_RETURN_IF_ERROR(r.ReadU32("signature_data.size", &sig_len));
  std::string_view sig_data;
  KSH_RETURN_IF_ERROR(r.ReadBytes("signature_data", sig_len, &sig_data));
  const size_t quote_size = r.offset();

  ByteReader s(sig_data);
  KSH_RETURN_IF_ERROR(s.ReadArray("signature_data.signature", &q.signature));
  KSH_RETURN_IF_ERROR(s.ReadArray("signature_data.attestation_key", &q.attestation_key));
  if (q.header.version == 3) {
    KSH_RETURN_IF_ERROR(ReadQeReportAndCertData(s, &q));
  } else {
    uint16_t outer_type = 0;
    uint32_t outer_size = 0;
    KSH_RETURN_IF_ERROR(s.ReadU16("signature_data.certification_data.type", &outer_type));
    KSH_RETURN_IF_ERROR(s.ReadU32("signature_data.certification_data.size", &outer_size));
    if (outer_type != kCertTypeQeReportData) {
      return Invalid("v" + std::to_string(q.header.version) + " quote certification data type " +
                     std::to_string(outer_type) +
                     " is not supported (expected 6, QE report certification data)");
    }
    std::string_view outer;
    KSH_RETURN_IF_ERROR(s.ReadBytes("signature_data.certification_data", outer_size, &outer));
    ByteReader c(outer);
    KSH_RETURN_IF_ERROR(ReadQeReportAndCertData(c, &q));
    if (c.remaining() != 0) {
      return Invalid("QE report certification data has " + std::to_string(c.remaining()) +
                     " bytes after the PCK certification data");
    }
  }
  if (s.remaining() != 0) {
    return Invalid("signature data has " + std::to_string(s.remaining()) +
                   " bytes after the certification data");
  }

  q.signed_data.assign(bytes.substr(0, signed_len));
  q.quote_size = quote_size;
  q.trailing_size = bytes.size() - quote_size;
  return q;
}

}  // namespace kshield::tee::quote
