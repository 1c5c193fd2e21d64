// Reading an existing kubeconfig for `kshield-kubectl import` (non-relay mode), and writing the
// secret-free kubeconfig `kshield-kubectl kubeconfig` prints.
//
// Import: the daemon parses the user's kubeconfig text, resolves file references relative to the
// kubeconfig's directory (as kubectl does), decodes the *-data fields, and moves every private key
// and token into SecretBytes. Nothing is written anywhere.
//
//   ImportOptions opts{.base_dir = "/home/alice/.kube", .read_file = ReadUserFile};
//   KSH_ASSIGN_OR_RETURN(ParsedKubeconfig kc, ParseKubeconfig(text, opts));
//   KSH_ASSIGN_OR_RETURN(std::vector<ImportTarget> targets,
//                        SelectImports(kc, {"lab", "prod"}, /*context_map=*/{}, &notes));
//
// The input is untrusted text: structural problems (not YAML, wrong types, missing or duplicate
// names, > kMaxEntries entries) fail the whole parse with InvalidArgument naming the place;
// problems of one cluster / user entry (bad base64, unsupported auth, a missing file) make only
// the contexts using it unusable, with the reason in KubeconfigContext::unusable, because a
// kubeconfig often mixes contexts kshield can import with ones it cannot (exec plugins).
// Error texts name fields and files, never their contents.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/secret.h"

namespace kshield::kubectl {

struct KubeconfigContext {
  std::string context;  // names in the kubeconfig
  std::string cluster;
  std::string user;
  std::string server;           // https URL
  std::string ca_pem;           // empty: none given (the daemon config must supply ca_file)
  std::string tls_server_name;  // cluster.tls-server-name
  std::string client_cert_pem;  // with client_key_pem, or
  SecretBytes client_key_pem;
  SecretBytes token;            // a bearer token
  std::string unusable;         // non-empty: why this context cannot be imported
};

struct ParsedKubeconfig {
  std::vector<KubeconfigContext> contexts;  // in file order
  std::string current_context;
  std::vector<std::string> referenced_files;  // files read through file references
};

struct ImportOptions {
  // Directory relative file references resolve against (the kubeconfig's directory).
  std::string base_dir;
  // Reads a referenced file. Unset: every file reference makes its entry unusable.
  std::function<absl::StatusOr<std::string>(const std::string& path)> read_file;
};

inline constexpr size_t kMaxKubeconfigBytes = 1 << 20;
inline constexpr size_t kMaxEntries = 256;  // per list (clusters, users, contexts)

absl::StatusOr<ParsedKubeconfig> ParseKubeconfig(std::string_view yaml,
                                                 const ImportOptions& options);

struct ImportTarget {
  std::string daemon_cluster;  // a configured `credential: imported` cluster
  size_t context_index;        // into ParsedKubeconfig::contexts
};

// Which kubeconfig contexts go to which daemon clusters.
//  - `context_map` (context → daemon cluster) non-empty: exactly those; each context must exist and
//    be usable, each target must be in `importable`.
//  - empty: a context goes to the importable cluster named like the context, else like the
//    context's kubeconfig cluster; others are skipped, with a line in `notes`.
// Two contexts for one daemon cluster, or no match at all, is an error listing the names.
absl::StatusOr<std::vector<ImportTarget>> SelectImports(
    const ParsedKubeconfig& kubeconfig, const std::vector<std::string>& importable,
    const std::map<std::string, std::string>& context_map, std::vector<std::string>* notes);

// Strict-ish standard base64 (RFC 4648 §4): '=' padding optional, CR / LF / space ignored,
// anything else refused. Into protected memory (private keys) or a plain string.
absl::StatusOr<SecretBytes> DecodeBase64Secret(std::string_view text);
absl::StatusOr<std::string> DecodeBase64(std::string_view text);
std::string EncodeBase64(std::string_view bytes);

// The kubeconfig `kshield-kubectl kubeconfig` prints: per cluster a cluster entry
// (server https://127.0.0.1:<port>/clusters/<name>, certificate-authority-data = the local CA's
// public certificate), a user entry running the exec plugin, and a context. No secret.
struct GeneratedKubeconfigOptions {
  std::vector<std::string> clusters;
  uint16_t port = 0;
  std::string local_ca_pem;
  // Non-empty: `certificate-authority: <path>` (the daemon's public CA file, rewritten at each
  // start, so the kubeconfig survives daemon restarts) instead of certificate-authority-data.
  std::string local_ca_file;
  std::string exec_command;               // absolute path of kshield-kubectl
  std::vector<std::string> extra_args;    // e.g. {"--socket", "/path"} (non-default socket)
  std::string current_context;            // default: the first cluster
  std::string name_prefix;                // prefix for context/user names (default none)
};
std::string GenerateKubeconfig(const GeneratedKubeconfigOptions& options);

}  // namespace kshield::kubectl
