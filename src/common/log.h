// Structured logging: one JSON object per line on stderr.
//
//   log::Info("kms.started", {{"socket", path}, {"key_id", key_id}});
//   log::Warn("provider.probe_failed", {{"reason", status.message()}});
//
// Rules (STYLE.md): an event name is a fixed string; field values are ids, paths, counts and
// status messages — never key material, DEKs, seeds, plaintext, tokens or private keys. There is
// deliberately no overload taking SecretBytes.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace kshield::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

absl::StatusOr<Level> ParseLevel(std::string_view name);  // debug|info|warn|error
void SetLevel(Level level);
Level GetLevel();
// Component name added to every line ("kms", "kshieldctl", ...).
void SetComponent(std::string_view component);
// Replaces the sink (default: stderr). For tests.
void SetSinkForTesting(std::function<void(std::string_view line)> sink);

struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v), quoted(true) {}
  Field(std::string_view k, const char* v) : key(k), value(v), quoted(true) {}
  Field(std::string_view k, const std::string& v) : key(k), value(v), quoted(true) {}
  Field(std::string_view k, int64_t v) : key(k), value(std::to_string(v)), quoted(false) {}
  Field(std::string_view k, int v) : key(k), value(std::to_string(v)), quoted(false) {}
  Field(std::string_view k, uint32_t v) : key(k), value(std::to_string(v)), quoted(false) {}
  Field(std::string_view k, uint64_t v) : key(k), value(std::to_string(v)), quoted(false) {}
  Field(std::string_view k, double v);
  Field(std::string_view k, bool v) : key(k), value(v ? "true" : "false"), quoted(false) {}
  std::string_view key;
  std::string value;
  bool quoted;
};

void Log(Level level, std::string_view event, std::initializer_list<Field> fields);
inline void Debug(std::string_view event, std::initializer_list<Field> fields = {}) {
  Log(Level::kDebug, event, fields);
}
inline void Info(std::string_view event, std::initializer_list<Field> fields = {}) {
  Log(Level::kInfo, event, fields);
}
inline void Warn(std::string_view event, std::initializer_list<Field> fields = {}) {
  Log(Level::kWarn, event, fields);
}
inline void Error(std::string_view event, std::initializer_list<Field> fields = {}) {
  Log(Level::kError, event, fields);
}

// JSON string escaping (exposed for tests and other JSON writers).
void AppendJsonString(std::string* out, std::string_view s);

}  // namespace kshield::log
