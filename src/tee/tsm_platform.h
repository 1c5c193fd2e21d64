// The `tsm` platform: a confidential VM guest (Intel TDX, AMD SEV-SNP) with Linux configfs-tsm
// (Documentation/ABI/testing/configfs-tsm):
//   mkdir /sys/kernel/config/tsm/report/<name>; write 64 bytes to inblob; read outblob (the quote
//   or report), provider ("tdx_guest", "sev_guest") and generation; rmdir.
// `generation` counts writes to the report's attributes: if it is not exactly one more than
// before our inblob write, someone else wrote in between and the outblob is refused.
// There is no sealing key on this path: use a remote root of trust (pkcs11 / kmip provider).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "tee/platform.h"
#include "tee/tee_io.h"

namespace kshield::tee {

inline constexpr char kTsmReportDir[] = "/sys/kernel/config/tsm/report";

class TsmPlatform final : public Platform {
 public:
  explicit TsmPlatform(std::shared_ptr<TeeFileSystem> fs) : fs_(std::move(fs)) {}
  std::string_view name() const override { return "tsm"; }
  // Always FailedPrecondition, pointing to a remote provider.
  absl::StatusOr<SecretBytes> SealingKey() override;
  absl::StatusOr<std::string> Quote(std::string_view report_data) override;

 private:
  std::shared_ptr<TeeFileSystem> fs_;
  std::atomic<uint64_t> counter_{0};
};

}  // namespace kshield::tee
