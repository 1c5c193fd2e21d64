#include "relay/config.h"

#include <yaml-cpp/yaml.h>

#include <exception>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/duration.h"
#include "common/file_util.h"
#include "common/status.h"
#include "net/https_client.h"

namespace kshield::relay {
namespace {

constexpr size_t kMaxConfigBytes = 1024 * 1024;

absl::Status KeyError(std::string_view path, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(AV(path), ": ", AV(what)));
}

// One YAML mapping with a fixed set of keys; every access is by a known key, unknown keys are
// reported by Check().
class Section {
 public:
  Section(YAML::Node node, std::string path) : node_(std::move(node)), path_(std::move(path)) {}

  absl::Status Check(std::initializer_list<const char*> known) const {
    if (!node_.IsMap()) return KeyError(path_, "must be a mapping");
    std::set<std::string> names(known.begin(), known.end());
    for (const auto& kv : node_) {
      if (!kv.first.IsScalar()) return KeyError(path_, "has a non-string key");
      const std::string key = kv.first.Scalar();
      if (names.count(key) == 0) {
        return KeyError(Join(key),
                        absl::StrCat("unknown key (known keys: ", absl::StrJoin(known, ", "), ")"));
      }
    }
    return absl::OkStatus();
  }
  bool Has(const char* key) const { return node_[key].IsDefined() && !node_[key].IsNull(); }
  YAML::Node Get(const char* key) const { return node_[key]; }
  const std::string& path() const { return path_; }
  std::string Join(std::string_view key) const {
    return path_.empty() ? std::string(key) : absl::StrCat(path_, ".", AV(key));
  }

  // String value; `required` makes a missing key an error.
  absl::Status String(const char* key, std::string* out, bool required = false) const {
    if (!Has(key)) return required ? KeyError(Join(key), "missing") : absl::OkStatus();
    const YAML::Node v = node_[key];
    if (!v.IsScalar()) return KeyError(Join(key), "must be a string");
    *out = v.Scalar();
    if (required && out->empty()) return KeyError(Join(key), "must not be empty");
    return absl::OkStatus();
  }
  absl::Status Path(const char* key, const std::string& base, std::string* out,
                    bool required = false) const {
    std::string v;
    KSH_RETURN_IF_ERROR(String(key, &v, required));
    if (v.empty()) return absl::OkStatus();
    *out = (v[0] == '/' || base.empty()) ? v : base + "/" + v;
    return absl::OkStatus();
  }
  absl::Status Bool(const char* key, bool* out) const {
    if (!Has(key)) return absl::OkStatus();
    const YAML::Node v = node_[key];
    const std::string s = v.IsScalar() ? v.Scalar() : "";
    if (s == "true" || s == "yes" || s == "on") {
      *out = true;
    } else if (s == "false" || s == "no" || s == "off") {
      *out = false;
    } else {
      return KeyError(Join(key), "must be true or false");
    }
    return absl::OkStatus();
  }
  absl::Status Duration(const char* key, absl::Duration* out) const {
    std::string s;
    KSH_RETURN_IF_ERROR(String(key, &s));
    if (s.empty()) return absl::OkStatus();
    auto d = ParseConfigDuration(s);
    if (!d.ok()) return KeyError(Join(key), SV(d.status().message()));
    *out = *d;
    return absl::OkStatus();
  }
  absl::Status Int(const char* key, int64_t min, int64_t max, int64_t* out) const {
    std::string s;
    KSH_RETURN_IF_ERROR(String(key, &s));
    if (s.empty()) return absl::OkStatus();
    int64_t v = 0;
    if (!absl::SimpleAtoi(s, &v) || v < min || v > max) {
      return KeyError(Join(key), absl::StrCat("must be an integer from ", min, " to ", max));
    }
    *out = v;
    return absl::OkStatus();
  }

 private:
  YAML::Node node_;
  std::string path_;
};

// Where the issuer's keys come from: a file, or the issuer's jwks_uri over HTTPS.
absl::Status ParseJwksSource(const Section& s, const std::string& base, OidcConfig* o) {
  const bool has_file = s.Has("jwks_file");
  const bool has_url = s.Has("jwks_url");
  if (!has_file && !has_url) {
    return KeyError(s.path(), "one of jwks_url and jwks_file is required");
  }
  if (has_file && has_url) {
    return KeyError(s.path(), "jwks_url and jwks_file are exclusive (set exactly one)");
  }
  if (has_file) {
    KSH_RETURN_IF_ERROR(s.Path("jwks_file", base, &o->jwks_file, true));
    for (const char* key : {"jwks_ca_file", "jwks_refresh"}) {
      if (s.Has(key)) return KeyError(s.Join(key), "only applies to jwks_url");
    }
    return absl::OkStatus();
  }
  KSH_RETURN_IF_ERROR(s.String("jwks_url", &o->jwks_url, true));
  // The rules of the client that will fetch it, so a URL accepted here is one it can use.
  if (auto u = net::SplitHttpsUrl(o->jwks_url); !u.ok()) {
    return KeyError(s.Join("jwks_url"),
                    absl::StrCat("must be an https:// URL (", u.status().message(), ")"));
  }
  KSH_RETURN_IF_ERROR(s.Path("jwks_ca_file", base, &o->jwks_ca_file));
  KSH_RETURN_IF_ERROR(s.Duration("jwks_refresh", &o->jwks_refresh));
  if (o->jwks_refresh < kMinJwksRefresh || o->jwks_refresh > kMaxJwksRefresh) {
    return KeyError(s.Join("jwks_refresh"), "must be from 1m to 24h");
  }
  return absl::OkStatus();
}

absl::Status ParseOidc(const Section& s, const std::string& base, OidcConfig* o) {
  KSH_RETURN_IF_ERROR(
      s.Check({"issuer", "audience", "jwks_file", "jwks_url", "jwks_ca_file", "jwks_refresh",
               "username_claim", "groups_claim", "clock_skew", "max_token_bytes"}));
  o->enabled = true;
  KSH_RETURN_IF_ERROR(s.String("issuer", &o->issuer, true));
  KSH_RETURN_IF_ERROR(s.String("audience", &o->audience, true));
  KSH_RETURN_IF_ERROR(ParseJwksSource(s, base, o));
  KSH_RETURN_IF_ERROR(s.String("username_claim", &o->username_claim));
  KSH_RETURN_IF_ERROR(s.String("groups_claim", &o->groups_claim));
  if (o->username_claim.empty()) return KeyError(s.Join("username_claim"), "must not be empty");
  if (o->groups_claim.empty()) return KeyError(s.Join("groups_claim"), "must not be empty");
  KSH_RETURN_IF_ERROR(s.Duration("clock_skew", &o->clock_skew));
  if (o->clock_skew > absl::Minutes(10)) {
    return KeyError(s.Join("clock_skew"), "must be at most 10m");
  }
  int64_t max_token = static_cast<int64_t>(o->max_token_bytes);
  KSH_RETURN_IF_ERROR(s.Int("max_token_bytes", 1024, 64 * 1024, &max_token));
  o->max_token_bytes = static_cast<size_t>(max_token);
  if (o->issuer.rfind("https://", 0) != 0) {
    return KeyError(s.Join("issuer"), "must be an https:// URL (exactly as in the tokens' iss)");
  }
  return absl::OkStatus();
}

absl::Status ParseCluster(const Section& s, const std::string& base, ClusterConfig* c) {
  KSH_RETURN_IF_ERROR(s.Check({"name", "ca", "max_ttl", "require_tee"}));
  KSH_RETURN_IF_ERROR(s.String("name", &c->name, true));
  if (!IsValidClusterName(c->name)) {
    return KeyError(s.Join("name"),
                    "must be 1-63 characters of a-z, 0-9, '-', '.', '_' starting and ending "
                    "with a letter or digit");
  }
  if (!s.Has("ca")) return KeyError(s.Join("ca"), "missing");
  Section ca(s.Get("ca"), s.Join("ca"));
  KSH_RETURN_IF_ERROR(ca.Check({"cert_file", "key_file"}));
  KSH_RETURN_IF_ERROR(ca.Path("cert_file", base, &c->ca_cert_file, true));
  KSH_RETURN_IF_ERROR(ca.Path("key_file", base, &c->ca_key_file, true));
  KSH_RETURN_IF_ERROR(s.Duration("max_ttl", &c->max_ttl));
  if (c->max_ttl < kMinCertificateTtl || c->max_ttl > kMaxCertificateTtl) {
    return KeyError(s.Join("max_ttl"), "must be from 1m to 24h");
  }
  KSH_RETURN_IF_ERROR(s.Bool("require_tee", &c->require_tee));
  return absl::OkStatus();
}

absl::Status ParseRoot(const YAML::Node& root, const std::string& base, RelayConfig* c) {
  Section top(root, "");
  KSH_RETURN_IF_ERROR(
      top.Check({"listen", "tls", "oidc", "root_ca", "clusters", "attestation", "policy_file",
                 "audit_log", "log_level", "threads", "max_connections", "request_timeout"}));
  KSH_RETURN_IF_ERROR(top.String("listen", &c->listen));
  if (c->listen.empty()) return KeyError("listen", "must not be empty");

  if (!top.Has("tls")) return KeyError("tls", "missing (the relay serves HTTPS only)");
  Section tls(top.Get("tls"), "tls");
  KSH_RETURN_IF_ERROR(
      tls.Check({"cert_file", "key_file", "client_ca_file", "client_groups_from_organization"}));
  KSH_RETURN_IF_ERROR(tls.Path("cert_file", base, &c->tls_cert_file, true));
  KSH_RETURN_IF_ERROR(tls.Path("key_file", base, &c->tls_key_file, true));
  KSH_RETURN_IF_ERROR(tls.Path("client_ca_file", base, &c->client_ca_file));
  KSH_RETURN_IF_ERROR(
      tls.Bool("client_groups_from_organization", &c->client_groups_from_organization));
  if (c->client_groups_from_organization && c->client_ca_file.empty()) {
    return KeyError("tls.client_groups_from_organization", "needs tls.client_ca_file");
  }

  if (top.Has("oidc"))
    KSH_RETURN_IF_ERROR(ParseOidc(Section(top.Get("oidc"), "oidc"), base, &c->oidc));
  if (!c->oidc.enabled && c->client_ca_file.empty()) {
    return absl::InvalidArgumentError(
        "no way to authenticate users: configure oidc, tls.client_ca_file, or both");
  }

  if (!top.Has("root_ca")) return KeyError("root_ca", "missing");
  Section root_ca(top.Get("root_ca"), "root_ca");
  KSH_RETURN_IF_ERROR(root_ca.Check({"cert_file"}));
  KSH_RETURN_IF_ERROR(root_ca.Path("cert_file", base, &c->root_ca_file, true));

  const YAML::Node clusters = top.Get("clusters");
  if (!clusters.IsDefined() || !clusters.IsSequence() || clusters.size() == 0) {
    return KeyError("clusters", "must be a non-empty list");
  }
  std::set<std::string> names;
  for (size_t i = 0; i < clusters.size(); ++i) {
    ClusterConfig cluster;
    KSH_RETURN_IF_ERROR(
        ParseCluster(Section(clusters[i], absl::StrCat("clusters[", i, "]")), base, &cluster));
    if (!names.insert(cluster.name).second) {
      return KeyError(absl::StrCat("clusters[", i, "].name"),
                      absl::StrCat("\"", cluster.name, "\" appears twice"));
    }
    c->clusters.push_back(std::move(cluster));
  }

  if (top.Has("attestation")) {
    Section att(top.Get("attestation"), "attestation");
    KSH_RETURN_IF_ERROR(att.Check({"root_file", "policy_file"}));
    KSH_RETURN_IF_ERROR(att.Path("root_file", base, &c->attestation_root_file, true));
    KSH_RETURN_IF_ERROR(att.Path("policy_file", base, &c->attestation_policy_file, true));
  }
  for (const ClusterConfig& cluster : c->clusters) {
    if (cluster.require_tee && c->attestation_root_file.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cluster \"", cluster.name,
          "\" has require_tee: true but there is no attestation section (root_file, policy_file)"));
    }
  }

  KSH_RETURN_IF_ERROR(top.Path("policy_file", base, &c->policy_file, true));
  std::string audit;
  KSH_RETURN_IF_ERROR(top.String("audit_log", &audit));
  if (!audit.empty())
    c->audit_log = audit == "-" ? "-" : (audit[0] == '/' ? audit : base + "/" + audit);
  KSH_RETURN_IF_ERROR(top.String("log_level", &c->log_level));
  int64_t threads = c->threads;
  KSH_RETURN_IF_ERROR(top.Int("threads", 1, 64, &threads));
  c->threads = static_cast<int>(threads);
  int64_t max_conn = static_cast<int64_t>(c->max_connections);
  KSH_RETURN_IF_ERROR(top.Int("max_connections", 1, 100000, &max_conn));
  c->max_connections = static_cast<size_t>(max_conn);
  KSH_RETURN_IF_ERROR(top.Duration("request_timeout", &c->request_timeout));
  if (c->request_timeout > absl::Minutes(5)) {
    return KeyError("request_timeout", "must be at most 5m");
  }
  return absl::OkStatus();
}

}  // namespace

bool IsValidClusterName(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front()) || !alnum(name.back())) return false;
  for (char c : name) {
    if (!alnum(c) && c != '-' && c != '.' && c != '_') return false;
  }
  return true;
}

absl::StatusOr<absl::Duration> ParseConfigDuration(std::string_view text) {
  // Positive; a bare number is seconds. The caller (Section::Duration) names the key.
  return ParseDuration(text, {.min = absl::Nanoseconds(1),
                              .allow_bare_number = true,
                              .bare_number_unit = absl::Seconds(1)});
}

absl::StatusOr<RelayConfig> ParseRelayConfig(std::string_view yaml, const std::string& base_dir) {
  if (yaml.size() > kMaxConfigBytes) return absl::InvalidArgumentError("config larger than 1 MiB");
  RelayConfig config;
  // yaml-cpp throws; nothing may escape (STYLE.md).
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    if (!root.IsMap()) return absl::InvalidArgumentError("config must be a YAML mapping");
    KSH_RETURN_IF_ERROR(ParseRoot(root, base_dir, &config));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("config is not valid YAML: line ", e.mark.line + 1, ": ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", e.what()));
  }
  return config;
}

absl::StatusOr<RelayConfig> LoadRelayConfigFile(const std::string& path) {
  auto text = ReadFileBounded(path, kMaxConfigBytes);
  if (!text.ok()) return Annotate(text.status(), "config file " + path);
  const size_t slash = path.rfind('/');
  const std::string base =
      slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  auto config = ParseRelayConfig(*text, base);
  if (!config.ok()) return Annotate(config.status(), path);
  return config;
}

}  // namespace kshield::relay
