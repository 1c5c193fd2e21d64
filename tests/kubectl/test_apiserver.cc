#include "kubectl/test_apiserver.h"

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/websocket.hpp"
#include "boost/beast/websocket/ssl.hpp"
#include "common/status.h"
#include "crypto/random.h"
#include "nlohmann/json.hpp"

namespace kshield::testing {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using json = nlohmann::json;
using SslStream = ssl::stream<tcp::socket>;
using Request = http::request<http::string_body>;

constexpr std::string_view kBearerProtocolPrefix = "base64url.bearer.authorization.k8s.io.";

std::string Str(beast::string_view s) { return std::string(s.data(), s.size()); }

std::string Dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string NewUuid() {
  std::string b = crypto::RandomString(16);
  b[6] = static_cast<char>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  std::string hex = absl::BytesToHexString(AV(b));
  return absl::StrCat(hex.substr(0, 8), "-", hex.substr(8, 4), "-", hex.substr(12, 4), "-",
                      hex.substr(16, 4), "-", hex.substr(20));
}

std::string UrlDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < s.size() &&
               absl::ascii_isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               absl::ascii_isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      std::string hex(s.substr(i + 1, 2));
      out.push_back(static_cast<char>(std::stoi(hex, nullptr, 16)));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// The parsed request target: path segments (decoded) and query parameters in order.
struct Target {
  std::string path;
  std::vector<std::string> segments;
  std::vector<std::pair<std::string, std::string>> query;

  std::optional<std::string> Param(std::string_view name) const {
    for (const auto& [k, v] : query) {
      if (k == name) return v;
    }
    return std::nullopt;
  }
  std::vector<std::string> Params(std::string_view name) const {
    std::vector<std::string> out;
    for (const auto& [k, v] : query) {
      if (k == name) out.push_back(v);
    }
    return out;
  }
  bool Flag(std::string_view name) const {
    std::optional<std::string> v = Param(name);
    return v && (*v == "true" || *v == "1");
  }
};

Target ParseTarget(std::string_view target) {
  Target t;
  size_t q = target.find('?');
  t.path = std::string(target.substr(0, q));
  for (absl::string_view seg : absl::StrSplit(AV(t.path), '/', absl::SkipEmpty())) {
    t.segments.push_back(UrlDecode(SV(seg)));
  }
  if (q != std::string_view::npos) {
    for (absl::string_view kv : absl::StrSplit(AV(target.substr(q + 1)), '&', absl::SkipEmpty())) {
      std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
      t.query.emplace_back(UrlDecode(p.first), UrlDecode(p.second));
    }
  }
  return t;
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string ShortAge(absl::Duration d) {
  int64_t s = absl::ToInt64Seconds(d);
  if (s < 0) s = 0;
  if (s < 120) return absl::StrCat(s, "s");
  if (s < 3 * 3600) return absl::StrCat(s / 60, "m");
  if (s < 48 * 3600) return absl::StrCat(s / 3600, "h");
  return absl::StrCat(s / 86400, "d");
}

json StatusJson(int code, std::string_view reason, std::string_view message) {
  return json{{"kind", "Status"},       {"apiVersion", "v1"},
              {"metadata", json::object()}, {"status", "Failure"},
              {"message", message},     {"reason", reason},
              {"code", code}};
}

// Every non-empty entry of every `name` header (comma-separated lists), trimmed.
template <typename Name>
std::vector<std::string> ListHeaderValues(const Request& req, Name name) {
  std::vector<std::string> out;
  auto range = req.equal_range(name);
  for (auto it = range.first; it != range.second; ++it) {
    const std::string value = Str(it->value());
    for (absl::string_view p : absl::StrSplit(AV(value), ',')) {
      p = absl::StripAsciiWhitespace(p);
      if (!p.empty()) out.emplace_back(p);
    }
  }
  return out;
}

std::vector<std::string> WebSocketProtocols(const Request& req) {
  return ListHeaderValues(req, http::field::sec_websocket_protocol);
}

bool WantsTable(const Request& req) {
  auto it = req.find(http::field::accept);
  return it != req.end() && Str(it->value()).find("as=Table") != std::string::npos;
}

struct SecretSeed {
  std::string ns, name, value;
};

const std::vector<SecretSeed>& Seeds() {
  static const auto* seeds = new std::vector<SecretSeed>{
      {"default", "s1", "value-of-s1"},
      {"default", "s2", "value-of-s2"},
      {"default", "s3", "value-of-s3"},
      {"kube-system", "ks1", "value-of-ks1"},
      {"team-a", "a1", "value-of-a1"},
  };
  return *seeds;
}

}  // namespace

class TestApiserver::Impl {
 public:
  explicit Impl(TestApiserverOptions o)
      : options_(std::move(o)), ctx_(ssl::context::tls_server), acceptor_(ioc_) {}

  ~Impl() { Stop(); }

  absl::Status Init() {
    if (options_.client_ca_pem.empty() && options_.bearer_tokens.empty()) {
      return absl::InvalidArgumentError("test apiserver: need client_ca_pem or bearer_tokens");
    }
    if (options_.watch_event_interval <= std::chrono::milliseconds(0)) {
      options_.watch_event_interval = std::chrono::milliseconds(500);
    }
    boost::system::error_code ec;
    ctx_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                         ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                         ssl::context::no_tlsv1_1,
                     ec);
    ctx_.use_certificate_chain(net::buffer(options_.server_cert_pem), ec);
    if (ec) return absl::InvalidArgumentError("test apiserver: bad server certificate");
    absl::Span<const uint8_t> key = options_.server_key_pem.UnsafeView();
    ctx_.use_private_key(net::buffer(key.data(), key.size()), ssl::context::pem, ec);
    if (ec) return absl::InvalidArgumentError("test apiserver: bad server key");
    if (SSL_CTX_check_private_key(ctx_.native_handle()) != 1) {
      return absl::InvalidArgumentError("test apiserver: key does not match certificate");
    }
    if (!options_.client_ca_pem.empty()) {
      ctx_.add_certificate_authority(net::buffer(options_.client_ca_pem), ec);
      if (ec) return absl::InvalidArgumentError("test apiserver: bad client CA");
      // Tell clients which CAs we accept (Go's TLS client sends its certificate only when it
      // chains to one of them, or when the list is empty).
      KSH_RETURN_IF_ERROR(AddClientCaNames());
      // Request a client certificate, but let a client without one through the handshake: it may
      // still authenticate with a bearer token. A certificate that does not verify fails.
      ctx_.set_verify_mode(ssl::verify_peer, ec);
      // Every certificate of client_ca_pem is an anchor (Go's x509 pool semantics), so a cluster
      // CA that is an intermediate under a shared root trusts only its own leaves.
      X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx_.native_handle()), X509_V_FLAG_PARTIAL_CHAIN);
    } else {
      ctx_.set_verify_mode(ssl::verify_none, ec);
    }
    SSL_CTX_set_session_id_context(ctx_.native_handle(),
                                   reinterpret_cast<const unsigned char*>("kshield-test"), 12);

    tcp::endpoint ep(net::ip::make_address("127.0.0.1"), options_.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("test apiserver: cannot listen on 127.0.0.1:", options_.port, ": ",
                       ec.message()));
    }
    port_ = acceptor_.local_endpoint().port();
    start_time_ = absl::Now() - absl::Hours(2);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
    return absl::OkStatus();
  }

  uint16_t port() const { return port_; }

  std::vector<RecordedRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return std::vector<RecordedRequest>(records_.begin(), records_.end());
  }
  size_t request_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return total_requests_;
  }
  size_t open_streams() const {
    std::lock_guard<std::mutex> lock(mu_);
    return open_streams_;
  }
  void ClearRequests() {
    std::lock_guard<std::mutex> lock(mu_);
    records_.clear();
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    cv_.notify_all();
    if (acceptor_.is_open()) ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    if (accept_thread_.joinable()) accept_thread_.join();
    boost::system::error_code ec;
    acceptor_.close(ec);
    std::map<uint64_t, std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& [id, fd] : live_fds_) ::shutdown(fd, SHUT_RDWR);
      threads.swap(threads_);
    }
    for (auto& [id, t] : threads) {
      if (t.joinable()) t.join();
    }
  }

 private:
  // Per-connection identity, fixed after the handshake.
  struct Peer {
    std::string cert_user;
    std::vector<std::string> cert_groups;
    std::string cert_pem;
    X509* cert = nullptr;  // owned; freed by ServeTls

    bool CertExpired() const { return cert != nullptr && X509_cmp_current_time(X509_get0_notAfter(cert)) < 0; }
  };

  // What one request is answered with, shared by the handlers.
  struct Exchange {
    SslStream& stream;
    beast::flat_buffer& buffer;  // bytes read past the request head (a pipelining client's)
    const Request& req;
    Target target;
    std::string user;
    std::vector<std::string> groups;
    std::string audit_id = NewUuid();
    std::string client_cert_pem;
  };

  absl::Status AddClientCaNames() {
    BIO* bio = BIO_new_mem_buf(options_.client_ca_pem.data(),
                               static_cast<int>(options_.client_ca_pem.size()));
    if (bio == nullptr) return absl::InternalError("test apiserver: BIO_new_mem_buf");
    int added = 0;
    while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      if (SSL_CTX_add_client_CA(ctx_.native_handle(), cert) == 1) ++added;
      X509_free(cert);
    }
    BIO_free(bio);
    ERR_clear_error();
    if (added == 0) return absl::InvalidArgumentError("test apiserver: no certificate in client CA");
    return absl::OkStatus();
  }

  void AcceptLoop() {
    for (;;) {
      tcp::socket socket(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      for (uint64_t id : finished_) {
        auto it = threads_.find(id);
        if (it != threads_.end()) {
          if (it->second.joinable()) it->second.join();
          threads_.erase(it);
        }
      }
      finished_.clear();
      if (ec) {
        // EMFILE and friends: back off a little instead of spinning.
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        continue;
      }
      uint64_t id = next_id_++;
      live_fds_[id] = socket.native_handle();
      threads_[id] = std::thread([this, id, s = std::move(socket)]() mutable {
        ServeConnection(id, std::move(s));
      });
    }
  }

  void ServeConnection(uint64_t id, tcp::socket socket) {
    {
      SslStream stream(std::move(socket), ctx_);
      ServeTls(stream);
      std::lock_guard<std::mutex> lock(mu_);
      live_fds_.erase(id);
      finished_.push_back(id);
    }  // the socket closes here, after it left live_fds_
  }

  void ServeTls(SslStream& stream) {
    boost::system::error_code ec;
    stream.handshake(ssl::stream_base::server, ec);
    if (ec) return;
    Peer peer;
    if (X509* cert = SSL_get_peer_certificate(stream.native_handle())) {
      X509_NAME* subject = X509_get_subject_name(cert);
      for (int i = -1; (i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) >= 0;) {
        peer.cert_user = EntryText(X509_NAME_get_entry(subject, i));
        break;
      }
      for (int i = -1; (i = X509_NAME_get_index_by_NID(subject, NID_organizationName, i)) >= 0;) {
        peer.cert_groups.push_back(EntryText(X509_NAME_get_entry(subject, i)));
      }
      BIO* bio = BIO_new(BIO_s_mem());
      if (bio != nullptr && PEM_write_bio_X509(bio, cert) == 1) {
        char* data = nullptr;
        long n = BIO_get_mem_data(bio, &data);
        if (n > 0) peer.cert_pem.assign(data, static_cast<size_t>(n));
      }
      BIO_free(bio);
      peer.cert = cert;
    }
    struct FreeCert {
      Peer& p;
      ~FreeCert() { X509_free(p.cert); }
    } free_cert{peer};
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(64 * 1024);
      parser.body_limit(1024 * 1024);
      http::read(stream, buffer, parser, ec);
      if (ec) return;
      Request req = parser.release();
      if (!HandleRequest(stream, buffer, req, peer)) break;
      if (Stopping()) break;
    }
    stream.shutdown(ec);
  }

  static std::string EntryText(X509_NAME_ENTRY* entry) {
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(entry);
    unsigned char* utf8 = nullptr;
    int n = ASN1_STRING_to_UTF8(&utf8, data);
    if (n < 0) return "";
    std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
    OPENSSL_free(utf8);
    return out;
  }

  bool Stopping() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }

  std::string TokenUser(const Request& req) const {
    if (options_.bearer_tokens.empty()) return "";
    std::vector<std::string> candidates;
    auto auth = req.find(http::field::authorization);
    if (auth != req.end()) {
      std::string v = Str(auth->value());
      if (absl::StartsWithIgnoreCase(v, "Bearer ")) {
        candidates.push_back(std::string(absl::StripAsciiWhitespace(v.substr(7))));
      }
    }
    for (const std::string& p : WebSocketProtocols(req)) {
      if (absl::StartsWith(p, AV(kBearerProtocolPrefix))) {
        std::string decoded;
        if (absl::WebSafeBase64Unescape(AV(p).substr(kBearerProtocolPrefix.size()), &decoded)) {
          candidates.push_back(decoded);
        }
      }
    }
    for (const std::string& c : candidates) {
      for (const std::string& t : options_.bearer_tokens) {
        if (!t.empty() && ConstantTimeEquals(c, t)) return t;
      }
    }
    return "";
  }

  void Record(const Exchange& x, int status) {
    RecordedRequest r;
    r.method = Str(x.req.method_string());
    r.target = Str(x.req.target());
    r.user = x.user;
    r.groups = x.groups;
    r.status = status;
    r.audit_id = x.audit_id;
    r.client_cert_pem = x.client_cert_pem;
    for (const auto& f : x.req) r.headers.emplace_back(Str(f.name_string()), Str(f.value()));
    std::lock_guard<std::mutex> lock(mu_);
    ++total_requests_;
    records_.push_back(std::move(r));
    while (records_.size() > options_.max_recorded_requests) records_.pop_front();
  }

  template <class Fields>
  void CommonHeaders(const Exchange& x, Fields& h) {
    h.set("Audit-Id", x.audit_id);
    h.set("X-Kshield-Test-Apiserver", options_.name);
    h.set(http::field::cache_control, "no-cache, private");
  }

  // Sends a whole response; false if the connection must close.
  bool Send(Exchange& x, int status, const std::string& body,
            std::string_view content_type = "application/json",
            const std::vector<std::pair<std::string, std::string>>& extra_headers = {}) {
    Record(x, status);
    http::response<http::string_body> res{static_cast<http::status>(status), x.req.version()};
    CommonHeaders(x, res);
    res.set(http::field::content_type, std::string(content_type));
    for (const auto& [name, value] : extra_headers) res.insert(name, value);
    res.keep_alive(x.req.keep_alive());
    res.body() = body;
    res.prepare_payload();
    boost::system::error_code ec;
    http::write(x.stream, res, ec);
    return !ec && x.req.keep_alive();
  }

  bool SendJson(Exchange& x, int status, const json& body) { return Send(x, status, Dump(body)); }

  bool SendStatus(Exchange& x, int code, std::string_view reason, std::string_view message) {
    return SendJson(x, code, StatusJson(code, reason, message));
  }

  bool HandleRequest(SslStream& stream, beast::flat_buffer& buffer, const Request& req,
                     const Peer& peer) {
    Exchange x{stream, buffer, req, ParseTarget(Str(req.target()))};
    x.client_cert_pem = peer.cert_pem;
    if (peer.CertExpired()) {
      // kube-apiserver verifies the client certificate on every request, not only at handshake.
      return SendStatus(x, 401, "Unauthorized", "Unauthorized");
    }
    if (!peer.cert_user.empty()) {
      x.user = peer.cert_user;
      x.groups = peer.cert_groups;
    } else {
      x.user = TokenUser(req);
    }
    if (x.user.empty()) return SendStatus(x, 401, "Unauthorized", "Unauthorized");

    const std::vector<std::string>& s = x.target.segments;
    const bool get = req.method() == http::verb::get;
    // /api/v1/namespaces/<ns>/pods/<pod>/{exec,portforward}
    if (s.size() == 7 && s[0] == "api" && s[1] == "v1" && s[2] == "namespaces" && s[4] == "pods" &&
        (s[6] == "exec" || s[6] == "portforward")) {
      if (IsSpdyUpgrade(req)) return ServeSpdyEcho(x, s[6]);
      if (s[6] == "exec" && websocket::is_upgrade(req)) {
        ServeExec(x, s[3], s[5]);
        return false;
      }
      return SendStatus(x, 400, "BadRequest",
                        s[6] == "exec" ? "Upgrade request required (WebSocket, or SPDY/3.1 echo)"
                                       : "Upgrade request required (SPDY/3.1 echo)");
    }
    if (!get) {
      return SendStatus(x, 403, "Forbidden",
                        absl::StrCat("User \"", x.user, "\" cannot ",
                                     absl::AsciiStrToLower(Str(req.method_string())), " ",
                                     x.target.path));
    }
    if (x.target.path == "/version" || x.target.path == "/version/") return ServeVersion(x);
    if (s.size() == 1 && s[0] == "api") {
      return SendJson(x, 200,
                      json{{"kind", "APIVersions"},
                           {"versions", {"v1"}},
                           {"serverAddressByClientCIDRs",
                            {{{"clientCIDR", "0.0.0.0/0"},
                              {"serverAddress", absl::StrCat("127.0.0.1:", port_)}}}}});
    }
    if (s.size() == 1 && s[0] == "apis") {
      return SendJson(x, 200,
                      json{{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", json::array()}});
    }
    if (s.size() == 2 && s[0] == "api" && s[1] == "v1") return ServeResourceList(x);
    if (s.size() >= 3 && s[0] == "api" && s[1] == "v1") {
      // /api/v1/secrets, /api/v1/pods (all namespaces)
      if (s.size() == 3 && s[2] == "secrets") return ServeSecrets(x, "", "");
      if (s.size() == 3 && s[2] == "pods") return ServePods(x, "", "");
      if (s[2] == "namespaces" && s.size() >= 5) {
        const std::string& ns = s[3];
        if (s[4] == "secrets" && s.size() == 5) return ServeSecrets(x, ns, "");
        if (s[4] == "secrets" && s.size() == 6) return ServeSecrets(x, ns, s[5]);
        if (s[4] == "pods" && s.size() == 5) return ServePods(x, ns, "");
        if (s[4] == "pods" && s.size() == 6) return ServePods(x, ns, s[5]);
      }
    }
    return SendStatus(x, 404, "NotFound", "the server could not find the requested resource");
  }

  bool ServeVersion(Exchange& x) {
    return SendJson(x, 200,
                    json{{"major", "1"},
                         {"minor", "32"},
                         {"gitVersion", "v1.32.0"},
                         {"gitCommit", "0000000000000000000000000000000000000000"},
                         {"gitTreeState", "clean"},
                         {"buildDate", "2024-12-11T00:00:00Z"},
                         {"goVersion", "go1.23.4"},
                         {"compiler", "gc"},
                         {"platform", "linux/amd64"},
                         {"kshieldTestApiserver", options_.name}});
  }

  bool ServeResourceList(Exchange& x) {
    json resources = json::array();
    resources.push_back({{"name", "pods"},
                         {"singularName", "pod"},
                         {"namespaced", true},
                         {"kind", "Pod"},
                         {"verbs", {"get", "list"}},
                         {"shortNames", {"po"}},
                         {"categories", {"all"}}});
    resources.push_back({{"name", "pods/exec"},
                         {"singularName", ""},
                         {"namespaced", true},
                         {"kind", "PodExecOptions"},
                         {"verbs", {"create", "get"}}});
    resources.push_back({{"name", "secrets"},
                         {"singularName", "secret"},
                         {"namespaced", true},
                         {"kind", "Secret"},
                         {"verbs", {"get", "list", "watch"}}});
    return SendJson(x, 200,
                    json{{"kind", "APIResourceList"},
                         {"groupVersion", "v1"},
                         {"resources", resources}});
  }

  // ---- Secrets -------------------------------------------------------------------------------

  std::string SecretKey(const SecretSeed& s) const { return s.ns + "/" + s.name; }

  uint64_t SecretRv(const SecretSeed& s) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = secret_rv_.find(SecretKey(s));
    return it == secret_rv_.end() ? kInitialRv : it->second;
  }

  uint64_t CurrentRv() {
    std::lock_guard<std::mutex> lock(mu_);
    return rv_;
  }

  uint64_t BumpRv(const SecretSeed& s) {
    std::lock_guard<std::mutex> lock(mu_);
    ++rv_;
    secret_rv_[SecretKey(s)] = rv_;
    return rv_;
  }

  // A stable UUID-shaped uid per Secret.
  static std::string SecretUid(const SecretSeed& s) {
    uint64_t h = 1469598103934665603ULL;  // FNV-1a
    for (char c : s.ns + "/" + s.name) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ULL;
    return absl::StrCat("00000000-0000-4000-8000-",
                        absl::Hex(h & 0xffffffffffffULL, absl::kZeroPad12));
  }

  json SecretMetadata(const SecretSeed& s, uint64_t rv) const {
    return json{{"name", s.name},
                {"namespace", s.ns},
                {"uid", SecretUid(s)},
                {"resourceVersion", std::to_string(rv)},
                {"creationTimestamp", Rfc3339(start_time_)},
                {"labels", {{"kshield.test/apiserver", options_.name}}}};
  }

  json SecretJson(const SecretSeed& s, uint64_t rv) const {
    return json{{"kind", "Secret"},
                {"apiVersion", "v1"},
                {"metadata", SecretMetadata(s, rv)},
                {"type", "Opaque"},
                {"data",
                 {{"value", absl::Base64Escape(AV(s.value))},
                  {"cluster", absl::Base64Escape(AV(options_.name))}}}};
  }

  static json SecretColumns() {
    auto col = [](const char* name, const char* type, const char* format, const char* desc) {
      return json{{"name", name}, {"type", type}, {"format", format}, {"description", desc},
                  {"priority", 0}};
    };
    return json::array({col("Name", "string", "name", "Name must be unique within a namespace."),
                        col("Type", "string", "", "The type of the secret."),
                        col("Data", "string", "", "The number of entries in the secret."),
                        col("Age", "string", "", "CreationTimestamp of the object.")});
  }

  json SecretRow(const SecretSeed& s, uint64_t rv) const {
    return json{{"cells", {s.name, "Opaque", 2, ShortAge(absl::Now() - start_time_)}},
                {"object",
                 {{"kind", "PartialObjectMetadata"},
                  {"apiVersion", "meta.k8s.io/v1"},
                  {"metadata", SecretMetadata(s, rv)}}}};
  }

  json TableJson(json columns, json rows, uint64_t rv) const {
    return json{{"kind", "Table"},
                {"apiVersion", "meta.k8s.io/v1"},
                {"metadata", {{"resourceVersion", std::to_string(rv)}}},
                {"columnDefinitions", std::move(columns)},
                {"rows", std::move(rows)}};
  }

  // Secrets of `ns` ("" = all), optionally narrowed by `name` or a metadata.name field selector.
  std::vector<SecretSeed> SelectSecrets(const Exchange& x, const std::string& ns,
                                        const std::string& name) const {
    std::string wanted = name;
    if (std::optional<std::string> fs = x.target.Param("fieldSelector")) {
      constexpr std::string_view kName = "metadata.name=";
      if (absl::StartsWith(AV(*fs), AV(kName))) wanted = fs->substr(kName.size());
    }
    std::vector<SecretSeed> out;
    for (const SecretSeed& s : Seeds()) {
      if (!ns.empty() && s.ns != ns) continue;
      if (!wanted.empty() && s.name != wanted) continue;
      out.push_back(s);
    }
    return out;
  }

  bool ServeSecrets(Exchange& x, const std::string& ns, const std::string& name) {
    std::vector<SecretSeed> selected = SelectSecrets(x, ns, name);
    if (x.target.Flag("watch")) return ServeSecretWatch(x, std::move(selected));
    const bool table = WantsTable(x.req);
    if (!name.empty()) {
      if (selected.empty()) {
        return SendStatus(x, 404, "NotFound", absl::StrCat("secrets \"", name, "\" not found"));
      }
      const SecretSeed& s = selected.front();
      uint64_t rv = SecretRv(s);
      if (table) return SendJson(x, 200, TableJson(SecretColumns(), {SecretRow(s, rv)}, rv));
      return SendJson(x, 200, SecretJson(s, rv));
    }
    uint64_t list_rv = CurrentRv();
    if (table) {
      json rows = json::array();
      for (const SecretSeed& s : selected) rows.push_back(SecretRow(s, SecretRv(s)));
      return SendJson(x, 200, TableJson(SecretColumns(), std::move(rows), list_rv));
    }
    json items = json::array();
    for (const SecretSeed& s : selected) items.push_back(SecretJson(s, SecretRv(s)));
    return SendJson(x, 200,
                    json{{"kind", "SecretList"},
                         {"apiVersion", "v1"},
                         {"metadata", {{"resourceVersion", std::to_string(list_rv)}}},
                         {"items", std::move(items)}});
  }

  json WatchEvent(const Exchange& x, std::string_view type, const SecretSeed& s, uint64_t rv,
                  bool table) const {
    json object = table ? TableJson(SecretColumns(), {SecretRow(s, rv)}, rv) : SecretJson(s, rv);
    return json{{"type", type}, {"object", std::move(object)}};
  }

  // Streams watch events with chunked transfer until the client goes away, timeoutSeconds passes,
  // or Stop(). Returns false: a watch ends its connection's use for us.
  bool ServeSecretWatch(Exchange& x, std::vector<SecretSeed> selected) {
    const bool table = WantsTable(x.req);
    Record(x, 200);
    http::response<http::empty_body> res{http::status::ok, x.req.version()};
    CommonHeaders(x, res);
    res.set(http::field::content_type, "application/json");
    res.chunked(true);
    res.keep_alive(x.req.keep_alive());
    http::response_serializer<http::empty_body> sr{res};
    boost::system::error_code ec;
    http::write_header(x.stream, sr, ec);
    if (ec) return false;

    auto send_event = [&](std::string_view type, const SecretSeed& s, uint64_t rv) {
      std::string line = Dump(WatchEvent(x, type, s, rv, table)) + "\n";
      net::write(x.stream, http::make_chunk(net::buffer(line)), ec);
      return !ec;
    };

    std::optional<std::string> from = x.target.Param("resourceVersion");
    if (!from || from->empty() || *from == "0") {
      for (const SecretSeed& s : selected) {
        if (!send_event("ADDED", s, SecretRv(s))) return false;
      }
    }
    std::optional<absl::Time> deadline;
    int64_t timeout_s = 0;
    if (std::optional<std::string> t = x.target.Param("timeoutSeconds");
        t && absl::SimpleAtoi(AV(*t), &timeout_s) && timeout_s > 0) {
      deadline = absl::Now() + absl::Seconds(timeout_s);
    }
    size_t next = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, options_.watch_event_interval, [this] { return stopping_; });
        if (stopping_) return false;
      }
      if (deadline && absl::Now() >= *deadline) break;
      if (selected.empty()) continue;
      const SecretSeed& s = selected[next++ % selected.size()];
      if (!send_event("MODIFIED", s, BumpRv(s))) return false;
    }
    net::write(x.stream, http::make_chunk_last(), ec);
    return !ec && x.req.keep_alive();
  }

  // ---- Pods ----------------------------------------------------------------------------------

  json PodJson(const std::string& ns, const std::string& name) const {
    return json{{"kind", "Pod"},
                {"apiVersion", "v1"},
                {"metadata",
                 {{"name", name},
                  {"namespace", ns},
                  {"uid", "00000000-0000-4000-8000-000000000001"},
                  {"resourceVersion", std::to_string(kInitialRv)},
                  {"creationTimestamp", Rfc3339(start_time_)},
                  {"labels", {{"kshield.test/apiserver", options_.name}}}}},
                {"spec", {{"containers", {{{"name", "main"}, {"image", "busybox"}}}}}},
                {"status",
                 {{"phase", "Running"},
                  {"containerStatuses",
                   {{{"name", "main"}, {"ready", true}, {"restartCount", 0},
                     {"image", "busybox"}, {"imageID", ""},
                     {"state", {{"running", {{"startedAt", Rfc3339(start_time_)}}}}}}}}}}};
  }

  bool ServePods(Exchange& x, const std::string& ns, const std::string& name) {
    const bool table = WantsTable(x.req);
    auto columns = [] {
      auto col = [](const char* n, const char* type, const char* format) {
        return json{{"name", n}, {"type", type}, {"format", format}, {"description", ""},
                    {"priority", 0}};
      };
      return json::array({col("Name", "string", "name"), col("Ready", "string", ""),
                          col("Status", "string", ""), col("Restarts", "string", ""),
                          col("Age", "string", "")});
    };
    auto row = [&](const std::string& pod_ns, const std::string& pod) {
      json pod_json = PodJson(pod_ns, pod);
      return json{{"cells", {pod, "1/1", "Running", "0", ShortAge(absl::Now() - start_time_)}},
                  {"object",
                   {{"kind", "PartialObjectMetadata"},
                    {"apiVersion", "meta.k8s.io/v1"},
                    {"metadata", pod_json["metadata"]}}}};
    };
    if (!name.empty()) {
      if (table) return SendJson(x, 200, TableJson(columns(), {row(ns, name)}, kInitialRv));
      return SendJson(x, 200, PodJson(ns, name));
    }
    // One pod per listed namespace, so `kubectl get pods` shows something.
    const std::string pod_ns = ns.empty() ? "default" : ns;
    if (table) return SendJson(x, 200, TableJson(columns(), {row(pod_ns, "pod1")}, kInitialRv));
    return SendJson(x, 200,
                    json{{"kind", "PodList"},
                         {"apiVersion", "v1"},
                         {"metadata", {{"resourceVersion", std::to_string(kInitialRv)}}},
                         {"items", {PodJson(pod_ns, "pod1")}}});
  }

  // ---- Exec ----------------------------------------------------------------------------------

  void ServeExec(Exchange& x, const std::string& ns, const std::string& pod) {
    const std::vector<std::string> offered = WebSocketProtocols(x.req);
    std::string protocol;
    for (const char* want : {"v5.channel.k8s.io", "v4.channel.k8s.io"}) {
      if (std::find(offered.begin(), offered.end(), want) != offered.end()) {
        protocol = want;
        break;
      }
    }
    if (protocol.empty()) {
      SendStatus(x, 400, "BadRequest",
                 "no supported subprotocol (want v5.channel.k8s.io or v4.channel.k8s.io)");
      return;
    }
    websocket::stream<SslStream&> ws(x.stream);
    const std::string audit_id = x.audit_id;
    const std::string name = options_.name;
    ws.set_option(websocket::stream_base::decorator([&](websocket::response_type& res) {
      res.set(http::field::sec_websocket_protocol, protocol);
      res.set("Audit-Id", audit_id);
      res.set("X-Kshield-Test-Apiserver", name);
    }));
    ws.read_message_max(1024 * 1024);
    Record(x, 101);
    boost::system::error_code ec;
    ws.accept(x.req, ec);
    if (ec) return;
    ws.binary(true);
    const bool v5 = protocol == "v5.channel.k8s.io";

    auto send = [&](uint8_t channel, std::string_view data) {
      std::string msg(1, static_cast<char>(channel));
      msg.append(data);
      ws.write(net::buffer(msg), ec);
      return !ec;
    };
    std::vector<std::string> command = x.target.Params("command");
    const bool tty = x.target.Flag("tty");
    const uint8_t err_channel = tty ? 1 : 2;
    int exit_code = 0;
    const std::string program = command.empty() ? "cat" : command[0];
    if (program == "echo") {
      std::vector<std::string> args(command.begin() + 1, command.end());
      if (!send(1, absl::StrJoin(args, " ") + "\n")) return;
    } else if (program == "hostname") {
      if (!send(1, absl::StrCat(pod, ".", ns, ".", options_.name, "\n"))) return;
    } else if (program == "cat") {
      // Echo stdin until the client closes it (v5 close signal) or the connection ends.
      beast::flat_buffer buf;
      for (;;) {
        buf.clear();
        ws.read(buf, ec);
        if (ec) return;  // no status to send on a dead connection
        std::string msg = beast::buffers_to_string(buf.data());
        if (msg.empty()) continue;
        const uint8_t channel = static_cast<uint8_t>(msg[0]);
        if (channel == 0) {
          if (msg.size() > 1 && !send(1, std::string_view(msg).substr(1))) return;
        } else if (v5 && channel == 255 && msg.size() >= 2 && msg[1] == 0) {
          break;  // stdin closed
        }
        // channel 4 (resize) and anything else: ignored
      }
    } else if (program == "false") {
      exit_code = 1;
    } else {
      if (!send(err_channel, absl::StrCat(program, ": command not found\n"))) return;
      exit_code = 127;
    }
    json status = json{{"metadata", json::object()}, {"status", "Success"}};
    if (exit_code != 0) {
      status = json{{"metadata", json::object()},
                    {"status", "Failure"},
                    {"message", absl::StrCat("command terminated with non-zero exit code: exit ",
                                             "status ", exit_code)},
                    {"reason", "NonZeroExitCode"},
                    {"details",
                     {{"causes", {{{"reason", "ExitCode"}, {"message", std::to_string(exit_code)}}}}}}};
    }
    if (!send(3, Dump(status))) return;
    ws.close(websocket::close_code::normal, ec);
  }

  // ---- SPDY/3.1 exec / portforward: negotiation, 101, raw echo ------------------------------

  static bool IsSpdyUpgrade(const Request& req) {
    bool connection_upgrade = false;
    auto range = req.equal_range(http::field::connection);
    for (auto it = range.first; it != range.second; ++it) {
      for (absl::string_view token : absl::StrSplit(AV(Str(it->value())), ',')) {
        if (absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(token), "upgrade")) {
          connection_upgrade = true;
        }
      }
    }
    auto upgrade = req.find(http::field::upgrade);
    return connection_upgrade && upgrade != req.end() &&
           absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(AV(Str(upgrade->value()))),
                                  "SPDY/3.1");
  }

  // Every X-Stream-Protocol-Version offer, in order (kube's commaSeparatedHeaderValues).
  static std::vector<std::string> StreamProtocolOffers(const Request& req) {
    return ListHeaderValues(req, "X-Stream-Protocol-Version");
  }

  // Mirrors k8s.io/apimachinery/pkg/util/httpstream.Handshake, then echoes raw bytes (see the
  // header). Returns false: the connection is not reused after an upgrade attempt that got 101.
  bool ServeSpdyEcho(Exchange& x, const std::string& subresource) {
    if (x.req.method() != http::verb::get && x.req.method() != http::verb::post) {
      return SendStatus(x, 405, "MethodNotAllowed",
                        absl::StrCat("the server does not allow this method on ", subresource));
    }
    static const std::vector<std::string> kExec = {"v4.channel.k8s.io", "v3.channel.k8s.io",
                                                   "v2.channel.k8s.io", "channel.k8s.io"};
    static const std::vector<std::string> kPortForward = {"portforward.k8s.io"};
    const std::vector<std::string>& accepted = subresource == "exec" ? kExec : kPortForward;
    const std::vector<std::string> offers = StreamProtocolOffers(x.req);
    if (offers.empty()) {
      return Send(x, 400, "unable to upgrade: X-Stream-Protocol-Version is required\n",
                  "text/plain; charset=utf-8");
    }
    std::string protocol;
    for (const std::string& offer : offers) {
      if (std::find(accepted.begin(), accepted.end(), offer) != accepted.end()) {
        protocol = offer;
        break;
      }
    }
    if (protocol.empty()) {
      std::vector<std::pair<std::string, std::string>> headers;
      for (const std::string& a : accepted) {
        headers.emplace_back("X-Accepted-Stream-Protocol-Versions", a);
      }
      return Send(x, 403,
                  absl::StrCat("unable to upgrade: unable to negotiate protocol: client supports [",
                               absl::StrJoin(offers, " "), "], server accepts [",
                               absl::StrJoin(accepted, " "), "]\n"),
                  "text/plain; charset=utf-8", headers);
    }

    Record(x, 101);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++open_streams_;
    }
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    boost::system::error_code ec;
    // One write: the 101 head and the greeting leave in the same TLS record, as a server's first
    // frame after the 101 may.
    std::string out = absl::StrCat(
        "HTTP/1.1 101 Switching Protocols\r\n", "Connection: Upgrade\r\n", "Upgrade: SPDY/3.1\r\n",
        "X-Stream-Protocol-Version: ", protocol, "\r\n", "Audit-Id: ", x.audit_id, "\r\n",
        "X-Kshield-Test-Apiserver: ", options_.name, "\r\n\r\n", options_.spdy_greeting);
    net::write(x.stream, net::buffer(out), ec);
    if (!ec) bytes_out += options_.spdy_greeting.size();
    // Bytes the client sent together with the request head come first.
    if (!ec && x.buffer.size() > 0) {
      const size_t n = x.buffer.size();
      bytes_in += n;
      net::write(x.stream, x.buffer.data(), ec);
      x.buffer.consume(n);
      if (!ec) bytes_out += n;
    }
    std::vector<char> buf(16 * 1024);
    while (!ec) {
      const size_t n = x.stream.read_some(net::buffer(buf), ec);
      bytes_in += n;
      if (n > 0) {
        boost::system::error_code wec;
        net::write(x.stream, net::buffer(buf.data(), n), wec);
        if (wec) break;
        bytes_out += n;
      }
    }
    std::lock_guard<std::mutex> lock(mu_);
    --open_streams_;
    for (RecordedRequest& r : records_) {
      if (r.audit_id == x.audit_id) {
        r.stream_closed = true;
        r.stream_bytes_in = bytes_in;
        r.stream_bytes_out = bytes_out;
      }
    }
    return false;
  }

  static constexpr uint64_t kInitialRv = 1000;

  TestApiserverOptions options_;
  ssl::context ctx_;
  net::io_context ioc_;  // only to construct sockets; all I/O here is blocking
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  absl::Time start_time_;
  std::thread accept_thread_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // wakes watch streams on Stop()
  bool stopping_ = false;
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::thread> threads_;
  std::map<uint64_t, int> live_fds_;
  std::vector<uint64_t> finished_;
  std::deque<RecordedRequest> records_;
  size_t total_requests_ = 0;
  size_t open_streams_ = 0;
  uint64_t rv_ = kInitialRv;
  std::map<std::string, uint64_t> secret_rv_;
};

absl::StatusOr<std::unique_ptr<TestApiserver>> TestApiserver::Start(TestApiserverOptions o) {
  auto impl = std::make_unique<Impl>(std::move(o));
  KSH_RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<TestApiserver>(new TestApiserver(std::move(impl)));
}

TestApiserver::TestApiserver(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TestApiserver::~TestApiserver() { Stop(); }
uint16_t TestApiserver::port() const { return impl_->port(); }
std::string TestApiserver::url() const { return absl::StrCat("https://127.0.0.1:", port()); }
std::vector<RecordedRequest> TestApiserver::requests() const { return impl_->requests(); }
size_t TestApiserver::request_count() const { return impl_->request_count(); }
size_t TestApiserver::open_streams() const { return impl_->open_streams(); }
std::optional<RecordedRequest> TestApiserver::WaitForEndedStream(
    const std::string& audit_id, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (RecordedRequest& r : requests()) {
      if (r.audit_id == audit_id && r.stream_closed) return std::move(r);
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}
void TestApiserver::ClearRequests() { impl_->ClearRequests(); }
void TestApiserver::Stop() { impl_->Stop(); }

}  // namespace kshield::testing
