// kshield-kms configuration: a YAML file (--config) and flags; flags win over the file.
//
// Keys (all optional; unknown keys are an error naming the key):
//   socket: var/run/kshield-kms.sock     # or "@abstract-name"
//   socket_mode: "0600"
//   socket_owner: kube                  # user name or uid
//   socket_group: kube                  # group name or gid
//   admin_socket: var/run/kshield-kms-admin.sock
//   http: 127.0.0.1:8787                # "off" disables the HTTP endpoint
//   data_dir: var/lib/kshield-kms
//   provider: local
//   tee: auto                           # auto | none | sim | gramine | occlum | tsm
//   allow_uid: [0, 1000]                # or "0,1000"; default: this process's uid and root
//   log_level: info                     # debug | info | warn | error
//   probe_interval: 5s                  # background provider probe
//   shutdown_grace: 10s                 # SIGTERM: time for in-flight calls
//   max_connections: 1024
//   pkcs11: {...}  kmip: {...}  static: {...}   # provider sections, see docs/providers.md
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kshield::kms {

struct KmsConfig {
  std::string socket = "var/run/kshield-kms.sock";
  mode_t socket_mode = 0600;
  std::string socket_owner;  // empty = unchanged
  std::string socket_group;
  std::string admin_socket = "var/run/kshield-kms-admin.sock";
  std::string http = "127.0.0.1:8787";
  std::string data_dir = "var/lib/kshield-kms";
  std::string provider = "local";
  std::string tee = "auto";
  std::string allow_uid;  // empty = own uid + root
  std::string log_level = "info";
  std::chrono::milliseconds probe_interval{5000};
  std::chrono::milliseconds shutdown_grace{10000};
  int max_connections = 1024;
  // Provider sections (`pkcs11:`, `kmip:`, `static:`) as YAML text; each provider parses and
  // validates its own section (unknown keys there are errors too).
  std::map<std::string, std::string> provider_sections;
};

// Providers kshield-kms can use, and the config section each one reads.
inline constexpr const char* kProviderNames[] = {"local", "pkcs11", "kmip", "static"};

// Applies the YAML document in `yaml` over `config`. Errors name the key and what was wrong.
absl::Status ApplyYamlConfig(std::string_view yaml, KmsConfig* config);
absl::Status LoadConfigFile(const std::string& path, KmsConfig* config);

// "5s", "500ms", "2m", "1h30m", "1.5s", or a bare number of seconds (common/duration.h); errors
// start with "<field>: " when `field` is given.
absl::StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view s,
                                                        std::string_view field = "");
// "0600", "660", "0o660".
absl::StatusOr<mode_t> ParseMode(std::string_view s);

// Checks cross-field rules (paths differ, values in range).
absl::Status ValidateConfig(const KmsConfig& config);

}  // namespace kshield::kms
