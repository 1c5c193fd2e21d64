#include "etcd_server_fixture.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"

namespace kshield::testing {
namespace {

bool Executable(const char* path) { return access(path, X_OK) == 0; }

std::string Tail(const std::string& text, size_t n) {
  return text.size() <= n ? text : text.substr(text.size() - n);
}

absl::Status Run(const std::string& command) {
  std::string out;
  int rc = RunCommand(command, &out);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("command failed (", rc, "): ", command, "\n", Tail(out, 2000)));
  }
  return absl::OkStatus();
}

}  // namespace

bool EtcdServer::Available(bool tls) {
  return Executable(kBinary) && (!tls || Executable("/usr/bin/openssl"));
}

std::string EtcdServer::SkipReason(bool tls) {
  if (!Executable(kBinary)) {
    return "etcd is not installed (/usr/bin/etcd; Debian package etcd-server)";
  }
  if (tls && !Executable("/usr/bin/openssl")) return "openssl CLI is not installed";
  return "";
}

EtcdServer::EtcdServer(std::string dir, bool tls, bool data_on_tmpfs)
    : dir_(std::move(dir)), tls_(tls) {
  data_dir_ = dir_ + "/data";
  if (data_on_tmpfs && std::filesystem::is_directory("/dev/shm")) {
    std::string tmpl = "/dev/shm/kshield-etcd-XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) data_dir_ = tmpl + "/data";
  }
#if !defined(__x86_64__)
  // etcd 3.4 refuses to start on architectures other than amd64 (and arm64 since 3.5) unless told.
#if defined(__aarch64__)
  setenv("ETCD_UNSUPPORTED_ARCH", "arm64", 0);
#else
  setenv("ETCD_UNSUPPORTED_ARCH", "unknown", 0);
#endif
#endif
}

EtcdServer::~EtcdServer() {
  Stop();
  if (data_dir_.rfind("/dev/shm/", 0) == 0 && getenv("KSHIELD_KEEP_TEMP") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(std::filesystem::path(data_dir_).parent_path(), ec);
  }
}

std::string EtcdServer::endpoint() const { return absl::StrCat("127.0.0.1:", client_port_); }

std::string EtcdServer::url() const {
  return absl::StrCat(tls_ ? "https://" : "http://", endpoint());
}

etcd::ClientOptions EtcdServer::ClientOptions() const {
  etcd::ClientOptions o;
  o.endpoints = {url()};
  if (tls_) {
    o.ca_file = ca_file();
    o.cert_file = client_cert();
    o.key_file = client_key();
  }
  o.timeout = std::chrono::seconds(5);
  return o;
}

absl::Status EtcdServer::MakeCertificates() {
  const std::string d = dir_;
  auto key = [&](const std::string& name) {
    return absl::StrCat("-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout '", d, "/",
                        name, ".key'");
  };
  // Two CAs: the one etcd trusts and a rogue one for negative tests.
  for (const std::string ca : {"ca", "rogue-ca"}) {
    KSH_RETURN_IF_ERROR(Run(absl::StrCat("openssl req -x509 ", key(ca), " -out '", d, "/", ca,
                                         ".pem' -days 2 -subj /CN=kshield-test-", ca)));
  }
  KSH_RETURN_IF_ERROR(WriteFileAtomic(
      d + "/server.ext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
      "extendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature,keyEncipherment\n"));
  KSH_RETURN_IF_ERROR(WriteFileAtomic(d + "/client.ext",
                                      "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n"));
  struct Leaf {
    std::string name, ca, ext;
  };
  for (const Leaf& l : {Leaf{"server", "ca", "server.ext"}, Leaf{"client", "ca", "client.ext"},
                        Leaf{"rogue-client", "rogue-ca", "client.ext"}}) {
    KSH_RETURN_IF_ERROR(Run(absl::StrCat("openssl req ", key(l.name), " -out '", d, "/", l.name,
                                         ".csr' -subj /CN=kshield-test-", l.name)));
    KSH_RETURN_IF_ERROR(
        Run(absl::StrCat("openssl x509 -req -in '", d, "/", l.name, ".csr' -CA '", d, "/", l.ca,
                         ".pem' -CAkey '", d, "/", l.ca, ".key' -CAcreateserial -days 2 -extfile '",
                         d, "/", l.ext, "' -out '", d, "/", l.name, ".pem'")));
  }
  certs_made_ = true;
  return absl::OkStatus();
}

absl::Status EtcdServer::Start(std::chrono::milliseconds timeout) {
  if (process_ != nullptr) return absl::FailedPreconditionError("etcd already running");
  if (!Available(tls_)) return absl::FailedPreconditionError(SkipReason(tls_));
  if (tls_ && !certs_made_) KSH_RETURN_IF_ERROR(MakeCertificates());
  const bool restart = client_port_ != 0;
  absl::Status last;
  // A free port can be taken between our probe and etcd's bind; fresh ports fix that.
  for (int attempt = 0; attempt < (restart ? 1 : 3); ++attempt) {
    if (!restart) {
      client_port_ = FreeLoopbackPort();
      do {
        peer_port_ = FreeLoopbackPort();
      } while (peer_port_ == client_port_);
    }
    last = StartOnce(timeout);
    if (last.ok()) return last;
    if (ReadWholeFile(log_file()).find("address already in use") == std::string::npos) break;
  }
  return last;
}

absl::Status EtcdServer::StartOnce(std::chrono::milliseconds timeout) {
  const std::string peer = absl::StrCat("http://127.0.0.1:", peer_port_);
  std::vector<std::string> argv = {
      kBinary,
      "--name=default",
      "--data-dir=" + data_dir_,
      "--listen-client-urls=" + url(),
      "--advertise-client-urls=" + url(),
      "--listen-peer-urls=" + peer,
      "--initial-advertise-peer-urls=" + peer,
      "--initial-cluster=default=" + peer,
      "--initial-cluster-state=new",
      "--logger=zap",
      "--log-outputs=stderr",
  };
  if (tls_) {
    argv.push_back("--cert-file=" + dir_ + "/server.pem");
    argv.push_back("--key-file=" + dir_ + "/server.key");
    argv.push_back("--trusted-ca-file=" + ca_file());
    argv.push_back("--client-cert-auth=true");
  }
  process_ = std::make_unique<ChildProcess>(argv, log_file());

  etcd::ClientOptions options = ClientOptions();
  options.timeout = std::chrono::milliseconds(500);
  auto client = etcd::Client::Create(options);
  if (!client.ok()) {
    Stop();
    return client.status();
  }
  absl::Status probe;
  bool exited = false;
  bool ready = WaitFor(
      [&] {
        if (!process_->running()) {
          exited = true;
          return true;
        }
        probe = (*client)->Range("kshield-test-readiness-probe", "").status();
        return probe.ok();
      },
      timeout);
  if (ready && !exited) return absl::OkStatus();
  std::string log = Tail(ReadWholeFile(log_file()), 3000);
  Stop();
  if (exited) return absl::InternalError("etcd exited during start-up; log tail:\n" + log);
  return absl::DeadlineExceededError(absl::StrCat("etcd did not answer a Range in time (",
                                                  probe.ToString(), "); log tail:\n", log));
}

void EtcdServer::Stop() {
  if (process_ == nullptr) return;
  if (process_->running()) {
    process_->Signal(SIGTERM);
    if (process_->Wait(std::chrono::seconds(5)) == -1) {
      process_->Signal(SIGKILL);
      process_->Wait(std::chrono::seconds(5));
    }
  }
  process_.reset();
}

}  // namespace kshield::testing
