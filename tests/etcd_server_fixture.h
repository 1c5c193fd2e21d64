// A real single-member etcd for tests: data dir in a temp directory, client and peer URLs on free
// loopback ports, readiness by a successful Range (polled with a deadline, no fixed sleeps),
// SIGTERM then SIGKILL at the end. Optionally TLS with client-certificate auth (certificates made
// with the openssl CLI in the temp directory).
//
//   if (!EtcdServer::Available()) GTEST_SKIP() << EtcdServer::SkipReason();
//   EtcdServer etcd(dir.path());
//   ASSERT_TRUE(etcd.Start().ok());
//   auto client = etcd::Client::Create(etcd.ClientOptions());
//
// etcd 3.4 facts this relies on: one member named "default" with --initial-cluster pointing at its
// own peer URL elects itself leader within about a second; on amd64 no ETCD_UNSUPPORTED_ARCH is
// needed (it is set automatically on other architectures). With --client-cert-auth and
// --trusted-ca-file the client port refuses TLS clients without a certificate from that CA.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "etcd/client.h"
#include "support/process.h"

namespace kshield::testing {

class EtcdServer {
 public:
  static constexpr char kBinary[] = "/usr/bin/etcd";

  // True when /usr/bin/etcd exists (and, for TLS, openssl).
  static bool Available(bool tls = false);
  static std::string SkipReason(bool tls = false);

  // `dir` holds the data dir, the log and (with tls) the certificates. The data lives on disk
  // under `dir`; set `data_on_tmpfs` to put it in /dev/shm (fast fsync for bulk writes).
  explicit EtcdServer(std::string dir, bool tls = false, bool data_on_tmpfs = true);
  ~EtcdServer();  // Stop()
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  // Starts etcd and waits until it answers a Range. Retries on fresh ports if a port was taken.
  // A second Start() after Stop() reuses the same ports and data.
  absl::Status Start(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // SIGTERM, up to 5 s grace, then SIGKILL; reaps the process.
  void Stop();
  bool running() const { return process_ != nullptr; }
  // The etcd process id (0 when not running), e.g. to SIGSTOP it in a test.
  pid_t pid() const { return process_ != nullptr ? process_->pid() : 0; }

  int client_port() const { return client_port_; }
  // "host:port" / "http(s)://127.0.0.1:port".
  std::string endpoint() const;
  std::string url() const;
  const std::string& dir() const { return dir_; }
  std::string log_file() const { return dir_ + "/etcd.log"; }

  std::string ca_file() const { return dir_ + "/ca.pem"; }
  std::string client_cert() const { return dir_ + "/client.pem"; }
  std::string client_key() const { return dir_ + "/client.key"; }
  // Signed by a CA etcd does not trust.
  std::string rogue_client_cert() const { return dir_ + "/rogue-client.pem"; }
  std::string rogue_client_key() const { return dir_ + "/rogue-client.key"; }

  // Options for etcd::Client pointing at this server (with the good client certificate when TLS).
  etcd::ClientOptions ClientOptions() const;

 private:
  absl::Status MakeCertificates();
  absl::Status StartOnce(std::chrono::milliseconds timeout);

  std::string dir_;
  std::string data_dir_;
  bool tls_;
  bool certs_made_ = false;
  int client_port_ = 0;
  int peer_port_ = 0;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace kshield::testing
