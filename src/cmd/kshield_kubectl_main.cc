// kshield-kubectl: the per-user secure kubectl proxy (docs/kubectl.md).
//
//   kshield-kubectl daemon --config FILE          run the proxy + control socket (foreground)
//   kshield-kubectl kubeconfig [--out FILE]       print the secret-free kubeconfig
//   kshield-kubectl credential --cluster NAME     kubectl exec credential plugin
//   kshield-kubectl login --cluster NAME          enrol with the relay now (or give an OIDC token)
//   kshield-kubectl import FILE                   move a kubeconfig's credentials into the daemon
//   kshield-kubectl status [-o table|json]
//
// Exit codes: 0 ok, 1 failed, 2 usage error, 3 the daemon is not reachable.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <openssl/crypto.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "common/hardening.h"
#include "common/log.h"
#include "common/status.h"
#include "proxy/config.h"
#include "proxy/control.h"
#include "proxy/daemon.h"
#include "proxy/kubeconfig.h"

namespace {

using kshield::kubectl::CallControl;
using nlohmann::json;

constexpr int kExitOk = 0, kExitFailed = 1, kExitUsage = 2, kExitUnreachable = 3;

int Fail(std::string_view what, const absl::Status& s) {
  std::fprintf(stderr, "kshield-kubectl: %.*s: %s\n", static_cast<int>(what.size()), what.data(),
               std::string(s.message()).c_str());
  if (s.code() == absl::StatusCode::kUnavailable) return kExitUnreachable;
  return kExitFailed;
}

std::string SelfPath() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "kshield-kubectl";
  return std::string(buf, static_cast<size_t>(n));
}

std::string Dirname(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Reads all of stdin (bounded), trimmed: a token pasted or piped in.
absl::StatusOr<std::string> ReadStdinToken() {
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError("cannot read stdin");
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    OPENSSL_cleanse(buf, sizeof(buf));
    if (out.size() > (64 << 10)) {
      OPENSSL_cleanse(out.data(), out.size());
      return absl::InvalidArgumentError("stdin: more than 64 KiB");
    }
  }
  size_t b = 0, e = out.size();
  while (b < e && absl::ascii_isspace(static_cast<unsigned char>(out[b]))) ++b;
  while (e > b && absl::ascii_isspace(static_cast<unsigned char>(out[e - 1]))) --e;
  std::string token = out.substr(b, e - b);
  OPENSSL_cleanse(out.data(), out.size());
  if (token.empty()) return absl::InvalidArgumentError("stdin: no token");
  return token;
}

// Overwrites `path` with zeros (its current size), fsyncs, then unlinks it.
absl::Status OverwriteAndDelete(const std::string& path) {
  int fd = open(path.c_str(), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open ", path, ": ", kshield::ErrnoString(errno)));
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a regular file"));
  }
  const std::string zeros(64 << 10, '\0');
  off_t left = st.st_size;
  absl::Status s;
  while (left > 0 && s.ok()) {
    const size_t n = static_cast<size_t>(std::min<off_t>(left, static_cast<off_t>(zeros.size())));
    s = kshield::WriteAll(fd, std::string_view(zeros.data(), n));
    left -= static_cast<off_t>(n);
  }
  if (s.ok() && fsync(fd) != 0) {
    s = absl::InternalError(absl::StrCat("fsync ", path, ": ", kshield::ErrnoString(errno)));
  }
  close(fd);
  if (!s.ok()) return s;
  if (unlink(path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("unlink ", path, ": ", kshield::ErrnoString(errno)));
  }
  return absl::OkStatus();
}

std::string JsonString(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// --- subcommands ---------------------------------------------------------------------------------

int RunDaemon(const std::string& config_file, const std::string& socket_flag,
              const std::string& log_level) {
  kshield::log::SetComponent("kshield-kubectl");
  absl::StatusOr<kshield::kubectl::DaemonConfig> config =
      kshield::kubectl::LoadDaemonConfig(config_file);
  if (!config.ok()) return Fail("config", config.status());
  if (!socket_flag.empty()) config->control_socket = socket_flag;
  std::string level = log_level.empty() ? config->log_level : log_level;
  absl::StatusOr<kshield::log::Level> lvl = kshield::log::ParseLevel(level);
  if (!lvl.ok()) return Fail("--log-level", lvl.status());
  kshield::log::SetLevel(*lvl);

  kshield::HardeningReport report;
  absl::Status hardened = kshield::HardenProcess(&report);
  if (!hardened.ok()) {
    kshield::log::Warn("daemon.hardening_incomplete",
                       {{"reason", std::string(hardened.message())}});
  }
  // Signals are taken synchronously by this thread; every thread started below inherits the mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<std::unique_ptr<kshield::kubectl::Daemon>> daemon =
      kshield::kubectl::Daemon::Start(*std::move(config));
  if (!daemon.ok()) return Fail("daemon", daemon.status());
  int sig = 0;
  sigwait(&set, &sig);
  kshield::log::Info("daemon.signal", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  (*daemon)->Stop();
  return kExitOk;
}

int RunCredential(const std::string& socket, const std::string& cluster) {
  // KUBERNETES_EXEC_INFO tells which ExecCredential version kubectl wants; we speak v1 (and
  // answer v1beta1 in the same shape when asked).
  std::string api_version = "client.authentication.k8s.io/v1";
  if (const char* info = getenv("KUBERNETES_EXEC_INFO"); info != nullptr && *info != '\0') {
    json j = json::parse(info, nullptr, false);
    if (j.is_object()) {
      const std::string v = JsonString(j, "apiVersion");
      if (v == "client.authentication.k8s.io/v1beta1" || v == "client.authentication.k8s.io/v1") {
        api_version = v;
      } else if (!v.empty()) {
        std::fprintf(stderr, "kshield-kubectl: KUBERNETES_EXEC_INFO asks for %s; only "
                             "client.authentication.k8s.io/v1 and v1beta1 are supported\n",
                     v.c_str());
        return kExitFailed;
      }
    }
  }
  absl::StatusOr<json> reply =
      CallControl(socket, {{"op", "token"}, {"cluster", cluster}}, absl::Seconds(10));
  if (!reply.ok()) return Fail("credential", reply.status());
  absl::Time expires;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, JsonString(*reply, "expires"), &expires, &err)) {
    return Fail("credential", absl::InternalError("daemon sent a bad expiry"));
  }
  // Hand kubectl a slightly earlier expiry, so it asks again before the daemon would refuse.
  absl::Duration left = expires - absl::Now();
  absl::Time reported = expires - std::min(absl::Seconds(60), left / 10);
  json out = {{"apiVersion", api_version},
              {"kind", "ExecCredential"},
              {"status",
               {{"token", JsonString(*reply, "token")},
                {"expirationTimestamp", kshield::kubectl::Rfc3339(reported)}}}};
  std::string text = out.dump();
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  OPENSSL_cleanse(text.data(), text.size());
  kshield::kubectl::ScrubJson(&out);
  kshield::kubectl::ScrubJson(&*reply);
  return kExitOk;
}

int RunKubeconfig(const std::string& socket, bool socket_is_default, const std::string& out_file,
                  bool ca_path, const std::string& context) {
  absl::StatusOr<json> reply = CallControl(socket, {{"op", "kubeconfig"}}, absl::Seconds(10));
  if (!reply.ok()) return Fail("kubeconfig", reply.status());
  kshield::kubectl::GeneratedKubeconfigOptions o;
  if (!(*reply)["clusters"].is_array() || !(*reply)["port"].is_number()) {
    return Fail("kubeconfig", absl::InternalError("daemon sent a malformed reply"));
  }
  for (const auto& c : (*reply)["clusters"]) {
    if (c.is_string()) o.clusters.push_back(c.get<std::string>());
  }
  o.port = (*reply)["port"].get<uint16_t>();
  o.local_ca_pem = JsonString(*reply, "ca_pem");
  if (ca_path) o.local_ca_file = JsonString(*reply, "ca_file");
  o.exec_command = SelfPath();
  if (!socket_is_default) o.extra_args = {"--socket", socket};
  if (!context.empty()) {
    if (std::find(o.clusters.begin(), o.clusters.end(), context) == o.clusters.end()) {
      return Fail("kubeconfig", absl::InvalidArgumentError(
                                    absl::StrCat("--context ", context, " is not a cluster")));
    }
    o.current_context = context;
  }
  const std::string text = kshield::kubectl::GenerateKubeconfig(o);
  if (out_file.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    return kExitOk;
  }
  absl::Status s = kshield::WriteFileAtomic(out_file, text, 0600);
  if (!s.ok()) return Fail("kubeconfig", s);
  std::fprintf(stderr, "wrote %s (%zu clusters)\n", out_file.c_str(), o.clusters.size());
  return kExitOk;
}

int RunLogin(const std::string& socket, const std::string& cluster, bool id_token_stdin,
             const std::string& id_token_file, bool refresh_token_stdin) {
  json req = {{"op", "login"}, {"cluster", cluster}};
  if (id_token_stdin || refresh_token_stdin) {
    absl::StatusOr<std::string> t = ReadStdinToken();
    if (!t.ok()) return Fail("login", t.status());
    req[id_token_stdin ? "id_token" : "refresh_token"] = *t;
    OPENSSL_cleanse(t->data(), t->size());
  } else if (!id_token_file.empty()) {
    absl::StatusOr<std::string> t = kshield::ReadFileBounded(id_token_file, 64 << 10);
    if (!t.ok()) return Fail("login", t.status());
    std::string v(absl::StripAsciiWhitespace(*t));
    OPENSSL_cleanse(t->data(), t->size());
    req["id_token"] = v;
    OPENSSL_cleanse(v.data(), v.size());
  }
  absl::StatusOr<json> reply = CallControl(socket, req, absl::Seconds(120));
  kshield::kubectl::ScrubJson(&req);
  if (!reply.ok()) return Fail("login", reply.status());
  std::vector<std::string> groups;
  if ((*reply)["groups"].is_array()) {
    for (const auto& g : (*reply)["groups"]) {
      if (g.is_string()) groups.push_back(g.get<std::string>());
    }
  }
  std::printf("logged in to %s", cluster.c_str());
  if (!JsonString(*reply, "user").empty()) {
    std::printf(" as %s", JsonString(*reply, "user").c_str());
  }
  if (!groups.empty()) std::printf(" (groups: %s)", absl::StrJoin(groups, ", ").c_str());
  std::printf("; credential valid until %s", JsonString(*reply, "not_after").c_str());
  if (!JsonString(*reply, "next_renewal").empty()) {
    std::printf(", renewal at %s", JsonString(*reply, "next_renewal").c_str());
  }
  std::printf("\n");
  return kExitOk;
}

int RunImport(const std::string& socket, const std::string& file,
              const std::vector<std::string>& cluster_map, bool del, bool keep) {
  std::string text;
  std::string base_dir;
  const bool from_stdin = file == "-";
  if (from_stdin) {
    char buf[16384];
    ssize_t n;
    while ((n = read(STDIN_FILENO, buf, sizeof(buf))) > 0) {
      text.append(buf, static_cast<size_t>(n));
      if (text.size() > kshield::kubectl::kMaxKubeconfigBytes) break;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    char cwd[4096];
    if (getcwd(cwd, sizeof(cwd)) != nullptr) base_dir = cwd;
  } else {
    absl::StatusOr<std::string> t =
        kshield::ReadFileBounded(file, kshield::kubectl::kMaxKubeconfigBytes);
    if (!t.ok()) return Fail("import", t.status());
    text = std::move(*t);
    char* real = realpath(file.c_str(), nullptr);
    base_dir = Dirname(real != nullptr ? std::string(real) : file);
    free(real);
  }
  json map = json::object();
  for (const std::string& m : cluster_map) {
    size_t eq = m.rfind('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == m.size()) {
      OPENSSL_cleanse(text.data(), text.size());
      std::fprintf(stderr, "kshield-kubectl: import: --cluster-map takes CONTEXT=CLUSTER, got "
                           "\"%s\"\n", m.c_str());
      return kExitUsage;
    }
    map[m.substr(0, eq)] = m.substr(eq + 1);
  }
  json req = {{"op", "import"}, {"kubeconfig", text}, {"base_dir", base_dir}, {"cluster_map", map}};
  OPENSSL_cleanse(text.data(), text.size());
  absl::StatusOr<json> reply = CallControl(socket, req, absl::Seconds(30));
  kshield::kubectl::ScrubJson(&req);
  if (!reply.ok()) return Fail("import", reply.status());
  for (const auto& item : (*reply)["imported"]) {
    std::printf("imported context %s -> cluster %s (%s%s%s)\n", JsonString(item, "context").c_str(),
                JsonString(item, "cluster").c_str(), JsonString(item, "kind").c_str(),
                JsonString(item, "user").empty() ? ""
                                                 : (", user " + JsonString(item, "user")).c_str(),
                JsonString(item, "not_after").empty()
                    ? ""
                    : (", valid until " + JsonString(item, "not_after")).c_str());
  }
  for (const auto& n : (*reply)["notes"]) {
    if (n.is_string()) std::printf("note: %s\n", n.get<std::string>().c_str());
  }
  std::vector<std::string> refs;
  for (const auto& f : (*reply)["referenced_files"]) {
    if (f.is_string()) refs.push_back(f.get<std::string>());
  }
  if (from_stdin) return kExitOk;
  bool do_delete = del;
  if (!del && !keep) {
    if (isatty(STDIN_FILENO) && isatty(STDERR_FILENO)) {
      std::fprintf(stderr,
                   "The credentials are now held in the daemon's memory only.\n"
                   "Overwrite %s with zeros and delete it? [y/N] ",
                   file.c_str());
      std::fflush(stderr);
      std::string answer;
      std::getline(std::cin, answer);
      answer = absl::AsciiStrToLower(absl::StripAsciiWhitespace(answer));
      do_delete = answer == "y" || answer == "yes";
    } else {
      std::printf("note: not a terminal; pass --delete to overwrite and delete %s, or --keep\n",
                  file.c_str());
    }
  }
  if (do_delete) {
    absl::Status s = OverwriteAndDelete(file);
    if (!s.ok()) return Fail("import: delete", s);
    std::printf("overwrote and deleted %s\n", file.c_str());
  } else {
    std::printf("kept %s\n", file.c_str());
  }
  if (!refs.empty()) {
    std::printf("note: the kubeconfig referenced these files, which were read but not deleted: "
                "%s\n",
                absl::StrJoin(refs, ", ").c_str());
  }
  return kExitOk;
}

int RunStatus(const std::string& socket, const std::string& output) {
  absl::StatusOr<json> reply = CallControl(socket, {{"op", "status"}}, absl::Seconds(10));
  if (!reply.ok()) return Fail("status", reply.status());
  reply->erase("ok");
  if (output == "json") {
    std::printf("%s\n", reply->dump(2).c_str());
    return kExitOk;
  }
  std::printf("daemon: user %s, https://127.0.0.1:%d, socket %s, tee %s, live tokens %d\n",
              JsonString(*reply, "user").c_str(), (*reply)["port"].get<int>(),
              JsonString(*reply, "control_socket").c_str(), JsonString(*reply, "tee").c_str(),
              (*reply)["live_tokens"].get<int>());
  std::printf("%-20s %-9s %-16s %-20s %-21s %-21s %s\n", "CLUSTER", "KIND", "STATE", "USER",
              "NOT_AFTER", "NEXT_RENEWAL", "LAST_ERROR");
  for (const auto& c : (*reply)["clusters"]) {
    auto dash = [](std::string s) { return s.empty() ? std::string("-") : s; };
    std::printf("%-20s %-9s %-16s %-20s %-21s %-21s %s\n", JsonString(c, "name").c_str(),
                JsonString(c, "credential").c_str(), JsonString(c, "state").c_str(),
                dash(JsonString(c, "user")).c_str(), dash(JsonString(c, "not_after")).c_str(),
                dash(JsonString(c, "next_renewal")).c_str(),
                dash(JsonString(c, "last_error")).c_str());
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil is built with mutex deadlock detection on: every absl::Mutex lock updates a
  // process-wide cycle graph under a global lock (~3.5x a lock's cost, and it serialises threads
  // that lock different mutexes). Tests keep it on; the binaries turn it off, like kshield-kms.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{
      "kshield-kubectl — a per-user kubectl proxy that keeps cluster credentials in memory only.\n"
      "See docs/kubectl.md. Exit codes: 0 ok, 1 failed, 2 usage error, 3 daemon not reachable."};
  app.require_subcommand(1);
  app.fallthrough();  // global options (--socket) also after the subcommand, as the exec plugin passes them
  std::string socket;
  app.add_option("--socket", socket,
                 "control socket of the daemon [$XDG_RUNTIME_DIR/kshield-kubectl.sock, else "
                 "/tmp/kshield-kubectl-<uid>/kshield-kubectl.sock]");

  std::string config_file, log_level;
  CLI::App* daemon = app.add_subcommand(
      "daemon", "run the proxy and the control socket in the foreground (SIGTERM/SIGINT stop it)");
  daemon->add_option("--config", config_file, "daemon config YAML (docs/kubectl.md)")->required();
  daemon->add_option("--log-level", log_level, "debug | info | warn | error [config, else info]");

  std::string cluster;
  CLI::App* credential = app.add_subcommand(
      "credential", "kubectl exec credential plugin: print an ExecCredential with a local token");
  credential->add_option("--cluster", cluster, "cluster name")->required();

  std::string out_file, context;
  bool ca_path = false;
  CLI::App* kubeconfig = app.add_subcommand(
      "kubeconfig", "print a kubeconfig for every cluster of the daemon (no secret in it)");
  kubeconfig->add_option("--out", out_file, "write to FILE (mode 0600) instead of stdout");
  kubeconfig->add_flag("--ca-path", ca_path,
                       "reference the daemon's CA file instead of embedding the certificate, so "
                       "the kubeconfig survives daemon restarts");
  kubeconfig->add_option("--context", context, "current-context [first cluster]");

  bool id_token_stdin = false, refresh_token_stdin = false;
  std::string id_token_file;
  CLI::App* login = app.add_subcommand(
      "login", "relay clusters: enrol now (new key in daemon memory, CSR to the relay); oidc "
               "clusters: hand the daemon a refresh token");
  login->add_option("--cluster", cluster, "cluster name")->required();
  auto* its = login->add_flag("--id-token-stdin", id_token_stdin,
                              "relay: read an OIDC ID token for the relay from stdin");
  auto* itf = login->add_option("--id-token-file", id_token_file,
                                "relay: read an OIDC ID token for the relay from FILE");
  auto* rts = login->add_flag("--refresh-token-stdin", refresh_token_stdin,
                              "oidc clusters: read the refresh token from stdin");
  its->excludes(itf)->excludes(rts);
  itf->excludes(rts);

  std::string import_file;
  std::vector<std::string> cluster_map;
  bool del = false, keep = false, yes = false;
  CLI::App* import = app.add_subcommand(
      "import", "load a kubeconfig's credentials into the daemon's memory, then offer to "
                "overwrite and delete the file");
  import->add_option("FILE", import_file, "kubeconfig to import (- = stdin)")->required();
  import->add_option("--cluster-map", cluster_map,
                     "CONTEXT=CLUSTER: import kubeconfig context CONTEXT as daemon cluster CLUSTER "
                     "(repeatable) [contexts or kubeconfig clusters named like a daemon cluster]");
  auto* d1 = import->add_flag("--delete", del, "overwrite the file with zeros and delete it");
  auto* d2 = import->add_flag("--yes,-y", yes, "same as --delete");
  auto* k1 = import->add_flag("--keep", keep, "keep the file");
  k1->excludes(d1)->excludes(d2);

  std::string output = "table";
  CLI::App* status = app.add_subcommand("status", "the daemon's clusters and credentials");
  status->add_option("-o,--output", output, "table | json")
      ->check(CLI::IsMember({"table", "json"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  const bool socket_is_default = socket.empty();
  const std::string effective_socket =
      socket.empty() ? kshield::kubectl::DefaultControlSocketPath() : socket;
  if (daemon->parsed()) return RunDaemon(config_file, socket, log_level);
  if (credential->parsed()) return RunCredential(effective_socket, cluster);
  if (kubeconfig->parsed()) {
    return RunKubeconfig(effective_socket, socket_is_default, out_file, ca_path, context);
  }
  if (login->parsed()) {
    return RunLogin(effective_socket, cluster, id_token_stdin, id_token_file, refresh_token_stdin);
  }
  if (import->parsed()) return RunImport(effective_socket, import_file, cluster_map, del || yes, keep);
  if (status->parsed()) return RunStatus(effective_socket, output);
  return kExitUsage;
}
