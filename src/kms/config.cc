#include "kms/config.h"

#include <yaml-cpp/yaml.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/duration.h"
#include "common/file_util.h"
#include "common/status.h"

namespace kshield::kms {

absl::StatusOr<std::chrono::milliseconds> ParseDuration(std::string_view s,
                                                        std::string_view field) {
  // The upper bound is the largest value the former parser took ("86400000m"); ValidateConfig
  // and the flags' users apply the real limits.
  KSH_ASSIGN_OR_RETURN(absl::Duration d,
                       kshield::ParseDuration(s, {.field = field,
                                                  .max = absl::Minutes(86400000),
                                                  .allow_bare_number = true,
                                                  .bare_number_unit = absl::Seconds(1)}));
  return absl::ToChronoMilliseconds(d);
}

absl::StatusOr<mode_t> ParseMode(std::string_view s_in) {
  absl::string_view s = AV(s_in);
  absl::string_view digits = s;
  absl::ConsumePrefix(&digits, "0o");
  if (digits.empty() || digits.size() > 4) {
    return absl::InvalidArgumentError(absl::StrCat("invalid file mode \"", s, "\""));
  }
  mode_t m = 0;
  for (char c : digits) {
    if (c < '0' || c > '7') {
      return absl::InvalidArgumentError(absl::StrCat("invalid file mode \"", s, "\" (octal)"));
    }
    m = m * 8 + static_cast<mode_t>(c - '0');
  }
  if (m > 0777) return absl::InvalidArgumentError(absl::StrCat("file mode \"", s, "\" too wide"));
  return m;
}

namespace {

absl::StatusOr<std::string> Scalar(const YAML::Node& node, const std::string& key) {
  if (!node.IsScalar()) {
    return absl::InvalidArgumentError(absl::StrCat("config key \"", key, "\" must be a scalar"));
  }
  return node.Scalar();
}

}  // namespace

absl::Status ApplyYamlConfig(std::string_view yaml, KmsConfig* c) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config is not valid YAML: line ",
                                                   e.mark.line + 1, ": ", e.msg));
  }
  if (root.IsNull()) return absl::OkStatus();
  if (!root.IsMap()) return absl::InvalidArgumentError("config must be a YAML mapping");
  for (const auto& kv : root) {
    std::string key;
    try {
      key = kv.first.as<std::string>();
    } catch (const YAML::Exception&) {
      return absl::InvalidArgumentError("config has a non-string key");
    }
    const YAML::Node& v = kv.second;
    if (key == "allow_uid" && v.IsSequence()) {
      std::vector<std::string> items;
      for (const auto& item : v) {
        if (!item.IsScalar()) return absl::InvalidArgumentError("allow_uid entries must be scalars");
        items.push_back(item.Scalar());
      }
      c->allow_uid = absl::StrJoin(items, ",");
      continue;
    }
    if (key == "pkcs11" || key == "kmip" || key == "static") {
      if (!v.IsMap()) {
        return absl::InvalidArgumentError(
            absl::StrCat("config key \"", key, "\" must be a mapping of provider settings"));
      }
      c->provider_sections[key] = YAML::Dump(v);
      continue;
    }
    KSH_ASSIGN_OR_RETURN(std::string s, Scalar(v, key));
    if (key == "socket") {
      c->socket = s;
    } else if (key == "socket_mode") {
      KSH_ASSIGN_OR_RETURN(c->socket_mode, ParseMode(s));
    } else if (key == "socket_owner") {
      c->socket_owner = s;
    } else if (key == "socket_group") {
      c->socket_group = s;
    } else if (key == "admin_socket") {
      c->admin_socket = s;
    } else if (key == "http") {
      c->http = s;
    } else if (key == "data_dir") {
      c->data_dir = s;
    } else if (key == "provider") {
      c->provider = s;
    } else if (key == "tee") {
      c->tee = s;
    } else if (key == "allow_uid") {
      c->allow_uid = s;
    } else if (key == "log_level") {
      c->log_level = s;
    } else if (key == "probe_interval") {
      KSH_ASSIGN_OR_RETURN(c->probe_interval, ParseDuration(s, key));
    } else if (key == "shutdown_grace") {
      KSH_ASSIGN_OR_RETURN(c->shutdown_grace, ParseDuration(s, key));
    } else if (key == "max_connections") {
      if (!absl::SimpleAtoi(s, &c->max_connections)) {
        return absl::InvalidArgumentError("max_connections must be an integer");
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown config key \"", key, "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status LoadConfigFile(const std::string& path, KmsConfig* config) {
  KSH_ASSIGN_OR_RETURN(std::string text, ReadFileBounded(path, 1 << 20));
  return Annotate(ApplyYamlConfig(text, config), path);
}

absl::Status ValidateConfig(const KmsConfig& c) {
  if (c.socket.empty()) return absl::InvalidArgumentError("socket must be set");
  if (c.admin_socket.empty()) return absl::InvalidArgumentError("admin_socket must be set");
  if (c.socket == c.admin_socket) {
    return absl::InvalidArgumentError("socket and admin_socket must differ");
  }
  if (c.data_dir.empty()) return absl::InvalidArgumentError("data_dir must be set");
  bool known = false;
  for (const char* p : kProviderNames) known = known || c.provider == p;
  if (!known) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown provider \"", c.provider, "\" (available: local, pkcs11, kmip, static)"));
  }
  if (c.provider != "local" && c.provider_sections.count(c.provider) == 0) {
    return absl::InvalidArgumentError(absl::StrCat("provider \"", c.provider,
                                                   "\" needs a \"", c.provider,
                                                   ":\" section in the config file"));
  }
  if (c.probe_interval < std::chrono::milliseconds(100)) {
    return absl::InvalidArgumentError("probe_interval must be at least 100ms");
  }
  if (c.max_connections < 1) return absl::InvalidArgumentError("max_connections must be >= 1");
  return absl::OkStatus();
}

}  // namespace kshield::kms
