// kshieldctl — operator tooling for kshield (kms-plugin-tools).
//
// Exit codes: 0 success; 1 the operation failed, was refused (keyset retire while in use,
// restore over an existing keyset, a wrong identity) or the plugin is unhealthy; 2 usage error;
// 3 the plugin or etcd could not be reached. docs/kshieldctl.md lists them per command.
#include <grpcpp/grpcpp.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include "cmd/output.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "absl/synchronization/mutex.h"
#include "admin.grpc.pb.h"
#include "cmd/kshieldctl_attest.h"
#include "cmd/kshieldctl_backup.h"
#include "cmd/kshieldctl_etcd.h"
#include "common/log.h"
#include "kms_v2.grpc.pb.h"

using kshield::cmd::kExitFailed;
using kshield::cmd::kExitUnreachable;
using kshield::cmd::Print;
using kshield::cmd::Rfc3339;
using kshield::cmd::UnixTarget;

namespace {

struct Conn {
  std::string socket = "var/run/kshield-kms.sock";
  std::string admin_socket = "var/run/kshield-kms-admin.sock";
  double timeout_s = 5;
};

std::unique_ptr<grpc::ClientContext> Ctx(const Conn& c) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(c.timeout_s * 1000)));
  return ctx;
}

int Fail(const std::string& what, const grpc::Status& s) {
  std::fprintf(stderr, "kshieldctl: %s: %s\n", what.c_str(), s.error_message().c_str());
  return s.error_code() == grpc::StatusCode::UNAVAILABLE &&
                 s.error_message().rfind("kshield-kms unhealthy", 0) != 0
             ? kExitUnreachable
             : kExitFailed;
}

nlohmann::json InfoJson(const kshield::admin::v1::KeysetInfoResponse& info) {
  nlohmann::json versions = nlohmann::json::array();
  for (const auto& v : info.versions()) {
    versions.push_back({{"version", v.version()},
                        {"state", v.state()},
                        {"key_id", v.key_id()},
                        {"created", Rfc3339(v.created_unix())}});
  }
  return {{"keyset_id", info.keyset_id()},
          {"primary_key_id", info.primary_key_id()},
          {"provider", info.provider()},
          {"tee_platform", info.tee_platform()},
          {"healthy", info.healthy()},
          {"health_reason", info.health_reason()},
          {"versions", versions}};
}

void PrintVersionsTable(const kshield::admin::v1::KeysetInfoResponse& info) {
  std::printf("%-8s %-8s %-30s %s\n", "VERSION", "STATE", "KEY_ID", "CREATED");
  for (const auto& v : info.versions()) {
    std::printf("%-8u %-8s %-30s %s\n", v.version(), v.state().c_str(), v.key_id().c_str(),
                Rfc3339(v.created_unix()).c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Library code (keyset loading for offline decryption, restore's provider) logs JSON lines at
  // info; a CLI shows warnings and errors only.
  kshield::log::SetComponent("kshieldctl");
  kshield::log::SetLevel(kshield::log::Level::kWarn);
  CLI::App app{
      "kshieldctl — operator tooling for kshield.\nExit codes: 0 success, 1 operation failed or "
      "refused, or plugin unhealthy, 2 usage error, 3 plugin or etcd unreachable "
      "(docs/kshieldctl.md)."};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may also follow the subcommand
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  Conn conn;
  std::string format = "table";
  app.add_option("--socket", conn.socket, "KMS socket of kshield-kms [var/run/kshield-kms.sock]");
  app.add_option("--admin-socket", conn.admin_socket,
                 "admin socket of kshield-kms [var/run/kshield-kms-admin.sock]");
  app.add_option("--timeout", conn.timeout_s, "per-call timeout in seconds [5]");
  app.add_option("-o,--output", format, "table | json | yaml [table]")
      ->check(CLI::IsMember({"table", "json", "yaml"}));

  auto* status = app.add_subcommand(
      "status", "plugin health (KMS Status), key versions, provider, TEE platform");
  auto* rotate = app.add_subcommand(
      "rotate", "create a new KEK version, persist it, then make it primary");
  auto* refresh = app.add_subcommand(
      "refresh", "key force update: reload the keyset from its store and re-probe the provider");
  auto* keyset = app.add_subcommand("keyset", "keyset operations");
  keyset->require_subcommand(1);
  auto* keyset_list = keyset->add_subcommand("list", "list KEK versions and their states");

  const kshield::cmd::CtlGlobals globals{&conn.socket, &conn.timeout_s, &format,
                                         &conn.admin_socket};
  int retire_exit = -1;
  kshield::cmd::AddRetireCommand(*keyset, globals, &retire_exit);
  int attest_exit = -1;
  kshield::cmd::AddAttestCommands(app, &format, &attest_exit);
  int etcd_exit = -1;
  kshield::cmd::AddEtcdCommands(app, globals, &etcd_exit);
  int backup_exit = -1;
  kshield::cmd::AddBackupCommands(app, globals, &backup_exit);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (attest_exit >= 0) return attest_exit;
  if (etcd_exit >= 0) return etcd_exit;
  if (retire_exit >= 0) return retire_exit;
  if (backup_exit >= 0) return backup_exit;

  auto admin = kshield::admin::v1::Admin::NewStub(
      grpc::CreateChannel(UnixTarget(conn.admin_socket), grpc::InsecureChannelCredentials()));

  if (status->parsed()) {
    auto kms = ::v2::KeyManagementService::NewStub(
        grpc::CreateChannel(UnixTarget(conn.socket), grpc::InsecureChannelCredentials()));
    ::v2::StatusResponse st;
    grpc::Status kst = kms->Status(Ctx(conn).get(), {}, &st);
    kshield::admin::v1::KeysetInfoResponse info;
    grpc::Status ist = admin->KeysetInfo(Ctx(conn).get(), {}, &info);
    if (!ist.ok()) return Fail("admin KeysetInfo on " + conn.admin_socket, ist);
    nlohmann::json j = InfoJson(info);
    j["kms_status"] = kst.ok() ? nlohmann::json{{"version", st.version()},
                                                 {"healthz", st.healthz()},
                                                 {"key_id", st.key_id()}}
                               : nlohmann::json{{"error", kst.error_message()}};
    Print(format, j, [&] {
      std::printf("KMS status:   %s\n", kst.ok() ? (st.healthz() + " (" + st.version() + ", " +
                                                     st.key_id() + ")")
                                                        .c_str()
                                                  : kst.error_message().c_str());
      std::printf("Health:       %s%s%s\n", info.healthy() ? "healthy" : "UNHEALTHY",
                  info.healthy() ? "" : ": ", info.healthy() ? "" : info.health_reason().c_str());
      std::printf("Keyset:       %s\nPrimary:      %s\nProvider:     %s\nTEE platform: %s\n\n",
                  info.keyset_id().c_str(), info.primary_key_id().c_str(),
                  info.provider().c_str(), info.tee_platform().c_str());
      PrintVersionsTable(info);
    });
    return kst.ok() && info.healthy() ? 0 : kExitFailed;
  }
  if (rotate->parsed()) {
    kshield::admin::v1::RotateResponse r;
    grpc::Status s = admin->Rotate(Ctx(conn).get(), {}, &r);
    if (!s.ok()) return Fail("rotate", s);
    Print(format, {{"previous_key_id", r.previous_key_id()}, {"key_id", r.key_id()}}, [&] {
      std::printf("rotated: %s -> %s\n", r.previous_key_id().c_str(), r.key_id().c_str());
    });
    return 0;
  }
  if (refresh->parsed()) {
    kshield::admin::v1::RefreshResponse r;
    grpc::Status s = admin->Refresh(Ctx(conn).get(), {}, &r);
    if (!s.ok()) return Fail("refresh", s);
    Print(format,
          {{"key_id", r.key_id()}, {"healthy", r.healthy()}, {"health_reason", r.health_reason()}},
          [&] {
            std::printf("refreshed: primary %s, %s%s%s\n", r.key_id().c_str(),
                        r.healthy() ? "healthy" : "UNHEALTHY", r.healthy() ? "" : ": ",
                        r.healthy() ? "" : r.health_reason().c_str());
          });
    return r.healthy() ? 0 : kExitFailed;
  }
  if (keyset_list->parsed()) {
    kshield::admin::v1::KeysetInfoResponse info;
    grpc::Status s = admin->KeysetInfo(Ctx(conn).get(), {}, &info);
    if (!s.ok()) return Fail("admin KeysetInfo", s);
    Print(format, InfoJson(info)["versions"], [&] { PrintVersionsTable(info); });
    return 0;
  }
  return 2;
}
