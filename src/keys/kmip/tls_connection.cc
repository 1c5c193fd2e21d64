#include "keys/kmip/tls_connection.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "crypto/tls_peer.h"

namespace kshield::keys::kmip {
namespace {

// TLS 1.2 suites we offer: forward secret only. AEAD first; the CBC-SHA256/384 ones are the
// ECDHE members of KMIP's TLS 1.2 Authentication Suite (KMIP Profiles v1.2 §3.2) and the only
// ECDHE-RSA suites PyKMIP 0.10 accepts. TLS 1.3 suites are OpenSSL's defaults (all AEAD).
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:"
    "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256";

// The first queued OpenSSL error as "reason", and clears the queue.
std::string TakeOpenSslError() {
  unsigned long e = ERR_get_error();
  std::string out;
  if (e == 0) {
    out = "unknown OpenSSL error";
  } else {
    const char* r = ERR_reason_error_string(e);
    out = r != nullptr ? r : absl::StrCat("OpenSSL error 0x", absl::Hex(e));
  }
  ERR_clear_error();
  return out;
}

absl::Status LoadFailure(std::string_view key, const std::string& path) {
  if (!FileExists(path)) {
    return absl::FailedPreconditionError(
        absl::StrCat("kmip ", AV(key), " ", path, ": no such file or not readable"));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("kmip ", AV(key), " ", path, ": cannot load: ", TakeOpenSslError()));
}

// Encrypted private keys are refused instead of prompting on a terminal.
int NoPassword(char*, int, int, void*) { return 0; }

// Alerts by which a server says it did not accept our certificate.
bool IsClientCertRejection(unsigned long e) {
  if (ERR_GET_LIB(e) != ERR_LIB_SSL) return false;
  switch (ERR_GET_REASON(e)) {
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
      return true;
    default:
      return false;
  }
}

}  // namespace

absl::StatusOr<SslCtxPtr> NewClientTlsContext(const std::string& ca_file,
                                              const std::string& cert_file,
                                              const std::string& key_file) {
  ERR_clear_error();
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new failed");
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(ctx.get(), kTls12Ciphers) != 1) {
    return absl::InternalError(absl::StrCat("TLS client setup: ", TakeOpenSslError()));
  }
  SSL_CTX_set_options(ctx.get(),
                      SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CLEANSE_PLAINTEXT);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_default_passwd_cb(ctx.get(), NoPassword);
  if (SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) != 1) {
    return LoadFailure("ca_file", ca_file);
  }
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
    return LoadFailure("cert_file", cert_file);
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      ERR_clear_error();
      return absl::FailedPreconditionError(
          absl::StrCat("kmip key_file ", key_file, " does not belong to cert_file ", cert_file));
    }
    return LoadFailure("key_file", key_file);
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    ERR_clear_error();
    return absl::FailedPreconditionError(
        absl::StrCat("kmip key_file ", key_file, " does not belong to cert_file ", cert_file));
  }
  return ctx;
}

absl::StatusOr<std::unique_ptr<TlsConnection>> TlsConnection::Connect(
    SSL_CTX* ctx, const std::string& host, uint16_t port, const std::string& server_name,
    Deadline deadline) {
  const std::string peer = host.find(':') != std::string::npos ? absl::StrCat("[", host, "]:", port)
                                                               : absl::StrCat(host, ":", port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  // Name resolution is not bounded by `deadline` (getaddrinfo has no timeout); use an IP
  // address or a reliable resolver for the endpoint.
  int gai = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (gai != 0) {
    return absl::UnavailableError(
        absl::StrCat("KMIP server ", peer, ": cannot resolve host: ", gai_strerror(gai)));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addrs(res, freeaddrinfo);
  std::string last_error = "no address";
  for (const addrinfo* ai = addrs.get(); ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = ErrnoString(errno);
      continue;
    }
    std::unique_ptr<TlsConnection> conn(new TlsConnection(fd, peer));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last_error = ErrnoString(errno);
        continue;
      }
      absl::Status w = conn->WaitFor(POLLOUT, deadline, "TCP connect");
      if (!w.ok()) return w;
      int so_error = 0;
      socklen_t len = sizeof(so_error);
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
      if (so_error != 0) {
        last_error = ErrnoString(so_error);
        continue;
      }
    }
    KSH_RETURN_IF_ERROR(conn->Handshake(ctx, server_name, deadline));
    return conn;
  }
  return absl::UnavailableError(
      absl::StrCat("KMIP server ", peer, ": cannot connect: ", last_error));
}

TlsConnection::~TlsConnection() {
  if (ssl_ != nullptr && SSL_is_init_finished(ssl_.get())) {
    // Best effort close_notify; never waits.
    ERR_clear_error();
    SSL_shutdown(ssl_.get());
    (void)FlushToSocket(std::chrono::steady_clock::now());
    ERR_clear_error();
  }
  ssl_.reset();
  network_.reset();
  if (fd_ >= 0) close(fd_);
}

absl::Status TlsConnection::Handshake(SSL_CTX* ctx, const std::string& server_name,
                                      Deadline deadline) {
  ERR_clear_error();
  ssl_.reset(SSL_new(ctx));
  if (ssl_ == nullptr) return absl::InternalError("SSL_new failed");
  BIO* inner = nullptr;
  BIO* outer = nullptr;
  if (BIO_new_bio_pair(&inner, 0, &outer, 0) != 1) {
    return absl::InternalError("BIO_new_bio_pair failed");
  }
  network_.reset(outer);
  SSL_set_bio(ssl_.get(), inner, inner);  // ssl_ owns `inner` now

  if (!crypto::ExpectPeerName(ssl_.get(), server_name).ok()) {
    return absl::InvalidArgumentError(absl::StrCat("bad server_name ", server_name));
  }
  SSL_set_connect_state(ssl_.get());
  auto r = Drive([this] { return SSL_do_handshake(ssl_.get()); }, "TLS handshake", deadline);
  return r.status();
}

template <typename Op>
absl::StatusOr<int> TlsConnection::Drive(Op op, std::string_view what, Deadline deadline) {
  for (;;) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::UnavailableError(
          absl::StrCat(AV(what), " with KMIP server ", peer_, " timed out"));
    }
    ERR_clear_error();
    const int r = op();
    const int err = r > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl_.get(), r);
    const unsigned long queued = ERR_peek_error();
    const long verify = SSL_get_verify_result(ssl_.get());
    // Whatever the SSL call produced (records, alerts) goes out before we look at the result.
    absl::Status flushed = FlushToSocket(deadline);
    switch (err) {
      case SSL_ERROR_NONE:
        KSH_RETURN_IF_ERROR(flushed);
        return r;
      case SSL_ERROR_WANT_WRITE:
        KSH_RETURN_IF_ERROR(flushed);
        continue;
      case SSL_ERROR_WANT_READ:
        KSH_RETURN_IF_ERROR(flushed);
        KSH_RETURN_IF_ERROR(FillFromSocket(deadline));
        continue;
      case SSL_ERROR_ZERO_RETURN:
        return absl::UnavailableError(
            absl::StrCat("KMIP server ", peer_, " closed the TLS session during ", AV(what)));
      default:
        break;
    }
    if (verify != X509_V_OK) {
      ERR_clear_error();
      return absl::UnauthenticatedError(
          absl::StrCat(AV(what), " with KMIP server ", peer_,
                       ": server certificate not accepted: ", X509_verify_cert_error_string(verify),
                       " (check kmip ca_file, and that server_name matches the certificate)"));
    }
    if (IsClientCertRejection(queued)) {
      std::string reason = TakeOpenSslError();
      return absl::UnauthenticatedError(absl::StrCat(
          AV(what), " with KMIP server ", peer_, ": the server rejected our client certificate (",
          reason, "); check that kmip cert_file / key_file are issued by a CA the server trusts ",
          "and are valid"));
    }
    if (queued == 0) {
      return absl::UnavailableError(absl::StrCat(AV(what), " with KMIP server ", peer_,
                                                 " failed: connection closed or reset"));
    }
    return absl::UnavailableError(
        absl::StrCat(AV(what), " with KMIP server ", peer_, " failed: ", TakeOpenSslError()));
  }
}

absl::Status TlsConnection::FlushToSocket(Deadline deadline) {
  char buf[16384];
  while (BIO_ctrl_pending(network_.get()) > 0) {
    const int n = BIO_read(network_.get(), buf, sizeof(buf));
    if (n <= 0) break;
    size_t off = 0;
    while (off < static_cast<size_t>(n)) {
      ssize_t w = send(fd_, buf + off, static_cast<size_t>(n) - off, MSG_NOSIGNAL);
      if (w > 0) {
        off += static_cast<size_t>(w);
        continue;
      }
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        KSH_RETURN_IF_ERROR(WaitFor(POLLOUT, deadline, "sending"));
        continue;
      }
      return absl::UnavailableError(
          absl::StrCat("sending to KMIP server ", peer_, ": ", ErrnoString(errno)));
    }
  }
  return absl::OkStatus();
}

absl::Status TlsConnection::FillFromSocket(Deadline deadline) {
  char buf[16384];
  const size_t room = BIO_ctrl_get_write_guarantee(network_.get());
  if (room == 0) return absl::InternalError("TLS input buffer full");
  for (;;) {
    ssize_t r = recv(fd_, buf, std::min(room, sizeof(buf)), 0);
    if (r > 0) {
      if (BIO_write(network_.get(), buf, static_cast<int>(r)) != r) {
        return absl::InternalError("TLS input buffer write failed");
      }
      return absl::OkStatus();
    }
    if (r == 0) {
      return absl::UnavailableError(absl::StrCat("KMIP server ", peer_, " closed the connection"));
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      KSH_RETURN_IF_ERROR(WaitFor(POLLIN, deadline, "waiting for the answer"));
      continue;
    }
    return absl::UnavailableError(
        absl::StrCat("receiving from KMIP server ", peer_, ": ", ErrnoString(errno)));
  }
}

absl::Status TlsConnection::WaitFor(short events, Deadline deadline, std::string_view what) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return absl::UnavailableError(
          absl::StrCat(AV(what), " with KMIP server ", peer_, " timed out"));
    }
    pollfd p{fd_, events, 0};
    const int ms = static_cast<int>(std::min<int64_t>(left.count() + 1, INT_MAX));
    const int r = poll(&p, 1, ms);
    if (r > 0) return absl::OkStatus();  // ready, or HUP/ERR that the next call reports
    if (r < 0 && errno != EINTR) {
      return absl::UnavailableError(absl::StrCat("poll: ", ErrnoString(errno)));
    }
  }
}

absl::Status TlsConnection::Write(std::string_view data, Deadline deadline) {
  size_t off = 0;
  while (off < data.size()) {
    const int chunk = static_cast<int>(std::min<size_t>(data.size() - off, INT_MAX));
    KSH_ASSIGN_OR_RETURN(int n,
                         Drive([&] { return SSL_write(ssl_.get(), data.data() + off, chunk); },
                               "sending the request", deadline));
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status TlsConnection::Read(uint8_t* out, size_t n, Deadline deadline) {
  size_t got = 0;
  while (got < n) {
    const int chunk = static_cast<int>(std::min<size_t>(n - got, INT_MAX));
    KSH_ASSIGN_OR_RETURN(int r, Drive([&] { return SSL_read(ssl_.get(), out + got, chunk); },
                                      "reading the response", deadline));
    got += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

bool TlsConnection::Unusable() {
  if (ssl_ == nullptr || SSL_pending(ssl_.get()) > 0 ||
      BIO_ctrl_pending(SSL_get_rbio(ssl_.get())) > 0) {
    return true;
  }
  pollfd p{fd_, POLLIN, 0};
  const int r = poll(&p, 1, 0);
  return r != 0;  // readable (EOF, reset, or unsolicited bytes) or poll error
}

std::string TlsConnection::Describe() const {
  if (ssl_ == nullptr) return "not connected";
  return absl::StrCat(SSL_get_version(ssl_.get()), " ", SSL_get_cipher_name(ssl_.get()));
}

}  // namespace kshield::keys::kmip
