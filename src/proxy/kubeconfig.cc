#include "proxy/kubeconfig.h"

#include <openssl/crypto.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base64.h"
#include "common/status.h"

namespace kshield::kubectl {
namespace {

// --- YAML helpers (all called inside ParseKubeconfig's try block) ------------------------------

absl::StatusOr<std::string> ScalarAt(const YAML::Node& map, const char* key,
                                     const std::string& where, bool required) {
  const YAML::Node v = map[key];
  if (!v.IsDefined() || v.IsNull()) {
    if (required) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": \"", key, "\" is required"));
    }
    return std::string();
  }
  if (!v.IsScalar()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": must be a string"));
  }
  return v.Scalar();
}

bool Present(const YAML::Node& map, const char* key) {
  const YAML::Node v = map[key];
  return v.IsDefined() && !v.IsNull();
}

struct ClusterEntry {
  std::string server, ca_pem, tls_server_name, unusable;
};
struct UserEntry {
  std::string client_cert_pem, unusable;
  SecretBytes client_key_pem, token;
};

class Resolver {
 public:
  Resolver(const ImportOptions& options, std::vector<std::string>* files)
      : options_(options), files_(files) {}

  // The content of `path` (relative to base_dir), or an error naming the field and file.
  absl::StatusOr<std::string> Read(const std::string& path, const std::string& field) {
    if (!options_.read_file) {
      return absl::FailedPreconditionError(
          absl::StrCat(field, ": file references are not allowed here (", path, ")"));
    }
    std::string full = path;
    if (!full.empty() && full[0] != '/' && !options_.base_dir.empty()) {
      full = options_.base_dir + "/" + path;
    }
    absl::StatusOr<std::string> content = options_.read_file(full);
    if (!content.ok()) {
      return absl::Status(content.status().code(),
                          absl::StrCat(field, ": cannot read ", full, ": ",
                                       content.status().message()));
    }
    if (std::find(files_->begin(), files_->end(), full) == files_->end()) files_->push_back(full);
    return content;
  }

 private:
  const ImportOptions& options_;
  std::vector<std::string>* files_;
};

bool LooksLikeCertPem(std::string_view s) {
  return absl::StrContains(AV(s), "-----BEGIN CERTIFICATE-----");
}
bool LooksLikeKeyPem(std::string_view s) {
  absl::string_view v = AV(s);
  return absl::StrContains(v, "-----BEGIN ") && absl::StrContains(v, "PRIVATE KEY-----");
}

// data-or-file: "<key>-data" (base64) or "<key>" (a path); both is an error as in kubectl's
// validation ("...-data and ... are both specified").
absl::StatusOr<std::string> DataOrFile(const YAML::Node& m, const char* key, const char* data_key,
                                       const std::string& where, Resolver& files) {
  const bool has_data = Present(m, data_key), has_file = Present(m, key);
  if (has_data && has_file) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": both ", data_key, " and ", key, " are set; keep one"));
  }
  if (has_data) {
    KSH_ASSIGN_OR_RETURN(std::string b64, ScalarAt(m, data_key, where, true));
    absl::StatusOr<std::string> v = DecodeBase64(b64);
    OPENSSL_cleanse(b64.data(), b64.size());
    if (!v.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".", data_key, ": ", v.status().message()));
    }
    return v;
  }
  if (has_file) {
    KSH_ASSIGN_OR_RETURN(std::string path, ScalarAt(m, key, where, true));
    if (path.empty()) return std::string();
    return files.Read(path, absl::StrCat(where, ".", key));
  }
  return std::string();
}

ClusterEntry ParseClusterEntry(const YAML::Node& c, const std::string& where, Resolver& files) {
  ClusterEntry e;
  auto fail = [&](const absl::Status& s) {
    e.unusable = std::string(s.message());
    return std::move(e);
  };
  if (!c.IsMap()) return fail(absl::InvalidArgumentError(where + ": must be a mapping"));
  absl::StatusOr<std::string> server = ScalarAt(c, "server", where, true);
  if (!server.ok()) return fail(server.status());
  if (!absl::StartsWith(*server, "https://")) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat(where, ".server: only https:// servers can be imported")));
  }
  e.server = *server;
  if (Present(c, "insecure-skip-tls-verify")) {
    const YAML::Node v = c["insecure-skip-tls-verify"];
    if (!v.IsScalar() || v.Scalar() != "false") {
      return fail(absl::InvalidArgumentError(
          absl::StrCat(where, ": insecure-skip-tls-verify is not supported (kshield always "
                              "verifies the apiserver)")));
    }
  }
  if (Present(c, "proxy-url")) {
    return fail(absl::InvalidArgumentError(absl::StrCat(where, ": proxy-url is not supported")));
  }
  absl::StatusOr<std::string> tls_name = ScalarAt(c, "tls-server-name", where, false);
  if (!tls_name.ok()) return fail(tls_name.status());
  e.tls_server_name = *tls_name;
  absl::StatusOr<std::string> ca =
      DataOrFile(c, "certificate-authority", "certificate-authority-data", where, files);
  if (!ca.ok()) return fail(ca.status());
  if (!ca->empty() && !LooksLikeCertPem(*ca)) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat(where, ": certificate-authority is not a PEM certificate")));
  }
  e.ca_pem = std::move(*ca);
  return e;
}

UserEntry ParseUserEntry(const YAML::Node& u, const std::string& where, Resolver& files) {
  UserEntry e;
  auto fail = [&](const absl::Status& s) {
    UserEntry bad;
    bad.unusable = std::string(s.message());
    return bad;
  };
  if (!u.IsMap()) return fail(absl::InvalidArgumentError(where + ": must be a mapping"));
  struct Unsupported {
    const char* key;
    const char* why;
  };
  static constexpr Unsupported kUnsupported[] = {
      {"exec", "an exec plugin (its credential is not stored; use credential: relay or oidc)"},
      {"auth-provider", "an auth-provider (use credential: oidc)"},
      {"username", "basic authentication"},
      {"password", "basic authentication"},
      {"as", "impersonation"},
      {"as-uid", "impersonation"},
      {"as-groups", "impersonation"},
      {"as-user-extra", "impersonation"},
  };
  for (const Unsupported& x : kUnsupported) {
    if (Present(u, x.key)) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat(where, ": uses ", x.why, "; it cannot be imported")));
    }
  }
  absl::StatusOr<std::string> cert =
      DataOrFile(u, "client-certificate", "client-certificate-data", where, files);
  if (!cert.ok()) return fail(cert.status());
  absl::StatusOr<std::string> key = DataOrFile(u, "client-key", "client-key-data", where, files);
  if (!key.ok()) return fail(key.status());
  // From here the key text is copied into protected memory and the plain copy cleared.
  SecretBytes key_secret = SecretBytes::CopyFrom(*key);
  OPENSSL_cleanse(key->data(), key->size());
  absl::StatusOr<std::string> token;
  if (Present(u, "token") && Present(u, "tokenFile")) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat(where, ": both token and tokenFile are set; keep one")));
  }
  if (Present(u, "token")) {
    token = ScalarAt(u, "token", where, true);
  } else if (Present(u, "tokenFile")) {
    absl::StatusOr<std::string> path = ScalarAt(u, "tokenFile", where, true);
    if (!path.ok()) return fail(path.status());
    token = files.Read(*path, where + ".tokenFile");
    if (token.ok()) {
      // Token files usually end in a newline.
      while (!token->empty() && (token->back() == '\n' || token->back() == '\r')) {
        token->pop_back();
      }
    }
  } else {
    token = std::string();
  }
  if (!token.ok()) return fail(token.status());
  SecretBytes token_secret = SecretBytes::CopyFrom(*token);
  OPENSSL_cleanse(token->data(), token->size());

  const bool has_cert = !cert->empty(), has_key = !key_secret.empty();
  if (has_cert != has_key) {
    return fail(absl::InvalidArgumentError(absl::StrCat(
        where, has_cert ? ": client-certificate without client-key"
                        : ": client-key without client-certificate")));
  }
  if (has_cert && !token_secret.empty()) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat(where, ": has both a client certificate and a token; keep one")));
  }
  if (!has_cert && token_secret.empty()) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat(where, ": has no client certificate and no token")));
  }
  if (has_cert && !LooksLikeCertPem(*cert)) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat(where, ": client-certificate is not a PEM certificate")));
  }
  if (has_key && !LooksLikeKeyPem(key_secret.UnsafeStringView())) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat(where, ": client-key is not a PEM private key")));
  }
  for (char c : token_secret.UnsafeStringView()) {
    if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7e) {
      return fail(absl::InvalidArgumentError(
          absl::StrCat(where, ": token has characters not allowed in an HTTP header")));
    }
  }
  e.client_cert_pem = std::move(*cert);
  e.client_key_pem = std::move(key_secret);
  e.token = std::move(token_secret);
  return e;
}

// A named list ("clusters", "users", "contexts"): each item {name: ..., <inner>: {...}}.
template <typename Fn>
absl::Status ForEachNamed(const YAML::Node& root, const char* list, const char* inner, Fn fn) {
  const YAML::Node items = root[list];
  if (!items.IsDefined() || items.IsNull()) return absl::OkStatus();
  if (!items.IsSequence()) {
    return absl::InvalidArgumentError(absl::StrCat(list, ": must be a list"));
  }
  if (items.size() > kMaxEntries) {
    return absl::InvalidArgumentError(absl::StrCat(list, ": more than ", kMaxEntries, " entries"));
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < items.size(); ++i) {
    const YAML::Node item = items[i];
    const std::string where = absl::StrCat(list, "[", i, "]");
    if (!item.IsMap()) return absl::InvalidArgumentError(where + ": must be a mapping");
    KSH_ASSIGN_OR_RETURN(std::string name, ScalarAt(item, "name", where, true));
    if (name.empty()) return absl::InvalidArgumentError(where + ": empty name");
    if (!seen.insert(name).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": duplicate name \"", name, "\""));
    }
    const YAML::Node body = item[inner];
    if (!body.IsDefined() || !body.IsMap()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, " (", name, "): \"", inner, "\" must be a mapping"));
    }
    fn(name, body, absl::StrCat(list, "[", name, "].", inner));
  }
  return absl::OkStatus();
}

absl::StatusOr<ParsedKubeconfig> ParseRoot(const YAML::Node& root, const ImportOptions& options) {
  if (!root.IsMap()) return absl::InvalidArgumentError("kubeconfig must be a YAML mapping");
  if (Present(root, "kind")) {
    KSH_ASSIGN_OR_RETURN(std::string kind, ScalarAt(root, "kind", "kubeconfig", false));
    if (kind != "Config") {
      return absl::InvalidArgumentError(
          absl::StrCat("kubeconfig: kind is \"", kind, "\", expected \"Config\""));
    }
  }
  ParsedKubeconfig out;
  Resolver files(options, &out.referenced_files);
  std::map<std::string, ClusterEntry> clusters;
  std::map<std::string, UserEntry> users;
  KSH_RETURN_IF_ERROR(ForEachNamed(root, "clusters", "cluster",
                                   [&](const std::string& name, const YAML::Node& body,
                                       const std::string& where) {
                                     clusters[name] = ParseClusterEntry(body, where, files);
                                   }));
  KSH_RETURN_IF_ERROR(ForEachNamed(root, "users", "user",
                                   [&](const std::string& name, const YAML::Node& body,
                                       const std::string& where) {
                                     users[name] = ParseUserEntry(body, where, files);
                                   }));
  absl::Status context_error;
  KSH_RETURN_IF_ERROR(ForEachNamed(
      root, "contexts", "context",
      [&](const std::string& name, const YAML::Node& body, const std::string& where) {
        if (!context_error.ok()) return;
        KubeconfigContext ctx;
        ctx.context = name;
        absl::StatusOr<std::string> cluster = ScalarAt(body, "cluster", where, true);
        absl::StatusOr<std::string> user = ScalarAt(body, "user", where, true);
        if (!cluster.ok() || !user.ok()) {
          context_error = !cluster.ok() ? cluster.status() : user.status();
          return;
        }
        ctx.cluster = *cluster;
        ctx.user = *user;
        auto c = clusters.find(ctx.cluster);
        auto u = users.find(ctx.user);
        if (c == clusters.end()) {
          ctx.unusable = absl::StrCat("context \"", name, "\": cluster \"", ctx.cluster,
                                      "\" is not in the kubeconfig");
        } else if (u == users.end()) {
          ctx.unusable = absl::StrCat("context \"", name, "\": user \"", ctx.user,
                                      "\" is not in the kubeconfig");
        } else if (!c->second.unusable.empty()) {
          ctx.unusable = c->second.unusable;
        } else if (!u->second.unusable.empty()) {
          ctx.unusable = u->second.unusable;
        } else {
          ctx.server = c->second.server;
          ctx.ca_pem = c->second.ca_pem;
          ctx.tls_server_name = c->second.tls_server_name;
          ctx.client_cert_pem = u->second.client_cert_pem;
          ctx.client_key_pem = u->second.client_key_pem.Clone();
          ctx.token = u->second.token.Clone();
        }
        out.contexts.push_back(std::move(ctx));
      }));
  KSH_RETURN_IF_ERROR(context_error);
  if (Present(root, "current-context")) {
    KSH_ASSIGN_OR_RETURN(out.current_context,
                         ScalarAt(root, "current-context", "kubeconfig", false));
  }
  if (out.contexts.empty()) return absl::InvalidArgumentError("kubeconfig has no contexts");
  return out;
}

}  // namespace

// kubeconfig data fields: standard alphabet, '=' optional, line breaks tolerated.
constexpr Base64Options kKubeconfigBase64{.allow_whitespace = true};

absl::StatusOr<SecretBytes> DecodeBase64Secret(std::string_view text) {
  return Base64DecodeSecret(text, kKubeconfigBase64);
}

absl::StatusOr<std::string> DecodeBase64(std::string_view text) {
  return Base64Decode(text, kKubeconfigBase64);
}

std::string EncodeBase64(std::string_view bytes) { return Base64Encode(bytes); }

absl::StatusOr<ParsedKubeconfig> ParseKubeconfig(std::string_view yaml,
                                                 const ImportOptions& options) {
  if (yaml.size() > kMaxKubeconfigBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("kubeconfig is larger than ", kMaxKubeconfigBytes, " bytes"));
  }
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    return ParseRoot(root, options);
  } catch (const YAML::Exception& e) {
    // e.msg is yaml-cpp's description of the syntax problem; it does not quote the input.
    return absl::InvalidArgumentError(
        absl::StrCat("kubeconfig is not valid YAML: line ", e.mark.line + 1, ": ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("kubeconfig could not be read: ", e.what()));
  }
}

absl::StatusOr<std::vector<ImportTarget>> SelectImports(
    const ParsedKubeconfig& kubeconfig, const std::vector<std::string>& importable,
    const std::map<std::string, std::string>& context_map, std::vector<std::string>* notes) {
  auto is_importable = [&](const std::string& n) {
    return std::find(importable.begin(), importable.end(), n) != importable.end();
  };
  auto find_context = [&](const std::string& n) -> const KubeconfigContext* {
    for (const KubeconfigContext& c : kubeconfig.contexts) {
      if (c.context == n) return &c;
    }
    return nullptr;
  };
  const std::string importable_list =
      importable.empty() ? "(none)" : absl::StrJoin(importable, ", ");
  std::vector<ImportTarget> out;
  std::set<std::string> used;
  if (!context_map.empty()) {
    for (const auto& [context, target] : context_map) {
      const KubeconfigContext* c = find_context(context);
      if (c == nullptr) {
        return absl::NotFoundError(
            absl::StrCat("--cluster-map: context \"", context, "\" is not in the kubeconfig"));
      }
      if (!is_importable(target)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--cluster-map: \"", target,
            "\" is not a configured cluster with credential: imported (those are: ",
            importable_list, ")"));
      }
      if (!c->unusable.empty()) return absl::InvalidArgumentError(c->unusable);
      if (!used.insert(target).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("--cluster-map: two contexts map to cluster \"", target, "\""));
      }
      out.push_back({target, static_cast<size_t>(c - kubeconfig.contexts.data())});
    }
    return out;
  }
  for (size_t i = 0; i < kubeconfig.contexts.size(); ++i) {
    const KubeconfigContext& c = kubeconfig.contexts[i];
    std::string target;
    if (is_importable(c.context)) {
      target = c.context;
    } else if (is_importable(c.cluster)) {
      target = c.cluster;
    } else {
      if (notes) notes->push_back(absl::StrCat("context \"", c.context, "\" skipped: no imported "
                                               "cluster of that name (use --cluster-map)"));
      continue;
    }
    if (!c.unusable.empty()) {
      return absl::InvalidArgumentError(c.unusable);
    }
    if (!used.insert(target).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "two kubeconfig contexts match cluster \"", target, "\"; choose with --cluster-map"));
    }
    out.push_back({target, i});
  }
  if (out.empty()) {
    std::vector<std::string> names;
    for (const KubeconfigContext& c : kubeconfig.contexts) names.push_back(c.context);
    return absl::NotFoundError(absl::StrCat(
        "no kubeconfig context matches a cluster with credential: imported (contexts: ",
        absl::StrJoin(names, ", "), "; importable clusters: ", importable_list,
        "); use --cluster-map CONTEXT=CLUSTER"));
  }
  return out;
}

std::string GenerateKubeconfig(const GeneratedKubeconfigOptions& o) {
  YAML::Emitter y;
  const std::string ca_b64 = EncodeBase64(o.local_ca_pem);
  y << YAML::BeginMap;
  y << YAML::Key << "apiVersion" << YAML::Value << "v1";
  y << YAML::Key << "kind" << YAML::Value << "Config";
  y << YAML::Key << "clusters" << YAML::Value << YAML::BeginSeq;
  for (const std::string& name : o.clusters) {
    y << YAML::BeginMap << YAML::Key << "name" << YAML::Value << o.name_prefix + name;
    y << YAML::Key << "cluster" << YAML::Value << YAML::BeginMap;
    y << YAML::Key << "server" << YAML::Value
      << absl::StrCat("https://127.0.0.1:", o.port, "/clusters/", name);
    if (o.local_ca_file.empty()) {
      y << YAML::Key << "certificate-authority-data" << YAML::Value << ca_b64;
    } else {
      y << YAML::Key << "certificate-authority" << YAML::Value << o.local_ca_file;
    }
    y << YAML::EndMap << YAML::EndMap;
  }
  y << YAML::EndSeq;
  y << YAML::Key << "users" << YAML::Value << YAML::BeginSeq;
  for (const std::string& name : o.clusters) {
    y << YAML::BeginMap << YAML::Key << "name" << YAML::Value << o.name_prefix + "kshield-" + name;
    y << YAML::Key << "user" << YAML::Value << YAML::BeginMap;
    y << YAML::Key << "exec" << YAML::Value << YAML::BeginMap;
    y << YAML::Key << "apiVersion" << YAML::Value << "client.authentication.k8s.io/v1";
    y << YAML::Key << "command" << YAML::Value << o.exec_command;
    y << YAML::Key << "args" << YAML::Value << YAML::BeginSeq << "credential" << "--cluster"
      << name;
    for (const std::string& a : o.extra_args) y << a;
    y << YAML::EndSeq;
    y << YAML::Key << "interactiveMode" << YAML::Value << "Never";
    y << YAML::Key << "provideClusterInfo" << YAML::Value << false;
    y << YAML::EndMap << YAML::EndMap << YAML::EndMap;
  }
  y << YAML::EndSeq;
  y << YAML::Key << "contexts" << YAML::Value << YAML::BeginSeq;
  for (const std::string& name : o.clusters) {
    y << YAML::BeginMap << YAML::Key << "name" << YAML::Value << o.name_prefix + name;
    y << YAML::Key << "context" << YAML::Value << YAML::BeginMap;
    y << YAML::Key << "cluster" << YAML::Value << o.name_prefix + name;
    y << YAML::Key << "user" << YAML::Value << o.name_prefix + "kshield-" + name;
    y << YAML::EndMap << YAML::EndMap;
  }
  y << YAML::EndSeq;
  std::string current = o.current_context;
  if (current.empty() && !o.clusters.empty()) current = o.clusters.front();
  y << YAML::Key << "current-context" << YAML::Value << o.name_prefix + current;
  y << YAML::Key << "preferences" << YAML::Value << YAML::BeginMap << YAML::EndMap;
  y << YAML::EndMap;
  return std::string(y.c_str()) + "\n";
}

}  // namespace kshield::kubectl
