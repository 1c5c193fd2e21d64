#include "common/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace kshield::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::mutex g_mu;
std::string* g_component = new std::string("kshield");
std::function<void(std::string_view)>* g_sink = nullptr;

const char* LevelName(Level l) {
  switch (l) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

void AppendTimestamp(std::string* out) {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char buf[96];  // large enough for any int fields, so the format can never truncate
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           static_cast<int>(tv.tv_usec / 1000));
  out->append(buf);
}

}  // namespace

Field::Field(std::string_view k, double v) : key(k), quoted(false) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%.6g", v);
  value = buf;
}

absl::StatusOr<Level> ParseLevel(std::string_view name) {
  if (name == "debug") return Level::kDebug;
  if (name == "info") return Level::kInfo;
  if (name == "warn" || name == "warning") return Level::kWarn;
  if (name == "error") return Level::kError;
  return absl::InvalidArgumentError("unknown log level \"" + std::string(name) +
                                    "\" (want debug, info, warn or error)");
}

void SetLevel(Level level) { g_level = level; }
Level GetLevel() { return g_level; }

void SetComponent(std::string_view component) {
  std::lock_guard<std::mutex> lock(g_mu);
  *g_component = std::string(component);
}

void SetSinkForTesting(std::function<void(std::string_view)> sink) {
  std::lock_guard<std::mutex> lock(g_mu);
  delete g_sink;
  g_sink = sink ? new std::function<void(std::string_view)>(std::move(sink)) : nullptr;
}

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          snprintf(buf, sizeof(buf), "\\u%04x", c);
          out->append(buf);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void Log(Level level, std::string_view event, std::initializer_list<Field> fields) {
  if (level < g_level.load(std::memory_order_relaxed)) return;
  std::string line;
  line.reserve(256);
  line.append("{\"ts\":\"");
  AppendTimestamp(&line);
  line.append("\",\"level\":\"");
  line.append(LevelName(level));
  line.append("\",\"component\":");
  {
    std::lock_guard<std::mutex> lock(g_mu);
    AppendJsonString(&line, *g_component);
  }
  line.append(",\"event\":");
  AppendJsonString(&line, event);
  for (const Field& f : fields) {
    line.push_back(',');
    AppendJsonString(&line, f.key);
    line.push_back(':');
    if (f.quoted) {
      AppendJsonString(&line, f.value);
    } else {
      line.append(f.value);
    }
  }
  line.append("}\n");
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_sink != nullptr) {
    (*g_sink)(line);
    return;
  }
  // One write(2) per line keeps lines whole when several processes share stderr.
  ssize_t unused = write(STDERR_FILENO, line.data(), line.size());
  (void)unused;
}

}  // namespace kshield::log
