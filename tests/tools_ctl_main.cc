// Test driver: kshieldctl's global flags (--socket, --timeout, -o) plus AddEtcdCommands, so the
// tools tests exercise the real `etcd` command tree before (and independently of) its wiring into
// kshieldctl_main.cc. Exit codes as kshieldctl's.
#include <CLI/CLI.hpp>

#include "absl/synchronization/mutex.h"
#include "cmd/kshieldctl_etcd.h"

int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"kshieldctl (etcd commands test driver)"};
  app.require_subcommand(1);
  app.fallthrough();
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::string socket = "var/run/kshield-kms.sock";
  double timeout_s = 5;
  std::string format = "table";
  app.add_option("--socket", socket, "KMS socket");
  app.add_option("--timeout", timeout_s, "per-call timeout in seconds");
  app.add_option("-o,--output", format, "table | json | yaml")
      ->check(CLI::IsMember({"table", "json", "yaml"}));
  int etcd_exit = -1;
  kshield::cmd::AddEtcdCommands(app, {&socket, &timeout_s, &format}, &etcd_exit);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  return etcd_exit >= 0 ? etcd_exit : 2;
}
