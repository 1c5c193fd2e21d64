// kshieldctl etcd scan | rewrap | decrypt and keyset retire (issue 4 §3): registers the `etcd`
// command tree and `keyset retire` on kshieldctl's CLI11 app. The work is done by src/tools/
// (kshield_tools; kshield_tools_backup for `--backup` offline decryption).
//
//   int etcd_exit = -1;
//   kshield::cmd::AddEtcdCommands(app, {&conn.socket, &conn.timeout_s, &format}, &etcd_exit);
//   ... app.parse(argc, argv) ...
//   if (etcd_exit >= 0) return etcd_exit;   // an etcd command ran
//
// The commands run from CLI11 callbacks after parsing, so the global flags (--socket, --timeout,
// -o) may come before or after them. Exit codes (kshieldctl's): 0 success; 1 the operation failed
// or found problems (unparseable / unverifiable values, failed rewraps or decrypts); 2 usage
// error; 3 etcd or the plugin could not be reached.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

namespace kshield::cmd {

// kshieldctl's global flags, read when a command runs (after parsing).
struct CtlGlobals {
  const std::string* socket;    // --socket: the plugin's KMS socket
  const double* timeout_s;      // --timeout: per plugin call, seconds
  const std::string* format;    // -o: table | json | yaml
  const std::string* admin_socket = nullptr;  // --admin-socket (keyset retire, backup)
};

void AddEtcdCommands(CLI::App& app, const CtlGlobals& globals, int* exit_code);

// `keyset retire VERSION [--force]` on the `keyset` command: refuses (exit 1) while a walk of
// etcd finds values that use the version, or (exit 3 / 1) when etcd cannot be read, unless
// --force; then calls the admin Retire RPC. Takes the etcd connection flags of `etcd`.
void AddRetireCommand(CLI::App& keyset, const CtlGlobals& globals, int* exit_code);

}  // namespace kshield::cmd
