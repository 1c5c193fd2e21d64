// A mutual-TLS client connection with a deadline on every operation, for the KMIP client.
//
//   KSH_ASSIGN_OR_RETURN(SslCtxPtr ctx, NewClientTlsContext(ca, cert, key));
//   auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
//   KSH_ASSIGN_OR_RETURN(auto conn, TlsConnection::Connect(ctx.get(), "kms.example", 5696,
//                                                          "kms.example", deadline));
//   KSH_RETURN_IF_ERROR(conn->Write(request, deadline));
//   KSH_RETURN_IF_ERROR(conn->Read(buffer, n, deadline));
//
// OpenSSL never touches the socket: the SSL object talks to one half of a BIO pair and this
// class moves ciphertext between the other half and a non-blocking socket with poll(). That
// gives us one place to enforce deadlines, and send(MSG_NOSIGNAL) so a peer that vanished cannot
// raise SIGPIPE in the host process.
//
// Policy: TLS 1.2 or newer; the server certificate must chain to `ca_file` and match the server
// name (DNS name or IP address, no partial wildcards); for TLS 1.2 only forward-secret ECDHE
// suites — the AEAD ones first, then the CBC-SHA256/384 ones that KMIP's TLS 1.2 authentication
// suite lists (PyKMIP 0.10 with `auth_suite = TLS1.2` offers no ECDHE-RSA AEAD suite).
// SSL_OP_CLEANSE_PLAINTEXT makes OpenSSL wipe decrypted records (they carry keys) once read.
//
// Errors: Unauthenticated when either side refused the other's certificate (the message says
// which and what to check), Unavailable for everything else (refused, reset, closed, timed out).
// Not thread-safe; KmipClient serialises use.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kshield::keys::kmip {

using Deadline = std::chrono::steady_clock::time_point;

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;

// Loads the CA bundle, client certificate chain and private key (PEM). Errors name the file.
absl::StatusOr<SslCtxPtr> NewClientTlsContext(const std::string& ca_file,
                                              const std::string& cert_file,
                                              const std::string& key_file);

class TlsConnection {
 public:
  // TCP connect (every address `host` resolves to, in order) and TLS handshake, all before
  // `deadline`. `server_name` is what the certificate must name.
  static absl::StatusOr<std::unique_ptr<TlsConnection>> Connect(SSL_CTX* ctx,
                                                                const std::string& host,
                                                                uint16_t port,
                                                                const std::string& server_name,
                                                                Deadline deadline);
  ~TlsConnection();
  TlsConnection(const TlsConnection&) = delete;
  TlsConnection& operator=(const TlsConnection&) = delete;

  absl::Status Write(std::string_view data, Deadline deadline);
  // Reads exactly `n` bytes into `out`.
  absl::Status Read(uint8_t* out, size_t n, Deadline deadline);

  // True when the connection cannot carry another request: the peer closed or reset it, or sent
  // bytes nobody asked for. Checked before reusing an idle connection. Does not block.
  bool Unusable();

  // "TLSv1.2 ECDHE-ECDSA-AES128-GCM-SHA256", for logs.
  std::string Describe() const;

 private:
  struct SslDeleter {
    void operator()(SSL* ssl) const { SSL_free(ssl); }
  };
  struct BioDeleter {
    void operator()(BIO* bio) const { BIO_free(bio); }
  };

  TlsConnection(int fd, std::string peer) : fd_(fd), peer_(std::move(peer)) {}
  absl::Status Handshake(SSL_CTX* ctx, const std::string& server_name, Deadline deadline);
  // Runs an SSL call until it succeeds, moving bytes as it asks; returns its positive result.
  template <typename Op>
  absl::StatusOr<int> Drive(Op op, std::string_view what, Deadline deadline);
  absl::Status FlushToSocket(Deadline deadline);
  absl::Status FillFromSocket(Deadline deadline);
  absl::Status WaitFor(short events, Deadline deadline, std::string_view what);

  int fd_ = -1;
  std::string peer_;  // "host:port" for messages
  // Declared before ssl_ so that ssl_ (which owns the inner half of the pair) is freed first.
  std::unique_ptr<BIO, BioDeleter> network_;
  std::unique_ptr<SSL, SslDeleter> ssl_;
};

}  // namespace kshield::keys::kmip
