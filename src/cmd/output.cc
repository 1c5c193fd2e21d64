#include "cmd/output.h"

#include <iostream>

namespace kshield::cmd {

void EmitYaml(YAML::Emitter& out, const nlohmann::json& j) {
  if (j.is_object()) {
    out << YAML::BeginMap;
    for (auto it = j.begin(); it != j.end(); ++it) {
      out << YAML::Key << it.key() << YAML::Value;
      EmitYaml(out, it.value());
    }
    out << YAML::EndMap;
  } else if (j.is_array()) {
    out << YAML::BeginSeq;
    for (const auto& e : j) EmitYaml(out, e);
    out << YAML::EndSeq;
  } else if (j.is_string()) {
    out << j.get<std::string>();
  } else if (j.is_boolean()) {
    out << j.get<bool>();
  } else if (j.is_number_integer()) {
    out << j.get<int64_t>();
  } else if (j.is_number()) {
    out << j.get<double>();
  } else {
    out << YAML::Null;
  }
}

std::string ToYaml(const nlohmann::json& j) {
  YAML::Emitter out;
  EmitYaml(out, j);
  return out.c_str();
}

void Print(const std::string& format, const nlohmann::json& j,
           const std::function<void()>& table) {
  if (format == "json") {
    std::cout << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else if (format == "yaml") {
    std::cout << ToYaml(j) << "\n";
  } else {
    table();
  }
  std::cout.flush();
}

}  // namespace kshield::cmd
