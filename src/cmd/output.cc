#include "cmd/output.h"

#include <cstdio>
#include <ctime>

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

int ExitFor(const absl::Status& s) {
  return s.code() == absl::StatusCode::kUnavailable ||
                 s.code() == absl::StatusCode::kDeadlineExceeded
             ? kExitUnreachable
             : kExitFailed;
}

int Fail(const std::string& what, const absl::Status& s) {
  std::fprintf(stderr, "kshieldctl: %s: %s\n", what.c_str(), std::string(s.message()).c_str());
  return ExitFor(s);
}

std::string UnixTarget(const std::string& socket) {
  if (!socket.empty() && socket[0] == '@') return "unix-abstract:" + socket.substr(1);
  return "unix:" + socket;
}

std::string Rfc3339(int64_t unix_seconds) {
  if (unix_seconds == 0) return "-";
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace kshield::cmd
