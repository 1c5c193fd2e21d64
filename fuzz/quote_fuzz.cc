// Fuzz target: the DCAP quote parser (tee::quote::ParseQuote) and the PCK certificate's SGX
// extension parser (ParseSgxExtensions), both fed untrusted bytes by peers (RA-TLS certificates,
// `kshieldctl attest verify`). Seeds: the quotes in ../shared/testdata/attestation/.
// Invariants:
//  - a successful quote parse describes a quote that fits in the input: quote_size + trailing_size
//    is the input size, the signed bytes are the header and a body of a known size, the QE report
//    is 384 bytes and re-parses to the same fields;
//  - a failure is InvalidArgument with a bounded, printable message;
//  - a successful extension parse has an SGX type in 0..2.
// fuzz-libs: kshield_tee_quote
// fuzz-sources: src/tee/quote/quote.cc src/tee/quote/pck_extensions.cc
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "tee/quote/pck_extensions.h"
#include "tee/quote/quote.h"

namespace q = kshield::tee::quote;

namespace {

void CheckError(const absl::Status& s) {
  FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  const std::string msg(s.message());
  FUZZ_CHECK(!msg.empty() && msg.size() <= 400);
  for (unsigned char c : msg) FUZZ_CHECK(c >= 0x20 && c < 0x7f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  auto parsed = q::ParseQuote(in);
  if (parsed.ok()) {
    FUZZ_CHECK(parsed->quote_size + parsed->trailing_size == size);
    const size_t body = parsed->body_type == q::kBodyTypeSgx    ? q::kSgxReportBodySize
                        : parsed->body_type == q::kBodyTypeTd10 ? q::kTdReport10Size
                                                                : q::kTdReport15Size;
    const size_t v5_descriptor = parsed->header.version == 5 ? 6 : 0;
    FUZZ_CHECK(parsed->signed_data.size() == q::kHeaderSize + v5_descriptor + body);
    FUZZ_CHECK(in.substr(0, parsed->signed_data.size()) == parsed->signed_data);
    FUZZ_CHECK(parsed->qe_report.size() == q::kSgxReportBodySize);
    FUZZ_CHECK((parsed->tee == q::TeeType::kTdx) == (parsed->body_type != q::kBodyTypeSgx));
    auto qe = q::ParseSgxReportBody(parsed->qe_report);
    FUZZ_CHECK(qe.ok());
    FUZZ_CHECK(qe->mr_signer == parsed->qe_report_body.mr_signer);
    FUZZ_CHECK(qe->isv_svn == parsed->qe_report_body.isv_svn);
  } else {
    CheckError(parsed.status());
  }

  auto ext = q::ParseSgxExtensions(in);
  if (ext.ok()) {
    FUZZ_CHECK(ext->sgx_type >= 0 && ext->sgx_type <= 2);
  } else {
    CheckError(ext.status());
  }
  return 0;
}
