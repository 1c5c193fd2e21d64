#include "etcd/client.h"

#include <grpcpp/grpcpp.h>
#include <openssl/crypto.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/status.h"
#include "etcd_rpc.grpc.pb.h"
#include "etcd_rpc.pb.h"

namespace kshield::etcd {
namespace {

namespace pb = ::etcdserverpb;

constexpr char kOutcomeUnknownPayload[] = "type.kshield.dev/etcd.TxnOutcomeUnknown";
constexpr size_t kMaxPemBytes = 1 << 20;

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

bool IsFailoverCode(absl::StatusCode code) {
  return code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded;
}

KeyValue FromProto(const pb::KeyValue& kv) {
  KeyValue out;
  out.key = kv.key();
  out.value = kv.value();
  out.create_revision = kv.create_revision();
  out.mod_revision = kv.mod_revision();
  out.version = kv.version();
  out.lease = kv.lease();
  return out;
}

// Splits "scheme://host:port" into (tls?, host:port). `tls_configured`: TLS files were given.
absl::StatusOr<std::pair<bool, std::string>> ParseEndpoint(const std::string& endpoint,
                                                           bool tls_configured) {
  std::string rest = endpoint;
  std::optional<bool> tls;
  if (rest.rfind("https://", 0) == 0) {
    tls = true;
    rest = rest.substr(8);
  } else if (rest.rfind("http://", 0) == 0) {
    tls = false;
    rest = rest.substr(7);
  } else if (rest.find("://") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("etcd endpoint '", endpoint, "': only http:// and https:// are supported"));
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  size_t colon = rest.rfind(':');
  if (rest.empty() || colon == std::string::npos || colon == 0 || colon + 1 == rest.size() ||
      rest.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("etcd endpoint '", endpoint, "': expected [http[s]://]host:port"));
  }
  for (size_t i = colon + 1; i < rest.size(); ++i) {
    if (rest[i] < '0' || rest[i] > '9') {
      return absl::InvalidArgumentError(
          absl::StrCat("etcd endpoint '", endpoint, "': port is not a number"));
    }
  }
  if (tls.has_value() && !*tls && tls_configured) {
    return absl::InvalidArgumentError(absl::StrCat(
        "etcd endpoint '", endpoint, "' is plain http:// but TLS files are configured"));
  }
  return std::make_pair(tls.value_or(tls_configured), rest);
}

}  // namespace

bool IsOutcomeUnknown(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnknown &&
         status.GetPayload(kOutcomeUnknownPayload).has_value();
}

std::string PrefixRangeEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    unsigned char last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  // Empty or all 0xff: no upper bound, which etcd spells "\0".
  return std::string(1, '\0');
}

struct Client::Endpoint {
  std::string address;  // host:port, as named in errors
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Watch::Stub> watch;
  std::unique_ptr<pb::Lease::Stub> lease;
};

Client::Client(const ClientOptions& options) : options_(options) {}
Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const ClientOptions& options) {
  if (options.endpoints.empty()) {
    return absl::InvalidArgumentError("etcd: no endpoints configured");
  }
  if (options.cert_file.empty() != options.key_file.empty()) {
    return absl::InvalidArgumentError(
        "etcd: a client certificate and its key must be given together");
  }
  if (options.timeout <= std::chrono::milliseconds(0)) {
    return absl::InvalidArgumentError("etcd: timeout must be positive");
  }
  if (options.max_receive_message_bytes < (8 << 20)) {
    return absl::InvalidArgumentError("etcd: max_receive_message_bytes must be at least 8 MiB");
  }
  const bool tls_configured = !options.ca_file.empty() || !options.cert_file.empty();

  grpc::SslCredentialsOptions ssl;
  bool any_tls = false;
  std::vector<std::pair<bool, std::string>> parsed;
  for (const std::string& e : options.endpoints) {
    KSH_ASSIGN_OR_RETURN(auto p, ParseEndpoint(e, tls_configured));
    any_tls = any_tls || p.first;
    parsed.push_back(std::move(p));
  }
  if (any_tls) {
    if (!options.ca_file.empty()) {
      KSH_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFileBounded(options.ca_file, kMaxPemBytes));
    }
    if (!options.cert_file.empty()) {
      KSH_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadFileBounded(options.cert_file, kMaxPemBytes));
      KSH_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadFileBounded(options.key_file, kMaxPemBytes));
    }
  }

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  // A restarted etcd must be found again within seconds, not after gRPC's default 120 s backoff.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  // gRPC also uses the minimum backoff as the connect timeout; too small a value aborts
  // connects on a loaded machine before the handshake completes.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // Long watches notice a dead peer. etcd's server accepts pings every >= 5 s by default.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);

  std::shared_ptr<grpc::ChannelCredentials> tls_creds;
  if (any_tls) tls_creds = grpc::SslCredentials(ssl);
  OPENSSL_cleanse(ssl.pem_private_key.data(), ssl.pem_private_key.size());

  std::unique_ptr<Client> client(new Client(options));
  for (auto& [tls, address] : parsed) {
    auto ep = std::make_unique<Endpoint>();
    ep->address = address;
    ep->channel = grpc::CreateCustomChannel(
        address, tls ? tls_creds : grpc::InsecureChannelCredentials(), args);
    ep->kv = pb::KV::NewStub(ep->channel);
    ep->watch = pb::Watch::NewStub(ep->channel);
    ep->lease = pb::Lease::NewStub(ep->channel);
    client->endpoints_.push_back(std::move(ep));
  }
  return client;
}

std::string Client::current_endpoint() const {
  return endpoints_[current_.load() % endpoints_.size()]->address;
}

namespace {

// Drives a channel until it is READY. gRPC makes connection progress only while someone polls; a
// call that fails fast on a channel in TRANSIENT_FAILURE polls nothing, so without this a
// restarted etcd would be reconnected only by gRPC's 5 s backup poller.
// Returns UNAVAILABLE when the endpoint cannot be connected (a connect attempt failed, or the
// channel stays in TRANSIENT_FAILURE — pick_first keeps that state across its reconnect attempts
// — for longer than one reconnect backoff), DEADLINE_EXCEEDED when `deadline` passes first.
absl::Status Connect(grpc::Channel& channel, std::chrono::system_clock::time_point deadline) {
  // Longer than the maximum reconnect backoff (2 s, set in Create) plus a loopback connect.
  constexpr std::chrono::milliseconds kReconnectGrace(2500);
  const auto grace_end = std::chrono::system_clock::now() + kReconnectGrace;
  bool attempted = false;
  grpc_connectivity_state st = channel.GetState(/*try_to_connect=*/true);
  for (;;) {
    auto wait_until = deadline;
    switch (st) {
      case GRPC_CHANNEL_READY:
        return absl::OkStatus();
      case GRPC_CHANNEL_SHUTDOWN:
        return absl::UnavailableError("channel shut down");
      case GRPC_CHANNEL_TRANSIENT_FAILURE:
        if (attempted) return absl::UnavailableError("cannot connect");
        wait_until = std::min(deadline, grace_end);
        break;
      case GRPC_CHANNEL_CONNECTING:
        attempted = true;
        break;
      case GRPC_CHANNEL_IDLE:
        break;
    }
    if (!channel.WaitForStateChange(st, wait_until)) {
      if (st == GRPC_CHANNEL_TRANSIENT_FAILURE) return absl::UnavailableError("cannot connect");
      return absl::DeadlineExceededError("not connected within the timeout");
    }
    st = channel.GetState(/*try_to_connect=*/true);
  }
}

}  // namespace

absl::Status Client::WithFailover(
    std::string_view op, Retry retry,
    const std::function<absl::Status(Endpoint& ep, Deadline deadline)>& attempt) {
  const size_t n = endpoints_.size();
  const size_t start = current_.load();
  std::vector<std::string> failures;
  for (size_t i = 0; i < n; ++i) {
    const size_t idx = (start + i) % n;
    Endpoint& ep = *endpoints_[idx];
    const Deadline deadline = std::chrono::system_clock::now() + options_.timeout;
    absl::Status connected = Connect(*ep.channel, deadline);
    if (!connected.ok() &&
        (retry == Retry::kTxn || connected.code() == absl::StatusCode::kDeadlineExceeded)) {
      // Never connected: nothing was sent, so even a Txn may go to the next endpoint.
      failures.push_back(absl::StrCat(ep.address, ": ", connected.message()));
      continue;
    }
    absl::Status s = attempt(ep, deadline);
    if (s.ok()) {
      current_.store(idx);
      return s;
    }
    if (!IsFailoverCode(s.code())) {
      // The server answered: this is its verdict, not an outage.
      current_.store(idx);
      return absl::Status(s.code(),
                          absl::StrCat("etcd ", AV(op), " on ", ep.address, ": ", s.message()));
    }
    if (retry == Retry::kTxn) {
      absl::Status unknown(
          absl::StatusCode::kUnknown,
          absl::StrCat("etcd ", AV(op), " on ", ep.address,
                       ": outcome unknown (the transaction may have been applied; re-read "
                       "the key): ",
                       s.message()));
      unknown.SetPayload(kOutcomeUnknownPayload, absl::Cord("1"));
      // The next call starts elsewhere.
      current_.store((idx + 1) % n);
      return unknown;
    }
    failures.push_back(absl::StrCat(ep.address, ": ", s.message()));
  }
  return absl::UnavailableError(absl::StrCat("etcd ", AV(op), ": no endpoint answered (",
                                             absl::StrJoin(failures, "; "), ")"));
}

absl::StatusOr<RangeResult> Client::Range(std::string_view key, std::string_view range_end,
                                          int64_t limit, int64_t revision) {
  if (limit < 0) return absl::InvalidArgumentError("etcd Range: negative limit");
  pb::RangeRequest req;
  req.set_key(std::string(key));
  req.set_range_end(std::string(range_end));
  req.set_limit(limit);
  req.set_revision(revision);
  // Keys come back in key order by default; no sort parameters needed.
  pb::RangeResponse resp;
  KSH_RETURN_IF_ERROR(
      WithFailover("Range", Retry::kIdempotent, [&](Endpoint& ep, Deadline deadline) {
        grpc::ClientContext ctx;
        ctx.set_deadline(deadline);
        resp.Clear();
        return FromGrpc(ep.kv->Range(&ctx, req, &resp));
      }));
  RangeResult out;
  out.kvs.reserve(resp.kvs_size());
  for (const auto& kv : resp.kvs()) out.kvs.push_back(FromProto(kv));
  out.more = resp.more();
  out.count = resp.count();
  out.revision = resp.header().revision();
  return out;
}

absl::StatusOr<int64_t> Client::RangePrefix(
    std::string_view prefix, int64_t page_size,
    const std::function<absl::Status(const std::vector<KeyValue>& kvs)>& on_page) {
  if (page_size <= 0) return absl::InvalidArgumentError("etcd RangePrefix: page size must be > 0");
  std::string key = prefix.empty() ? std::string(1, '\0') : std::string(prefix);
  const std::string end = PrefixRangeEnd(prefix);
  int64_t revision = 0;
  int64_t limit = page_size;
  for (;;) {
    absl::StatusOr<RangeResult> page = Range(key, end, limit, revision);
    if (!page.ok()) {
      // A page of large values can exceed max_receive_message_bytes; read smaller pages.
      if (page.status().code() == absl::StatusCode::kResourceExhausted && limit > 1) {
        limit = std::max<int64_t>(1, limit / 2);
        continue;
      }
      return page.status();
    }
    // Later pages are read at the first page's revision so the walk is one snapshot.
    if (revision == 0) revision = page->revision;
    if (page->kvs.empty()) break;
    KSH_RETURN_IF_ERROR(on_page(page->kvs));
    if (!page->more) break;
    key = page->kvs.back().key;
    key.push_back('\0');  // the smallest key after the last one seen
  }
  return revision;
}

absl::StatusOr<std::optional<KeyValue>> Client::Get(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("etcd Get: empty key");
  KSH_ASSIGN_OR_RETURN(RangeResult r, Range(key, "", 0, 0));
  if (r.kvs.empty()) return std::optional<KeyValue>();
  return std::optional<KeyValue>(std::move(r.kvs.front()));
}

absl::StatusOr<int64_t> Client::Put(std::string_view key, std::string_view value, int64_t lease) {
  if (key.empty()) return absl::InvalidArgumentError("etcd Put: empty key");
  pb::PutRequest req;
  req.set_key(std::string(key));
  req.set_value(std::string(value));
  req.set_lease(lease);
  pb::PutResponse resp;
  // Retrying a Put is safe: the key ends up with the same value and lease either way.
  KSH_RETURN_IF_ERROR(WithFailover("Put", Retry::kIdempotent, [&](Endpoint& ep, Deadline deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline);
    resp.Clear();
    return FromGrpc(ep.kv->Put(&ctx, req, &resp));
  }));
  return resp.header().revision();
}

absl::StatusOr<int64_t> Client::Delete(std::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("etcd Delete: empty key");
  pb::DeleteRangeRequest req;
  req.set_key(std::string(key));
  pb::DeleteRangeResponse resp;
  KSH_RETURN_IF_ERROR(
      WithFailover("DeleteRange", Retry::kIdempotent, [&](Endpoint& ep, Deadline deadline) {
        grpc::ClientContext ctx;
        ctx.set_deadline(deadline);
        resp.Clear();
        return FromGrpc(ep.kv->DeleteRange(&ctx, req, &resp));
      }));
  return resp.deleted();
}

namespace {

// compare(key) → put(key, value), else range(key).
pb::TxnRequest GuardedPut(std::string_view key, std::string_view value,
                          pb::Compare::CompareTarget target, int64_t revision) {
  pb::TxnRequest txn;
  pb::Compare* c = txn.add_compare();
  c->set_result(pb::Compare::EQUAL);
  c->set_target(target);
  c->set_key(std::string(key));
  if (target == pb::Compare::MOD) {
    c->set_mod_revision(revision);
  } else {
    c->set_create_revision(revision);
  }
  pb::PutRequest* put = txn.add_success()->mutable_request_put();
  put->set_key(std::string(key));
  put->set_value(std::string(value));
  txn.add_failure()->mutable_request_range()->set_key(std::string(key));
  return txn;
}

TxnResult FromTxn(const pb::TxnResponse& resp) {
  TxnResult out;
  out.succeeded = resp.succeeded();
  out.revision = resp.header().revision();
  if (!resp.succeeded() && resp.responses_size() > 0 && resp.responses(0).has_response_range() &&
      resp.responses(0).response_range().kvs_size() > 0) {
    out.current = FromProto(resp.responses(0).response_range().kvs(0));
  }
  return out;
}

}  // namespace

absl::StatusOr<TxnResult> Client::CompareAndSwap(std::string_view key,
                                                 int64_t expected_mod_revision,
                                                 std::string_view new_value) {
  if (key.empty()) return absl::InvalidArgumentError("etcd CompareAndSwap: empty key");
  if (expected_mod_revision < 0) {
    return absl::InvalidArgumentError("etcd CompareAndSwap: negative revision");
  }
  const pb::TxnRequest req = GuardedPut(key, new_value, pb::Compare::MOD, expected_mod_revision);
  pb::TxnResponse resp;
  KSH_RETURN_IF_ERROR(
      WithFailover("Txn(CompareAndSwap)", Retry::kTxn, [&](Endpoint& ep, Deadline deadline) {
        grpc::ClientContext ctx;
        ctx.set_deadline(deadline);
        resp.Clear();
        return FromGrpc(ep.kv->Txn(&ctx, req, &resp));
      }));
  return FromTxn(resp);
}

absl::StatusOr<TxnResult> Client::CreateIfAbsent(std::string_view key, std::string_view value) {
  if (key.empty()) return absl::InvalidArgumentError("etcd CreateIfAbsent: empty key");
  const pb::TxnRequest req = GuardedPut(key, value, pb::Compare::CREATE, 0);
  pb::TxnResponse resp;
  KSH_RETURN_IF_ERROR(
      WithFailover("Txn(CreateIfAbsent)", Retry::kTxn, [&](Endpoint& ep, Deadline deadline) {
        grpc::ClientContext ctx;
        ctx.set_deadline(deadline);
        resp.Clear();
        return FromGrpc(ep.kv->Txn(&ctx, req, &resp));
      }));
  return FromTxn(resp);
}

// ---- Watch ----

namespace {

class WatcherImpl final : public Watcher {
 public:
  WatcherImpl(WatchCallback callback, WatchEndCallback on_end)
      : callback_(std::move(callback)), on_end_(std::move(on_end)) {}
  ~WatcherImpl() override { Cancel(); }

  // Opens the stream and waits (until `deadline`) for the server to confirm the watch.
  absl::Status Start(pb::Watch::Stub* stub, const pb::WatchRequest& create,
                     std::chrono::system_clock::time_point deadline) {
    stream_ = stub->Watch(&ctx_);
    if (!stream_->Write(create)) {
      return FromGrpc(stream_->Finish());
    }
    std::future<absl::Status> created = created_.get_future();
    thread_ = std::thread([this] { Run(); });
    if (created.wait_until(deadline) != std::future_status::ready) {
      Cancel();
      return absl::DeadlineExceededError("watch was not confirmed in time");
    }
    absl::Status s = created.get();
    if (!s.ok()) Cancel();
    return s;
  }

  void Cancel() override {
    cancelled_.store(true);
    ctx_.TryCancel();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
  }

  absl::Status status() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
  }
  bool done() const override { return done_.load(); }

 private:
  void Run() {
    bool confirmed = false;
    absl::Status end;
    pb::WatchResponse resp;
    while (stream_->Read(&resp)) {
      if (!confirmed) {
        if (resp.created() && !resp.canceled()) {
          confirmed = true;
          created_.set_value(absl::OkStatus());
        } else {
          end = CanceledStatus(resp);
          break;
        }
        if (resp.events_size() == 0) continue;
      }
      if (resp.canceled()) {
        end = CanceledStatus(resp);
        break;
      }
      if (resp.events_size() == 0) continue;  // progress notification
      std::vector<Event> events;
      events.reserve(resp.events_size());
      for (const auto& e : resp.events()) {
        Event ev;
        ev.type = e.type() == pb::Event::DELETE ? Event::Type::kDelete : Event::Type::kPut;
        ev.kv = FromProto(e.kv());
        events.push_back(std::move(ev));
      }
      if (cancelled_.load()) break;
      callback_(events);
    }
    ctx_.TryCancel();
    absl::Status finish = FromGrpc(stream_->Finish());
    if (end.ok() && !cancelled_.load()) {
      end = finish.ok() ? absl::UnavailableError("watch stream ended") : finish;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      status_ = end;
    }
    done_.store(true);
    if (!confirmed) {
      created_.set_value(end.ok() ? absl::CancelledError("watch cancelled") : end);
    } else if (!end.ok() && on_end_) {
      on_end_(end);
    }
  }

  static absl::Status CanceledStatus(const pb::WatchResponse& resp) {
    if (resp.compact_revision() > 0) {
      return absl::OutOfRangeError(absl::StrCat(
          "watch start revision is compacted (oldest available: ", resp.compact_revision(), ")"));
    }
    return absl::FailedPreconditionError(
        absl::StrCat("watch canceled by server: ", resp.cancel_reason()));
  }

  WatchCallback callback_;
  WatchEndCallback on_end_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>> stream_;
  std::promise<absl::Status> created_;
  std::thread thread_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> done_{false};
  mutable std::mutex mu_;
  absl::Status status_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Watcher>> Client::Watch(std::string_view prefix,
                                                       int64_t start_revision,
                                                       WatchCallback callback,
                                                       WatchEndCallback on_end) {
  if (start_revision < 0) return absl::InvalidArgumentError("etcd Watch: negative revision");
  if (!callback) return absl::InvalidArgumentError("etcd Watch: no callback");
  pb::WatchRequest req;
  pb::WatchCreateRequest* create = req.mutable_create_request();
  create->set_key(prefix.empty() ? std::string(1, '\0') : std::string(prefix));
  create->set_range_end(PrefixRangeEnd(prefix));
  create->set_start_revision(start_revision);
  std::unique_ptr<WatcherImpl> watcher;
  KSH_RETURN_IF_ERROR(
      WithFailover("Watch", Retry::kIdempotent, [&](Endpoint& ep, Deadline deadline) {
        auto w = std::make_unique<WatcherImpl>(callback, on_end);
        absl::Status s = w->Start(ep.watch.get(), req, deadline);
        if (s.ok()) watcher = std::move(w);
        return s;
      }));
  return std::unique_ptr<Watcher>(std::move(watcher));
}

// ---- Lease ----

absl::StatusOr<Lease> Client::GrantLease(int64_t ttl_seconds) {
  if (ttl_seconds <= 0) return absl::InvalidArgumentError("etcd LeaseGrant: TTL must be > 0");
  pb::LeaseGrantRequest req;
  req.set_ttl(ttl_seconds);
  pb::LeaseGrantResponse resp;
  // A retried grant may leave an unused lease behind; it expires after its TTL.
  KSH_RETURN_IF_ERROR(
      WithFailover("LeaseGrant", Retry::kIdempotent, [&](Endpoint& ep, Deadline deadline) {
        grpc::ClientContext ctx;
        ctx.set_deadline(deadline);
        resp.Clear();
        return FromGrpc(ep.lease->LeaseGrant(&ctx, req, &resp));
      }));
  if (!resp.error().empty()) {
    return absl::FailedPreconditionError(absl::StrCat("etcd LeaseGrant: ", resp.error()));
  }
  return Lease{resp.id(), resp.ttl()};
}

absl::StatusOr<int64_t> Client::KeepAliveOnce(int64_t lease_id) {
  pb::LeaseKeepAliveRequest req;
  req.set_id(lease_id);
  pb::LeaseKeepAliveResponse resp;
  KSH_RETURN_IF_ERROR(
      WithFailover("LeaseKeepAlive", Retry::kIdempotent, [&](Endpoint& ep, Deadline deadline) {
        grpc::ClientContext ctx;
        ctx.set_deadline(deadline);
        resp.Clear();
        auto stream = ep.lease->LeaseKeepAlive(&ctx);
        bool got = stream->Write(req) && stream->Read(&resp);
        ctx.TryCancel();
        grpc::Status finish = stream->Finish();
        if (got) return absl::OkStatus();
        if (!finish.ok() && finish.error_code() != grpc::StatusCode::CANCELLED) {
          return FromGrpc(finish);
        }
        return absl::UnavailableError("keep-alive stream closed without a response");
      }));
  if (resp.ttl() <= 0) {
    return absl::NotFoundError(
        absl::StrCat("etcd LeaseKeepAlive: lease ", lease_id, " expired or was revoked"));
  }
  return resp.ttl();
}

absl::Status Client::RevokeLease(int64_t lease_id) {
  pb::LeaseRevokeRequest req;
  req.set_id(lease_id);
  pb::LeaseRevokeResponse resp;
  return WithFailover("LeaseRevoke", Retry::kIdempotent, [&](Endpoint& ep, Deadline deadline) {
    grpc::ClientContext ctx;
    ctx.set_deadline(deadline);
    resp.Clear();
    return FromGrpc(ep.lease->LeaseRevoke(&ctx, req, &resp));
  });
}

}  // namespace kshield::etcd
