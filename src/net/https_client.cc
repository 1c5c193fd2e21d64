#include "net/https_client.h"

#include <arpa/inet.h>
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

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <algorithm>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"

namespace kshield::net {
namespace {

namespace http = boost::beast::http;

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

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
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

absl::StatusOr<HttpsUrlParts> SplitHttpsUrl(std::string_view url_in) {
  absl::string_view url = AV(url_in);
  if (!absl::StartsWith(url, "https://")) {
    return absl::InvalidArgumentError(absl::StrCat("\"", url, "\" is not an https URL"));
  }
  // "https://authority" and "/target"; the authority rules are those of the daemon's config
  // (proxy/config.h ParseHttpsUrl), so a URL valid there is valid here.
  const size_t slash = url.find('/', 8);
  const absl::string_view authority_url = url.substr(0, slash);
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", authority_url, "\" is not a valid https URL (", why, ")"));
  };
  absl::string_view authority = authority_url.substr(8);
  if (authority.find_first_of("?#") != absl::string_view::npos) return bad("no query or fragment");
  for (char c : authority) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return bad("control character, space or non-ASCII");
    }
  }
  if (authority.find('@') != absl::string_view::npos) return bad("no user info");
  HttpsUrlParts out;
  out.host_header = std::string(authority);
  absl::string_view port_text;
  if (absl::ConsumePrefix(&authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) return bad("unclosed [");
    out.host = std::string(authority.substr(0, close));
    absl::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (!absl::ConsumePrefix(&rest, ":")) return bad("junk after ]");
      port_text = rest;
      if (port_text.empty()) return bad("empty port");
    }
  } else {
    const size_t colon = authority.rfind(':');
    if (colon != absl::string_view::npos) {
      port_text = authority.substr(colon + 1);
      authority = authority.substr(0, colon);
      if (port_text.empty()) return bad("empty port");
    }
    if (authority.find(':') != absl::string_view::npos) return bad("IPv6 hosts need [ ]");
    out.host = std::string(authority);
  }
  if (out.host.empty()) return bad("empty host");
  if (!port_text.empty()) {
    int port = 0;
    if (!absl::SimpleAtoi(port_text, &port) || port < 1 || port > 65535) return bad("bad port");
    out.port = static_cast<uint16_t>(port);
  }
  out.target = slash == absl::string_view::npos ? "/" : std::string(url.substr(slash));
  for (char c : out.target) {
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return absl::InvalidArgumentError("URL path has a space, control or non-ASCII character");
    }
  }
  return out;
}

absl::StatusOr<HttpsResponse> HttpsCall(const HttpsRequest& request, std::string_view body) {
  const absl::Time deadline = absl::Now() + request.timeout;
  KSH_ASSIGN_OR_RETURN(HttpsUrlParts u, SplitHttpsUrl(request.url));
  for (char c : request.user_agent) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      return absl::InvalidArgumentError("User-Agent has a control or non-ASCII character");
    }
  }
  const std::string authority = "https://" + u.host_header;
  const std::string& target = u.target;

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
  if (IsIpLiteral(u.host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), u.host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl.get(), u.host.c_str());
    SSL_set1_host(ssl.get(), u.host.c_str());
  }
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
                                  u.host_header, "\r\nUser-Agent: ", request.user_agent,
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

  http::response_parser<http::string_body> parser;
  parser.eager(true);
  parser.header_limit(64 * 1024);
  parser.body_limit(request.max_response_bytes);
  std::string pending;
  char buf[16384];
  bool eof = false;
  while (!parser.is_done()) {
    if (!eof) {
      SetSocketTimeouts(fd.fd, deadline);
      int n = SSL_read(ssl.get(), buf, sizeof(buf));
      if (n > 0) {
        pending.append(buf, static_cast<size_t>(n));
        OPENSSL_cleanse(buf, static_cast<size_t>(n));
      } else {
        const int err = SSL_get_error(ssl.get(), n);
        if (err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL || err == SSL_ERROR_SSL) {
          ERR_clear_error();
          if (MillisLeft(deadline) == 0) {
            return absl::DeadlineExceededError("waiting for the response timed out");
          }
          eof = true;
        } else {
          ERR_clear_error();
          return absl::DeadlineExceededError("waiting for the response timed out");
        }
      }
    }
    boost::beast::error_code ec;
    if (!pending.empty()) {
      size_t used = parser.put(boost::asio::buffer(pending), ec);
      OPENSSL_cleanse(pending.data(), used);
      pending.erase(0, used);
      if (ec == http::error::need_more) ec = {};
      if (!ec && used == 0 && eof && !parser.is_done()) {
        parser.put_eof(ec);
        if (!ec && !parser.is_done()) ec = http::error::partial_message;
      }
    } else if (eof) {
      parser.put_eof(ec);
      if (!ec && !parser.is_done()) ec = http::error::partial_message;
    }
    if (ec) {
      OPENSSL_cleanse(pending.data(), pending.size());
      return absl::DataLossError(absl::StrCat("malformed HTTP response from ", authority, ": ",
                                              ec.message()));
    }
    // Beast 1.74 skips its body_limit check when the header and the first body bytes arrive in
    // one buffer (which is the usual case here): enforce the bound ourselves.
    if (parser.is_header_done()) {
      const boost::optional<std::uint64_t> length = parser.content_length();
      std::string& so_far = parser.get().body();
      if ((length && *length > request.max_response_bytes) ||
          so_far.size() > request.max_response_bytes) {
        OPENSSL_cleanse(pending.data(), pending.size());
        OPENSSL_cleanse(so_far.data(), so_far.size());
        return absl::DataLossError(absl::StrCat("malformed HTTP response from ", authority,
                                                ": body limit exceeded (",
                                                request.max_response_bytes, " bytes)"));
      }
    }
    if (eof && pending.empty() && !parser.is_done()) {
      return absl::DataLossError(absl::StrCat("truncated HTTP response from ", authority));
    }
  }
  OPENSSL_cleanse(pending.data(), pending.size());
  SSL_shutdown(ssl.get());
  HttpsResponse out;
  http::response<http::string_body> msg = parser.release();
  out.status = static_cast<int>(msg.result_int());
  out.content_type = std::string(msg[http::field::content_type]);
  out.body = std::move(msg.body());
  return out;
}

}  // namespace kshield::net
