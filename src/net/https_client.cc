#include "net/https_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "crypto/tls_peer.h"
#include "net/http_response.h"
#include "net/url.h"

namespace kshield::net {
namespace {

struct SslCtxFree {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
struct SslFree {
  void operator()(SSL* p) const { SSL_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

int MillisLeft(absl::Time deadline) {
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(left), 1, 1 << 30));
}

void SetSocketTimeouts(int fd, absl::Time deadline) {
  const int ms = std::max(1, MillisLeft(deadline));
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

absl::StatusOr<int> Connect(const std::string& host, uint16_t port, absl::Time deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port_text = std::to_string(port);
  int rc = getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res);
  if (rc != 0) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", host, ": ", gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, &freeaddrinfo);
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
      last_error = ErrnoString(errno);
      close(fd);
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    int r;
    do {
      r = poll(&p, 1, MillisLeft(deadline));
    } while (r < 0 && errno == EINTR);
    int err = 0;
    socklen_t len = sizeof(err);
    if (r <= 0) {
      last_error = "connect timed out";
      close(fd);
      if (MillisLeft(deadline) == 0) break;
      continue;
    }
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      last_error = ErrnoString(err);
      close(fd);
      continue;
    }
    // Back to blocking I/O; SO_RCVTIMEO / SO_SNDTIMEO bound each operation.
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
  }
  if (MillisLeft(deadline) == 0) {
    return absl::DeadlineExceededError(absl::StrCat("connecting to ", host, ":", port,
                                                    " timed out"));
  }
  return absl::UnavailableError(
      absl::StrCat("cannot connect to ", host, ":", port, ": ", last_error));
}

absl::Status LoadTrust(SSL_CTX* ctx, const std::string& ca_pem) {
  if (ca_pem.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return absl::InternalError("cannot load the system trust store");
    }
    return absl::OkStatus();
  }
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size())));
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int added = 0;
  while (X509* raw = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    std::unique_ptr<X509, X509Free> cert(raw);
    if (X509_STORE_add_cert(store, cert.get()) == 1) ++added;
  }
  ERR_clear_error();
  if (added == 0) return absl::InvalidArgumentError("no PEM certificate in the CA bundle");
  return absl::OkStatus();
}

absl::Status LoadClientIdentity(SSL_CTX* ctx, const std::string& cert_pem, const SecretBytes& key) {
  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  std::unique_ptr<X509, X509Free> leaf(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!leaf || SSL_CTX_use_certificate(ctx, leaf.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the client certificate is not a PEM certificate");
  }
  while (X509* raw = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(ctx, raw) != 1) X509_free(raw);
  }
  ERR_clear_error();
  std::unique_ptr<BIO, BioFree> kbio(
      BIO_new_mem_buf(key.UnsafeView().data(), static_cast<int>(key.size())));
  std::unique_ptr<EVP_PKEY, PkeyFree> pkey(
      PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, const_cast<char*>("")));
  if (!pkey || SSL_CTX_use_PrivateKey(ctx, pkey.get()) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "the client key is not a PEM private key matching the client certificate");
  }
  return absl::OkStatus();
}

}  // namespace

std::string FormEscape(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : value) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (absl::ascii_isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

absl::StatusOr<HttpsUrlParts> SplitHttpsUrl(std::string_view url) {
  KSH_ASSIGN_OR_RETURN(ParsedHttpsUrl u, ParseHttpsUrl(url, {.allow_query = true}));
  HttpsUrlParts out;
  out.host = std::move(u.host);
  out.port = u.port;
  out.host_header = std::move(u.authority);
  out.target = u.Target();
  return out;
}

absl::StatusOr<HttpsResponse> HttpsCall(const HttpsRequest& request, std::string_view body) {
  const absl::Time deadline = absl::Now() + request.timeout;
  KSH_ASSIGN_OR_RETURN(ParsedHttpsUrl u, ParseHttpsUrl(request.url, {.allow_query = true}));
  for (char c : request.user_agent) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return absl::InvalidArgumentError("User-Agent has a control or non-ASCII character");
    }
  }
  const std::string authority = "https://" + u.authority;
  const std::string target = u.Target();

  std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return absl::InternalError("SSL_CTX_new: " + OpenSslError());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  KSH_RETURN_IF_ERROR(LoadTrust(ctx.get(), request.ca_pem));
  if (request.client_cert_pem != nullptr && request.client_key_pem != nullptr) {
    KSH_RETURN_IF_ERROR(LoadClientIdentity(ctx.get(), *request.client_cert_pem,
                                           *request.client_key_pem));
  }

  KSH_ASSIGN_OR_RETURN(int raw_fd, Connect(u.host, u.port, deadline));
  Fd fd{raw_fd};
  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  if (!ssl) return absl::InternalError("SSL_new: " + OpenSslError());
  SSL_set_fd(ssl.get(), fd.fd);
  // The return is checked: a name OpenSSL refused would otherwise leave the handshake unchecked.
  KSH_RETURN_IF_ERROR(crypto::ExpectPeerName(ssl.get(), u.host));
  SetSocketTimeouts(fd.fd, deadline);
  if (SSL_connect(ssl.get()) != 1) {
    const long verify = SSL_get_verify_result(ssl.get());
    std::string why = verify != X509_V_OK
                          ? absl::StrCat("certificate verification failed: ",
                                         X509_verify_cert_error_string(verify))
                          : OpenSslError();
    if (MillisLeft(deadline) == 0) {
      return absl::DeadlineExceededError(absl::StrCat("TLS handshake with ", authority,
                                                      " timed out"));
    }
    return absl::UnavailableError(absl::StrCat("TLS handshake with ", authority, ": ", why));
  }

  std::string head = absl::StrCat(request.method, " ", target, " HTTP/1.1\r\nHost: ",
                                  u.authority, "\r\nUser-Agent: ", request.user_agent,
                                  "\r\nConnection: close\r\n");
  if (!request.accept.empty()) absl::StrAppend(&head, "Accept: ", request.accept, "\r\n");
  if (!request.content_type.empty()) {
    absl::StrAppend(&head, "Content-Type: ", request.content_type, "\r\n");
  }
  if (request.method != "GET" || !body.empty()) {
    absl::StrAppend(&head, "Content-Length: ", body.size(), "\r\n");
  }
  if (request.bearer != nullptr) {
    head.append("Authorization: Bearer ");
    head.append(request.bearer->UnsafeStringView());
    head.append("\r\n");
  }
  head.append("\r\n");
  head.append(body);
  absl::Status write_status;
  size_t off = 0;
  while (off < head.size()) {
    SetSocketTimeouts(fd.fd, deadline);
    int n = SSL_write(ssl.get(), head.data() + off, static_cast<int>(head.size() - off));
    if (n <= 0) {
      write_status = MillisLeft(deadline) == 0
                         ? absl::DeadlineExceededError("sending the request timed out")
                         : absl::UnavailableError("sending the request failed: " + OpenSslError());
      break;
    }
    off += static_cast<size_t>(n);
  }
  OPENSSL_cleanse(head.data(), head.size());
  KSH_RETURN_IF_ERROR(write_status);

  // Every TLS read goes to the reader as it arrives; it decides when the response is complete.
  HttpResponseReader reader(request.max_response_bytes, authority);
  char buf[16384];
  while (!reader.done()) {
    SetSocketTimeouts(fd.fd, deadline);
    const int n = SSL_read(ssl.get(), buf, sizeof(buf));
    if (n > 0) {
      absl::Status put = reader.Put(std::string_view(buf, static_cast<size_t>(n)));
      OPENSSL_cleanse(buf, static_cast<size_t>(n));
      KSH_RETURN_IF_ERROR(put);
      continue;
    }
    const int err = SSL_get_error(ssl.get(), n);
    ERR_clear_error();
    if (MillisLeft(deadline) == 0 ||
        !(err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL || err == SSL_ERROR_SSL)) {
      return absl::DeadlineExceededError("waiting for the response timed out");
    }
    KSH_RETURN_IF_ERROR(reader.PutEof());  // the end of the stream: complete, or truncated
    break;
  }
  SSL_shutdown(ssl.get());
  return reader.Take();
}

}  // namespace kshield::net
