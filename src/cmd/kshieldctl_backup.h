// kshieldctl backup | backup inspect | restore (issue 4 §3): registers the commands on
// kshieldctl's CLI11 app. The plugin seals the backup (admin Backup RPC); this side only writes,
// inspects and, offline, restores it (src/tools/keyset_restore.h).
//
//   int backup_exit = -1;
//   kshield::cmd::AddBackupCommands(app, globals, &backup_exit);
//   ... app.parse(argc, argv) ...
//   if (backup_exit >= 0) return backup_exit;
//
// Exit codes (kshieldctl's): 0 success; 1 the operation failed or was refused (wrong identity,
// existing keyset without --force, plugin still running during restore); 2 usage error; 3 the
// plugin could not be reached (backup).
#pragma once

#include <CLI/CLI.hpp>

#include "cmd/kshieldctl_etcd.h"

namespace kshield::cmd {

void AddBackupCommands(CLI::App& app, const CtlGlobals& globals, int* exit_code);

}  // namespace kshield::cmd
