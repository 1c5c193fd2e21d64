#include "keys/kmip/kmip_options.h"

#include <yaml-cpp/yaml.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace kshield::keys::kmip {
namespace {

constexpr std::string_view kKeys[] = {"endpoint",    "ca_file",     "cert_file", "key_file",
                                      "server_name", "name_prefix", "timeout"};

bool IsPrefixChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

absl::StatusOr<KmipOptions> ParseNodeUnchecked(const YAML::Node& root) {
  if (!root.IsMap()) return absl::InvalidArgumentError("kmip options must be a YAML mapping");
  KmipOptions o;
  for (const auto& kv : root) {
    std::string key;
    try {
      key = kv.first.as<std::string>();
    } catch (const YAML::Exception&) {
      return absl::InvalidArgumentError("kmip options: a key is not a string");
    }
    bool known = false;
    for (std::string_view k : kKeys) known = known || key == k;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(
          "kmip options: unknown key \"", key,
          "\" (known: endpoint, ca_file, cert_file, key_file, server_name, name_prefix, timeout)"));
    }
    if (!kv.second.IsScalar()) {
      return absl::InvalidArgumentError(
          absl::StrCat("kmip options: \"", key, "\" must be a single value"));
    }
    std::string value;
    try {
      value = kv.second.as<std::string>();
    } catch (const YAML::Exception&) {
      return absl::InvalidArgumentError(
          absl::StrCat("kmip options: \"", key, "\" is not a string"));
    }
    if (key == "endpoint") {
      o.endpoint = value;
    } else if (key == "ca_file") {
      o.ca_file = value;
    } else if (key == "cert_file") {
      o.cert_file = value;
    } else if (key == "key_file") {
      o.key_file = value;
    } else if (key == "server_name") {
      o.server_name = value;
    } else if (key == "name_prefix") {
      o.name_prefix = value;
    } else if (key == "timeout") {
      auto d = ParseKmipDuration(value);
      if (!d.ok()) return Annotate(d.status(), "kmip options: timeout");
      o.timeout = *d;
    }
  }
  return o;
}

}  // namespace

absl::StatusOr<std::chrono::milliseconds> ParseKmipDuration(std::string_view text) {
  std::string_view num = text;
  int64_t unit_ms = 1000;
  auto ends_with = [&](std::string_view suffix) {
    return num.size() > suffix.size() && num.substr(num.size() - suffix.size()) == suffix;
  };
  if (ends_with("ms")) {
    num.remove_suffix(2);
    unit_ms = 1;
  } else if (ends_with("s")) {
    num.remove_suffix(1);
  } else if (ends_with("m")) {
    num.remove_suffix(1);
    unit_ms = 60 * 1000;
  } else if (ends_with("h")) {
    num.remove_suffix(1);
    unit_ms = 3600 * 1000;
  }
  int64_t n = 0;
  if (num.empty() || num[0] == '-' || num[0] == '+' || !absl::SimpleAtoi(AV(num), &n) ||
      n > (int64_t{1} << 40) / unit_ms) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", AV(text), "\" is not a duration (use e.g. 500ms, 3s, 2m, or seconds)"));
  }
  return std::chrono::milliseconds(n * unit_ms);
}

absl::StatusOr<HostPort> ParseEndpoint(std::string_view endpoint) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("kmip endpoint \"", AV(endpoint), "\": ", AV(why), " (want host:port)"));
  };
  HostPort hp;
  std::string_view port;
  if (!endpoint.empty() && endpoint[0] == '[') {
    size_t close = endpoint.find(']');
    if (close == std::string_view::npos) return bad("unclosed '['");
    hp.host = std::string(endpoint.substr(1, close - 1));
    if (close + 1 >= endpoint.size() || endpoint[close + 1] != ':') return bad("no port");
    port = endpoint.substr(close + 2);
  } else {
    size_t colon = endpoint.rfind(':');
    if (colon == std::string_view::npos) return bad("no port");
    hp.host = std::string(endpoint.substr(0, colon));
    if (hp.host.find(':') != std::string::npos) return bad("IPv6 addresses need [brackets]");
    port = endpoint.substr(colon + 1);
  }
  if (hp.host.empty()) return bad("no host");
  uint32_t p = 0;
  if (port.empty() || !absl::SimpleAtoi(AV(port), &p) || p == 0 || p > 65535 || port[0] == '+') {
    return bad("port must be 1..65535");
  }
  hp.port = static_cast<uint16_t>(p);
  return hp;
}

absl::Status ValidateKmipOptions(const KmipOptions& o) {
  KSH_RETURN_IF_ERROR(ParseEndpoint(o.endpoint).status());
  if (o.ca_file.empty()) return absl::InvalidArgumentError("kmip options: ca_file is required");
  if (o.cert_file.empty()) return absl::InvalidArgumentError("kmip options: cert_file is required");
  if (o.key_file.empty()) return absl::InvalidArgumentError("kmip options: key_file is required");
  if (o.name_prefix.empty() || o.name_prefix.size() > 64) {
    return absl::InvalidArgumentError("kmip options: name_prefix must be 1..64 characters");
  }
  for (char c : o.name_prefix) {
    if (!IsPrefixChar(c)) {
      return absl::InvalidArgumentError(
          "kmip options: name_prefix may use only letters, digits, '.', '_' and '-'");
    }
  }
  if (o.timeout < std::chrono::milliseconds(10) || o.timeout > std::chrono::minutes(10)) {
    return absl::InvalidArgumentError("kmip options: timeout must be between 10ms and 10m");
  }
  return absl::OkStatus();
}

absl::StatusOr<KmipOptions> ParseKmipOptionsNode(const YAML::Node& node) {
  absl::StatusOr<KmipOptions> o;
  try {
    o = ParseNodeUnchecked(node);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("kmip options: ", e.what()));
  }
  if (!o.ok()) return o.status();
  if (o->endpoint.empty()) return absl::InvalidArgumentError("kmip options: endpoint is required");
  KSH_RETURN_IF_ERROR(ValidateKmipOptions(*o));
  return o;
}

absl::StatusOr<KmipOptions> ParseKmipOptionsYaml(std::string_view yaml) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("kmip options are not valid YAML: line ", e.mark.line + 1, ": ", e.msg));
  }
  return ParseKmipOptionsNode(root);
}

}  // namespace kshield::keys::kmip
