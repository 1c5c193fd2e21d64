// The `gramine` platform: kshield runs inside a Gramine-SGX enclave (deploy/gramine/).
// Gramine's /dev/attestation pseudo-files (Gramine docs, "Attestation and Secret Provisioning"):
//   - write 64 bytes to /dev/attestation/user_report_data, then read /dev/attestation/quote: a DCAP
//     quote whose REPORTDATA is those bytes (sgx.remote_attestation = "dcap");
//   - /dev/attestation/keys/_sgx_mrenclave: 16 bytes, the SGX seal key bound to MRENCLAVE; our
//     sealing key is HKDF-SHA256 of it (32 bytes).
#pragma once

#include <memory>
#include <mutex>

#include "tee/platform.h"
#include "tee/tee_io.h"

namespace kshield::tee {

inline constexpr char kGramineQuotePath[] = "/dev/attestation/quote";
inline constexpr char kGramineReportDataPath[] = "/dev/attestation/user_report_data";
inline constexpr char kGramineSealKeyPath[] = "/dev/attestation/keys/_sgx_mrenclave";

class GraminePlatform final : public Platform {
 public:
  explicit GraminePlatform(std::shared_ptr<TeeFileSystem> fs) : fs_(std::move(fs)) {}
  std::string_view name() const override { return "gramine"; }
  absl::StatusOr<SecretBytes> SealingKey() override;
  // Checks that the returned quote parses and carries `report_data` (another writer of
  // user_report_data in this enclave would otherwise go unnoticed).
  absl::StatusOr<std::string> Quote(std::string_view report_data) override;

 private:
  std::shared_ptr<TeeFileSystem> fs_;
  std::mutex mu_;  // user_report_data → quote is a two-step protocol on shared pseudo-files
};

}  // namespace kshield::tee
