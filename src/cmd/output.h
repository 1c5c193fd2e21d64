// Output helpers shared by kshieldctl's commands: one JSON document rendered as JSON or YAML.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"

namespace kshield::cmd {

// Emits `j` into a YAML emitter (maps, sequences, scalars; JSON null -> YAML null).
void EmitYaml(YAML::Emitter& out, const nlohmann::json& j);
// `j` as a YAML document.
std::string ToYaml(const nlohmann::json& j);

// Prints `j` for `-o json|yaml` (invalid UTF-8 from peers is replaced, never thrown on), or runs
// `table` for `-o table`; flushes stdout.
void Print(const std::string& format, const nlohmann::json& j,
           const std::function<void()>& table);

// kshieldctl's exit codes (documented in --help and docs/kshieldctl.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;  // the operation failed, was refused, or found problems
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;  // the plugin or etcd could not be reached

// kExitUnreachable for Unavailable / DeadlineExceeded, else kExitFailed.
int ExitFor(const absl::Status& s);
// Prints "kshieldctl: <what>: <message>" to stderr; returns ExitFor(s).
int Fail(const std::string& what, const absl::Status& s);

// A gRPC target for a unix socket path, or "@name" for an abstract socket.
std::string UnixTarget(const std::string& socket);

// RFC 3339 UTC ("2026-11-28T03:04:05Z"); "-" for 0.
std::string Rfc3339(int64_t unix_seconds);

}  // namespace kshield::cmd
