#include "kmip_server_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "support/process.h"

namespace kshield::testing {
namespace {

bool IsExecutable(const char* path) { return access(path, X_OK) == 0; }

absl::Status Run(const std::string& dir, const std::string& cmd) {
  std::string out;
  int rc = RunCommand("(cd '" + dir + "' && " + cmd + ")", &out);
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("command failed (", rc, "): ", cmd, "\n", out));
  }
  return absl::OkStatus();
}

absl::Status WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << contents;
  f.close();
  if (!f) return absl::InternalError("cannot write " + path);
  return absl::OkStatus();
}

std::string NewKeyArg(const std::string& type) {
  return type == "rsa" ? "-newkey rsa:2048" : "-newkey ec -pkeyopt ec_paramgen_curve:P-256";
}

// A CA: <name>.pem, <name>.key.
std::string MakeCa(const std::string& name, const std::string& cn) {
  return absl::StrCat("openssl req -x509 ", NewKeyArg("ec"), " -nodes -days 2 -keyout ", name,
                      ".key -out ", name, ".pem -subj '/CN=", cn, "'");
}

// A leaf <name>.pem / <name>.key signed by <ca>, with extensions from <name>.ext.
std::string MakeLeaf(const std::string& name, const std::string& ca, const std::string& cn,
                     const std::string& key_type) {
  return absl::StrCat("openssl req -new ", NewKeyArg(key_type), " -nodes -keyout ", name,
                      ".key -out ", name, ".csr -subj '/CN=", cn, "' && openssl x509 -req -in ",
                      name, ".csr -CA ", ca, ".pem -CAkey ", ca,
                      ".key -CAcreateserial -days 2 -out ", name, ".pem -extfile ", name, ".ext");
}

}  // namespace

bool PyKmipServer::Available() { return SkipReason().empty(); }

std::string PyKmipServer::SkipReason() {
  static const std::string reason = [] {
    if (!IsExecutable(kServerBinary)) {
      return std::string(kServerBinary) + " is not installed (Debian package python3-pykmip)";
    }
    if (!IsExecutable(kPython)) return std::string(kPython) + " is missing";
    std::string out;
    if (RunCommand(std::string(kPython) + " -c 'import kmip.services.server'", &out) != 0) {
      return std::string(kPython) + " cannot import kmip: " + out;
    }
    if (RunCommand("openssl version", &out) != 0) return std::string("openssl CLI missing");
    return std::string();
  }();
  return reason;
}

PyKmipServer::PyKmipServer(std::string dir, std::string server_key_type)
    : dir_(std::move(dir)), port_(FreeLoopbackPort()) {
  setup_ = WriteMaterial(server_key_type);
}

PyKmipServer::~PyKmipServer() { Stop(); }

absl::Status PyKmipServer::WriteMaterial(const std::string& server_key_type) {
  if (auto s = Run(dir_, "mkdir -p policies"); !s.ok()) return s;
  if (auto s =
          WriteFile(dir_ + "/server.ext",
                    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n");
      !s.ok()) {
    return s;
  }
  const std::string client_ext =
      "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n";
  if (auto s = WriteFile(dir_ + "/client.ext", client_ext); !s.ok()) return s;
  if (auto s = WriteFile(dir_ + "/rogue-client.ext", client_ext); !s.ok()) return s;
  if (auto s = WriteFile(dir_ + "/noeku-client.ext", "basicConstraints=CA:FALSE\n"); !s.ok()) {
    return s;
  }
  for (const std::string& cmd :
       {MakeCa("ca", "kshield-test-ca"), MakeCa("rogue-ca", "kshield-rogue-ca"),
        MakeLeaf("server", "ca", "127.0.0.1", server_key_type),
        MakeLeaf("client", "ca", "kshield-test-client", "ec"),
        MakeLeaf("rogue-client", "rogue-ca", "kshield-test-client", "ec"),
        MakeLeaf("noeku-client", "ca", "kshield-noeku-client", "ec")}) {
    if (auto s = Run(dir_, cmd); !s.ok()) return s;
  }
  return WriteFile(
      dir_ + "/server.conf",
      absl::StrCat("[server]\n"
                   "hostname=127.0.0.1\n"
                   "port=",
                   port_, "\n", "certificate_path=", dir_, "/server.pem\n", "key_path=", dir_,
                   "/server.key\n", "ca_path=", dir_, "/ca.pem\n", "auth_suite=TLS1.2\n",
                   "enable_tls_client_auth=True\n", "policy_path=", dir_, "/policies\n",
                   "database_path=", database(), "\n", "logging_level=DEBUG\n"));
}

absl::Status PyKmipServer::Start(std::chrono::milliseconds timeout) {
  if (!setup_.ok()) return setup_;
  if (running()) return absl::FailedPreconditionError("PyKMIP server already running");
  const std::string conf = dir_ + "/server.conf";
  const std::string out = dir_ + "/pykmip-stdout.log";
  pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    setpgid(0, 0);
    int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    std::vector<std::string> argv = {kPython, kServerBinary, "-f", conf, "-l", log_file()};
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent, so Signal() works before the child runs
  pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      kill(-pid, SIGKILL);
      return absl::InternalError(absl::StrCat("pykmip-server exited during start-up (status ", st,
                                              "):\n", ReadWholeFile(out)));
    }
    if (HandshakeOk()) return absl::OkStatus();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  Stop();
  return absl::DeadlineExceededError(absl::StrCat("pykmip-server not ready within ",
                                                  timeout.count(), " ms:\n", ReadWholeFile(out)));
}

void PyKmipServer::Signal(int sig) {
  if (pid_ > 0) kill(-pid_, sig);
}

bool PyKmipServer::WaitExit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int st = 0;
    if (waitpid(pid_, &st, WNOHANG) == pid_) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void PyKmipServer::Stop() {
  if (pid_ <= 0) return;
  Signal(SIGTERM);
  bool exited = WaitExit(std::chrono::milliseconds(1000));
  kill(-pid_, SIGKILL);  // the helper processes, and the server if it did not exit
  if (!exited) waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void PyKmipServer::Kill() {
  if (pid_ <= 0) return;
  Signal(SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

bool PyKmipServer::HandshakeOk() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return false;
  }
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  bool ok = ctx != nullptr &&
            SSL_CTX_load_verify_locations(ctx.get(), ca_file().c_str(), nullptr) == 1 &&
            SSL_CTX_use_certificate_chain_file(ctx.get(), client_cert().c_str()) == 1 &&
            SSL_CTX_use_PrivateKey_file(ctx.get(), client_key().c_str(), SSL_FILETYPE_PEM) == 1;
  if (ok) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
    ok = ssl != nullptr && SSL_set_fd(ssl.get(), fd) == 1 && SSL_connect(ssl.get()) == 1;
    if (ok) SSL_shutdown(ssl.get());
  }
  ERR_clear_error();
  close(fd);
  return ok;
}

keys::kmip::KmipOptions PyKmipServer::ProviderOptions() const {
  keys::kmip::KmipOptions o;
  o.endpoint = endpoint();
  o.ca_file = ca_file();
  o.cert_file = client_cert();
  o.key_file = client_key();
  o.server_name = "127.0.0.1";
  o.timeout = std::chrono::seconds(3);
  return o;
}

int PyKmipServer::CountInLog(const std::string& needle) const {
  const std::string log = ReadWholeFile(log_file());
  int n = 0;
  for (size_t pos = log.find(needle); pos != std::string::npos;
       pos = log.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

}  // namespace kshield::testing
