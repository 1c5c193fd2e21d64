#include "relay/json_util.h"

#include <set>
#include <vector>

namespace kshield::relay {
namespace {

// Nesting depth of `text`, counting brackets outside strings. Checked before parsing so that a
// deeply nested document is refused without building it.
int MaxDepth(std::string_view text) {
  int depth = 0, max = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max) max = depth;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max;
}

}  // namespace

absl::StatusOr<nlohmann::json> ParseStrictJson(std::string_view text, int max_depth) {
  if (MaxDepth(text) > max_depth) return absl::InvalidArgumentError("JSON nested too deeply");
  // One key set per open container (arrays get an unused set), so duplicates are found per
  // object.
  std::vector<std::set<std::string>> keys;
  bool duplicate = false;
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event,
                      nlohmann::json& parsed) -> bool {
    using E = nlohmann::json::parse_event_t;
    switch (event) {
      case E::object_start:
      case E::array_start:
        keys.emplace_back();
        break;
      case E::object_end:
      case E::array_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case E::key:
        if (!keys.empty() && parsed.is_string() &&
            !keys.back().insert(parsed.get_ref<const std::string&>()).second) {
          duplicate = true;
        }
        break;
      case E::value:
        break;
    }
    return true;
  };
  nlohmann::json value = nlohmann::json::parse(text.begin(), text.end(), callback,
                                               /*allow_exceptions=*/false,
                                               /*ignore_comments=*/false);
  if (value.is_discarded()) return absl::InvalidArgumentError("not valid JSON");
  if (duplicate) return absl::InvalidArgumentError("JSON object has a duplicate key");
  return value;
}

std::string DumpJson(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace kshield::relay
