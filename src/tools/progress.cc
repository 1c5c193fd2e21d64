#include "tools/progress.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kshield::tools {
namespace {

std::string Duration(double s) {
  if (s < 0) return "?";
  int64_t t = static_cast<int64_t>(s + 0.5);
  if (t < 60) return absl::StrCat(t, "s");
  if (t < 3600) return absl::StrFormat("%dm%02ds", t / 60, t % 60);
  return absl::StrFormat("%dh%02dm", t / 3600, (t / 60) % 60);
}

}  // namespace

ProgressPrinter::ProgressPrinter(std::string label, FILE* out, bool terminal,
                                 std::chrono::milliseconds plain_interval)
    : label_(std::move(label)),
      out_(out),
      terminal_(terminal),
      plain_interval_(plain_interval),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

std::string ProgressPrinter::Line(const std::string& label, int64_t done, int64_t total,
                                  double elapsed_s, bool bar) {
  double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0;
  int64_t shown_total = std::max(total, done);
  double frac = shown_total > 0 ? static_cast<double>(done) / static_cast<double>(shown_total) : 1;
  double eta = rate > 0 ? static_cast<double>(shown_total - done) / rate : -1;
  std::string line = label + " ";
  if (bar) {
    constexpr int kWidth = 24;
    int filled = static_cast<int>(frac * kWidth);
    line += "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] ";
  }
  absl::StrAppend(&line, done, "/", shown_total, " ", static_cast<int>(frac * 100), "% ",
                  static_cast<int64_t>(rate), "/s ETA ", Duration(eta));
  return line;
}

void ProgressPrinter::Update(int64_t done, int64_t total) {
  done_ = done;
  total_ = total;
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - start_).count();
  if (terminal_) {
    if (now - last_ < std::chrono::milliseconds(100) && done < total) return;
    std::fprintf(out_, "\r%s\033[K", Line(label_, done, total, elapsed, true).c_str());
  } else {
    if (now - last_ < plain_interval_) return;
    std::fprintf(out_, "%s\n", Line(label_, done, total, elapsed, false).c_str());
  }
  std::fflush(out_);
  last_ = now;
  printed_ = true;
}

void ProgressPrinter::Finish() {
  double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::string line = Line(label_, done_, total_, elapsed, terminal_) + " done in " +
                     absl::StrFormat("%.1fs", elapsed);
  if (terminal_) {
    std::fprintf(out_, "\r%s\033[K\n", line.c_str());
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
}

}  // namespace kshield::tools
