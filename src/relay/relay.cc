#include "relay/relay.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <atomic>
#include <chrono>
#include <exception>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "boost/asio/dispatch.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl.hpp"
#include "common/file_util.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/status.h"
#include "net/tcp_server.h"

namespace kshield::relay {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

constexpr size_t kMaxTlsFileBytes = 256 * 1024;
constexpr size_t kBaseHeaderLimit = 8 * 1024;

std::string ToString(beast::string_view s) { return std::string(s.data(), s.size()); }

std::string OpensslError() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

// Client certificates are requested but not required: the handshake always continues, and
// SSL_get_verify_result() afterwards says whether the chain verified (nginx's "optional").
int AcceptAndRecord(int /*preverify_ok*/, X509_STORE_CTX* /*ctx*/) { return 1; }

absl::StatusOr<std::unique_ptr<ssl::context>> MakeTlsContext(const RelayConfig& c) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  SSL_CTX* native = ctx->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                  SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
  // No resumption: every connection proves its client certificate afresh.
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_set_cipher_list(native, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
    return absl::InternalError("TLS cipher list: " + OpensslError());
  }

  auto chain = ReadFileBounded(c.tls_cert_file, kMaxTlsFileBytes);
  if (!chain.ok()) return Annotate(chain.status(), "tls.cert_file " + c.tls_cert_file);
  boost::system::error_code ec;
  ctx->use_certificate_chain(net::buffer(*chain), ec);
  if (ec) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("tls.cert_file ", c.tls_cert_file, ": not a PEM certificate chain"));
  }
  // Opened, checked (0600 / 0400, ours or root's) and read in one step, into protected memory.
  absl::StatusOr<SecretBytes> key_or = ReadPrivateFile(c.tls_key_file, kMaxTlsFileBytes);
  if (!key_or.ok()) return Annotate(key_or.status(), "tls.key_file " + c.tls_key_file);
  SecretBytes key = std::move(*key_or);
  ctx->use_private_key(net::buffer(key.UnsafeView().data(), key.size()), ssl::context::pem, ec);
  if (ec || SSL_CTX_check_private_key(native) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("tls.key_file ", c.tls_key_file, ": not a PEM private key for tls.cert_file"));
  }

  if (c.client_ca_file.empty()) {
    SSL_CTX_set_verify(native, SSL_VERIFY_NONE, nullptr);
    return ctx;
  }
  // Only these CAs: the default paths are never loaded.
  if (SSL_CTX_load_verify_file(native, c.client_ca_file.c_str()) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls.client_ca_file ", c.client_ca_file,
                     ": cannot load CA certificates: ", OpensslError()));
  }
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(c.client_ca_file.c_str());
  if (names == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("tls.client_ca_file ", c.client_ca_file, ": no CA certificate in it"));
  }
  SSL_CTX_set_client_CA_list(native, names);
  SSL_CTX_set_verify(native, SSL_VERIFY_PEER, AcceptAndRecord);
  SSL_CTX_set_verify_depth(native, 5);
  if (SSL_CTX_set_purpose(native, X509_PURPOSE_SSL_CLIENT) != 1) {
    return absl::InternalError("TLS client purpose: " + OpensslError());
  }
  static const unsigned char kSidContext[] = "kshield-relay";
  SSL_CTX_set_session_id_context(native, kSidContext, sizeof(kSidContext) - 1);
  return ctx;
}

std::string EntryText(const X509_NAME_ENTRY* e) {
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
  if (n < 0) {
    ERR_clear_error();
    return "";
  }
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

PeerInfo ReadPeer(SSL* ssl, const tcp::endpoint& remote) {
  PeerInfo p;
  const std::string ip = remote.address().to_string();
  p.address = remote.address().is_v6() ? absl::StrCat("[", ip, "]:", remote.port())
                                       : absl::StrCat(ip, ":", remote.port());
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return p;
  p.cert_presented = true;
  const long result = SSL_get_verify_result(ssl);
  p.cert_verified = result == X509_V_OK;
  if (!p.cert_verified) p.cert_error = X509_verify_cert_error_string(result);
  const X509_NAME* subject = X509_get_subject_name(cert);
  const int count = X509_NAME_entry_count(subject);
  for (int i = 0; i < count && i < 64; ++i) {
    const X509_NAME_ENTRY* e = X509_NAME_get_entry(subject, i);
    const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
    if (nid == NID_commonName) p.cert_common_names.push_back(EntryText(e));
    if (nid == NID_organizationName) p.cert_organizations.push_back(EntryText(e));
  }
  return p;
}

struct Shared {
  std::shared_ptr<CertificateService> service;
  std::unique_ptr<ssl::context> tls;
  std::chrono::milliseconds timeout{10000};
  size_t header_limit = kBaseHeaderLimit;
  size_t max_connections = 256;
  std::atomic<size_t> connections{0};
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<Shared> shared)
      : shared_(std::move(shared)), stream_(std::move(socket), *shared_->tls) {
    shared_->connections.fetch_add(1, std::memory_order_relaxed);
  }
  ~Session() { shared_->connections.fetch_sub(1, std::memory_order_relaxed); }

  void Start() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::Handshake, shared_from_this()));
  }

 private:
  void Handshake() {
    beast::error_code ec;
    remote_ = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    beast::get_lowest_layer(stream_).expires_after(shared_->timeout);
    stream_.async_handshake(ssl::stream_base::server,
                            beast::bind_front_handler(&Session::OnHandshake, shared_from_this()));
  }

  void OnHandshake(beast::error_code ec) {
    if (ec) {
      log::Debug("relay.tls_handshake_failed", {{"reason", ec.message()}});
      return;  // the socket closes with the session
    }
    peer_ = ReadPeer(stream_.native_handle(), remote_);
    ReadRequest();
  }

  void ReadRequest() {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(shared_->header_limit));
    parser_->body_limit(kMaxRequestBodyBytes);
    // One deadline for the whole request: trickling bytes cannot extend it.
    beast::get_lowest_layer(stream_).expires_after(shared_->timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRead, shared_from_this()));
  }

  void OnRead(beast::error_code ec, std::size_t /*bytes*/) {
    if (ec == http::error::end_of_stream || ec == net::ssl::error::stream_truncated) {
      return Shutdown();
    }
    if (ec == beast::error::timeout || ec == net::error::operation_aborted) return;
    if (ec == http::error::header_limit) {
      return SendPlain(431, "{\"error\":\"request header too large\"}\n");
    }
    if (ec == http::error::body_limit) {
      // The route still gets its audit line: hand the request (headers only) to the service.
      RelayRequest req = MakeRequest(parser_->get());
      req.body.clear();
      req.body_too_large = true;
      RelayResponse r = shared_->service->Handle(req);
      // The client is most likely still sending the body: read and drop it after answering, or
      // closing with unread data makes the kernel reset the connection before the client has
      // read the 413.
      drain_before_close_ = true;
      return Send(r, parser_->get().version(), /*keep_alive=*/false);
    }
    if (ec == http::error::partial_message) return;
    if (ec) {
      if (&ec.category() == &http::make_error_code(http::error::bad_method).category()) {
        return SendPlain(400, "{\"error\":\"bad request\"}\n");
      }
      return;
    }
    const auto& msg = parser_->get();
    RelayResponse r;
    try {
      r = shared_->service->Handle(MakeRequest(msg));
    } catch (const std::exception& e) {
      // Our code does not throw; a std::bad_alloc could. Keep it to this request.
      log::Error("relay.handler_exception", {{"what", e.what()}});
      r = RelayResponse{500, "application/json", "{\"error\":\"internal error\"}\n", {}};
    }
    Send(r, msg.version(), msg.keep_alive());
  }

  RelayRequest MakeRequest(const http::request<http::string_body>& msg) const {
    RelayRequest req;
    req.method = ToString(msg.method_string());
    req.target = ToString(msg.target());
    // Several Authorization headers are ambiguous: keep none, and the request has no token.
    if (msg.count(http::field::authorization) == 1) {
      req.authorization = ToString(msg[http::field::authorization]);
    } else if (msg.count(http::field::authorization) > 1) {
      req.authorization = "invalid (several Authorization headers)";
    }
    req.content_type = ToString(msg[http::field::content_type]);
    req.body = msg.body();
    req.peer = peer_;
    return req;
  }

  void Send(const RelayResponse& r, unsigned version, bool keep_alive) {
    res_ = {};
    res_.version(version);
    res_.result(static_cast<unsigned>(r.status));
    res_.set(http::field::server, "kshield-relay");
    res_.set(http::field::cache_control, "no-store");
    res_.set("X-Content-Type-Options", "nosniff");
    for (const auto& [k, v] : r.headers) res_.set(k, v);
    res_.set(http::field::content_type, r.content_type);
    res_.keep_alive(keep_alive);
    res_.body() = r.body;
    res_.prepare_payload();
    Write();
  }

  void SendPlain(int status, std::string body) {
    Send(RelayResponse{status, "application/json", std::move(body), {}}, 11, false);
  }

  void Write() {
    beast::get_lowest_layer(stream_).expires_after(shared_->timeout);
    http::async_write(
        stream_, res_,
        beast::bind_front_handler(&Session::OnWrite, shared_from_this(), res_.need_eof()));
  }

  void OnWrite(bool close, beast::error_code ec, std::size_t /*bytes*/) {
    if (ec) return;
    if (close && drain_before_close_) {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(2));
      return Drain(0, {}, 0);
    }
    if (close) return Shutdown();
    ReadRequest();
  }

  // Reads and discards what the client still sends (at most kMaxDrainBytes, within 2 s), then
  // closes.
  void Drain(size_t total, beast::error_code ec, std::size_t bytes) {
    static constexpr size_t kMaxDrainBytes = 1024 * 1024;
    total += bytes;
    if (ec || total > kMaxDrainBytes) return;  // the socket closes with the session
    stream_.async_read_some(net::buffer(drain_buffer_),
                            [self = shared_from_this(), total](beast::error_code e, std::size_t n) {
                              self->Drain(total, e, n);
                            });
  }

  void Shutdown() {
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(2));
    stream_.async_shutdown([self = shared_from_this()](beast::error_code) {});
  }

  const std::shared_ptr<Shared> shared_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  tcp::endpoint remote_;
  PeerInfo peer_;
  beast::flat_buffer buffer_;
  bool drain_before_close_ = false;
  std::array<char, 16 * 1024> drain_buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
};

absl::StatusOr<tcp::endpoint> ParseListen(const std::string& addr) {
  const auto invalid = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("listen: bad address \"", addr, "\": ", AV(why),
                                                   " (want IPV4:PORT or [IPV6]:PORT)"));
  };
  std::string host, port;
  if (!addr.empty() && addr[0] == '[') {
    const size_t close = addr.find("]:");
    if (close == std::string::npos) return invalid("missing \"]:\"");
    host = addr.substr(1, close - 1);
    port = addr.substr(close + 2);
  } else {
    const size_t colon = addr.rfind(':');
    if (colon == std::string::npos) return invalid("missing port");
    host = addr.substr(0, colon);
    port = addr.substr(colon + 1);
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535) {
    return invalid("port must be a number from 0 to 65535");
  }
  boost::system::error_code ec;
  net::ip::address ip = net::ip::make_address(host, ec);
  if (ec || host.empty()) return invalid("host is not an IP address");
  return tcp::endpoint(ip, static_cast<unsigned short>(std::stoul(port)));
}

}  // namespace

// The listener, the I/O threads and their contexts live in TcpServer: one io_context per thread,
// connections dealt round-robin. A session's handlers all run on its context's single thread, so
// a session needs no strand.
class RelayServer::Impl {
 public:
  explicit Impl(std::unique_ptr<kshield::net::TcpServer> server) : server_(std::move(server)) {}
  ~Impl() { Stop(); }

  void Stop() { server_->Stop(); }
  uint16_t port() const { return server_->port(); }

 private:
  const std::unique_ptr<kshield::net::TcpServer> server_;
};

RelayServer::RelayServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RelayServer::~RelayServer() { Stop(); }
uint16_t RelayServer::port() const { return impl_->port(); }
void RelayServer::Stop() {
  if (impl_) impl_->Stop();
}

absl::Status RelayServer::CheckTls(const RelayConfig& config) {
  return MakeTlsContext(config).status();
}

absl::StatusOr<std::unique_ptr<RelayServer>> RelayServer::Start(
    const RelayConfig& config, std::shared_ptr<CertificateService> service) {
  if (service == nullptr) return absl::InvalidArgumentError("relay server needs a service");
  auto shared = std::make_shared<Shared>();
  shared->service = std::move(service);
  KSH_ASSIGN_OR_RETURN(shared->tls, MakeTlsContext(config));
  shared->timeout = std::chrono::milliseconds(absl::ToInt64Milliseconds(config.request_timeout));
  shared->header_limit = kBaseHeaderLimit + (config.oidc.enabled ? config.oidc.max_token_bytes : 0);
  shared->max_connections = config.max_connections;
  KSH_ASSIGN_OR_RETURN(tcp::endpoint endpoint, ParseListen(config.listen));
  kshield::net::TcpServerOptions options;
  options.threads = config.threads;
  options.max_connections = config.max_connections;
  options.accept_backoff = std::chrono::milliseconds(50);
  options.log_prefix = "relay";
  KSH_ASSIGN_OR_RETURN(
      std::unique_ptr<kshield::net::TcpServer> server,
      kshield::net::TcpServer::Listen(
          endpoint, std::move(options),
          [shared](tcp::socket socket, net::io_context& /*ioc*/, size_t /*io_index*/) {
            std::make_shared<Session>(std::move(socket), shared)->Start();
          },
          [shared] { return shared->connections.load(std::memory_order_relaxed); },
          [max = shared->max_connections] {
            log::Warn("relay.overloaded", {{"max_connections", static_cast<uint64_t>(max)}});
          }));
  KSH_RETURN_IF_ERROR(server->Run());
  return std::unique_ptr<RelayServer>(new RelayServer(std::make_unique<Impl>(std::move(server))));
}

}  // namespace kshield::relay
