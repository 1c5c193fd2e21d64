// Test fixture helpers for the kubectl tests: a cluster PKI made with crypto/x509.h, a running
// TestApiserver, kubeconfig files, and running the real kubectl with an isolated HOME.
//
//   auto pki = MakeClusterPki("east");                 // CA + server cert for 127.0.0.1
//   auto api = StartApiserver(*pki, "east");            // TestApiserver on a free port
//   auto alice = MakeClientCert(pki->ca, "alice", {"dev"});
//   WriteKubeconfig(dir.Sub("kubeconfig"), {{.name = "east", .server = api->url(),
//                   .ca_pem = pki->ca.certificate_pem, .client_cert_pem = alice->cert_pem,
//                   .client_key_pem = alice->key_pem.UnsafeStringView()}});
//   std::string out;
//   int rc = RunKubectl(dir.path(), dir.Sub("kubeconfig"), "get secrets -n default", &out);
//
// Header-only; test code only (it writes client keys into test temp dirs on purpose).
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/secret.h"
#include "common/status.h"
#include "crypto/x509.h"
#include "kubectl/test_apiserver.h"
#include "support/process.h"

namespace kshield::testing {

inline constexpr char kKubectl[] = "/usr/bin/kubectl";

// True when the real kubectl is installed (tests GTEST_SKIP() otherwise).
inline bool HaveKubectl() { return access(kKubectl, X_OK) == 0; }

struct ClusterPki {
  crypto::CertificateAuthority ca;  // the cluster CA: signs the server and client certificates
  std::string server_cert_pem;      // CN <name>-apiserver, SAN IP 127.0.0.1 + DNS localhost
  SecretBytes server_key_pem;
};

inline absl::StatusOr<ClusterPki> MakeClusterPki(std::string_view name,
                                                  absl::Duration validity = absl::Hours(2)) {
  ClusterPki pki;
  KSH_ASSIGN_OR_RETURN(pki.ca, crypto::MakeSelfSignedCa({.common_name = absl::StrCat(
                                                              AV(name), "-cluster-ca"),
                                                          .validity = validity}));
  KSH_ASSIGN_OR_RETURN(crypto::KeyPair kp, crypto::GenerateEcP256Key());
  KSH_ASSIGN_OR_RETURN(pki.server_cert_pem,
                       crypto::IssueCertificate(pki.ca, kp.public_key_pem,
                                                {.common_name = absl::StrCat(AV(name), "-apiserver"),
                                                 .validity = validity,
                                                 .dns_names = {"localhost"},
                                                 .ip_addresses = {"127.0.0.1"},
                                                 .server_auth = true}));
  pki.server_key_pem = std::move(kp.private_key_pem);
  return pki;
}

struct ClientCert {
  std::string cert_pem;
  SecretBytes key_pem;
};

// A client certificate CN=user, O=groups, signed by `ca`.
inline absl::StatusOr<ClientCert> MakeClientCert(const crypto::CertificateAuthority& ca,
                                                 std::string_view user,
                                                 std::vector<std::string> groups = {},
                                                 absl::Duration validity = absl::Hours(1)) {
  KSH_ASSIGN_OR_RETURN(crypto::KeyPair kp, crypto::GenerateEcP256Key());
  ClientCert out;
  KSH_ASSIGN_OR_RETURN(out.cert_pem, crypto::IssueCertificate(ca, kp.public_key_pem,
                                                              {.common_name = std::string(user),
                                                               .organizations = std::move(groups),
                                                               .validity = validity,
                                                               .client_auth = true}));
  out.key_pem = std::move(kp.private_key_pem);
  return out;
}

// A TestApiserver for `pki`, requiring client certificates from pki.ca (plus optional tokens).
inline absl::StatusOr<std::unique_ptr<TestApiserver>> StartApiserver(
    const ClusterPki& pki, std::string_view name, std::vector<std::string> bearer_tokens = {},
    std::chrono::milliseconds watch_interval = std::chrono::milliseconds(300)) {
  TestApiserverOptions o;
  o.server_cert_pem = pki.server_cert_pem;
  o.server_key_pem = pki.server_key_pem.Clone();
  o.client_ca_pem = pki.ca.certificate_pem;
  o.bearer_tokens = std::move(bearer_tokens);
  o.name = std::string(name);
  o.watch_event_interval = watch_interval;
  return TestApiserver::Start(std::move(o));
}

// One cluster/user/context of a kubeconfig. With no client cert and no token (and no exec), the
// user entry is empty (kubectl then sends no credential).
struct KubeconfigEntry {
  std::string name;  // used for the cluster, the user and the context
  std::string server;
  std::string ca_pem;
  std::string client_cert_pem;
  std::string_view client_key_pem;  // borrowed; written into the file (test temp dir only)
  std::string token;
  std::string namespace_name;
};

// Writes a kubeconfig (0600) whose current-context is the first entry.
inline absl::Status WriteKubeconfig(const std::string& path,
                                    const std::vector<KubeconfigEntry>& entries) {
  auto b64 = [](std::string_view s) { return absl::Base64Escape(AV(s)); };
  std::string y = "apiVersion: v1\nkind: Config\nclusters:\n";
  for (const auto& e : entries) {
    absl::StrAppend(&y, "- name: ", e.name, "\n  cluster:\n    server: ", e.server, "\n");
    if (!e.ca_pem.empty()) {
      absl::StrAppend(&y, "    certificate-authority-data: ", b64(e.ca_pem), "\n");
    }
  }
  y += "users:\n";
  for (const auto& e : entries) {
    absl::StrAppend(&y, "- name: ", e.name, "\n  user:");
    if (e.client_cert_pem.empty() && e.token.empty()) {
      y += " {}\n";
      continue;
    }
    y += "\n";
    if (!e.client_cert_pem.empty()) {
      absl::StrAppend(&y, "    client-certificate-data: ", b64(e.client_cert_pem), "\n");
      absl::StrAppend(&y, "    client-key-data: ", b64(e.client_key_pem), "\n");
    }
    if (!e.token.empty()) absl::StrAppend(&y, "    token: ", e.token, "\n");
  }
  y += "contexts:\n";
  for (const auto& e : entries) {
    absl::StrAppend(&y, "- name: ", e.name, "\n  context:\n    cluster: ", e.name,
                    "\n    user: ", e.name, "\n");
    if (!e.namespace_name.empty()) absl::StrAppend(&y, "    namespace: ", e.namespace_name, "\n");
  }
  if (!entries.empty()) absl::StrAppend(&y, "current-context: ", entries.front().name, "\n");
  std::ofstream f(path, std::ios::trunc);
  if (!f) return absl::InternalError("cannot write kubeconfig " + path);
  f << y;
  f.close();
  chmod(path.c_str(), 0600);
  return f ? absl::OkStatus() : absl::InternalError("cannot write kubeconfig " + path);
}

// The environment prefix for a kubectl run: an isolated HOME (discovery / http caches land in
// `home`/.kube/cache), no inherited KUBECONFIG, and an optional XDG_RUNTIME_DIR (where exec
// plugins such as kshield-kubectl find their socket by default).
inline std::string KubectlEnv(const std::string& home, const std::string& xdg_runtime_dir = "") {
  std::string env = absl::StrCat("env -u KUBECONFIG HOME='", home, "' ");
  if (!xdg_runtime_dir.empty()) absl::StrAppend(&env, "XDG_RUNTIME_DIR='", xdg_runtime_dir, "' ");
  return env;
}

// Runs `kubectl --kubeconfig <kubeconfig> <args>` (args is shell text) with HOME=`home`; returns
// its exit status and stdout+stderr in `out`. A request timeout bounds every call.
inline int RunKubectl(const std::string& home, const std::string& kubeconfig,
                      const std::string& args, std::string* out, const std::string& stdin_text = "",
                      bool with_stdin = false, const std::string& xdg_runtime_dir = "") {
  std::string cmd = KubectlEnv(home, xdg_runtime_dir) + kKubectl + " --kubeconfig '" + kubeconfig +
                    "' --request-timeout=30s " + args;
  if (with_stdin) {
    cmd = "printf '%s' '" + stdin_text + "' | " + cmd;
  } else {
    cmd += " </dev/null";
  }
  return RunCommand(cmd, out);
}

// Headers of a recorded request named `name` (case-insensitive).
inline std::vector<std::string> HeaderValues(const RecordedRequest& r, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [k, v] : r.headers) {
    if (k.size() == name.size() &&
        std::equal(k.begin(), k.end(), name.begin(),
                   [](char a, char b) { return std::tolower(a) == std::tolower(b); })) {
      out.push_back(v);
    }
  }
  return out;
}

}  // namespace kshield::testing
