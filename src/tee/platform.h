// tee::Platform — where kshield runs: natively (`none`) or inside a TEE. Chosen once at start-up
// (`--tee`); the rest of the code asks the platform for what differs between them:
//  - a sealing key bound to this platform identity (for the `local` key provider);
//  - attestation evidence binding 64 bytes of report data (RA-TLS, `kshieldctl attest`).
//
// This issue ships `none`; `sim`, `gramine`, `occlum` and `tsm` plug in behind the same interface
// (DESIGN.md §5).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/secret.h"

namespace kshield::tee {

inline constexpr size_t kSealingKeySize = 32;
inline constexpr size_t kReportDataSize = 64;

class Platform {
 public:
  virtual ~Platform() = default;
  // "none", "sim", "gramine", "occlum", "tsm".
  virtual std::string_view name() const = 0;
  // A 32-byte key that only this platform identity can obtain again. Stable across restarts.
  virtual absl::StatusOr<SecretBytes> SealingKey() = 0;
  // Attestation evidence over `report_data` (exactly 64 bytes). Platforms without attestation
  // return FailedPrecondition with a reason.
  virtual absl::StatusOr<std::string> Quote(std::string_view report_data) = 0;
};

struct PlatformOptions {
  // Where the `none` platform keeps its 0600 sealing-key file (created on first use).
  std::string data_dir;
};

// name: "auto" | "none" | ... ; unknown or unavailable names are an error naming the choices.
absl::StatusOr<std::unique_ptr<Platform>> MakePlatform(std::string_view name,
                                                       const PlatformOptions& options);

}  // namespace kshield::tee
