// Output helpers shared by kshieldctl's commands: one JSON document rendered as JSON or YAML.
#pragma once

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <string>

namespace kshield::cmd {

// Emits `j` into a YAML emitter (maps, sequences, scalars; JSON null -> YAML null).
void EmitYaml(YAML::Emitter& out, const nlohmann::json& j);
// `j` as a YAML document.
std::string ToYaml(const nlohmann::json& j);

}  // namespace kshield::cmd
