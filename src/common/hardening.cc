#include "common/hardening.h"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>

#include "absl/status/status.h"

namespace kshield {

absl::Status HardenProcess(HardeningReport* report) {
  HardeningReport local;
  HardeningReport& r = report != nullptr ? *report : local;
  r = HardeningReport{};

  // Both steps are attempted even if the first fails, so the report is complete; the first
  // failure is returned.
  absl::Status result = absl::OkStatus();

  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    result = absl::ErrnoToStatus(errno, "hardening: prctl(PR_SET_DUMPABLE, 0)");
  } else {
    r.dumpable_off = true;
  }

  const struct rlimit no_core = {0, 0};
  if (setrlimit(RLIMIT_CORE, &no_core) != 0) {
    absl::Status s = absl::ErrnoToStatus(errno, "hardening: setrlimit(RLIMIT_CORE, 0)");
    if (result.ok()) result = s;
  } else {
    r.core_limit_zero = true;
  }
  return result;
}

}  // namespace kshield
