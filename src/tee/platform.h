// tee::Platform — where kshield runs: natively (`none`) or inside a TEE. Chosen once at start-up
// (`--tee`); the rest of the code asks the platform for what differs between them:
//  - a sealing key bound to this platform identity (for the `local` key provider);
//  - attestation evidence binding 64 bytes of report data (RA-TLS, `kshieldctl attest`).
//
// Platforms (DESIGN.md §5, docs/tee.md):
//   none     no TEE; sealing key from a 0600 file in the data directory; no attestation.
//   sim      in-process simulation: real-format SGX v3 quotes under a simulated root CA
//            (sim_platform.h). Never accepted by a verifier that pins Intel's root.
//   gramine  /dev/attestation (user_report_data → quote; keys/_sgx_mrenclave).
//   occlum   /dev/sgx ioctls (GEN_DCAP_QUOTE, GET_KEY).
//   tsm      Linux configfs-tsm reports (TDX / SEV-SNP guests); no sealing key.
//   auto     gramine if <root>/dev/attestation/quote exists, else occlum if <root>/dev/sgx exists
//            and OCCLUM=yes is set, else tsm if <root>/sys/kernel/config/tsm/report exists,
//            else none.
//
//   KSH_ASSIGN_OR_RETURN(auto platform, tee::MakePlatform("auto", {data_dir}));
//   KSH_ASSIGN_OR_RETURN(std::string quote, platform->Quote(report_data_64));
#pragma once

#include <memory>
#include <optional>
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

class TeeFileSystem;  // tee_io.h
class SgxDevice;      // tee_io.h

struct PlatformOptions {
  PlatformOptions() = default;
  // `{data_dir}` keeps working for callers that only set the data directory.
  PlatformOptions(std::string data_dir_in) : data_dir(std::move(data_dir_in)) {}  // NOLINT

  // Where `none` keeps its 0600 sealing-key file and `sim` its simulated machine secret
  // (created on first use).
  std::string data_dir;
  // Prefix for every device / configfs path the platforms use and for `auto` detection
  // ("/dev/attestation" becomes <root>/dev/attestation). Tests point it at a temp directory.
  std::string root = "/";
  // Injectable I/O (tests). Null: the real file system under `root`, and open/ioctl on
  // <root>/dev/sgx.
  std::shared_ptr<TeeFileSystem> fs;
  std::shared_ptr<SgxDevice> sgx_device;
  // `sim` only: the simulated signer identity (MRSIGNER = SHA-256 of it). Unset: the environment
  // variable KSHIELD_TEE_SIM_IDENTITY, else "kshield-sim". Different identities get different
  // sealing keys, as two enclave signers would.
  std::optional<std::string> sim_identity;
  // `sim` only: report a debug enclave (ATTRIBUTES.DEBUG). Unset: KSHIELD_TEE_SIM_DEBUG=1.
  std::optional<bool> sim_debug;
  // `sim` only: the simulated MRENCLAVE (32 bytes). Unset: SHA-256 of /proc/self/exe.
  std::optional<std::string> sim_mrenclave;
};

// The names MakePlatform accepts, for help texts: "auto, none, sim, gramine, occlum, tsm".
std::string_view PlatformNames();

// name: "auto" | "none" | "sim" | "gramine" | "occlum" | "tsm". An unknown name is
// InvalidArgument listing the choices; an explicit platform whose device is missing is
// FailedPrecondition naming the path.
absl::StatusOr<std::unique_ptr<Platform>> MakePlatform(std::string_view name,
                                                       const PlatformOptions& options);

// What `auto` would pick under `options.root` (and the OCCLUM environment variable).
std::string DetectPlatform(const PlatformOptions& options);

}  // namespace kshield::tee
