// Process hardening applied at the start of every kshield server and CLI that touches keys.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace kshield {

struct HardeningReport {
  bool dumpable_off = false;  // prctl(PR_SET_DUMPABLE, 0): no core file, no ptrace by same uid
  bool core_limit_zero = false;  // RLIMIT_CORE = 0
};

// PR_SET_DUMPABLE 0 and RLIMIT_CORE 0. Returns an error naming the step that failed.
absl::Status HardenProcess(HardeningReport* report = nullptr);

}  // namespace kshield
