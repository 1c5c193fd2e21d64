// Test driver for `kshield-bench apiserver` (bench/apiserver_sim.cc) until it is wired into
// kshield-bench: the same options and exit codes.
#include <CLI/CLI.hpp>

#include "absl/synchronization/mutex.h"
#include "apiserver_sim.h"

int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"kshield-bench (apiserver test driver)"};
  app.require_subcommand(1);
  kshield::bench::ApiserverSimOptions o;
  auto* api = app.add_subcommand("apiserver", "the apiserver's envelope role against real etcd");
  kshield::bench::AddApiserverSimOptions(api, &o);
  CLI11_PARSE(app, argc, argv);
  return kshield::bench::RunApiserverSim(o);
}
