#include "common/hardening.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "gtest/gtest.h"

namespace kshield {
namespace {

// Hardening is irreversible for a process, so each check runs in a forked child and reports
// through its exit code: 0 = all good, otherwise the number of the failed check.
template <typename Fn>
int RunInChild(Fn fn) {
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) _exit(fn());
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -2;
  if (!WIFEXITED(status)) return -3;
  return WEXITSTATUS(status);
}

int HardenAndCheck(bool with_report) {
  HardeningReport report;
  absl::Status s = HardenProcess(with_report ? &report : nullptr);
  if (!s.ok()) {
    std::fprintf(stderr, "HardenProcess: %s\n", s.ToString().c_str());
    return 1;
  }
  if (with_report && !report.dumpable_off) return 2;
  if (with_report && !report.core_limit_zero) return 3;
  if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) return 4;
  struct rlimit rl = {};
  if (getrlimit(RLIMIT_CORE, &rl) != 0) return 5;
  if (rl.rlim_cur != 0) return 6;
  if (rl.rlim_max != 0) return 7;
  // Idempotent: a second call succeeds too.
  if (!HardenProcess(nullptr).ok()) return 8;
  return 0;
}

TEST(HardenProcess, DisablesDumpsAndCoreFiles) {
  const int dumpable_before = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  struct rlimit core_before = {};
  ASSERT_EQ(getrlimit(RLIMIT_CORE, &core_before), 0);

  EXPECT_EQ(RunInChild([] { return HardenAndCheck(/*with_report=*/true); }), 0);

  // The child's hardening did not leak into this process.
  EXPECT_EQ(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), dumpable_before);
  struct rlimit core_after = {};
  ASSERT_EQ(getrlimit(RLIMIT_CORE, &core_after), 0);
  EXPECT_EQ(core_after.rlim_cur, core_before.rlim_cur);
  EXPECT_EQ(core_after.rlim_max, core_before.rlim_max);
}

TEST(HardenProcess, ReportIsOptional) {
  EXPECT_EQ(RunInChild([] { return HardenAndCheck(/*with_report=*/false); }), 0);
}

}  // namespace
}  // namespace kshield
