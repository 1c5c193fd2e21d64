#include "proxy/config.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/duration.h"
#include "common/file_util.h"
#include "common/status.h"
#include "net/url.h"

namespace kshield::kubectl {

std::string_view CredentialKindName(CredentialKind kind) {
  switch (kind) {
    case CredentialKind::kRelay:
      return "relay";
    case CredentialKind::kImported:
      return "imported";
    case CredentialKind::kOidc:
      return "oidc";
  }
  return "unknown";
}

absl::Time RenewBefore::RenewAt(absl::Time not_before, absl::Time not_after) const {
  absl::Duration lifetime = not_after - not_before;
  if (lifetime < absl::ZeroDuration()) lifetime = absl::ZeroDuration();
  absl::Duration before = fixed.has_value() ? *fixed : lifetime * fraction;
  // Never "renew" before the credential began, and leave at least a second of use.
  if (before > lifetime) before = lifetime;
  return not_after - before;
}

const ClusterConfig* DaemonConfig::FindCluster(std::string_view name) const {
  for (const ClusterConfig& c : clusters) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

bool IsValidClusterName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (i == 0 && !alnum) return false;
    if (!alnum && c != '-' && c != '.' && c != '_') return false;
  }
  return true;
}

// net::ParseHttpsUrl's rules (net/url.h), no query; the path without trailing '/'.
absl::StatusOr<HttpsUrl> ParseHttpsUrl(std::string_view url) {
  KSH_ASSIGN_OR_RETURN(net::ParsedHttpsUrl u, net::ParseHttpsUrl(url));
  HttpsUrl out;
  out.host = std::move(u.host);
  out.port = u.port;
  out.path = u.PathPrefix();
  return out;
}

std::string DefaultControlSocketPath() {
  const char* xdg = getenv("XDG_RUNTIME_DIR");
  if (xdg != nullptr && xdg[0] == '/') return std::string(xdg) + "/kshield-kubectl.sock";
  return absl::StrCat("/tmp/kshield-kubectl-", geteuid(), "/kshield-kubectl.sock");
}

namespace {

// yaml-cpp throws; everything below runs inside one try block in ParseDaemonConfig, and these
// helpers turn type mismatches into statuses before any conversion that could throw.
absl::StatusOr<std::string> Scalar(const YAML::Node& node, const std::string& where) {
  if (!node.IsScalar()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": must be a scalar"));
  }
  return node.Scalar();
}

absl::StatusOr<std::string> PathValue(const YAML::Node& node, const std::string& where) {
  KSH_ASSIGN_OR_RETURN(std::string s, Scalar(node, where));
  if (s.empty()) return s;
  if (absl::StartsWith(s, "~/")) {
    const char* home = getenv("HOME");
    if (home == nullptr || home[0] != '/') {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ~ used but $HOME is not set"));
    }
    s = std::string(home) + s.substr(1);
  }
  if (s.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": NUL byte in path"));
  }
  return s;
}

absl::StatusOr<absl::Duration> DurationValue(const YAML::Node& node, const std::string& where,
                                             absl::Duration min, absl::Duration max) {
  KSH_ASSIGN_OR_RETURN(std::string s, Scalar(node, where));
  return ParseDuration(s, {.field = where, .min = min, .max = max});  // a unit is required
}

absl::StatusOr<int> IntValue(const YAML::Node& node, const std::string& where, int min, int max) {
  KSH_ASSIGN_OR_RETURN(std::string s, Scalar(node, where));
  int v = 0;
  if (!absl::SimpleAtoi(s, &v) || v < min || v > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"", s, "\" must be an integer in [", min, ", ", max, "]"));
  }
  return v;
}

absl::StatusOr<RenewBefore> RenewValue(const YAML::Node& node, const std::string& where) {
  KSH_ASSIGN_OR_RETURN(std::string s, Scalar(node, where));
  RenewBefore r;
  absl::string_view pct = AV(s);
  if (absl::ConsumeSuffix(&pct, "%")) {
    double v = 0;
    if (!absl::SimpleAtod(pct, &v) || !std::isfinite(v) || v < 1 || v > 90) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": \"", s, "\" must be a percentage in [1%, 90%]"));
    }
    r.fraction = v / 100;
    return r;
  }
  KSH_ASSIGN_OR_RETURN(absl::Duration d,
                       DurationValue(node, where, absl::Seconds(1), absl::Hours(24 * 30)));
  r.fixed = d;
  return r;
}

// Iterates a mapping, giving each (key, value) to `fn`; refuses non-maps and non-string keys.
template <typename Fn>
absl::Status ForEachKey(const YAML::Node& node, const std::string& where, Fn fn) {
  if (!node.IsMap()) return absl::InvalidArgumentError(absl::StrCat(where, ": must be a mapping"));
  std::set<std::string> seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": keys must be strings"));
    }
    std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": duplicate key \"", key, "\""));
    }
    std::string sub = where.empty() ? key : absl::StrCat(where, ".", key);
    KSH_RETURN_IF_ERROR(fn(key, kv.second, sub));
  }
  return absl::OkStatus();
}

absl::Status Unknown(const std::string& where) {
  return absl::InvalidArgumentError(absl::StrCat("unknown config key \"", where, "\""));
}

absl::Status CheckHttpsUrl(const std::string& url, const std::string& where) {
  absl::StatusOr<HttpsUrl> u = ParseHttpsUrl(url);
  if (!u.ok()) return absl::InvalidArgumentError(absl::StrCat(where, ": ", u.status().message()));
  return absl::OkStatus();
}

absl::StatusOr<OidcClientConfig> ParseOidc(const YAML::Node& node, const std::string& where) {
  OidcClientConfig o;
  KSH_RETURN_IF_ERROR(ForEachKey(node, where, [&](const std::string& key, const YAML::Node& v,
                                                  const std::string& sub) -> absl::Status {
    if (key == "issuer") {
      KSH_ASSIGN_OR_RETURN(o.issuer, Scalar(v, sub));
    } else if (key == "token_endpoint") {
      KSH_ASSIGN_OR_RETURN(o.token_endpoint, Scalar(v, sub));
    } else if (key == "client_id") {
      KSH_ASSIGN_OR_RETURN(o.client_id, Scalar(v, sub));
    } else if (key == "client_secret_file") {
      KSH_ASSIGN_OR_RETURN(o.client_secret_file, PathValue(v, sub));
    } else if (key == "ca_file") {
      KSH_ASSIGN_OR_RETURN(o.ca_file, PathValue(v, sub));
    } else {
      return Unknown(sub);
    }
    return absl::OkStatus();
  }));
  if (o.token_endpoint.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".token_endpoint is required"));
  }
  KSH_RETURN_IF_ERROR(CheckHttpsUrl(o.token_endpoint, where + ".token_endpoint"));
  if (o.client_id.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".client_id is required"));
  }
  return o;
}

absl::StatusOr<ClusterConfig> ParseCluster(const YAML::Node& node, const std::string& where) {
  ClusterConfig c;
  bool have_credential = false, have_oidc = false;
  YAML::Node oidc_node;
  KSH_RETURN_IF_ERROR(ForEachKey(node, where, [&](const std::string& key, const YAML::Node& v,
                                                  const std::string& sub) -> absl::Status {
    if (key == "name") {
      KSH_ASSIGN_OR_RETURN(c.name, Scalar(v, sub));
    } else if (key == "server") {
      KSH_ASSIGN_OR_RETURN(c.server, Scalar(v, sub));
    } else if (key == "ca_file") {
      KSH_ASSIGN_OR_RETURN(c.ca_file, PathValue(v, sub));
    } else if (key == "tls_server_name") {
      KSH_ASSIGN_OR_RETURN(c.tls_server_name, Scalar(v, sub));
    } else if (key == "credential") {
      KSH_ASSIGN_OR_RETURN(std::string s, Scalar(v, sub));
      have_credential = true;
      if (s == "relay") {
        c.credential = CredentialKind::kRelay;
      } else if (s == "imported") {
        c.credential = CredentialKind::kImported;
      } else if (s == "oidc") {
        c.credential = CredentialKind::kOidc;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(sub, ": \"", s, "\" is not one of relay, imported, oidc"));
      }
    } else if (key == "oidc") {
      have_oidc = true;
      oidc_node = v;
    } else if (key == "renew_before") {
      KSH_ASSIGN_OR_RETURN(c.renew_before, RenewValue(v, sub));
    } else {
      return Unknown(sub);
    }
    return absl::OkStatus();
  }));
  if (!IsValidClusterName(c.name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ".name: \"", c.name, "\" must match [a-z0-9][a-z0-9._-]* (at most 63 characters)"));
  }
  if (!have_credential) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".credential is required (relay | imported | oidc)"));
  }
  if (have_oidc != (c.credential == CredentialKind::kOidc)) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, have_oidc ? ".oidc is only allowed with credential: oidc"
                         : ".oidc is required with credential: oidc"));
  }
  if (have_oidc) {
    KSH_ASSIGN_OR_RETURN(c.oidc, ParseOidc(oidc_node, where + ".oidc"));
  }
  if (c.credential != CredentialKind::kImported) {
    // The imported kubeconfig can supply server and CA; the other kinds have no such source.
    if (c.server.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".server is required"));
    }
    if (c.ca_file.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".ca_file is required (the apiserver's CA certificate)"));
    }
  }
  if (!c.server.empty()) KSH_RETURN_IF_ERROR(CheckHttpsUrl(c.server, where + ".server"));
  return c;
}

absl::StatusOr<RelayConfig> ParseRelay(const YAML::Node& node, const std::string& where) {
  RelayConfig r;
  KSH_RETURN_IF_ERROR(ForEachKey(node, where, [&](const std::string& key, const YAML::Node& v,
                                                  const std::string& sub) -> absl::Status {
    if (key == "url") {
      KSH_ASSIGN_OR_RETURN(r.url, Scalar(v, sub));
    } else if (key == "ca_file") {
      KSH_ASSIGN_OR_RETURN(r.ca_file, PathValue(v, sub));
    } else if (key == "client_cert_file") {
      KSH_ASSIGN_OR_RETURN(r.client_cert_file, PathValue(v, sub));
    } else if (key == "client_key_file") {
      KSH_ASSIGN_OR_RETURN(r.client_key_file, PathValue(v, sub));
    } else if (key == "id_token_file") {
      KSH_ASSIGN_OR_RETURN(r.id_token_file, PathValue(v, sub));
    } else if (key == "timeout") {
      KSH_ASSIGN_OR_RETURN(r.timeout,
                           DurationValue(v, sub, absl::Seconds(1), absl::Minutes(5)));
    } else {
      return Unknown(sub);
    }
    return absl::OkStatus();
  }));
  if (r.url.empty()) return absl::InvalidArgumentError(absl::StrCat(where, ".url is required"));
  KSH_RETURN_IF_ERROR(CheckHttpsUrl(r.url, where + ".url"));
  if (r.ca_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".ca_file is required (the relay's CA certificate)"));
  }
  if (r.client_cert_file.empty() != r.client_key_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ".client_cert_file and client_key_file go together"));
  }
  return r;
}

absl::StatusOr<DaemonConfig> ParseRoot(const YAML::Node& root) {
  DaemonConfig c;
  bool have_clusters = false;
  YAML::Node clusters_node, relay_node;
  bool have_relay = false;
  KSH_RETURN_IF_ERROR(ForEachKey(root, "", [&](const std::string& key, const YAML::Node& v,
                                               const std::string& sub) -> absl::Status {
    if (key == "listen_port") {
      KSH_ASSIGN_OR_RETURN(c.listen_port, IntValue(v, sub, 0, 65535));
    } else if (key == "control_socket") {
      KSH_ASSIGN_OR_RETURN(c.control_socket, PathValue(v, sub));
      if (c.control_socket.empty() || c.control_socket[0] != '/') {
        return absl::InvalidArgumentError(absl::StrCat(sub, ": must be an absolute path"));
      }
    } else if (key == "token_ttl") {
      KSH_ASSIGN_OR_RETURN(c.token_ttl,
                           DurationValue(v, sub, absl::Seconds(30), absl::Hours(24)));
    } else if (key == "audit_log") {
      KSH_ASSIGN_OR_RETURN(c.audit_log, PathValue(v, sub));
      if (c.audit_log.empty()) c.audit_log = "-";
    } else if (key == "log_level") {
      KSH_ASSIGN_OR_RETURN(c.log_level, Scalar(v, sub));
      if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warn" &&
          c.log_level != "error") {
        return absl::InvalidArgumentError(
            absl::StrCat(sub, ": \"", c.log_level, "\" is not one of debug, info, warn, error"));
      }
    } else if (key == "proxy_threads") {
      KSH_ASSIGN_OR_RETURN(c.proxy_threads, IntValue(v, sub, 1, 64));
    } else if (key == "tee") {
      KSH_ASSIGN_OR_RETURN(c.tee, Scalar(v, sub));
      if (c.tee != "none" && c.tee != "sim" && c.tee != "auto") {
        return absl::InvalidArgumentError(
            absl::StrCat(sub, ": \"", c.tee, "\" is not one of none, sim, auto"));
      }
    } else if (key == "tee_data_dir") {
      KSH_ASSIGN_OR_RETURN(c.tee_data_dir, PathValue(v, sub));
    } else if (key == "relay") {
      have_relay = true;
      relay_node = v;
    } else if (key == "clusters") {
      have_clusters = true;
      clusters_node = v;
    } else {
      return Unknown(sub);
    }
    return absl::OkStatus();
  }));
  if (have_relay) {
    KSH_ASSIGN_OR_RETURN(RelayConfig r, ParseRelay(relay_node, "relay"));
    c.relay = std::move(r);
  }
  if (!have_clusters || !clusters_node.IsSequence() || clusters_node.size() == 0) {
    return absl::InvalidArgumentError("clusters: a non-empty list of clusters is required");
  }
  if (clusters_node.size() > 256) {
    return absl::InvalidArgumentError("clusters: at most 256 clusters");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < clusters_node.size(); ++i) {
    KSH_ASSIGN_OR_RETURN(ClusterConfig cl,
                         ParseCluster(clusters_node[i], absl::StrCat("clusters[", i, "]")));
    if (!names.insert(cl.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("clusters[", i, "].name: duplicate cluster name \"", cl.name, "\""));
    }
    if (cl.credential == CredentialKind::kRelay && !c.relay.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "clusters[", i, "] (", cl.name, ") uses credential: relay but there is no relay: section"));
    }
    c.clusters.push_back(std::move(cl));
  }
  if (c.control_socket.empty()) c.control_socket = DefaultControlSocketPath();
  return c;
}

}  // namespace

absl::StatusOr<DaemonConfig> ParseDaemonConfig(std::string_view yaml) {
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    if (!root.IsMap()) return absl::InvalidArgumentError("config must be a YAML mapping");
    return ParseRoot(root);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("config is not valid YAML: line ", e.mark.line + 1, ": ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config could not be read: ", e.what()));
  }
}

absl::StatusOr<DaemonConfig> LoadDaemonConfig(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileBounded(path, 1 << 20);
  if (!text.ok()) return Annotate(text.status(), "config");
  absl::StatusOr<DaemonConfig> c = ParseDaemonConfig(*text);
  if (!c.ok()) return Annotate(c.status(), path);
  return c;
}

}  // namespace kshield::kubectl
