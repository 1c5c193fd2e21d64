// Captures every kshield log line (common/log.h) for the lifetime of the object, from any thread.
// Test-only; one capture at a time (it replaces the process's log sink).
//
//   LogCapture logs;
//   ... code under test ...
//   EXPECT_EQ(logs.Count("keys.static_keys_active"), 1u);
//   for (const std::string& line : logs.Lines()) EXPECT_EQ(line.find(pin), std::string::npos);
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"

namespace kshield::testing {

class LogCapture {
 public:
  LogCapture() {
    log::SetSinkForTesting([this](std::string_view line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.emplace_back(line);
    });
  }
  ~LogCapture() { log::SetSinkForTesting(nullptr); }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  std::vector<std::string> Lines() const {
    std::lock_guard<std::mutex> lock(mu_);
    return lines_;
  }
  // Every line, each followed by '\n'.
  std::string Text() const {
    std::string out;
    for (const std::string& l : Lines()) out.append(l).push_back('\n');
    return out;
  }
  // Whether any line contains `part`.
  bool Contains(std::string_view part) const {
    for (const std::string& l : Lines()) {
      if (l.find(part) != std::string::npos) return true;
    }
    return false;
  }
  // Lines whose event is exactly `event`.
  size_t Count(std::string_view event) const {
    const std::string needle = "\"event\":\"" + std::string(event) + "\"";
    size_t n = 0;
    for (const std::string& l : Lines()) n += l.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

}  // namespace kshield::testing
