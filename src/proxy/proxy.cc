#include "proxy/proxy.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "boost/asio/co_spawn.hpp"
#include "boost/asio/connect.hpp"
#include "boost/asio/io_context.hpp"
#include "boost/asio/ip/tcp.hpp"
#include "boost/asio/redirect_error.hpp"
#include "boost/asio/ssl.hpp"
#include "boost/asio/steady_timer.hpp"
#include "boost/asio/executor_work_guard.hpp"
#include "boost/asio/use_awaitable.hpp"
#include "boost/asio/write.hpp"
#include "boost/beast/core.hpp"
#include "boost/beast/http.hpp"
#include "boost/beast/ssl/ssl_stream.hpp"
#include "common/log.h"
#include "common/status.h"
#include "crypto/tls_peer.h"
#include "metrics/registry.h"
#include "net/tcp_server.h"
#include "net/url.h"
#include "proxy/http_filter.h"

namespace kshield::proxy {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
template <typename T>
using Awaitable = net::awaitable<T>;
using Stream = beast::ssl_stream<tcp::socket>;

constexpr int kMaxThreads = 64;
// Body bytes moved per read/write step. A watch event or a log line is relayed as soon as it is
// read, whatever this size; it only bounds memory per connection.
constexpr size_t kRelayBufferBytes = 16 * 1024;
// Idle upstream connections older than this are not reused (kube-apiserver closes idle
// connections after 90 s; stay well below).
constexpr auto kMaxIdleAge = std::chrono::seconds(45);
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
// Bound on the close_notify exchange that ends a spliced (upgraded) connection.
constexpr auto kTlsShutdownTimeout = std::chrono::milliseconds(2000);
// Bodies are streamed, so Beast's body limit is not ours to enforce (the apiserver has its own).
// Not boost::none: Boost 1.74's parser compares `len > body_limit_` with an empty optional as
// "exceeded" for Content-Length bodies.
constexpr uint64_t kNoBodyLimit = std::numeric_limits<uint64_t>::max();

std::string_view S(beast::string_view v) { return {v.data(), v.size()}; }

auto Redirect(beast::error_code& ec) { return net::redirect_error(net::use_awaitable, ec); }

// --- metrics
// ---------------------------------------------------------------------------------------

struct ProxyMetrics {
  metrics::Counter& requests;
  metrics::Counter& bad_request;
  metrics::Counter& header_too_large;
  metrics::Counter& unauthenticated;
  metrics::Counter& unknown_cluster;
  metrics::Counter& broken_upstream;
  metrics::Counter& upstream_unavailable;
  metrics::Counter& upstream_timeout;
  metrics::Counter& overloaded;
  metrics::Counter& tls_handshake;
  metrics::Counter& client_timeout;

  static const ProxyMetrics& Get() {
    static const ProxyMetrics* const m = [] {
      auto& registry = metrics::Registry::Default();
      auto& rejected = registry.Counter("kshield_kubectl_proxy_rejected_total",
                                        "kshield-kubectl proxy requests or connections refused or "
                                        "failed, by reason.",
                                        {"reason"});
      return new ProxyMetrics{
          registry
              .Counter("kshield_kubectl_proxy_requests_total",
                       "Requests the kshield-kubectl proxy answered (any status).", {})
              .WithLabels({}),
          rejected.WithLabels({"bad_request"}),
          rejected.WithLabels({"header_too_large"}),
          rejected.WithLabels({"unauthenticated"}),
          rejected.WithLabels({"unknown_cluster"}),
          rejected.WithLabels({"broken_upstream"}),
          rejected.WithLabels({"upstream_unavailable"}),
          rejected.WithLabels({"upstream_timeout"}),
          rejected.WithLabels({"overloaded"}),
          rejected.WithLabels({"tls_handshake"}),
          rejected.WithLabels({"client_timeout"}),
      };
    }();
    return *m;
  }
};

// --- upstream description
// ----------------------------------------------------------------------------

struct ServerTarget {
  std::string host;  // without brackets
  std::string port = "443";
  uint16_t port_number = 443;
  std::string authority;                    // the Host header value, as written in the URL
  std::string prefix;                       // "" or "/a/b" (no trailing '/')
  std::optional<net::ip::address> address;  // set when host is an IP literal
};

// The rules are net::ParseHttpsUrl's (net/url.h), with the scheme in any case (a kubeconfig's
// server is taken as written) and no query.
absl::StatusOr<ServerTarget> ParseServerUrl(std::string_view url) {
  absl::StatusOr<kshield::net::ParsedHttpsUrl> u =
      kshield::net::ParseHttpsUrl(url, {.allow_query = false, .any_case_scheme = true});
  if (!u.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("upstream server URL: ", u.status().message()));
  }
  ServerTarget t;
  t.host = std::move(u->host);
  t.port = std::to_string(u->port);
  t.port_number = u->port;
  t.authority = std::move(u->authority);
  t.prefix = u->PathPrefix();
  if (u->ip_literal) {
    boost::system::error_code ec;
    net::ip::address addr = net::ip::make_address(t.host, ec);
    if (ec) return absl::InvalidArgumentError("upstream server URL: bad IP address");
    t.address = addr;
  }
  return t;
}

absl::Status SslError(std::string_view what, const boost::system::error_code& ec) {
  return absl::InvalidArgumentError(absl::StrCat(AV(what), ": ", ec.message()));
}

// The TLS client context of one upstream: its CA bundle as the only trust anchors, its client
// certificate and key (if any). Host-name checks are set per connection (SSL_set1_host).
absl::StatusOr<std::unique_ptr<ssl::context>> MakeUpstreamContext(const Upstream& u) {
  if (u.ca_pem.empty()) return absl::InvalidArgumentError("upstream ca_pem is required");
  const bool has_cert = !u.client_cert_pem.empty();
  const bool has_key = !u.client_key_pem.empty();
  if (has_cert != has_key) {
    return absl::InvalidArgumentError("upstream client certificate and key must come together");
  }
  if (!has_cert && !u.bearer_token) {
    return absl::InvalidArgumentError(
        "upstream has neither a client certificate nor a token source");
  }
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  if (ec) return SslError("upstream TLS options", ec);
  SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION);
  ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, ec);
  if (ec) return SslError("upstream TLS verify mode", ec);
  ctx->add_certificate_authority(net::buffer(u.ca_pem), ec);
  if (ec) return SslError("upstream ca_pem", ec);
  // Like client-go: every certificate of the bundle is a trust anchor, root or not.
  X509_STORE_set_flags(SSL_CTX_get_cert_store(ctx->native_handle()), X509_V_FLAG_PARTIAL_CHAIN);
  if (has_cert) {
    ctx->use_certificate_chain(net::buffer(u.client_cert_pem), ec);
    if (ec) return SslError("upstream client certificate", ec);
    std::string_view key = u.client_key_pem.UnsafeStringView();
    ctx->use_private_key(net::buffer(key.data(), key.size()), ssl::context::pem, ec);
    if (ec) return SslError("upstream client key", ec);
    if (SSL_CTX_check_private_key(ctx->native_handle()) != 1) {
      return absl::InvalidArgumentError("upstream client key does not match its certificate");
    }
  }
  return ctx;
}

// An open TLS connection to an apiserver, registered with one I/O context: it only serves
// sessions of that context (every operation of a session runs on its context's one thread).
struct UpstreamConn {
  UpstreamConn(net::io_context& ioc, ssl::context& ctx) : stream(ioc, ctx) {}
  tcp::socket& socket() { return stream.next_layer(); }
  // False when the peer closed it or sent something unsolicited while idle (e.g. a close_notify).
  bool LooksReusable() {
    char b;
    ssize_t n = ::recv(socket().native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  Stream stream;
  beast::flat_buffer buffer;
  Clock::time_point idle_since;
};

// Idle upstream connections of one cluster for one I/O context: a connection is only reused by
// sessions of the io_context its socket is registered with.
struct IdlePool {
  absl::Mutex mu;  // uncontended on the request path; SetUpstream / teardown may run elsewhere
  std::vector<std::unique_ptr<UpstreamConn>> idle ABSL_GUARDED_BY(mu);
};

// One configured cluster: its Upstream, TLS context and idle connection pools (one per I/O
// context). Replaced whole by SetUpstream; a request keeps the state it started with.
struct ClusterState {
  std::string name;
  std::shared_ptr<const Upstream> upstream;
  absl::Status error;  // not OK: the Upstream is unusable; requests get 502
  ServerTarget target;
  std::string verify_name;
  bool verify_is_ip = false;
  std::unique_ptr<ssl::context> ctx;
  size_t max_idle = 0;  // per I/O context
  std::unique_ptr<IdlePool[]> pools;
  size_t pool_count = 0;

  std::unique_ptr<UpstreamConn> TakeIdle(size_t io_index) {
    if (io_index >= pool_count) return nullptr;
    IdlePool& pool = pools[io_index];
    std::vector<std::unique_ptr<UpstreamConn>> stale;  // closed outside the lock
    std::unique_ptr<UpstreamConn> out;
    {
      absl::MutexLock l(&pool.mu);
      const auto now = Clock::now();
      while (!pool.idle.empty()) {
        std::unique_ptr<UpstreamConn> c = std::move(pool.idle.back());
        pool.idle.pop_back();
        if (now - c->idle_since < kMaxIdleAge && c->LooksReusable()) {
          out = std::move(c);
          break;
        }
        stale.push_back(std::move(c));
      }
    }
    return out;
  }

  void PutIdle(size_t io_index, std::unique_ptr<UpstreamConn> c) {
    if (io_index >= pool_count) return;
    IdlePool& pool = pools[io_index];
    c->idle_since = Clock::now();
    absl::MutexLock l(&pool.mu);
    if (pool.idle.size() < max_idle) pool.idle.push_back(std::move(c));
  }
};

std::shared_ptr<ClusterState> MakeClusterState(const std::string& name,
                                               std::shared_ptr<const Upstream> upstream,
                                               size_t max_idle, size_t io_contexts) {
  auto cs = std::make_shared<ClusterState>();
  cs->name = name;
  cs->upstream = std::move(upstream);
  cs->max_idle = max_idle;
  cs->pools = std::make_unique<IdlePool[]>(io_contexts);
  cs->pool_count = io_contexts;
  if (cs->upstream == nullptr) {
    cs->error = absl::InvalidArgumentError("no upstream");
    return cs;
  }
  absl::StatusOr<ServerTarget> target = ParseServerUrl(cs->upstream->server);
  if (!target.ok()) {
    cs->error = target.status();
    return cs;
  }
  cs->target = std::move(*target);
  cs->verify_name =
      cs->upstream->tls_server_name.empty() ? cs->target.host : cs->upstream->tls_server_name;
  boost::system::error_code ec;
  net::ip::make_address(cs->verify_name, ec);
  cs->verify_is_ip = !ec;
  absl::StatusOr<std::unique_ptr<ssl::context>> ctx = MakeUpstreamContext(*cs->upstream);
  if (!ctx.ok()) {
    cs->error = ctx.status();
    return cs;
  }
  cs->ctx = std::move(*ctx);
  return cs;
}

using ClusterMap = absl::flat_hash_map<std::string, std::shared_ptr<ClusterState>>;

// State every session needs; shared so it outlives the last session whatever the teardown order.
struct Shared {
  explicit Shared(const ProxyOptions& o)
      : tokens(o.tokens),
        audit(o.audit),
        client_header_timeout(o.client_header_timeout),
        upstream_connect_timeout(o.upstream_connect_timeout),
        response_header_timeout(o.response_header_timeout),
        max_header_bytes(o.max_header_bytes),
        max_connections(o.max_connections),
        max_idle_per_cluster(o.max_idle_per_cluster),
        clusters(std::make_shared<const ClusterMap>()) {}

  const LocalTokenValidator* const tokens;
  const std::function<void(const std::string&)> audit;
  const std::chrono::milliseconds client_header_timeout;
  const std::chrono::milliseconds upstream_connect_timeout;
  const std::chrono::milliseconds response_header_timeout;
  const size_t max_header_bytes;
  const size_t max_connections;
  const size_t max_idle_per_cluster;
  ssl::context server_ctx{ssl::context::tls_server};
  std::atomic<std::shared_ptr<const ClusterMap>> clusters;
  std::atomic<size_t> connections{0};
};

// --- audit ---------------------------------------------------------------------------------------

struct AuditRecord {
  absl::Time ts = absl::Now();
  Clock::time_point start = Clock::now();
  std::string user;
  std::string cluster;
  std::string method;
  std::string verb;
  std::string path;
  int status = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::string audit_id;
};

std::string AuditJson(const AuditRecord& a) {
  std::string out;
  out.reserve(256 + a.path.size());
  auto field = [&out](std::string_view key, std::string_view value) {
    out.push_back(out.empty() ? '{' : ',');
    log::AppendJsonString(&out, key);
    out.push_back(':');
    log::AppendJsonString(&out, value);
  };
  auto number = [&out](std::string_view key, std::string_view value) {
    out.push_back(',');
    log::AppendJsonString(&out, key);
    out.push_back(':');
    out.append(value);
  };
  field("ts", absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", a.ts, absl::UTCTimeZone()));
  field("user", a.user);
  field("cluster", a.cluster);
  field("method", a.method);
  field("verb", a.verb);
  field("path", a.path);
  number("status", std::to_string(a.status));
  number("bytes_in", std::to_string(a.bytes_in));
  number("bytes_out", std::to_string(a.bytes_out));
  char ms[32];
  std::snprintf(ms, sizeof(ms), "%.3f",
                std::chrono::duration<double, std::milli>(Clock::now() - a.start).count());
  number("duration_ms", ms);
  field("audit_id", a.audit_id);
  out.push_back('}');
  return out;
}

void SetSocketOptions(tcp::socket& s) {
  boost::system::error_code ec;
  s.set_option(tcp::no_delay(true), ec);
  s.set_option(net::socket_base::keep_alive(true), ec);
}

// --- a client connection
// -----------------------------------------------------------------------------

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(std::shared_ptr<Shared> shared, net::io_context& ioc, size_t io_index,
          tcp::socket socket)
      : shared_(std::move(shared)),
        ioc_(ioc),
        io_index_(io_index),
        client_(std::move(socket), shared_->server_ctx),
        timer_(client_.get_executor()) {
    shared_->connections.fetch_add(1, std::memory_order_relaxed);
  }
  ~Session() { shared_->connections.fetch_sub(1, std::memory_order_relaxed); }

  static void Launch(std::shared_ptr<Session> session) {
    auto executor = session->client_.get_executor();
    net::co_spawn(executor, Run(session), [session](std::exception_ptr e) {
      if (e) {
        log::Error("proxy.session_exception", {});
        session->Close();
      }
    });
  }

 private:
  enum class Expire { kNone, kClient, kUpstream, kBoth };
  enum class RelayResult { kOk, kInError, kOutError };

  static Awaitable<void> Run(std::shared_ptr<Session> self) {
    co_await self->Serve();
    self->Close();
  }

  void Close() {
    closed_ = true;
    timer_.cancel();
    CloseClient();
    CloseUpstream();
    upstream_.reset();
  }
  void CloseClient() {
    boost::system::error_code ec;
    client_.next_layer().close(ec);
  }
  void CloseUpstream() {
    boost::system::error_code ec;
    if (resolver_) resolver_->cancel();
    if (upstream_) upstream_->socket().close(ec);
  }

  // --- the watchdog: one timer per session, re-armed lazily -------------------------------------
  void Arm(std::chrono::milliseconds d, Expire what) {
    deadline_ = Clock::now() + d;
    expire_ = what;
    timed_out_ = false;
    if (!timer_waiting_ || deadline_ < timer_.expiry()) {
      timer_waiting_ = true;
      timer_.expires_at(deadline_);  // aborts an older wait, if any
      Wait();
    }
  }
  void Disarm() {
    deadline_ = Clock::time_point::max();
    expire_ = Expire::kNone;
  }
  void Wait() {
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (ec == net::error::operation_aborted || self->closed_) return;
      if (Clock::now() < self->deadline_) {
        self->timer_.expires_at(self->deadline_);
        self->Wait();
        return;
      }
      self->timer_waiting_ = false;
      self->timed_out_ = true;
      const Expire what = self->expire_;
      self->expire_ = Expire::kNone;
      if (what == Expire::kClient || what == Expire::kBoth) self->CloseClient();
      if (what == Expire::kUpstream || what == Expire::kBoth) self->CloseUpstream();
    });
  }

  char* RelayBuffer() {
    if (!relay_buf_) relay_buf_ = std::make_unique<char[]>(kRelayBufferBytes);
    return relay_buf_.get();
  }

  // --- the request loop -------------------------------------------------------------------------
  Awaitable<void> Serve() {
    const ProxyMetrics& m = ProxyMetrics::Get();
    beast::error_code ec;
    SetSocketOptions(client_.next_layer());
    Arm(shared_->client_header_timeout, Expire::kClient);
    co_await client_.async_handshake(ssl::stream_base::server, Redirect(ec));
    if (ec) {
      m.tls_handshake.Inc();
      co_return;
    }
    while (!closed_) {
      Arm(shared_->client_header_timeout, Expire::kClient);
      http::request_parser<http::buffer_body> parser;
      parser.header_limit(static_cast<uint32_t>(shared_->max_header_bytes));
      parser.body_limit(kNoBodyLimit);
      co_await http::async_read_header(client_, client_buf_, parser, Redirect(ec));
      if (ec) {
        if (timed_out_) {
          if (parser.got_some()) m.client_timeout.Inc();
          co_return;
        }
        // The client went away, or the TLS layer failed: nothing to answer.
        const bool http_error =
            ec.category() == http::make_error_code(http::error::header_limit).category();
        if (!http_error || ec == http::error::end_of_stream || ec == http::error::partial_message) {
          co_return;
        }
        AuditRecord a;
        if (ec == http::error::header_limit) {
          m.header_too_large.Inc();
          co_await SendStatus(a, 431, "BadRequest", "request header too large", false, 11);
        } else {
          m.bad_request.Inc();
          co_await SendStatus(a, 400, "BadRequest", "malformed HTTP request", false, 11);
        }
        co_return;
      }
      const bool keep_alive = co_await HandleRequest(parser);
      if (!keep_alive) co_return;
    }
  }

  // Writes a Kubernetes Status error. `a` (when it has a method) is audited.
  Awaitable<bool> SendStatus(AuditRecord& a, int code, std::string_view reason,
                             std::string_view message, bool keep_alive, unsigned version) {
    beast::error_code ec;
    http::response<http::string_body> res;
    res.version(version < 11 ? 10 : 11);
    res.result(static_cast<unsigned>(code));
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-cache, private");
    res.body() = StatusJson(code, reason, message);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    Arm(shared_->client_header_timeout, Expire::kClient);
    co_await http::async_write(client_, res, Redirect(ec));
    a.status = code;
    if (!a.method.empty()) EmitAudit(a);
    co_return keep_alive && !ec;
  }

  void EmitAudit(const AuditRecord& a) {
    ProxyMetrics::Get().requests.Inc();
    if (shared_->audit) shared_->audit(AuditJson(a));
  }

  // One request whose head has been read. Returns whether the client connection stays open.
  Awaitable<bool> HandleRequest(http::request_parser<http::buffer_body>& parser) {
    const ProxyMetrics& m = ProxyMetrics::Get();
    auto& req = parser.get();
    AuditRecord a;
    a.method = std::string(S(req.method_string()));
    if (a.method.empty()) a.method = "?";
    const unsigned version = req.version();
    // A rejected request whose body we have not read cannot leave the connection usable.
    const bool reusable_on_reject = req.keep_alive() && parser.is_done();
    const std::string_view target = S(req.target());

    absl::StatusOr<Route> route = ParseRoute(target);
    if (!route.ok()) {
      a.path = PrintableTruncated(target.substr(0, target.find('?')), 256);
      a.verb = absl::AsciiStrToLower(AV(a.method));
      if (target.size() > kMaxTargetBytes) {
        m.bad_request.Inc();
        co_return co_await SendStatus(a, 414, "BadRequest", "request target too long",
                                      reusable_on_reject, version);
      }
      m.bad_request.Inc();
      co_return co_await SendStatus(a, 400, "BadRequest",
                                    absl::StrCat("kshield-kubectl: ", route.status().message()),
                                    reusable_on_reject, version);
    }
    a.cluster = route->cluster;
    a.path = route->path;
    const bool wants_upgrade = parser.upgrade() && IsAllowedUpgrade(S(req[http::field::upgrade]));
    a.verb = VerbOf(a.method, route->path, route->query, wants_upgrade);

    std::shared_ptr<const ClusterMap> clusters = shared_->clusters.load();
    auto it = clusters->find(route->cluster);
    if (it == clusters->end()) {
      m.unknown_cluster.Inc();
      co_return co_await SendStatus(
          a, 404, "NotFound",
          absl::StrCat("kshield-kubectl: cluster \"", route->cluster, "\" is not configured"),
          reusable_on_reject, version);
    }
    std::shared_ptr<ClusterState> cs = it->second;
    clusters.reset();

    absl::StatusOr<std::string> token = ExtractLocalToken(req);
    absl::StatusOr<std::string> user =
        token.ok() ? shared_->tokens->Validate(route->cluster, *token) : token.status();
    if (!user.ok() || user->empty()) {
      m.unauthenticated.Inc();
      co_return co_await SendStatus(a, 401, "Unauthorized", "Unauthorized", reusable_on_reject,
                                    version);
    }
    a.user = std::move(*user);
    if (!cs->error.ok()) {
      m.broken_upstream.Inc();
      co_return co_await SendStatus(
          a, 502, "ServiceUnavailable",
          absl::StrCat("kshield-kubectl: the credential or server of cluster \"", cs->name,
                       "\" is not usable: ", cs->error.message()),
          reusable_on_reject, version);
    }
    co_return co_await Forward(parser, *route, cs, wants_upgrade, a);
  }

  // Opens a new connection to the cluster's apiserver into upstream_.
  Awaitable<absl::Status> Connect(const ClusterState& cs) {
    beast::error_code ec;
    upstream_ = std::make_unique<UpstreamConn>(ioc_, *cs.ctx);
    Arm(shared_->upstream_connect_timeout, Expire::kUpstream);
    const std::string where = absl::StrCat(cs.target.host, ":", cs.target.port);
    if (cs.target.address) {
      tcp::endpoint ep(*cs.target.address, cs.target.port_number);
      co_await upstream_->socket().async_connect(ep, Redirect(ec));
    } else {
      resolver_.emplace(client_.get_executor());
      tcp::resolver::results_type results =
          co_await resolver_->async_resolve(cs.target.host, cs.target.port, Redirect(ec));
      resolver_.reset();
      if (!ec && !timed_out_) {
        co_await net::async_connect(upstream_->socket(), results, Redirect(ec));
      }
    }
    if (timed_out_)
      co_return absl::DeadlineExceededError(absl::StrCat("connecting to ", where, " timed out"));
    if (ec)
      co_return absl::UnavailableError(
          absl::StrCat("cannot connect to ", where, ": ", ec.message()));
    SetSocketOptions(upstream_->socket());
    SSL* ssl_handle = upstream_->stream.native_handle();
    if (!crypto::ExpectPeerName(ssl_handle, cs.verify_name).ok()) {
      co_return absl::InvalidArgumentError(cs.verify_is_ip ? "bad upstream TLS server address"
                                                           : "bad upstream TLS server name");
    }
    co_await upstream_->stream.async_handshake(ssl::stream_base::client, Redirect(ec));
    if (timed_out_)
      co_return absl::DeadlineExceededError(
          absl::StrCat("TLS handshake with ", where, " timed out"));
    if (ec) {
      long verify = SSL_get_verify_result(ssl_handle);
      std::string reason = verify != X509_V_OK ? absl::StrCat("certificate verification failed: ",
                                                              X509_verify_cert_error_string(verify))
                                               : ec.message();
      co_return absl::UnavailableError(
          absl::StrCat("TLS handshake with ", where, " failed: ", reason));
    }
    co_return absl::OkStatus();
  }

  // Moves one message body from `in` to `out`, chunk by chunk as it arrives. The head is sent
  // first when no body bytes are already buffered, so a client sees a watch's head at once.
  template <bool isRequest, class In, class Out>
  Awaitable<RelayResult> Relay(In& in, beast::flat_buffer& in_buf,
                               http::parser<isRequest, http::buffer_body>& p, Out& out,
                               http::serializer<isRequest, http::buffer_body>& sr,
                               uint64_t* body_bytes, bool request_phase) {
    beast::error_code ec;
    char* const buf = RelayBuffer();
    auto& body = p.get().body();
    bool head_sent = false;
    auto arm = [&] {
      if (request_phase) Arm(shared_->client_header_timeout, Expire::kBoth);
    };
    for (;;) {
      if (!head_sent && !p.is_done() && in_buf.size() == 0) {
        body.data = nullptr;
        body.size = 0;
        body.more = true;
        arm();
        co_await http::async_write_header(out, sr, Redirect(ec));
        if (ec) co_return RelayResult::kOutError;
        head_sent = true;
      }
      size_t n = 0;
      if (!p.is_done()) {
        body.data = buf;
        body.size = kRelayBufferBytes;
        arm();
        co_await http::async_read_some(in, in_buf, p, Redirect(ec));
        if (ec == http::error::need_buffer) ec = {};
        if (ec) co_return RelayResult::kInError;
        n = kRelayBufferBytes - body.size;
      }
      body.data = n > 0 ? buf : nullptr;
      body.size = n;
      body.more = !p.is_done();
      if (n == 0 && body.more) continue;
      arm();
      co_await http::async_write(out, sr, Redirect(ec));
      if (ec == http::error::need_buffer) ec = {};
      if (ec) co_return RelayResult::kOutError;
      head_sent = true;
      *body_bytes += n;
      if (sr.is_done() || !body.more) co_return RelayResult::kOk;
    }
  }

  Awaitable<bool> Forward(http::request_parser<http::buffer_body>& parser, const Route& route,
                          std::shared_ptr<ClusterState> cs, bool upgrade, AuditRecord& a) {
    const ProxyMetrics& m = ProxyMetrics::Get();
    beast::error_code ec;
    auto& req = parser.get();
    const unsigned version = req.version();
    const bool client_keep_alive = req.keep_alive() && !upgrade;
    const bool is_head = req.method() == http::verb::head;
    const bool has_body = !parser.is_done();
    const bool expect_continue =
        absl::EqualsIgnoreCase(AV(S(req[http::field::expect])), "100-continue");

    SanitizeRequestHeaders(req, upgrade);
    std::string upstream_target = cs->target.prefix + route.path;
    if (!route.query.empty()) absl::StrAppend(&upstream_target, "?", route.query);
    req.target(upstream_target);
    req.version(11);
    req.set(http::field::host, cs->target.authority);
    if (cs->upstream->bearer_token) {
      absl::StatusOr<SecretBytes> token = cs->upstream->bearer_token();
      if (!token.ok() || token->empty()) {
        m.broken_upstream.Inc();
        co_return co_await SendStatus(
            a, 502, "ServiceUnavailable",
            absl::StrCat("kshield-kubectl: no upstream token for cluster \"", cs->name, "\""),
            false, version);
      }
      std::string value = "Bearer ";
      value.append(token->UnsafeStringView());
      req.set(http::field::authorization, value);
      OPENSSL_cleanse(value.data(), value.size());
    }

    if (expect_continue && has_body) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      Arm(shared_->client_header_timeout, Expire::kClient);
      co_await net::async_write(client_, net::buffer(kContinue.data(), kContinue.size()),
                                Redirect(ec));
      if (ec) co_return false;
    }

    // Send the request; read the response head. A reused connection the apiserver closed while it
    // sat idle is retried once on a new one, when no body has been consumed.
    std::optional<http::response_parser<http::buffer_body>> rp;
    for (int attempt = 0;; ++attempt) {
      bool reused = false;
      upstream_ = cs->TakeIdle(io_index_);
      if (upstream_) {
        reused = true;
      } else {
        absl::Status s = co_await Connect(*cs);
        if (!s.ok()) {
          upstream_.reset();
          const bool timeout = absl::IsDeadlineExceeded(s);
          (timeout ? m.upstream_timeout : m.upstream_unavailable).Inc();
          log::Warn("proxy.upstream_connect_failed",
                    {{"cluster", cs->name}, {"reason", std::string(s.message())}});
          co_return co_await SendStatus(
              a, timeout ? 504 : 502, "ServiceUnavailable",
              absl::StrCat("kshield-kubectl: cluster \"", cs->name, "\": ", s.message()),
              client_keep_alive && !has_body, version);
        }
      }
      const bool may_retry = reused && !has_body && attempt == 0;

      http::request_serializer<http::buffer_body> rs{req};
      RelayResult r = co_await Relay(client_, client_buf_, parser, upstream_->stream, rs,
                                     &a.bytes_in, /*request_phase=*/true);
      if (r == RelayResult::kInError) {
        co_return false;  // the client went away or stalled mid-body
      }
      bool failed = r == RelayResult::kOutError;
      if (!failed) {
        // Interim 1xx answers (100 Continue, 103 Early Hints) are dropped; 101 is final here.
        for (;;) {
          rp.emplace();
          rp->header_limit(static_cast<uint32_t>(shared_->max_header_bytes));
          rp->body_limit(kNoBodyLimit);
          if (is_head) rp->skip(true);
          Arm(shared_->response_header_timeout, Expire::kUpstream);
          co_await http::async_read_header(upstream_->stream, upstream_->buffer, *rp, Redirect(ec));
          if (ec) break;
          const unsigned status = rp->get().result_int();
          if (status >= 100 && status < 200 && status != 101) continue;
          break;
        }
        failed = static_cast<bool>(ec);
      }
      if (!failed) break;
      const bool timed_out = timed_out_;
      const bool got_some = rp.has_value() && rp->got_some();
      upstream_.reset();
      if (may_retry && !timed_out && !got_some) continue;
      (timed_out ? m.upstream_timeout : m.upstream_unavailable).Inc();
      log::Warn("proxy.upstream_failed",
                {{"cluster", cs->name},
                 {"reason", timed_out ? std::string("no response head in time") : ec.message()}});
      co_return co_await SendStatus(a, timed_out ? 504 : 502, "ServiceUnavailable",
                                    absl::StrCat("kshield-kubectl: cluster \"", cs->name, "\": ",
                                                 timed_out ? "the apiserver did not answer in time"
                                                           : "the apiserver connection failed"),
                                    false, version);
    }

    auto& res = rp->get();
    a.status = static_cast<int>(res.result_int());
    a.audit_id = PrintableTruncated(S(res["Audit-Id"]), 128);
    if (res.result_int() == 101) {
      if (!upgrade) {
        upstream_.reset();
        m.upstream_unavailable.Inc();
        co_return co_await SendStatus(a, 502, "ServiceUnavailable",
                                      "kshield-kubectl: unexpected 101 from the apiserver", false,
                                      version);
      }
      co_await Splice(rp->get(), a);
      co_return false;
    }

    const bool upstream_keep_alive = res.keep_alive();
    SanitizeResponseHeaders(res, false);
    bool keep_alive = client_keep_alive;
    const bool close_delimited =
        !is_head && !rp->is_done() && !rp->chunked() && !rp->content_length().has_value();
    if (version < 11) {
      // HTTP/1.0 client: no chunked framing; a chunked or close-delimited body ends with close.
      res.version(10);
      if (rp->chunked() || close_delimited) {
        res.chunked(false);
        keep_alive = false;
      }
    } else if (close_delimited) {
      res.chunked(true);
    }
    res.keep_alive(keep_alive);

    http::response_serializer<http::buffer_body> sr{res};
    Disarm();  // streaming responses (watch, logs -f) may be quiet for a long time
    RelayResult r;
    if (is_head) {
      Arm(shared_->client_header_timeout, Expire::kClient);
      co_await http::async_write_header(client_, sr, Redirect(ec));
      r = ec ? RelayResult::kOutError : RelayResult::kOk;
    } else {
      r = co_await Relay(upstream_->stream, upstream_->buffer, *rp, client_, sr, &a.bytes_out,
                         /*request_phase=*/false);
    }
    EmitAudit(a);
    // Bytes already buffered past the response (e.g. a body a broken server sent for HEAD) would
    // be read as the next response: such a connection is not reused.
    if (r == RelayResult::kOk && upstream_keep_alive && rp->is_done() && !close_delimited &&
        upstream_->buffer.size() == 0) {
      cs->PutIdle(io_index_, std::move(upstream_));
    } else {
      upstream_.reset();
    }
    co_return r == RelayResult::kOk&& keep_alive;
  }

  // After a 101: sends the answer to the client, then copies raw bytes both ways until either
  // side closes. Each direction first flushes what its parser buffer already holds. When one
  // direction ends the other is stopped, and both TLS sessions are closed with close_notify (so a
  // WebSocket client sees a clean close, not a truncated stream).
  Awaitable<void> Splice(http::response<http::buffer_body>& res, AuditRecord& a) {
    beast::error_code ec;
    SanitizeResponseHeaders(res, true);
    http::response_serializer<http::buffer_body> sr{res};
    Arm(shared_->client_header_timeout, Expire::kClient);
    co_await http::async_write_header(client_, sr, Redirect(ec));
    Disarm();
    if (!ec) {
      down_buf_ = std::make_unique<char[]>(kRelayBufferBytes);
      splice_done_.emplace(client_.get_executor());
      splice_done_->expires_at(Clock::time_point::max());
      auto self = shared_from_this();
      net::co_spawn(client_.get_executor(), PumpDown(self),
                    [self](std::exception_ptr) { self->FinishPumpDown(); });
      co_await Pump(client_, client_buf_, upstream_->stream, RelayBuffer(), &a.bytes_in);
      StopSplice();
      if (!down_done_) co_await splice_done_->async_wait(Redirect(ec));
      Arm(kTlsShutdownTimeout, Expire::kBoth);
      co_await client_.async_shutdown(Redirect(ec));
      co_await upstream_->stream.async_shutdown(Redirect(ec));
      Disarm();
    }
    a.bytes_out = down_bytes_;
    EmitAudit(a);
  }

  static Awaitable<void> PumpDown(std::shared_ptr<Session> self) {
    co_await self->Pump(self->upstream_->stream, self->upstream_->buffer, self->client_,
                        self->down_buf_.get(), &self->down_bytes_);
  }
  void FinishPumpDown() {
    down_done_ = true;
    StopSplice();
    if (splice_done_) splice_done_->cancel();
  }
  // Ends both directions: pending reads (and writes) are cancelled; a pump between operations
  // sees splice_stopping_ before its next read.
  void StopSplice() {
    splice_stopping_ = true;
    boost::system::error_code ec;
    client_.next_layer().cancel(ec);
    if (upstream_) upstream_->socket().cancel(ec);
  }

  template <class In, class Out>
  Awaitable<void> Pump(In& in, beast::flat_buffer& leftover, Out& out, char* buf, uint64_t* bytes) {
    beast::error_code ec;
    if (leftover.size() > 0) {
      const size_t n = leftover.size();
      co_await net::async_write(out, leftover.data(), Redirect(ec));
      leftover.consume(n);
      if (ec) co_return;
      *bytes += n;
    }
    while (!splice_stopping_) {
      const size_t n =
          co_await in.async_read_some(net::buffer(buf, kRelayBufferBytes), Redirect(ec));
      if (n > 0) {
        beast::error_code wec;
        co_await net::async_write(out, net::buffer(buf, n), Redirect(wec));
        if (wec) co_return;
        *bytes += n;
      }
      if (ec) co_return;
    }
  }

  const std::shared_ptr<Shared> shared_;
  net::io_context& ioc_;
  const size_t io_index_;
  Stream client_;
  beast::flat_buffer client_buf_;
  net::steady_timer timer_;
  Clock::time_point deadline_ = Clock::time_point::max();
  Expire expire_ = Expire::kNone;
  bool timer_waiting_ = false;
  bool timed_out_ = false;
  bool closed_ = false;
  std::optional<tcp::resolver> resolver_;
  std::unique_ptr<UpstreamConn> upstream_;
  std::unique_ptr<char[]> relay_buf_;
  // Splice state.
  std::unique_ptr<char[]> down_buf_;
  std::optional<net::steady_timer> splice_done_;
  bool down_done_ = false;
  bool splice_stopping_ = false;
  uint64_t down_bytes_ = 0;
};

}  // namespace

// --- Proxy ---------------------------------------------------------------------------------------

// One io_context per I/O thread (TcpServer): a session and its upstream connections live on one
// thread for their whole life, so no strand, no cross-thread hand-off and no wake-up of another
// thread is on the request path. The listener (on context 0) deals connections out round-robin;
// context i's sessions use idle pool i of each cluster.
class Proxy::Impl {
 public:
  explicit Impl(std::shared_ptr<Shared> shared, int threads)
      : shared_(std::move(shared)), io_count_(static_cast<size_t>(threads)) {}
  ~Impl() { Stop(); }

  absl::Status Listen(const net::ip::address& address, uint16_t port) {
    kshield::net::TcpServerOptions options;
    options.threads = static_cast<int>(io_count_);
    options.max_connections = shared_->max_connections;
    options.accept_backoff = kAcceptBackoff;
    options.log_prefix = "proxy";
    options.error_prefix = "kshield-kubectl proxy: ";
    KSH_ASSIGN_OR_RETURN(
        server_, kshield::net::TcpServer::Listen(
                     tcp::endpoint(address, port), std::move(options),
                     [shared = shared_](tcp::socket socket, net::io_context& ioc, size_t index) {
                       Session::Launch(
                           std::make_shared<Session>(shared, ioc, index, std::move(socket)));
                     },
                     [shared = shared_] {
                       return shared->connections.load(std::memory_order_relaxed);
                     },
                     [] { ProxyMetrics::Get().overloaded.Inc(); }));
    return absl::OkStatus();
  }

  absl::Status Run() { return server_->Run(); }

  void Stop() {
    std::lock_guard<std::mutex> l(stop_mu_);
    if (server_ == nullptr) return;
    // The idle pools hold upstream sockets of the contexts: drop them after the threads are
    // joined and before the contexts (and with them every pending session) are destroyed.
    server_->Stop([this] {
      absl::MutexLock w(&write_mu_);
      shared_->clusters.store(std::make_shared<const ClusterMap>());
    });
  }

  void SetUpstream(const std::string& cluster, std::shared_ptr<const Upstream> upstream) {
    const size_t n = pool_count();
    const size_t per_context = (shared_->max_idle_per_cluster + n - 1) / n;
    std::shared_ptr<ClusterState> cs =
        MakeClusterState(cluster, std::move(upstream), per_context, n);
    if (!cs->error.ok()) {
      log::Warn("proxy.upstream_unusable",
                {{"cluster", cluster}, {"reason", std::string(cs->error.message())}});
    }
    absl::MutexLock w(&write_mu_);
    auto next = std::make_shared<ClusterMap>(*shared_->clusters.load());
    (*next)[cluster] = std::move(cs);
    shared_->clusters.store(std::move(next));
  }

  void RemoveUpstream(const std::string& cluster) {
    absl::MutexLock w(&write_mu_);
    auto next = std::make_shared<ClusterMap>(*shared_->clusters.load());
    next->erase(cluster);
    shared_->clusters.store(std::move(next));
  }

  uint16_t port() const { return server_->port(); }

 private:
  size_t pool_count() const { return io_count_; }

  std::shared_ptr<Shared> shared_;
  const size_t io_count_;
  std::unique_ptr<kshield::net::TcpServer> server_;  // set by Listen
  std::mutex stop_mu_;
  absl::Mutex write_mu_;
};

absl::StatusOr<std::unique_ptr<Proxy>> Proxy::Start(ProxyOptions options) {
  if (options.tokens == nullptr) {
    return absl::InvalidArgumentError("proxy: a LocalTokenValidator is required");
  }
  if (options.threads < 1 || options.threads > kMaxThreads) {
    return absl::InvalidArgumentError("proxy: threads must be 1..64");
  }
  if (options.max_header_bytes < 1024 || options.max_header_bytes > (1u << 24)) {
    return absl::InvalidArgumentError("proxy: max_header_bytes must be 1 KiB..16 MiB");
  }
  boost::system::error_code ec;
  net::ip::address address = net::ip::make_address(options.listen_address, ec);
  if (ec || !address.is_loopback()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "proxy: listen_address must be a loopback address, got \"", options.listen_address, "\""));
  }
  if (options.server_cert_pem.empty() || options.server_key_pem.empty()) {
    return absl::InvalidArgumentError("proxy: server certificate and key are required");
  }
  auto shared = std::make_shared<Shared>(options);
  ssl::context& ctx = shared->server_ctx;
  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                      ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                  ec);
  if (ec) return SslError("proxy: TLS options", ec);
  SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
  ctx.use_certificate_chain(net::buffer(options.server_cert_pem), ec);
  if (ec) return SslError("proxy: server certificate", ec);
  {
    std::string_view key = options.server_key_pem.UnsafeStringView();
    ctx.use_private_key(net::buffer(key.data(), key.size()), ssl::context::pem, ec);
  }
  options.server_key_pem = SecretBytes();  // zeroized; OpenSSL holds its own copy
  if (ec) return SslError("proxy: server key", ec);
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
    return absl::InvalidArgumentError("proxy: server key does not match its certificate");
  }

  auto impl = std::make_unique<Impl>(shared, options.threads);
  KSH_RETURN_IF_ERROR(impl->Listen(address, options.port));
  KSH_RETURN_IF_ERROR(impl->Run());
  return std::unique_ptr<Proxy>(new Proxy(std::move(impl)));
}

absl::Status Proxy::CheckUpstream(const Upstream& upstream) {
  KSH_ASSIGN_OR_RETURN(ServerTarget target, ParseServerUrl(upstream.server));
  (void)target;
  KSH_ASSIGN_OR_RETURN(std::unique_ptr<ssl::context> ctx, MakeUpstreamContext(upstream));
  (void)ctx;
  return absl::OkStatus();
}

Proxy::Proxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Proxy::~Proxy() { Stop(); }
uint16_t Proxy::port() const { return impl_->port(); }
void Proxy::SetUpstream(const std::string& cluster, std::shared_ptr<const Upstream> upstream) {
  impl_->SetUpstream(cluster, std::move(upstream));
}
void Proxy::RemoveUpstream(const std::string& cluster) { impl_->RemoveUpstream(cluster); }
void Proxy::Stop() { impl_->Stop(); }

}  // namespace kshield::proxy
