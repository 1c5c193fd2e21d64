#include "tee/tsm_platform.h"

#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace kshield::tee {
namespace {

constexpr size_t kMaxOutblob = 64 * 1024;

absl::StatusOr<uint64_t> ReadGeneration(TeeFileSystem& fs, const std::string& dir) {
  KSH_ASSIGN_OR_RETURN(std::string text, fs.ReadFile(dir + "/generation", 64));
  uint64_t g = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &g)) {
    return absl::InternalError(absl::StrCat(dir, "/generation is not a number"));
  }
  return g;
}

}  // namespace

absl::StatusOr<SecretBytes> TsmPlatform::SealingKey() {
  return absl::FailedPreconditionError(
      "the tsm platform (TDX / SEV-SNP guest via configfs-tsm) has no sealing key; the local "
      "provider cannot seal here: use a remote root of trust (provider: pkcs11 or kmip)");
}

absl::StatusOr<std::string> TsmPlatform::Quote(std::string_view report_data) {
  if (report_data.size() != kReportDataSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("report data must be 64 bytes, got ", report_data.size()));
  }
  const std::string dir =
      absl::StrCat(kTsmReportDir, "/kshield-", getpid(), "-", counter_.fetch_add(1));
  KSH_RETURN_IF_ERROR(fs_->MakeDir(dir));
  auto result = [&]() -> absl::StatusOr<std::string> {
    KSH_ASSIGN_OR_RETURN(uint64_t before, ReadGeneration(*fs_, dir));
    KSH_RETURN_IF_ERROR(fs_->WriteFile(dir + "/inblob", report_data));
    KSH_ASSIGN_OR_RETURN(std::string out, fs_->ReadFile(dir + "/outblob", kMaxOutblob));
    KSH_ASSIGN_OR_RETURN(std::string provider, fs_->ReadFile(dir + "/provider", 256));
    KSH_ASSIGN_OR_RETURN(uint64_t after, ReadGeneration(*fs_, dir));
    if (after != before + 1) {
      return absl::AbortedError(absl::StrCat(
          "configfs-tsm report ", dir, " changed while we used it (generation ", before, " -> ",
          after, ", expected ", before + 1, ")"));
    }
    if (out.empty()) return absl::InternalError("configfs-tsm returned an empty outblob");
    if (absl::StripAsciiWhitespace(provider).empty()) {
      return absl::InternalError("configfs-tsm report has no provider");
    }
    return out;
  }();
  absl::Status rm = fs_->RemoveDir(dir);
  if (result.ok() && !rm.ok()) return rm;
  return result;
}

}  // namespace kshield::tee
