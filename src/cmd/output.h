// Output helpers shared by kshieldctl's commands: one JSON document rendered as JSON or YAML.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace kshield::cmd {

// Emits `j` into a YAML emitter (maps, sequences, scalars; JSON null -> YAML null).
void EmitYaml(YAML::Emitter& out, const nlohmann::json& j);
// `j` as a YAML document.
std::string ToYaml(const nlohmann::json& j);

// Prints `j` for `-o json|yaml` (invalid UTF-8 from peers is replaced, never thrown on), or runs
// `table` for `-o table`; flushes stdout.
void Print(const std::string& format, const nlohmann::json& j,
           const std::function<void()>& table);

}  // namespace kshield::cmd
