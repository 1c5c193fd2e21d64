#include "tee/platform.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "tee/gramine_platform.h"
#include "tee/none_platform.h"
#include "tee/occlum_platform.h"
#include "tee/sim_platform.h"
#include "tee/tee_io.h"
#include "tee/tsm_platform.h"

namespace kshield::tee {
namespace {

std::shared_ptr<TeeFileSystem> FileSystemFor(const PlatformOptions& options) {
  if (options.fs) return options.fs;
  return std::make_shared<RealTeeFileSystem>(options.root);
}

std::shared_ptr<SgxDevice> SgxDeviceFor(const PlatformOptions& options) {
  if (options.sgx_device) return options.sgx_device;
  std::string root = options.root;
  while (!root.empty() && root.back() == '/') root.pop_back();
  return std::make_shared<RealSgxDevice>(root + "/dev/sgx");
}

bool InOcclum() {
  const char* env = std::getenv("OCCLUM");
  return env != nullptr && std::string_view(env) == "yes";
}

}  // namespace

std::string_view PlatformNames() { return "auto, none, sim, gramine, occlum, tsm"; }

std::string DetectPlatform(const PlatformOptions& options) {
  auto fs = FileSystemFor(options);
  if (fs->Exists(kGramineQuotePath)) return "gramine";
  if (fs->Exists("/dev/sgx") && InOcclum()) return "occlum";
  if (fs->Exists(kTsmReportDir)) return "tsm";
  return "none";
}

absl::StatusOr<std::unique_ptr<Platform>> MakePlatform(std::string_view name,
                                                       const PlatformOptions& options) {
  std::string chosen(name);
  if (name == "auto") chosen = DetectPlatform(options);
  if (chosen == "none") return std::make_unique<NonePlatform>(options.data_dir);
  if (chosen == "sim") {
    KSH_ASSIGN_OR_RETURN(auto p, SimPlatform::New(options));
    return std::unique_ptr<Platform>(std::move(p));
  }
  if (chosen == "gramine") {
    auto fs = FileSystemFor(options);
    if (!fs->Exists(kGramineQuotePath)) {
      return absl::FailedPreconditionError(
          absl::StrCat("--tee gramine: ", kGramineQuotePath,
                       " does not exist (not inside a Gramine-SGX enclave with "
                       "sgx.remote_attestation = \"dcap\"?)"));
    }
    return std::make_unique<GraminePlatform>(std::move(fs));
  }
  if (chosen == "occlum") {
    if (!options.sgx_device && !FileSystemFor(options)->Exists("/dev/sgx")) {
      return absl::FailedPreconditionError(
          "--tee occlum: /dev/sgx does not exist (not inside an Occlum instance?)");
    }
    return std::make_unique<OcclumPlatform>(SgxDeviceFor(options));
  }
  if (chosen == "tsm") {
    auto fs = FileSystemFor(options);
    if (!fs->Exists(kTsmReportDir)) {
      return absl::FailedPreconditionError(
          absl::StrCat("--tee tsm: ", kTsmReportDir,
                       " does not exist (no configfs-tsm: not a TDX / SEV-SNP guest, or configfs "
                       "not mounted)"));
    }
    return std::make_unique<TsmPlatform>(std::move(fs));
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown TEE platform \"", AV(name),
                                                 "\" (available: ", AV(PlatformNames()), ")"));
}

}  // namespace kshield::tee
