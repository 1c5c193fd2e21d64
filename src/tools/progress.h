// Progress of a long etcd walk on stderr: on a terminal a redrawn bar with rate and ETA,
//   [##########..........]  5000/10000  50%  2510/s  ETA 2s
// otherwise (logs, pipes) a plain line at most every `plain_interval`, and one at the end.
//
//   ProgressPrinter p("scan", stderr, isatty(STDERR_FILENO));
//   ScanSecrets(etcd, kms, o, p.Callback());
//   p.Finish();
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

#include "tools/etcd_tools.h"

namespace kshield::tools {

class ProgressPrinter {
 public:
  ProgressPrinter(std::string label, FILE* out, bool terminal,
                  std::chrono::milliseconds plain_interval = std::chrono::seconds(5));
  // The line for (done, total) after `elapsed` (exposed for tests).
  static std::string Line(const std::string& label, int64_t done, int64_t total, double elapsed_s,
                          bool bar);
  void Update(int64_t done, int64_t total);
  void Finish();
  ProgressFn Callback() {
    return [this](int64_t done, int64_t total) { Update(done, total); };
  }

 private:
  std::string label_;
  FILE* out_;
  bool terminal_;
  std::chrono::milliseconds plain_interval_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
  int64_t done_ = 0;
  int64_t total_ = 0;
  bool printed_ = false;
};

}  // namespace kshield::tools
