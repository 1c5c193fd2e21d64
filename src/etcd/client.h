// kshield::etcd::Client — a small etcd v3 client (KV, Watch, Lease) over gRPC, for kshieldctl,
// kshield-bench and keyd. Wire types: proto/etcd_rpc.proto (upstream field numbers).
//
//   ClientOptions o;
//   o.endpoints = {"https://10.0.0.1:2379", "https://10.0.0.2:2379"};
//   o.ca_file = "/etc/etcd/ca.pem"; o.cert_file = "client.pem"; o.key_file = "client.key";
//   KSH_ASSIGN_OR_RETURN(auto client, Client::Create(o));
//   KSH_ASSIGN_OR_RETURN(std::optional<KeyValue> kv, client->Get("/registry/secrets/ns/name"));
//   KSH_ASSIGN_OR_RETURN(TxnResult r,
//                        client->CompareAndSwap(kv->key, kv->mod_revision, new_value));
//   if (!r.succeeded) {
//     // Someone else wrote it: r.current holds what is there now.
//   }
//
// Failover. Endpoints are tried in order starting at the last one that answered. Each attempt first
// waits (within the timeout) for its endpoint's connection; an endpoint that cannot connect is
// skipped. A call that fails with UNAVAILABLE or DEADLINE_EXCEEDED moves to the next endpoint:
//  - idempotent operations (Range, Put, Delete, Watch set-up, lease calls) are retried once per
//    endpoint (a retried Delete that had in fact been applied reports 0 keys deleted; a retried
//    LeaseGrant may leave an unused lease that expires after its TTL);
//  - a Txn is only sent on a connected channel; if it then fails with one of those codes its
//    outcome is unknown (it may have been applied) and it is NOT retried: the error has code
//    UNKNOWN and IsOutcomeUnknown(status) is true. The caller re-reads the key and decides.
//    A Txn whose endpoint never connected was never sent and moves on to the next endpoint.
// Every error names the operation and the endpoint ("etcd Range on 127.0.0.1:2379: ...").
// One attempt (connecting included) gets options.timeout, so a call takes at most
// (number of endpoints) x options.timeout.
//
// Thread-safety: a Client is safe to use from several threads. Errors never contain values.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace grpc {
class Channel;
}

namespace kshield::etcd {

struct ClientOptions {
  // "host:port", "http://host:port" or "https://host:port". A bare "host:port" uses TLS when
  // ca_file is set. An http:// endpoint together with TLS files is refused (fail closed).
  std::vector<std::string> endpoints = {"127.0.0.1:2379"};
  // PEM files. ca_file empty with an https endpoint = the system roots. cert_file and key_file
  // (client certificate for --client-cert-auth) go together.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  // Deadline of one attempt of one call (per endpoint).
  std::chrono::milliseconds timeout{5000};
  // Largest response accepted. Secrets are up to 1.5 MiB each and a Range page holds many of them;
  // RangePrefix halves its page size when a page exceeds this.
  int max_receive_message_bytes = 64 << 20;
};

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;
};

struct RangeResult {
  std::vector<KeyValue> kvs;
  bool more = false;     // more keys in the range than `limit`
  int64_t count = 0;     // keys in the whole range (ignores limit)
  int64_t revision = 0;  // store revision the read was served at
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;  // store revision after the Txn (the new mod_revision on success)
  std::optional<KeyValue> current;  // on failure: the key as it is now (nullopt: absent)
};

struct Event {
  enum class Type { kPut, kDelete };
  Type type = Type::kPut;
  KeyValue kv;  // for kDelete: key and mod_revision (the deletion revision) only
};

// Called on the watcher's own thread for every batch of events, in revision order.
using WatchCallback = std::function<void(const std::vector<Event>& events)>;
// Called once on the watcher's thread when a confirmed watch ends for any reason but Cancel():
// the stream broke (UNAVAILABLE...) or the server canceled it (OUT_OF_RANGE: the start revision
// is compacted — etcd confirms such a watch first and cancels it right after).
using WatchEndCallback = std::function<void(const absl::Status& why)>;

// A running watch. Destroying it cancels it.
class Watcher {
 public:
  virtual ~Watcher() = default;
  // Stops the watch and joins its thread; no callback runs after this returns. Idempotent.
  // Do not destroy a Watcher from inside its own callbacks.
  virtual void Cancel() = 0;
  // OK while running or after Cancel(); otherwise why the watch ended (stream broke, compacted
  // start revision: OUT_OF_RANGE). A watch does not reconnect by itself: re-watch from the last
  // seen mod_revision + 1.
  virtual absl::Status status() const = 0;
  virtual bool done() const = 0;
};

struct Lease {
  int64_t id = 0;
  int64_t ttl_seconds = 0;  // as granted by the server (it may round small TTLs up)
};

// True for the error of a Txn that may or may not have been applied.
bool IsOutcomeUnknown(const absl::Status& status);

// The smallest key greater than every key starting with `prefix` ("" for "no end": the range then
// covers every key >= prefix, which etcd writes as "\0").
std::string PrefixRangeEnd(std::string_view prefix);

class Client {
 public:
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Client>> Create(const ClientOptions& options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Keys in [key, range_end) (only `key` when range_end is empty), at most `limit` (0 = no limit),
  // at `revision` (0 = newest). Sorted by key.
  absl::StatusOr<RangeResult> Range(std::string_view key, std::string_view range_end,
                                    int64_t limit = 0, int64_t revision = 0);

  // Every key under `prefix`, in key order, `page_size` at a time; all pages are read at the
  // revision of the first one (a consistent snapshot; OUT_OF_RANGE if it is compacted meanwhile).
  // Stops at the first error `on_page` returns. Returns the snapshot revision.
  absl::StatusOr<int64_t> RangePrefix(
      std::string_view prefix, int64_t page_size,
      const std::function<absl::Status(const std::vector<KeyValue>& kvs)>& on_page);

  // nullopt when the key does not exist.
  absl::StatusOr<std::optional<KeyValue>> Get(std::string_view key);

  // Returns the new store revision (the key's mod_revision).
  absl::StatusOr<int64_t> Put(std::string_view key, std::string_view value, int64_t lease = 0);

  // Returns how many keys were deleted (0 or 1).
  absl::StatusOr<int64_t> Delete(std::string_view key);

  // Writes `new_value` only if the key's mod_revision is still `expected_mod_revision` (0: only if
  // the key does not exist). Never overwrites a write made after the caller's read.
  absl::StatusOr<TxnResult> CompareAndSwap(std::string_view key, int64_t expected_mod_revision,
                                           std::string_view new_value);

  // Writes the key only if it does not exist (create_revision == 0).
  absl::StatusOr<TxnResult> CreateIfAbsent(std::string_view key, std::string_view value);

  // Streams events for keys under `prefix` from `start_revision` (0 = from now). Returns once the
  // server has confirmed the watch, so every later write is seen.
  absl::StatusOr<std::unique_ptr<Watcher>> Watch(std::string_view prefix, int64_t start_revision,
                                                 WatchCallback callback,
                                                 WatchEndCallback on_end = nullptr);

  absl::StatusOr<Lease> GrantLease(int64_t ttl_seconds);
  // Renews the lease once; returns its new TTL. NOT_FOUND if it expired or was revoked.
  absl::StatusOr<int64_t> KeepAliveOnce(int64_t lease_id);
  absl::Status RevokeLease(int64_t lease_id);

  // The endpoint the next call starts with (host:port).
  std::string current_endpoint() const;

 private:
  struct Endpoint;
  enum class Retry { kIdempotent, kTxn };

  explicit Client(const ClientOptions& options);
  using Deadline = std::chrono::system_clock::time_point;
  // Runs `attempt` against endpoints per the failover rules above; `deadline` bounds one attempt.
  absl::Status WithFailover(
      std::string_view op, Retry retry,
      const std::function<absl::Status(Endpoint& ep, Deadline deadline)>& attempt);

  ClientOptions options_;
  std::vector<std::unique_ptr<Endpoint>> endpoints_;
  std::atomic<size_t> current_{0};
};

}  // namespace kshield::etcd
