// A real PyKMIP server for tests: certificates, config and sqlite database in a temp directory,
// a free loopback port, readiness by TLS handshake, stop / kill / restart on the same port and db.
//
//   if (!PyKmipServer::Available()) GTEST_SKIP() << PyKmipServer::SkipReason();
//   PyKmipServer server(dir.path());
//   ASSERT_TRUE(server.Start().ok());
//   KmipOptions o = server.ProviderOptions();
//   ...
//   server.Kill();              // outage: SIGKILL to the server's whole process group
//   ASSERT_TRUE(server.Start().ok());   // same port, same database
//
// PyKMIP 0.10 facts this relies on (read from its source, /usr/lib/python3/dist-packages/kmip):
//  - it runs under /usr/bin/python3 (Debian's python3-pykmip is only on that interpreter's path);
//  - `auth_suite = TLS1.2` pins the server to TLS 1.2 with a fixed cipher list; with the ECDSA
//    P-256 certificates made here the client negotiates ECDHE-ECDSA AES suites;
//  - `enable_tls_client_auth = True` requires extendedKeyUsage clientAuth on client certificates;
//    the client identity is the certificate's CN, and objects are visible only to their creator;
//  - the server forks helper processes (a multiprocessing manager, a policy-directory monitor),
//    so it is started in its own process group and the group is signalled;
//  - SIGTERM is only noticed at its 10 s accept timeout, so Stop() gives it a short grace and
//    then SIGKILLs; the socket is bound with SO_REUSEADDR so a restart gets the same port;
//  - it logs every request and response encoding at DEBUG (keys included) to its own log file in
//    the temp directory; that file is test scaffolding, not kshield output.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "absl/status/status.h"
#include "keys/kmip/kmip_options.h"

namespace kshield::testing {

class PyKmipServer {
 public:
  static constexpr char kServerBinary[] = "/usr/bin/pykmip-server";
  static constexpr char kPython[] = "/usr/bin/python3";

  // True when pykmip-server and openssl are installed and /usr/bin/python3 imports kmip.
  static bool Available();
  static std::string SkipReason();

  // Writes the CA, server and client certificates, and server.conf into `dir`.
  // `server_key_type`: "ec" (P-256, default) or "rsa" (2048).
  explicit PyKmipServer(std::string dir, std::string server_key_type = "ec");
  ~PyKmipServer();  // Stop()
  PyKmipServer(const PyKmipServer&) = delete;
  PyKmipServer& operator=(const PyKmipServer&) = delete;

  // Certificates and config were written without error.
  const absl::Status& setup_status() const { return setup_; }

  // Starts the server and waits until it completes a TLS handshake with the client certificate.
  absl::Status Start(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // SIGTERM, a short grace, then SIGKILL to the process group; reaps the server.
  void Stop();
  // SIGKILL to the process group at once (a crash / outage); reaps the server.
  void Kill();
  bool running() const { return pid_ > 0; }

  int port() const { return port_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }
  std::string ca_file() const { return dir_ + "/ca.pem"; }
  std::string client_cert() const { return dir_ + "/client.pem"; }
  std::string client_key() const { return dir_ + "/client.key"; }
  // Signed by a CA the server does not trust.
  std::string rogue_client_cert() const { return dir_ + "/rogue-client.pem"; }
  std::string rogue_client_key() const { return dir_ + "/rogue-client.key"; }
  // A CA that did not sign the server certificate.
  std::string rogue_ca_file() const { return dir_ + "/rogue-ca.pem"; }
  // Signed by the right CA but without extendedKeyUsage clientAuth.
  std::string no_eku_client_cert() const { return dir_ + "/noeku-client.pem"; }
  std::string no_eku_client_key() const { return dir_ + "/noeku-client.key"; }
  std::string log_file() const { return dir_ + "/pykmip-server.log"; }
  std::string database() const { return dir_ + "/pykmip.db"; }

  // Options for the kmip provider pointing at this server with the good client certificate.
  keys::kmip::KmipOptions ProviderOptions() const;

  // How many times `needle` occurs in the server's log (e.g. "Processing operation: Get").
  int CountInLog(const std::string& needle) const;

 private:
  absl::Status WriteMaterial(const std::string& server_key_type);
  bool HandshakeOk();
  void Signal(int sig);
  bool WaitExit(std::chrono::milliseconds timeout);

  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;  // also the process group id
  absl::Status setup_;
};

}  // namespace kshield::testing
