// kshield-relay: issues short-lived Kubernetes client certificates to authenticated users (OIDC ID
// token or corporate client certificate), signed by each cluster's intermediate CA under one
// global root, as the relay policy allows. docs/relay.md.
//
//   kshield-relay --config /etc/kshield/relay.yaml            # serve
//   kshield-relay check-config --config /etc/kshield/relay.yaml  # load everything, print, exit
//
// Exit codes: 0 clean stop (SIGTERM / SIGINT) or valid config, 1 start-up / config error,
// 2 usage error.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/hardening.h"
#include "common/log.h"
#include "relay/config.h"
#include "relay/relay.h"
#include "relay/service.h"

namespace {

int Fail(std::string_view what, const absl::Status& s) {
  std::fprintf(stderr, "kshield-relay: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
               std::string(s.message()).c_str());
  kshield::log::Error("relay.start_failed",
                      {{"step", std::string(what)}, {"reason", std::string(s.message())}});
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  kshield::log::SetComponent("kshield-relay");
  // Debian's abseil is built with mutex deadlock detection on: every absl::Mutex lock updates a
  // process-wide cycle graph under a global lock (~3.5x a lock's cost, and it serialises threads
  // that lock different mutexes). Tests keep it on; the binaries turn it off, like kshield-kms.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{
      "kshield-relay — signs Kubernetes client certificates (CN = user, O = groups) for users "
      "authenticated by an OIDC ID token or a corporate client certificate, as the relay policy "
      "allows.\nConfig reference: docs/relay.md. Exit codes: 0 clean stop, 1 start-up error, "
      "2 usage error."};
  std::string config_file;
  std::string log_level;
  app.add_option("--config", config_file, "relay config YAML")->required();
  app.add_option("--log-level", log_level, "debug | info | warn | error (overrides the config)");
  CLI::App* check =
      app.add_subcommand("check-config",
                         "load the config and every file it names (CAs, keys, JWKS, policies), "
                         "print a summary and exit 0, or print the first problem and exit 1");
  check->fallthrough();
  app.require_subcommand(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  auto config = kshield::relay::LoadRelayConfigFile(config_file);
  if (!config.ok()) return Fail("config", config.status());
  if (!log_level.empty()) config->log_level = log_level;
  auto level = kshield::log::ParseLevel(config->log_level);
  if (!level.ok()) return Fail("log_level", level.status());
  kshield::log::SetLevel(*level);

  // The CA keys live in this process: no core dumps, no ptrace by the same uid.
  if (absl::Status s = kshield::HardenProcess(); !s.ok()) return Fail("hardening", s);

  if (check->parsed()) {
    if (absl::Status s = kshield::relay::RelayServer::CheckTls(*config); !s.ok()) {
      return Fail("tls", s);
    }
    // The audit log is not opened by a check (it may not be writable from here).
    auto service = kshield::relay::CertificateService::Create(
        *config, kshield::relay::AuditLog::ToSink([](const std::string&) {}));
    if (!service.ok()) return Fail("config", service.status());
    std::printf("config %s is valid\n  listen: %s\n", config_file.c_str(), config->listen.c_str());
    for (const std::string& line : (*service)->Describe()) std::printf("  %s\n", line.c_str());
    return 0;
  }

  // Signals are taken by sigwait below; block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto service = kshield::relay::CertificateService::Create(*config, nullptr);
  if (!service.ok()) return Fail("config", service.status());
  std::shared_ptr<kshield::relay::CertificateService> shared(std::move(*service));
  for (const std::string& line : shared->Describe()) {
    kshield::log::Info("relay.config", {{"summary", line}});
  }
  auto server = kshield::relay::RelayServer::Start(*config, shared);
  if (!server.ok()) return Fail("listen", server.status());
  kshield::log::Info("relay.started", {{"listen", config->listen},
                                       {"port", static_cast<uint32_t>((*server)->port())}});

  int sig = 0;
  sigwait(&sigs, &sig);
  kshield::log::Info("relay.signal", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*server)->Stop();
  kshield::log::Info("relay.stopped");
  return 0;
}
