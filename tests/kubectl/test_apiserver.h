// TestApiserver: a small HTTPS server that answers like a Kubernetes apiserver closely enough for
// the real kubectl (v1.32) and for kshield-kubectl's proxy tests. Test-only.
//
//   KSH_ASSIGN_OR_RETURN(auto api, TestApiserver::Start({.server_cert_pem = cert,
//                                                        .server_key_pem = std::move(key),
//                                                        .client_ca_pem = cluster_ca_pem,
//                                                        .name = "east"}));
//   ... kubectl --server https://127.0.0.1:<api->port()> get secrets ...
//   for (const RecordedRequest& r : api->requests()) EXPECT_EQ(r.user, "alice");
//
// What it serves (only on 127.0.0.1, a free port unless `port` is set):
//  - discovery: GET /version, /api, /apis (plain JSON APIVersions / APIGroupList; kubectl falls back
//    from aggregated discovery to these), /api/v1 (APIResourceList: pods, pods/exec, secrets).
//  - Secrets: GET /api/v1/namespaces/<ns>/secrets[/<name>] and /api/v1/secrets; as a meta.k8s.io/v1
//    Table when the Accept header asks for `as=Table` (what `kubectl get` does), else as JSON
//    objects. Seeded: default/{s1,s2,s3}, kube-system/ks1, team-a/a1. Every Secret carries the label
//    `kshield.test/apiserver: <name>` and data key `cluster` = base64(<name>), so two clusters can be
//    told apart. Other namespaces are empty.
//  - Watch: `?watch=true` (or `watch=1`) streams newline-separated watch events with chunked
//    transfer: the namespace's Secrets as ADDED (unless a non-zero resourceVersion was given), then
//    one MODIFIED event per `watch_event_interval`, until the client closes, `timeoutSeconds` runs
//    out, or Stop().
//  - Pods: GET /api/v1/namespaces/<ns>/pods[/<name>]: any pod name exists (one container "main",
//    phase Running), so `kubectl exec` finds its pod.
//  - Exec: GET /api/v1/namespaces/<ns>/pods/<pod>/exec upgraded to WebSocket, subprotocol
//    `v5.channel.k8s.io` (else `v4.channel.k8s.io`), channel-byte framing (0 stdin, 1 stdout,
//    2 stderr, 3 status, 4 resize; v5 adds 255 = close a channel). Commands: `echo ARGS...` prints
//    ARGS; `hostname` prints <name>; `cat` (or no command) echoes stdin to stdout until stdin is
//    closed; `false` exits 1; anything else prints to stderr and exits 127. The result goes on
//    channel 3 as a metav1.Status (Success, or Failure/NonZeroExitCode), then a normal close.
//  - SPDY/3.1: GET or POST /api/v1/namespaces/<ns>/pods/<pod>/exec or .../portforward with
//    `Connection: Upgrade` and `Upgrade: SPDY/3.1` (what kubectl's SPDY client sends). The
//    `X-Stream-Protocol-Version` offers (every header instance, comma-separated lists split) are
//    negotiated like kube's httpstream.Handshake: the first one offered that the server accepts
//    (exec: v4.channel.k8s.io, v3.channel.k8s.io, v2.channel.k8s.io, channel.k8s.io;
//    portforward: portforward.k8s.io) is echoed back in a `101 Switching Protocols` with
//    `Connection: Upgrade`, `Upgrade: SPDY/3.1`. None offered: 400; none acceptable: 403 with one
//    `X-Accepted-Stream-Protocol-Versions` header per accepted version. After the 101 the server
//    writes `spdy_greeting` (in the same TLS write as the 101 head), then echoes every raw byte
//    it receives — bytes the client sent together with the request head included — until the
//    client closes. It does NOT speak SPDY framing, so the real kubectl cannot use this route;
//    it is for byte-level tests of proxies, which are protocol-blind after a 101. A portforward
//    request without a SPDY upgrade gets 400.
//  - Authentication: a TLS client certificate chained to `client_ca_pem` (user = its CN, groups =
//    its O entries; any certificate in client_ca_pem is a trust anchor, as with kube-apiserver's
//    --client-ca-file, so an intermediate CA alone works; the certificate's validity is checked
//    again on every request, so an expired certificate on a kept-alive connection gets 401), else `Authorization: Bearer <t>` or the WebSocket subprotocol
//    `base64url.bearer.authorization.k8s.io.<base64url(t)>` with t one of `bearer_tokens`
//    (user = t). Otherwise 401 with an apiserver-like Status body. A client certificate that does
//    not chain to `client_ca_pem` fails the TLS handshake.
//  - Authorization: reads (GET) and exec are allowed for every authenticated user; any other
//    method gets 403 Forbidden; an unknown path gets 404.
//  - Every response (401, 403, 404 and the 101 upgrade included) carries a fresh random-UUID
//    `Audit-Id` header and `X-Kshield-Test-Apiserver: <name>`.
//  - Every request is recorded (method, target, user, all headers as received) before it is
//    answered; requests() returns a copy. The most recent `max_recorded_requests` are kept. A
//    SPDY echo stream's record gets its byte count and `stream_closed` when the stream ends.
//
// Threading: one thread accepts; each connection is served by its own thread with blocking I/O.
// Stop() (or the destructor) closes the listener and every connection and joins all threads.
// Nothing is logged; the server key stays in SecretBytes until handed to OpenSSL.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/secret.h"

namespace kshield::testing {

struct TestApiserverOptions {
  std::string server_cert_pem;  // serving certificate (+ chain), SAN IP 127.0.0.1
  SecretBytes server_key_pem;   // its key (PKCS#8 or traditional PEM)
  std::string client_ca_pem;    // client certificates must chain to this (mTLS)...
  std::vector<std::string> bearer_tokens;  // ...or present one of these bearer tokens
  std::string name = "test";               // reported in responses (tells two clusters apart)
  uint16_t port = 0;                       // 0 = a free port
  std::chrono::milliseconds watch_event_interval{500};
  size_t max_recorded_requests = 10000;
  std::string spdy_greeting;  // bytes sent right after a SPDY/3.1 101 head, before any echo
};

struct RecordedRequest {
  std::string method, target, user;  // user: client cert CN, or the bearer token; "" if none
  std::vector<std::pair<std::string, std::string>> headers;  // as received, in order
  std::vector<std::string> groups;  // client certificate O entries
  int status = 0;                   // status code answered (101 for an upgrade)
  std::string audit_id;             // the Audit-Id header of the answer
  std::string client_cert_pem;      // the TLS client certificate (leaf), if one was presented
  // SPDY/3.1 echo streams only, set when the stream ends (the client closed, or Stop()):
  bool stream_closed = false;
  uint64_t stream_bytes_in = 0;   // raw bytes read from the client after the request head
  uint64_t stream_bytes_out = 0;  // raw bytes written after the 101 head (greeting + echo)
};

class TestApiserver {
 public:
  // Binds 127.0.0.1:<port> and starts serving. InvalidArgument for unusable certificates/keys
  // (or no client_ca_pem and no bearer_tokens), Unavailable when the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<TestApiserver>> Start(TestApiserverOptions o);
  ~TestApiserver();  // Stop()
  TestApiserver(const TestApiserver&) = delete;
  TestApiserver& operator=(const TestApiserver&) = delete;

  uint16_t port() const;
  std::string url() const;  // "https://127.0.0.1:<port>"
  std::vector<RecordedRequest> requests() const;  // every request, for header assertions
  size_t request_count() const;                   // total so far (including dropped records)
  size_t open_streams() const;  // SPDY/3.1 echo streams open now (answered 101, not yet ended)
  // The recorded request answered with Audit-Id `audit_id`, once its echo stream has ended;
  // nullopt when that does not happen within `timeout`.
  std::optional<RecordedRequest> WaitForEndedStream(const std::string& audit_id,
                                                    std::chrono::milliseconds timeout) const;
  void ClearRequests();
  void Stop();  // idempotent

  class Impl;

 private:
  explicit TestApiserver(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kshield::testing
