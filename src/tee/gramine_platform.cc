#include "tee/gramine_platform.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "crypto/hkdf.h"
#include "tee/quote/quote.h"

namespace kshield::tee {

absl::StatusOr<SecretBytes> GraminePlatform::SealingKey() {
  KSH_ASSIGN_OR_RETURN(std::string raw, fs_->ReadFile(kGramineSealKeyPath, 64));
  if (raw.size() != 16) {
    const size_t n = raw.size();
    std::fill(raw.begin(), raw.end(), '\0');
    return absl::DataLossError(
        absl::StrCat(kGramineSealKeyPath, " gave ", n, " bytes, expected 16"));
  }
  SecretBytes seal = SecretBytes::CopyFrom(raw);
  std::fill(raw.begin(), raw.end(), '\0');
  return crypto::HkdfSha256(seal, "", "kshield gramine sealing key v1", kSealingKeySize);
}

absl::StatusOr<std::string> GraminePlatform::Quote(std::string_view report_data) {
  if (report_data.size() != kReportDataSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("report data must be 64 bytes, got ", report_data.size()));
  }
  std::lock_guard<std::mutex> lock(mu_);
  KSH_RETURN_IF_ERROR(fs_->WriteFile(kGramineReportDataPath, report_data));
  KSH_ASSIGN_OR_RETURN(std::string quote, fs_->ReadFile(kGramineQuotePath, quote::kMaxQuoteSize));
  auto parsed = quote::ParseQuote(quote);
  if (!parsed.ok()) {
    return absl::InternalError(absl::StrCat("gramine returned a quote that does not parse: ",
                                            parsed.status().message()));
  }
  const auto& rd = parsed->tee == quote::TeeType::kSgx ? parsed->sgx.report_data
                                                       : parsed->td.report_data;
  if (std::string_view(reinterpret_cast<const char*>(rd.data()), rd.size()) != report_data) {
    return absl::AbortedError(
        "gramine quote does not carry our report data (user_report_data was overwritten "
        "concurrently?)");
  }
  return quote;
}

}  // namespace kshield::tee
