// kshield-kubectl daemon integration tests (issue 6), the daemon engineer's pieces:
//  - the real binary: `daemon`, `import` (two clusters, certificate and token, file overwritten and
//    deleted), `kubeconfig`, `credential`, `status`, SIGTERM; the real kubectl and curl through the
//    proxy to two test apiservers; 401 without a local token; audit lines; no secret left in any
//    file or log;
//  - relay mode (in-process daemon and kshield-relay): OIDC login, corporate client certificate
//    enrolment, renewal of a 1-minute certificate without the client noticing, refusals, and a
//    TEE-requiring cluster with and without sim RA-TLS evidence.
// The full kubectl end-to-end suite (watch, exec, headers) is tests/kubectl/kubectl_e2e_test.cc.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/testing/temp_dir.h"
#include "kubectl/kubectl_fixture.h"
#include "kubectl/https_test_client.h"
#include "kubectl/test_apiserver.h"
#include "nlohmann/json.hpp"
#include "proxy/config.h"
#include "proxy/daemon.h"
#include "support/process.h"
#if KSHIELD_HAVE_RELAY
#include "relay/config.h"
#include "relay/relay.h"
#include "relay/service.h"
#include "relay/testing/relay_fixture.h"
#endif

namespace kshield::testing {
namespace {

using nlohmann::json;

const std::string kBin = std::string(KSHIELD_BIN_DIR) + "/kshield-kubectl";

std::string Shell(const std::string& s) { return "'" + absl::StrReplaceAll(s, {{"'", "'\\''"}}) + "'"; }

bool HaveCurl() { return access("/usr/bin/curl", X_OK) == 0; }

// Every regular file under `root`, recursively.
std::vector<std::string> AllFiles(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file(ec)) out.push_back(it->path().string());
  }
  return out;
}

// The body lines of a PEM block (base64 without the BEGIN/END lines): what a leaked key looks
// like even after re-wrapping.
std::vector<std::string> PemBodyLines(std::string_view pem) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < pem.size()) {
    size_t nl = pem.find('\n', pos);
    std::string line(pem.substr(pos, nl == std::string_view::npos ? pem.npos : nl - pos));
    pos = nl == std::string_view::npos ? pem.size() : nl + 1;
    if (line.size() >= 40 && line.find("-----") == std::string::npos) out.push_back(line);
  }
  return out;
}

// One running `kshield-kubectl daemon`.
class DaemonProcess {
 public:
  DaemonProcess(const TempDir& dir, const std::string& config_yaml)
      : dir_(dir), socket_(dir.Sub("run/ctl.sock")) {
    config_ = dir.Sub("daemon.yaml");
    std::ofstream(config_) << config_yaml;
  }
  bool Start() {
    child_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{kBin, "daemon", "--config", config_}, dir_.Sub("daemon.log"));
    return WaitFor([&] { return Cli("status", nullptr) == 0 || !child_->running(); },
                   std::chrono::seconds(30)) &&
           child_->running();
  }
  // Runs `kshield-kubectl --socket <socket> <args>`; returns the exit code.
  int Cli(const std::string& args, std::string* out, const std::string& env = "") {
    std::string local;
    return RunCommand(env + kBin + " --socket " + socket_ + " " + args + " 2>&1",
                      out ? out : &local);
  }
  std::string log() const { return ReadWholeFile(dir_.Sub("daemon.log")); }
  ChildProcess& child() { return *child_; }
  const std::string& socket() const { return socket_; }

 private:
  const TempDir& dir_;
  std::string socket_, config_;
  std::unique_ptr<ChildProcess> child_;
};

TEST(KubectlDaemonTest, ImportTwoClustersThroughTheRealBinary) {
  if (access(kBin.c_str(), X_OK) != 0) GTEST_SKIP() << kBin << " not built";
  TempDir dir;
  // Two clusters: east authenticates a client certificate, west a bearer token.
  auto east_pki = MakeClusterPki("east");
  auto west_pki = MakeClusterPki("west");
  ASSERT_TRUE(east_pki.ok() && west_pki.ok());
  auto east = StartApiserver(*east_pki, "east");
  const std::string west_token = "west-static-token-0123456789";
  auto west = StartApiserver(*west_pki, "west", {west_token});
  ASSERT_TRUE(east.ok()) << east.status();
  ASSERT_TRUE(west.ok()) << west.status();
  auto alice = MakeClientCert(east_pki->ca, "alice", {"dev"});
  ASSERT_TRUE(alice.ok());
  const std::string import_path = dir.Sub("import/kubeconfig");
  ASSERT_TRUE(MakeDirs(dir.Sub("import")).ok());
  ASSERT_TRUE(WriteKubeconfig(import_path,
                              {{.name = "east",
                                .server = (*east)->url(),
                                .ca_pem = east_pki->ca.certificate_pem,
                                .client_cert_pem = alice->cert_pem,
                                .client_key_pem = alice->key_pem.UnsafeStringView()},
                               {.name = "west",
                                .server = (*west)->url(),
                                .ca_pem = west_pki->ca.certificate_pem,
                                .token = west_token}})
                  .ok());

  DaemonProcess d(dir, absl::StrCat("listen_port: 0\ncontrol_socket: ", dir.Sub("run/ctl.sock"),
                                    "\naudit_log: ", dir.Sub("audit.log"),
                                    "\nclusters:\n  - {name: east, credential: imported}\n"
                                    "  - {name: west, credential: imported}\n"));
  ASSERT_TRUE(d.Start()) << d.log();
  struct stat st;
  ASSERT_EQ(stat(d.socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // Before the import: no credential, a clear hint, a non-zero exit.
  std::string out;
  EXPECT_NE(d.Cli("credential --cluster east", &out), 0);
  EXPECT_NE(out.find("kshield-kubectl import"), std::string::npos) << out;
  EXPECT_NE(d.Cli("credential --cluster nope", &out), 0);
  EXPECT_NE(out.find("unknown cluster"), std::string::npos) << out;

  // Import, then overwrite-and-delete the file (--delete: no prompt).
  ASSERT_EQ(d.Cli("import " + import_path + " --delete", &out), 0) << out << d.log();
  EXPECT_NE(out.find("imported context east -> cluster east (client-certificate, user alice"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("imported context west -> cluster west (token"), std::string::npos) << out;
  EXPECT_NE(out.find("overwrote and deleted"), std::string::npos) << out;
  EXPECT_NE(access(import_path.c_str(), F_OK), 0) << "imported kubeconfig still exists";

  // The generated kubeconfig: 0600, no secret, works with the real kubectl.
  const std::string kc = dir.Sub("generated/kubeconfig");
  ASSERT_TRUE(MakeDirs(dir.Sub("generated")).ok());
  ASSERT_EQ(d.Cli("kubeconfig --out " + kc, &out), 0) << out;
  ASSERT_EQ(stat(kc.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string kc_text = ReadWholeFile(kc);
  EXPECT_EQ(kc_text.find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(kc_text.find(west_token), std::string::npos);
  EXPECT_NE(kc_text.find("--socket"), std::string::npos) << "non-default socket not passed on";

  if (HaveKubectl()) {
    ASSERT_EQ(RunKubectl(dir.path(), kc, "--context east get secrets -n default", &out), 0)
        << out << d.log();
    EXPECT_NE(out.find("s1"), std::string::npos) << out;
    ASSERT_EQ(RunKubectl(dir.path(), kc, "--context west get secret s2 -n default -o json", &out),
              0)
        << out;
    EXPECT_NE(out.find("\"kshield.test/apiserver\": \"west\""), std::string::npos) << out;
    // Each request reached its own cluster with that cluster's credential.
    bool east_saw_alice = false, west_saw_token = false;
    for (const RecordedRequest& r : (*east)->requests()) {
      EXPECT_EQ(r.user, "alice") << r.target;
      east_saw_alice = east_saw_alice || r.user == "alice";
      EXPECT_TRUE(HeaderValues(r, "Authorization").empty()) << "local token leaked upstream";
    }
    for (const RecordedRequest& r : (*west)->requests()) {
      EXPECT_EQ(r.user, west_token) << r.target;
      west_saw_token = west_saw_token || r.user == west_token;
    }
    EXPECT_TRUE(east_saw_alice);
    EXPECT_TRUE(west_saw_token);
  } else {
    std::cout << "[  SKIPPED ] kubectl part: /usr/bin/kubectl not installed\n";
  }

  // The exec plugin: a v1 ExecCredential (v1beta1 when KUBERNETES_EXEC_INFO asks for it).
  ASSERT_EQ(d.Cli("credential --cluster east", &out), 0) << out;
  json cred = json::parse(out, nullptr, false);
  ASSERT_TRUE(cred.is_object()) << out;
  EXPECT_EQ(cred["apiVersion"], "client.authentication.k8s.io/v1");
  EXPECT_EQ(cred["kind"], "ExecCredential");
  const std::string token = cred["status"]["token"].get<std::string>();
  EXPECT_EQ(token.size(), 43u);
  absl::Time exp;
  std::string err;
  ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full,
                              cred["status"]["expirationTimestamp"].get<std::string>(), &exp, &err))
      << err;
  EXPECT_GT(exp, absl::Now() + absl::Minutes(8));
  EXPECT_LE(exp, absl::Now() + absl::Minutes(10) + absl::Seconds(5));
  ASSERT_EQ(d.Cli("credential --cluster west", &out,
                  "KUBERNETES_EXEC_INFO='{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\","
                  "\"kind\":\"ExecCredential\",\"spec\":{\"interactive\":false}}' "),
            0)
      << out;
  EXPECT_NE(out.find("\"apiVersion\":\"client.authentication.k8s.io/v1beta1\""), std::string::npos)
      << out;

  // curl: 401 without a token, 200 with the exec plugin's token, 401 with it on the other cluster.
  ASSERT_EQ(d.Cli("status -o json", &out), 0) << out;
  json status = json::parse(out, nullptr, false);
  ASSERT_TRUE(status.is_object()) << out;
  const int port = status["port"].get<int>();
  EXPECT_EQ(status["clusters"][0]["state"], "ready");
  EXPECT_EQ(status["clusters"][0]["source"], "client-certificate");
  EXPECT_EQ(status["clusters"][0]["user"], "alice");
  EXPECT_EQ(status["clusters"][1]["source"], "token");
  if (HaveCurl()) {
    const std::string ca = d.socket() + ".ca.pem";
    const std::string base =
        absl::StrCat("/usr/bin/curl -sS --cacert ", ca, " -o /dev/null -w '%{http_code}' ");
    const std::string url = absl::StrCat("https://127.0.0.1:", port, "/clusters/");
    ASSERT_EQ(RunCommand(base + url + "east/api/v1/namespaces/default/secrets", &out), 0) << out;
    EXPECT_EQ(out, "401");
    ASSERT_EQ(RunCommand(base + "-H 'Authorization: Bearer " + token + "' " + url +
                             "east/api/v1/namespaces/default/secrets",
                         &out),
              0);
    EXPECT_EQ(out, "200");
    ASSERT_EQ(RunCommand(base + "-H 'Authorization: Bearer " + token + "' " + url +
                             "west/api/v1/namespaces/default/secrets",
                         &out),
              0);
    EXPECT_EQ(out, "401") << "an east token was accepted for west";
  }

  // Audit: one JSON line per request, with the cluster and the apiserver's Audit-Id.
  const std::string audit = ReadWholeFile(dir.Sub("audit.log"));
  EXPECT_NE(audit.find("\"cluster\":\"east\""), std::string::npos) << audit.substr(0, 2000);
  EXPECT_NE(audit.find("\"audit_id\":\""), std::string::npos) << audit.substr(0, 2000);
  EXPECT_NE(audit.find("\"status\":401"), std::string::npos);

  // SIGTERM: clean exit, socket and CA file removed.
  d.child().Signal(SIGTERM);
  int ws = d.child().Wait(std::chrono::seconds(15));
  ASSERT_NE(ws, -1) << "daemon did not stop";
  EXPECT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 0) << ws << d.log();
  EXPECT_NE(access(d.socket().c_str(), F_OK), 0);
  EXPECT_NE(access((d.socket() + ".ca.pem").c_str(), F_OK), 0);
  EXPECT_NE(d.log().find("\"daemon.stopped\""), std::string::npos) << d.log();

  // No file or log the run produced holds the private key, the static token or a local token.
  std::vector<std::string> needles = PemBodyLines(alice->key_pem.UnsafeStringView());
  ASSERT_FALSE(needles.empty());
  needles.push_back(west_token);
  needles.push_back(token);
  needles.push_back("PRIVATE KEY");
  for (const std::string& f : AllFiles(dir.path())) {
    const std::string text = ReadWholeFile(f);
    for (const std::string& n : needles) {
      EXPECT_EQ(text.find(n), std::string::npos) << f << " contains a secret (" << n.substr(0, 12)
                                                  << "...)";
    }
  }
}

// `import` without --delete / --keep asks on a terminal (a pty from script(1)): "y" overwrites and
// deletes the file, "n" or no answer keeps it untouched.
TEST(KubectlDaemonTest, ImportAsksOnATerminal) {
  if (access(kBin.c_str(), X_OK) != 0) GTEST_SKIP() << kBin << " not built";
  if (access("/usr/bin/script", X_OK) != 0) GTEST_SKIP() << "/usr/bin/script (bsdutils) not installed";
  TempDir dir;
  auto pki = MakeClusterPki("east");
  ASSERT_TRUE(pki.ok()) << pki.status();
  auto east = StartApiserver(*pki, "east");
  ASSERT_TRUE(east.ok()) << east.status();
  auto alice = MakeClientCert(pki->ca, "alice", {"dev"});
  ASSERT_TRUE(alice.ok());
  DaemonProcess d(dir, absl::StrCat("listen_port: 0\ncontrol_socket: ", dir.Sub("run/ctl.sock"),
                                    "\naudit_log: ", dir.Sub("audit.log"),
                                    "\nclusters:\n  - {name: east, credential: imported}\n"));
  ASSERT_TRUE(d.Start()) << d.log();

  const std::string path = dir.Sub("kubeconfig");
  auto write = [&] {
    return WriteKubeconfig(path, {{.name = "east",
                                   .server = (*east)->url(),
                                   .ca_pem = pki->ca.certificate_pem,
                                   .client_cert_pem = alice->cert_pem,
                                   .client_key_pem = alice->key_pem.UnsafeStringView()}});
  };
  // stdin of script(1) is the answer; the import runs on the pty, so it sees a terminal.
  auto import_answering = [&](const std::string& answer, std::string* out) {
    const std::string cmd = kBin + " --socket " + d.socket() + " import " + path;
    return RunCommand("printf " + Shell(answer) + " | /usr/bin/script -qec " + Shell(cmd) +
                          " /dev/null 2>&1",
                      out);
  };

  for (const std::string answer : {"n\n", "\n", ""}) {
    SCOPED_TRACE("answer \"" + absl::CEscape(answer) + "\"");
    ASSERT_TRUE(write().ok());
    const std::string before = ReadWholeFile(path);
    std::string out;
    ASSERT_EQ(import_answering(answer, &out), 0) << out << d.log();
    EXPECT_NE(out.find("Overwrite " + path + " with zeros and delete it? [y/N]"), std::string::npos)
        << out;
    EXPECT_NE(out.find("imported context east -> cluster east"), std::string::npos) << out;
    EXPECT_NE(out.find("kept " + path), std::string::npos) << out;
    EXPECT_EQ(ReadWholeFile(path), before) << "a kept file was changed";
  }

  ASSERT_TRUE(write().ok());
  std::string out;
  ASSERT_EQ(import_answering("y\n", &out), 0) << out << d.log();
  EXPECT_NE(out.find("[y/N]"), std::string::npos) << out;
  EXPECT_NE(out.find("overwrote and deleted " + path), std::string::npos) << out;
  EXPECT_NE(access(path.c_str(), F_OK), 0) << "the file is still there after \"y\"";
  // The import took effect: the daemon now holds a credential for east.
  ASSERT_EQ(d.Cli("credential --cluster east", &out), 0) << out;
  EXPECT_NE(out.find("\"token\""), std::string::npos) << out;
  // Nothing of the key reached the terminal transcript.
  for (const std::string& line : PemBodyLines(alice->key_pem.UnsafeStringView())) {
    EXPECT_EQ(out.find(line), std::string::npos);
  }
}

TEST(KubectlDaemonTest, CliWithoutDaemonFailsClearly) {
  if (access(kBin.c_str(), X_OK) != 0) GTEST_SKIP() << kBin << " not built";
  TempDir dir;
  std::string out;
  int rc = RunCommand(kBin + " --socket " + dir.Sub("none.sock") + " credential --cluster x 2>&1",
                      &out);
  EXPECT_EQ(rc, 3) << out;
  EXPECT_NE(out.find("daemon is not running"), std::string::npos) << out;
  rc = RunCommand(kBin + " credential 2>&1", &out);
  EXPECT_EQ(rc, 2) << out;  // --cluster is required
  for (const char* sub : {"daemon", "credential", "kubeconfig", "login", "import", "status"}) {
    rc = RunCommand(kBin + " " + sub + " --help 2>&1", &out);
    EXPECT_EQ(rc, 0) << sub << ": " << out;
    EXPECT_NE(out.find("Usage"), std::string::npos) << sub;
  }
}

TEST(KubectlDaemonTest, BadConfigIsOneClearLine) {
  if (access(kBin.c_str(), X_OK) != 0) GTEST_SKIP() << kBin << " not built";
  TempDir dir;
  std::ofstream(dir.Sub("bad.yaml")) << "clusters:\n  - {name: Bad, credential: imported}\n";
  std::string out;
  int rc = RunCommand(kBin + " daemon --config " + dir.Sub("bad.yaml") + " 2>&1", &out);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("clusters[0].name"), std::string::npos) << out;
}


// --- oidc mode -----------------------------------------------------------------------------------

// A minimal HTTPS token endpoint (one request per connection) for the refresh_token grant.
class TokenEndpoint {
 public:
  using Handler = std::function<std::pair<int, std::string>(const std::string& form)>;
  TokenEndpoint(const ClusterPki& pki, Handler handler) : handler_(std::move(handler)) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    BIO* b = BIO_new_mem_buf(pki.server_cert_pem.data(), static_cast<int>(pki.server_cert_pem.size()));
    X509* cert = PEM_read_bio_X509(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    b = BIO_new_mem_buf(pki.server_key_pem.UnsafeView().data(),
                        static_cast<int>(pki.server_key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(b, nullptr, nullptr, nullptr);
    BIO_free(b);
    SSL_CTX_use_certificate(ctx_, cert);
    SSL_CTX_use_PrivateKey(ctx_, key);
    X509_free(cert);
    EVP_PKEY_free(key);
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    listen(fd_, 16);
    thread_ = std::thread([this] { Loop(); });
  }
  ~TokenEndpoint() {
    stop_ = true;
    thread_.join();
    close(fd_);
    SSL_CTX_free(ctx_);
  }
  std::string url() const { return absl::StrCat("https://127.0.0.1:", port_, "/token"); }
  int requests() const { return requests_.load(); }

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      timeval tv{5, 0};
      setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, c);
      if (SSL_accept(ssl) == 1) {
        std::string in;
        char buf[4096];
        size_t body_at = std::string::npos, need = 0;
        while (true) {
          int n = SSL_read(ssl, buf, sizeof(buf));
          if (n <= 0) break;
          in.append(buf, static_cast<size_t>(n));
          if (body_at == std::string::npos && (body_at = in.find("\r\n\r\n")) != std::string::npos) {
            body_at += 4;
            size_t cl = in.find("Content-Length: ");
            need = cl == std::string::npos ? 0 : std::stoul(in.substr(cl + 16));
          }
          if (body_at != std::string::npos && in.size() >= body_at + need) break;
        }
        requests_.fetch_add(1);
        auto [status, body] = handler_(body_at == std::string::npos ? "" : in.substr(body_at));
        std::string resp = absl::StrCat("HTTP/1.1 ", status, " X\r\nContent-Type: application/json"
                                        "\r\nContent-Length: ", body.size(),
                                        "\r\nConnection: close\r\n\r\n", body);
        SSL_write(ssl, resp.data(), static_cast<int>(resp.size()));
        SSL_shutdown(ssl);
      }
      ERR_clear_error();
      SSL_free(ssl);
      close(c);
    }
  }
  Handler handler_;
  SSL_CTX* ctx_ = nullptr;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

std::string B64Url(std::string_view s) {
  std::string out = absl::WebSafeBase64Escape(AV(s));
  return out;
}

// An (unsigned) JWT: the daemon only reads iat / exp for scheduling; the apiserver matches the
// whole string against its token list.
std::string FakeIdToken(int n, absl::Time iat, absl::Time exp) {
  json claims = {{"iss", "https://idp.test"}, {"sub", "alice"}, {"n", n},
                 {"iat", absl::ToUnixSeconds(iat)}, {"exp", absl::ToUnixSeconds(exp)}};
  return B64Url("{\"alg\":\"RS256\",\"typ\":\"JWT\"}") + "." + B64Url(claims.dump()) + ".c2ln";
}

TEST(OidcDaemonTest, RefreshTokenGrantAndRotation) {
  TempDir dir;
  auto idp_pki = MakeClusterPki("idp");
  auto api_pki = MakeClusterPki("sso");
  ASSERT_TRUE(idp_pki.ok() && api_pki.ok());
  // ID tokens issued in order: token k is valid 100 s from T0 + 10 k; with renew_before 90% the
  // daemon refreshes ~10 s after each issuance.
  const absl::Time t0 = absl::Now();
  std::vector<std::string> id_tokens;
  for (int k = 0; k < 20; ++k) {
    id_tokens.push_back(FakeIdToken(k, t0 + absl::Seconds(10 * k),
                                    t0 + absl::Seconds(10 * k + 100)));
  }
  std::mutex mu;
  int issued = 0;
  std::vector<std::string> forms;
  TokenEndpoint idp(*idp_pki, [&](const std::string& form) -> std::pair<int, std::string> {
    std::lock_guard<std::mutex> l(mu);
    forms.push_back(form);
    // The refresh token rotates: rt-0 (from login), then rt-1, rt-2, ...
    const std::string expected = absl::StrCat("refresh_token=rt-", issued, "&");
    if (form.find("grant_type=refresh_token&") != 0 || form.find(expected) == std::string::npos ||
        form.find("client_id=kubectl") == std::string::npos) {
      return {400, "{\"error\":\"invalid_grant\"}"};
    }
    ++issued;
    return {200, json{{"id_token", id_tokens[issued - 1]},
                      {"refresh_token", absl::StrCat("rt-", issued)},
                      {"token_type", "Bearer"},
                      {"expires_in", 100}}
                     .dump()};
  });
  auto api = StartApiserver(*api_pki, "sso", id_tokens);
  ASSERT_TRUE(api.ok()) << api.status();
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("idp-ca.pem"), idp_pki->ca.certificate_pem).ok());
  ASSERT_TRUE(WriteFileAtomic(dir.Sub("api-ca.pem"), api_pki->ca.certificate_pem).ok());
  auto config = kubectl::ParseDaemonConfig(absl::StrCat(
      "listen_port: 0\ncontrol_socket: ", dir.Sub("run/ctl.sock"), "\nclusters:\n  - name: sso\n",
      "    server: ", (*api)->url(), "\n    ca_file: ", dir.Sub("api-ca.pem"),
      "\n    credential: oidc\n    renew_before: 90%\n    oidc:\n      issuer: https://idp.test\n",
      "      token_endpoint: ", idp.url(), "\n      client_id: kubectl\n      ca_file: ",
      dir.Sub("idp-ca.pem"), "\n"));
  ASSERT_TRUE(config.ok()) << config.status();
  kubectl::DaemonOptions opts;
  opts.audit_sink = [](const std::string&) {};
  opts.min_backoff = absl::Milliseconds(200);
  auto d = kubectl::Daemon::Start(*std::move(config), std::move(opts));
  ASSERT_TRUE(d.ok()) << d.status();

  // A wrong refresh token: the IdP's error code comes back, nothing is installed.
  auto bad = (*d)->Login("sso", "", "rt-wrong");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("invalid_grant"), std::string::npos)
      << bad.status();
  EXPECT_EQ(std::string(bad.status().message()).find("rt-wrong"), std::string::npos);
  EXPECT_FALSE((*d)->HandleRequest({{"op", "token"}, {"cluster", "sso"}}).ok());

  auto login = (*d)->Login("sso", "", "rt-0");
  ASSERT_TRUE(login.ok()) << login.status();
  auto t = (*d)->HandleRequest({{"op", "token"}, {"cluster", "sso"}});
  ASSERT_TRUE(t.ok()) << t.status();
  HttpsClientOptions tls;
  tls.ca_pem = (*d)->local_ca_pem();
  const std::string token = (*t)["token"].get<std::string>();
  auto get = [&] {
    return testing::HttpsCall((*d)->port(), tls,
                              {.target = "/clusters/sso/api/v1/namespaces/default/secrets",
                               .headers = {{"Authorization", "Bearer " + token}}});
  };
  auto r = get();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_EQ((*api)->requests().back().user, id_tokens[0]);

  // The refresh comes by itself, with the rotated refresh token; requests then carry token 1.
  ASSERT_TRUE(WaitFor(
      [&] {
        std::lock_guard<std::mutex> l(mu);
        return issued >= 2;
      },
      std::chrono::seconds(30)));
  r = get();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ((*api)->requests().back().user, id_tokens[1]);
  json st = (*d)->Status();
  EXPECT_EQ(st["clusters"][0]["source"], "oidc");
  EXPECT_GE(st["clusters"][0]["renewals"].get<int>(), 1);
}

#if KSHIELD_HAVE_RELAY

// --- relay mode ----------------------------------------------------------------------------------

class RelayDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(MakeDirs(dir_.Sub("relay")).ok());
    auto fx = relay::testing::RelayFixture::Create(dir_.Sub("relay"), {});
    ASSERT_TRUE(fx.ok()) << fx.status();
    fx_ = std::move(*fx);
    // A 1-minute certificate for prod, so that a renewal happens within the test.
    std::string cfg = ReadWholeFile(fx_->config_path);
    const std::string prod = "    ca: {cert_file: prod-ca.crt, key_file: prod-ca.key}\n";
    ASSERT_NE(cfg.find(prod), std::string::npos);
    cfg.replace(cfg.find(prod), prod.size(), prod + "    max_ttl: 1m\n");
    std::ofstream(fx_->config_path, std::ios::trunc) << cfg;
    auto config = relay::LoadRelayConfigFile(fx_->config_path);
    ASSERT_TRUE(config.ok()) << config.status();
    auto service = relay::CertificateService::Create(*config, nullptr);
    ASSERT_TRUE(service.ok()) << service.status();
    auto server = relay::RelayServer::Start(*config, std::move(*service));
    ASSERT_TRUE(server.ok()) << server.status();
    relay_ = std::move(*server);

    // The apiserver trusts client certificates under the relay's global root.
    auto pki = MakeClusterPki("prod");
    ASSERT_TRUE(pki.ok());
    pki_ = std::make_unique<ClusterPki>(std::move(*pki));
    ASSERT_TRUE(WriteFileAtomic(dir_.Sub("prod-apiserver-ca.pem"), pki_->ca.certificate_pem).ok());
    TestApiserverOptions o;
    o.server_cert_pem = pki_->server_cert_pem;
    o.server_key_pem = pki_->server_key_pem.Clone();
    o.client_ca_pem = fx_->root.certificate_pem;
    o.name = "prod";
    auto api = TestApiserver::Start(std::move(o));
    ASSERT_TRUE(api.ok()) << api.status();
    api_ = std::move(*api);
  }

  std::string ConfigYaml(const std::string& extra_relay, const std::string& tee) {
    return absl::StrCat("listen_port: 0\ncontrol_socket: ", dir_.Sub("run/ctl.sock"),
                        "\ntee: ", tee, "\ntee_data_dir: ", fx_->dir, "/sim",
                        "\nrelay:\n  url: https://127.0.0.1:", relay_->port(),
                        "\n  ca_file: ", fx_->dir, "/tls-ca.crt\n", extra_relay,
                        "clusters:\n"
                        "  - name: prod\n    server: ", api_->url(),
                        "\n    ca_file: ", dir_.Sub("prod-apiserver-ca.pem"),
                        "\n    credential: relay\n    renew_before: 50s\n"
                        "  - name: secure\n    server: ", api_->url(),
                        "\n    ca_file: ", dir_.Sub("prod-apiserver-ca.pem"),
                        "\n    credential: relay\n");
  }

  absl::StatusOr<std::unique_ptr<kubectl::Daemon>> StartDaemon(const std::string& yaml) {
    KSH_ASSIGN_OR_RETURN(kubectl::DaemonConfig config, kubectl::ParseDaemonConfig(yaml));
    kubectl::DaemonOptions opts;
    opts.audit_sink = [this](const std::string& line) {
      std::lock_guard<std::mutex> l(audit_mu_);
      audit_.push_back(line);
    };
    opts.min_backoff = absl::Milliseconds(200);
    return kubectl::Daemon::Start(std::move(config), std::move(opts));
  }

  // GET through the proxy with a fresh local token; returns the HTTP status.
  int Get(kubectl::Daemon& d, const std::string& cluster, std::string* token_inout = nullptr) {
    std::string token;
    if (token_inout != nullptr && !token_inout->empty()) {
      token = *token_inout;
    } else {
      auto t = d.HandleRequest({{"op", "token"}, {"cluster", cluster}});
      if (!t.ok()) return -1;
      token = (*t)["token"].get<std::string>();
      if (token_inout != nullptr) *token_inout = token;
    }
    HttpsClientOptions tls;
    tls.ca_pem = d.local_ca_pem();
    auto r = testing::HttpsCall(d.port(), tls,
                                {.target = "/clusters/" + cluster +
                                           "/api/v1/namespaces/default/secrets",
                                 .headers = {{"Authorization", "Bearer " + token}}});
    return r.ok() ? r->status : -2;
  }

  TempDir dir_;
  std::unique_ptr<relay::testing::RelayFixture> fx_;
  std::unique_ptr<relay::RelayServer> relay_;
  std::unique_ptr<ClusterPki> pki_;
  std::unique_ptr<TestApiserver> api_;
  std::mutex audit_mu_;
  std::vector<std::string> audit_;
};

TEST_F(RelayDaemonTest, OidcLoginThenRenewalWithoutTheClientNoticing) {
  auto d = StartDaemon(ConfigYaml("", "none"));
  ASSERT_TRUE(d.ok()) << d.status();
  // Not enrolled yet.
  auto t = (*d)->HandleRequest({{"op", "token"}, {"cluster", "prod"}});
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(t.status().message()).find("kshield-kubectl login --cluster prod"),
            std::string::npos);

  const std::string id_token = fx_->Token(fx_->Claims("alice@example.com"));
  auto login = (*d)->Login("prod", id_token, "");
  ASSERT_TRUE(login.ok()) << login.status();
  EXPECT_EQ((*login)["user"], "alice@example.com");
  EXPECT_EQ((*login)["groups"], json::array({"developers"}));

  std::string token;
  EXPECT_EQ(Get(**d, "prod", &token), 200);
  ASSERT_FALSE(api_->requests().empty());
  EXPECT_EQ(api_->requests().back().user, "alice@example.com");
  EXPECT_EQ(api_->requests().back().groups, std::vector<std::string>{"developers"});
  const std::string first_not_after = (*d)->Status()["clusters"][0]["not_after"];

  // The certificate lives 1 minute (+ the relay's backdating); renew_before 50s: the renewal
  // comes ~10 s after issuance, with a new key, and the same local token keeps working.
  ASSERT_TRUE(WaitFor([&] { return (*d)->Status()["clusters"][0]["renewals"].get<int>() >= 1; },
                      std::chrono::seconds(40)))
      << (*d)->Status().dump();
  EXPECT_NE((*d)->Status()["clusters"][0]["not_after"], first_not_after);
  EXPECT_EQ(Get(**d, "prod", &token), 200);
  EXPECT_EQ(api_->requests().back().user, "alice@example.com");
  // The relay audited two issuances for alice.
  const std::string relay_audit = ReadWholeFile(fx_->audit_path);
  size_t issued = 0;
  for (size_t p = relay_audit.find("alice@example.com"); p != std::string::npos;
       p = relay_audit.find("alice@example.com", p + 1)) {
    ++issued;
  }
  EXPECT_GE(issued, 2u) << relay_audit;
  {
    std::lock_guard<std::mutex> l(audit_mu_);
    ASSERT_FALSE(audit_.empty());
    EXPECT_NE(audit_.back().find("\"cluster\":\"prod\""), std::string::npos) << audit_.back();
  }
}

TEST_F(RelayDaemonTest, RefusalsAreReported) {
  auto d = StartDaemon(ConfigYaml("", "none"));
  ASSERT_TRUE(d.ok()) << d.status();
  // No rule for eve: 403 from the relay, PermissionDenied here.
  auto r = (*d)->Login("prod", fx_->Token(fx_->Claims("eve@example.com")), "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << r.status();
  // Wrong audience: 401 from the relay.
  json claims = fx_->Claims("alice@example.com");
  claims["aud"] = "someone-else";
  r = (*d)->Login("prod", fx_->Token(claims), "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << r.status();
  // No identity at all.
  r = (*d)->Login("secure", "", "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  // The cluster requires TEE evidence and this daemon has no TEE.
  r = (*d)->Login("secure", fx_->Token(fx_->Claims("alice@example.com")), "");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kPermissionDenied) << r.status();
  EXPECT_NE(std::string(r.status().message()).find("TEE"), std::string::npos) << r.status();
  json st = (*d)->Status();
  EXPECT_EQ(st["clusters"][0]["state"], "login failed");
  EXPECT_FALSE(st["clusters"][0]["last_error"].get<std::string>().empty());
  // The relay CA is pinned: a relay URL whose certificate it did not sign fails the handshake.
  // (Pointing the daemon at the apiserver instead of the relay.)
  std::string yaml = ConfigYaml("", "none");
  yaml = absl::StrReplaceAll(
      yaml, {{absl::StrCat("url: https://127.0.0.1:", relay_->port()),
              absl::StrCat("url: https://127.0.0.1:", api_->port())}});
  yaml = absl::StrReplaceAll(yaml, {{dir_.Sub("run/ctl.sock"), dir_.Sub("run2/ctl.sock")}});
  auto d2 = StartDaemon(yaml);
  ASSERT_TRUE(d2.ok()) << d2.status();
  r = (*d2)->Login("prod", fx_->Token(fx_->Claims("alice@example.com")), "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(std::string(r.status().message()).find("certificate verif"), std::string::npos)
      << r.status();
}

TEST_F(RelayDaemonTest, TeeEvidenceFromTheSimPlatform) {
  // The relay's attestation policy pins the fixture's simulated signer identity.
  setenv("KSHIELD_TEE_SIM_IDENTITY", "kshield-relay-test", 1);
  unsetenv("KSHIELD_TEE_SIM_DEBUG");
  auto d = StartDaemon(ConfigYaml("", "sim"));
  unsetenv("KSHIELD_TEE_SIM_IDENTITY");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ((*d)->Status()["tee"], "sim");
  auto r = (*d)->Login("secure", fx_->Token(fx_->Claims("alice@example.com")), "");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(Get(**d, "secure"), 200);
  EXPECT_NE(ReadWholeFile(fx_->audit_path).find("verified"), std::string::npos);
}

TEST_F(RelayDaemonTest, CorporateClientCertificateEnrolsUnattended) {
  auto bob = fx_->MakeClientCert("bob");
  ASSERT_TRUE(bob.ok());
  ASSERT_TRUE(WriteFileAtomic(dir_.Sub("bob.crt"), bob->certificate_pem).ok());
  ASSERT_TRUE(WriteFileAtomic(dir_.Sub("bob.key"), bob->private_key_pem.UnsafeStringView()).ok());
  auto d = StartDaemon(ConfigYaml(absl::StrCat("  client_cert_file: ", dir_.Sub("bob.crt"),
                                               "\n  client_key_file: ", dir_.Sub("bob.key"), "\n"),
                                  "none"));
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE(WaitFor([&] { return (*d)->Status()["clusters"][0]["state"] == "ready"; },
                      std::chrono::seconds(20)))
      << (*d)->Status().dump();
  json st = (*d)->Status();
  EXPECT_EQ(st["clusters"][0]["user"], "bob");
  EXPECT_EQ(st["clusters"][0]["groups"], json::array({"ops"}));
  EXPECT_EQ(Get(**d, "prod"), 200);
  EXPECT_EQ(api_->requests().back().user, "bob");
  // bob has no rule for "secure": its unattended enrolment failed and is retried with backoff.
  EXPECT_NE(st["clusters"][1]["state"], "ready");
}

#else
TEST(RelayDaemonTest, SkippedWithoutRelay) {
  GTEST_SKIP() << "kshield-relay libraries (kshield_relay, kshield_relay_testing) not built";
}
#endif

}  // namespace
}  // namespace kshield::testing
