// kshield-kms: the Kubernetes KMS plugin (v2 + v1beta1) beside kube-apiserver.
// Thin: parse flags and config, harden the process, start KmsServer, wait for SIGTERM / SIGINT.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "absl/synchronization/mutex.h"
#include "common/hardening.h"
#include "common/log.h"
#include "kms/config.h"
#include "kms/server.h"
#include "metrics/registry.h"

using kshield::kms::KmsConfig;

int main(int argc, char** argv) {
  kshield::log::SetComponent("kshield-kms");
  // Debian's abseil is built with mutex deadlock detection on; gRPC takes absl::Mutex on every
  // call, and the cycle graph bookkeeping cost ~9% of the plugin's CPU under load (perf).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  CLI::App app{
      "kshield-kms — Kubernetes KMS plugin (v2 and v1beta1) holding its KEKs in protected "
      "memory.\nFlags override the --config file. Exit codes: 0 clean shutdown, 1 start-up "
      "error, 2 usage error."};
  app.set_version_flag("--version", kshield::kms::kKshieldVersion);
  std::string config_file, socket, admin_socket, http, data_dir, provider, allow_uid, log_level,
      socket_mode, socket_owner, socket_group, tee, probe_interval, shutdown_grace;
  int max_connections = 0;
  bool print_snippet = true;
  app.add_option("--config", config_file, "YAML config file (keys: see docs/kshield-kms.md)");
  app.add_option("--socket", socket,
                 "KMS unix socket path, or @name for an abstract socket "
                 "[var/run/kshield-kms.sock]");
  app.add_option("--socket-mode", socket_mode, "KMS socket file mode, octal [0600]");
  app.add_option("--socket-owner", socket_owner, "KMS socket owner (user name or uid)");
  app.add_option("--socket-group", socket_group, "KMS socket group (group name or gid)");
  app.add_option("--admin-socket", admin_socket,
                 "admin unix socket (always 0600) [var/run/kshield-kms-admin.sock]");
  app.add_option("--http", http, "HTTP /healthz /readyz /metrics ADDR:PORT, or off [127.0.0.1:8787]");
  app.add_option("--data-dir", data_dir, "keyset and sealing-key directory [var/lib/kshield-kms]");
  app.add_option("--provider", provider, "key provider: local [local]");
  app.add_option("--tee", tee, "TEE platform: auto | none | sim | gramine | occlum | tsm [auto]");
  app.add_option("--allow-uid", allow_uid,
                 "comma-separated uids or user names allowed to call [own uid, root]");
  app.add_option("--log-level", log_level, "debug | info | warn | error [info]");
  app.add_option("--probe-interval", probe_interval, "provider health probe interval [5s]");
  app.add_option("--shutdown-grace", shutdown_grace, "SIGTERM drain time for in-flight calls [10s]");
  app.add_option("--max-connections", max_connections, "concurrent KMS connections [1024]");
  app.add_flag("!--no-snippet", print_snippet,
               "do not print the EncryptionConfiguration snippet at start");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  auto fail = [](std::string_view what, const absl::Status& s) {
    std::fprintf(stderr, "kshield-kms: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
                 std::string(s.message()).c_str());
    return 1;
  };

  KmsConfig config;
  if (!config_file.empty()) {
    absl::Status s = kshield::kms::LoadConfigFile(config_file, &config);
    if (!s.ok()) return fail("config", s);
  }
  auto set = [&](const char* flag, const std::string& value, std::string* field) {
    if (app.count(flag) > 0) *field = value;
  };
  set("--socket", socket, &config.socket);
  set("--socket-owner", socket_owner, &config.socket_owner);
  set("--socket-group", socket_group, &config.socket_group);
  set("--admin-socket", admin_socket, &config.admin_socket);
  set("--http", http, &config.http);
  set("--data-dir", data_dir, &config.data_dir);
  set("--provider", provider, &config.provider);
  set("--tee", tee, &config.tee);
  set("--allow-uid", allow_uid, &config.allow_uid);
  set("--log-level", log_level, &config.log_level);
  if (app.count("--socket-mode") > 0) {
    auto m = kshield::kms::ParseMode(socket_mode);
    if (!m.ok()) return fail("--socket-mode", m.status());
    config.socket_mode = *m;
  }
  if (app.count("--probe-interval") > 0) {
    auto d = kshield::kms::ParseDuration(probe_interval);
    if (!d.ok()) return fail("--probe-interval", d.status());
    config.probe_interval = *d;
  }
  if (app.count("--shutdown-grace") > 0) {
    auto d = kshield::kms::ParseDuration(shutdown_grace);
    if (!d.ok()) return fail("--shutdown-grace", d.status());
    config.shutdown_grace = *d;
  }
  if (app.count("--max-connections") > 0) config.max_connections = max_connections;

  auto level = kshield::log::ParseLevel(config.log_level);
  if (!level.ok()) return fail("--log-level", level.status());
  kshield::log::SetLevel(*level);

  kshield::HardeningReport hardening;
  absl::Status hs = kshield::HardenProcess(&hardening);
  if (!hs.ok()) return fail("hardening", hs);

  // Signals are handled by sigwait below; block them before any thread starts so that no gRPC or
  // HTTP thread takes them. SIGPIPE: a client closing its socket must not kill the plugin.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto server = kshield::kms::KmsServer::Start(config, kshield::metrics::Registry::Default());
  if (!server.ok()) return fail("start-up failed", server.status());

  if (print_snippet) {
    std::printf(
        "kshield-kms is serving. Point kube-apiserver at it with "
        "--encryption-provider-config=<file containing>:\n---\n%s---\n",
        kshield::kms::EncryptionConfigSnippet(config.socket).c_str());
    std::fflush(stdout);
  }

  int sig = 0;
  sigwait(&sigs, &sig);
  kshield::log::Info("kms.signal", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  // Watchdog: the drain is bounded by --shutdown-grace; if anything in it hangs (a gRPC callback
  // that never completes), exit anyway rather than leave a half-stopped plugin behind.
  auto watchdog_after = config.shutdown_grace + std::chrono::seconds(5);
  std::thread([watchdog_after] {
    std::this_thread::sleep_for(watchdog_after);
    kshield::log::Error("kms.shutdown_stuck", {{"action", "exit 1"}});
    _exit(1);
  }).detach();
  (*server)->Shutdown();
  return 0;
}
