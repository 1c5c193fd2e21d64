#include "tee/platform.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "tee/none_platform.h"

namespace kshield::tee {

absl::StatusOr<std::unique_ptr<Platform>> MakePlatform(std::string_view name,
                                                       const PlatformOptions& options) {
  // `auto` picks the strongest platform found on this machine; today only `none` exists.
  if (name == "auto" || name == "none") {
    return std::make_unique<NonePlatform>(options.data_dir);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown TEE platform \"", AV(name), "\" (available: auto, none)"));
}

}  // namespace kshield::tee
