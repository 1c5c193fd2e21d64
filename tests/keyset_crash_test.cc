// Crash safety of rotation: SIGKILL a process that rotates and issues ciphertexts in a loop, at
// random points, >= 200 times; after every kill the keyset must load and every ciphertext issued
// before the kill must decrypt.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <random>
#include <thread>

#include "common/testing/temp_dir.h"
#include "support/process.h"

namespace kshield::testing {
namespace {

TEST(KeysetCrashTest, SurvivesTwoHundredKillsDuringRotation) {
  TempDir dir;
  const std::string helper = std::string(KSHIELD_BIN_DIR) + "/../tests/keyset_crash_helper";
  const std::string log = dir.Sub("issued.txt");
  std::mt19937 rng(20261128);
  int kills = 0;
  for (int round = 0; round < 220; ++round) {
    const std::string out_path = dir.Sub("helper.out." + std::to_string(round));
    ChildProcess run({helper, "run", dir.Sub("data"), log}, out_path);
    if (round % 4 == 0) {
      // Random point during start-up (loading the keyset, cleaning temp files).
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 20000));
    } else {
      // Random point inside the rotate / wrap loop: wait until the keyset is loaded ("ready"),
      // however slow the machine is, then a random delay.
      WaitFor([&] { return ReadWholeFile(out_path).find("ready") != std::string::npos; },
              std::chrono::seconds(30));
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 60000));
    }
    run.Signal(SIGKILL);
    int st = run.Wait(std::chrono::seconds(10));
    ASSERT_NE(st, -1);
    ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
        << "helper exited by itself: " << ReadWholeFile(out_path);
    ++kills;
    if (round % 20 == 19 || round == 219) {
      std::string out;
      int rc = RunCommand(helper + " verify " + dir.Sub("data") + " " + log, &out);
      ASSERT_EQ(rc, 0) << "after kill " << kills << ": " << out;
    } else {
      // Cheap check every round: the keyset loads (verify with an empty log).
      std::string out;
      int rc = RunCommand(helper + " verify " + dir.Sub("data") + " /dev/null", &out);
      ASSERT_EQ(rc, 0) << "keyset failed to load after kill " << kills << ": " << out;
    }
  }
  EXPECT_GE(kills, 200);
  std::string out;
  ASSERT_EQ(RunCommand(helper + " verify " + dir.Sub("data") + " " + log, &out), 0) << out;
  // The run issued ciphertexts under many versions (rotation really was interrupted).
  unsigned long verified = 0, versions = 0;
  ASSERT_EQ(sscanf(out.c_str(), "verified %lu versions %lu", &verified, &versions), 2) << out;
  // Guards that the kills really landed inside rotation (the figures depend on machine load).
  EXPECT_GT(verified, 20u);
  EXPECT_GT(versions, 20u);
  std::printf("kills=%d ciphertexts=%lu versions=%lu\n", kills, verified, versions);
}

}  // namespace
}  // namespace kshield::testing
