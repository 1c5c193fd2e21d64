// KmipClient — the KMIP 1.2 operations kshield needs, over one mutual-TLS connection.
//
//   KmipClientOptions o{.host = "kms.example", .port = 5696, .ca_file = ..., .cert_file = ...,
//                       .key_file = ..., .timeout = std::chrono::seconds(3)};
//   KSH_ASSIGN_OR_RETURN(auto client, KmipClient::New(o));
//   KSH_ASSIGN_OR_RETURN(std::string uid, client->CreateAes256Key("kshield-0123abcd-1"));
//   KSH_RETURN_IF_ERROR(client->Activate(uid));
//   KSH_ASSIGN_OR_RETURN(SecretBytes key, client->GetSymmetricKey(uid));   // 32 bytes
//
// Promises:
//  - every call finishes within `timeout` (connect, handshake, request and response together;
//    time spent waiting for a concurrent call counts too), except for DNS resolution of a host
//    name;
//  - the connection is kept between calls and replaced after any failure; an idle connection the
//    server has closed is noticed before use, and read-only calls are
//    retried once on a fresh connection if a reused one fails mid-call (only Get, Locate and
//    Query: a state change must not be replayed). Nothing is cached: every
//    call is a real round trip, so a call fails while the server is down and works again, with
//    the same client, once it is back;
//  - responses are read straight into protected memory (SecretBytes) and decoded in place, so
//    key bytes from Get never sit in an ordinary heap buffer; OpenSSL wipes its decrypted
//    records (SSL_OP_CLEANSE_PLAINTEXT);
//  - errors: Unavailable (server down, timed out, connection lost), Unauthenticated (TLS
//    certificate refused by either side), DataLoss (malformed response), or the code mapped from
//    the KMIP Result Reason with the server's Result Message (see kmip_messages.h).
// Thread-safe; calls are serialised on the one connection.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/secret.h"
#include "keys/kmip/kmip_tags.h"
#include "keys/kmip/tls_connection.h"

namespace kshield::keys::kmip {

struct KmipClientOptions {
  std::string host;  // name or IP literal (no brackets)
  uint16_t port = 5696;
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string server_name;  // what the server certificate must name; empty = host
  std::chrono::milliseconds timeout{3000};
};

// Counts of successful round trips per operation, plus connections and failures.
struct KmipClientStats {
  uint64_t creates = 0;
  uint64_t locates = 0;
  uint64_t gets = 0;
  uint64_t activates = 0;
  uint64_t revokes = 0;
  uint64_t destroys = 0;
  uint64_t queries = 0;
  uint64_t registers = 0;
  uint64_t connects = 0;  // TLS sessions established
  uint64_t failures = 0;  // calls that returned an error of any kind
};

class KmipClient {
 public:
  // Loads the TLS material (errors name the file); does not connect.
  static absl::StatusOr<std::unique_ptr<KmipClient>> New(const KmipClientOptions& options);
  ~KmipClient();

  // Create: a new AES-256 Symmetric Key usable for Encrypt|Decrypt, named `name`. Returns its
  // Unique Identifier. The object starts Pre-Active.
  absl::StatusOr<std::string> CreateAes256Key(std::string_view name);
  absl::Status Activate(std::string_view uid);
  // Locate by Name; `max_items` > 0 bounds the answer.
  absl::StatusOr<std::vector<std::string>> LocateByName(std::string_view name,
                                                        int32_t max_items = 0);
  // Get: the raw key bytes of an AES Symmetric Key of `key_size` bytes.
  absl::StatusOr<SecretBytes> GetSymmetricKey(std::string_view uid, size_t key_size = 32);
  // Register: an existing AES key (16, 24 or 32 bytes) as a Symmetric Key usable for
  // Encrypt|Decrypt, named `name` (restoring a KEK from a backup). Returns its Unique
  // Identifier; the object starts Pre-Active. The request exists only in protected memory.
  absl::StatusOr<std::string> RegisterSymmetricKey(std::string_view name, const SecretBytes& key);
  // Revoke with reason Cessation of Operation (the object becomes Deactivated).
  absl::Status Revoke(std::string_view uid);
  absl::Status Destroy(std::string_view uid);
  // Query Server Information (a round trip that touches no object).
  absl::Status Query();

  KmipClientStats stats() const;
  // "host:port".
  const std::string& endpoint() const { return endpoint_; }

 private:
  KmipClient(KmipClientOptions options, SslCtxPtr ctx);
  // One request / response exchange; returns the whole response message in protected memory.
  absl::StatusOr<SecretBytes> Call(Operation op, std::string_view request, bool idempotent);
  absl::StatusOr<SecretBytes> Exchange(std::string_view request, Deadline deadline);

  const KmipClientOptions options_;
  const std::string endpoint_;
  SslCtxPtr ctx_;
  std::timed_mutex mu_;
  std::unique_ptr<TlsConnection> conn_;  // guarded by mu_

  std::atomic<uint64_t> creates_{0}, locates_{0}, gets_{0}, activates_{0}, revokes_{0},
      destroys_{0}, queries_{0}, registers_{0}, connects_{0}, failures_{0};
};

}  // namespace kshield::keys::kmip
