#include "keys/kmip/kmip_client.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "keys/kmip/kmip_messages.h"
#include "keys/kmip/ttlv.h"

namespace kshield::keys::kmip {
namespace {

// A decoded response. `message` borrows `bytes` (protected memory; its address does not change
// when the SecretBytes is moved), and `payload` points into `message`'s children, whose storage
// also survives a move.
struct Response {
  SecretBytes bytes;
  Item message = Item::Structure(0);
  const Item* payload = nullptr;
};

}  // namespace

absl::StatusOr<std::unique_ptr<KmipClient>> KmipClient::New(const KmipClientOptions& options) {
  if (options.host.empty()) return absl::InvalidArgumentError("kmip: empty host");
  if (options.port == 0) return absl::InvalidArgumentError("kmip: port 0");
  if (options.timeout.count() <= 0) return absl::InvalidArgumentError("kmip: timeout must be > 0");
  KSH_ASSIGN_OR_RETURN(SslCtxPtr ctx,
                       NewClientTlsContext(options.ca_file, options.cert_file, options.key_file));
  return std::unique_ptr<KmipClient>(new KmipClient(options, std::move(ctx)));
}

KmipClient::KmipClient(KmipClientOptions options, SslCtxPtr ctx)
    : options_(std::move(options)),
      endpoint_(options_.host.find(':') != std::string::npos
                    ? absl::StrCat("[", options_.host, "]:", options_.port)
                    : absl::StrCat(options_.host, ":", options_.port)),
      ctx_(std::move(ctx)) {}

KmipClient::~KmipClient() = default;

absl::StatusOr<SecretBytes> KmipClient::Exchange(std::string_view request, Deadline deadline) {
  KSH_RETURN_IF_ERROR(conn_->Write(request, deadline));
  uint8_t header[kTtlvHeaderSize];
  KSH_RETURN_IF_ERROR(conn_->Read(header, sizeof(header), deadline));
  auto size =
      TtlvMessageSize(std::string_view(reinterpret_cast<const char*>(header), sizeof(header)));
  if (!size.ok()) {
    return absl::DataLossError(absl::StrCat(
        "KMIP server ", endpoint_, " sent an unusable response header: ", size.status().message()));
  }
  SecretBytes response(*size);
  std::memcpy(response.UnsafeMutableData(), header, sizeof(header));
  KSH_RETURN_IF_ERROR(conn_->Read(response.UnsafeMutableData() + kTtlvHeaderSize,
                                  *size - kTtlvHeaderSize, deadline));
  return response;
}

absl::StatusOr<SecretBytes> KmipClient::Call(Operation op, std::string_view request,
                                             bool idempotent) {
  const Deadline deadline = std::chrono::steady_clock::now() + options_.timeout;
  std::unique_lock<std::timed_mutex> lock(mu_, std::defer_lock);
  if (!lock.try_lock_until(deadline)) {
    return absl::UnavailableError(absl::StrCat("KMIP ", AV(OperationName(op)), " on ", endpoint_,
                                               ": timed out waiting for another KMIP call"));
  }
  for (int attempt = 0;; ++attempt) {
    bool reused = conn_ != nullptr;
    if (reused && conn_->Unusable()) {
      conn_.reset();
      reused = false;
    }
    if (conn_ == nullptr) {
      const std::string& name = options_.server_name.empty() ? options_.host : options_.server_name;
      auto conn = TlsConnection::Connect(ctx_.get(), options_.host, options_.port, name, deadline);
      if (!conn.ok()) return Annotate(conn.status(), absl::StrCat("KMIP ", AV(OperationName(op))));
      conn_ = std::move(*conn);
      ++connects_;
      log::Info("kmip.connected", {{"endpoint", endpoint_}, {"tls", conn_->Describe()}});
    }
    auto response = Exchange(request, deadline);
    if (response.ok()) return response;
    // A connection that failed mid-exchange is out of step with the server: never reuse it.
    conn_.reset();
    const bool retry = reused && idempotent && attempt == 0 &&
                       response.status().code() == absl::StatusCode::kUnavailable &&
                       std::chrono::steady_clock::now() < deadline;
    if (!retry) {
      log::Warn("kmip.call_failed", {{"endpoint", endpoint_},
                                     {"operation", std::string(OperationName(op))},
                                     {"reason", std::string(response.status().message())}});
      return Annotate(response.status(), absl::StrCat("KMIP ", AV(OperationName(op))));
    }
  }
}

namespace {

absl::StatusOr<Response> Decode(SecretBytes bytes, Operation op) {
  Response r;
  r.bytes = std::move(bytes);
  auto message = DecodeTtlv(r.bytes.UnsafeStringView());
  if (!message.ok()) {
    return absl::DataLossError(absl::StrCat("malformed KMIP ", AV(OperationName(op)),
                                            " response: ", message.status().message()));
  }
  r.message = std::move(*message);
  KSH_ASSIGN_OR_RETURN(r.payload, CheckResponse(r.message, op));
  return r;
}

}  // namespace

#define KSH_KMIP_TRY(lhs, expr)                   \
  auto KSH_CONCAT_(kmip_, __LINE__) = (expr);     \
  if (!KSH_CONCAT_(kmip_, __LINE__).ok()) {       \
    ++failures_;                                  \
    return KSH_CONCAT_(kmip_, __LINE__).status(); \
  }                                               \
  lhs = std::move(*KSH_CONCAT_(kmip_, __LINE__))

absl::StatusOr<std::string> KmipClient::CreateAes256Key(std::string_view name) {
  constexpr Operation op = Operation::kCreate;
  KSH_KMIP_TRY(std::string request, EncodeRequest(op, CreateAes256Payload(name)));
  KSH_KMIP_TRY(SecretBytes bytes, Call(op, request, /*idempotent=*/false));
  KSH_KMIP_TRY(Response r, Decode(std::move(bytes), op));
  KSH_KMIP_TRY(std::string uid, ParseUniqueIdentifier(r.payload, op));
  ++creates_;
  return uid;
}

absl::StatusOr<std::string> KmipClient::RegisterSymmetricKey(std::string_view name,
                                                             const SecretBytes& key) {
  constexpr Operation op = Operation::kRegister;
  KSH_KMIP_TRY(SecretBytes request, EncodeRegisterSymmetricKeyRequest(name, key));
  KSH_KMIP_TRY(SecretBytes bytes, Call(op, request.UnsafeStringView(), /*idempotent=*/false));
  KSH_KMIP_TRY(Response r, Decode(std::move(bytes), op));
  KSH_KMIP_TRY(std::string uid, ParseUniqueIdentifier(r.payload, op));
  ++registers_;
  return uid;
}

absl::Status KmipClient::Activate(std::string_view uid) {
  constexpr Operation op = Operation::kActivate;
  KSH_KMIP_TRY(std::string request, EncodeRequest(op, UidPayload(uid)));
  KSH_KMIP_TRY(SecretBytes bytes, Call(op, request, /*idempotent=*/false));
  KSH_KMIP_TRY(Response r, Decode(std::move(bytes), op));
  (void)r;
  ++activates_;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> KmipClient::LocateByName(std::string_view name,
                                                                  int32_t max_items) {
  constexpr Operation op = Operation::kLocate;
  KSH_KMIP_TRY(std::string request, EncodeRequest(op, LocateByNamePayload(name, max_items)));
  KSH_KMIP_TRY(SecretBytes bytes, Call(op, request, /*idempotent=*/true));
  KSH_KMIP_TRY(Response r, Decode(std::move(bytes), op));
  KSH_KMIP_TRY(std::vector<std::string> uids, ParseLocate(r.payload));
  ++locates_;
  return uids;
}

absl::StatusOr<SecretBytes> KmipClient::GetSymmetricKey(std::string_view uid, size_t key_size) {
  constexpr Operation op = Operation::kGet;
  KSH_KMIP_TRY(std::string request, EncodeRequest(op, GetPayload(uid)));
  KSH_KMIP_TRY(SecretBytes bytes, Call(op, request, /*idempotent=*/true));
  KSH_KMIP_TRY(Response r, Decode(std::move(bytes), op));
  KSH_KMIP_TRY(SecretBytes key, ParseGetSymmetricKey(r.payload, uid, key_size));
  ++gets_;
  return key;
}

absl::Status KmipClient::Revoke(std::string_view uid) {
  constexpr Operation op = Operation::kRevoke;
  KSH_KMIP_TRY(std::string request, EncodeRequest(op, RevokePayload(uid)));
  KSH_KMIP_TRY(SecretBytes bytes, Call(op, request, /*idempotent=*/false));
  KSH_KMIP_TRY(Response r, Decode(std::move(bytes), op));
  (void)r;
  ++revokes_;
  return absl::OkStatus();
}

absl::Status KmipClient::Destroy(std::string_view uid) {
  constexpr Operation op = Operation::kDestroy;
  KSH_KMIP_TRY(std::string request, EncodeRequest(op, UidPayload(uid)));
  KSH_KMIP_TRY(SecretBytes bytes, Call(op, request, /*idempotent=*/false));
  KSH_KMIP_TRY(Response r, Decode(std::move(bytes), op));
  (void)r;
  ++destroys_;
  return absl::OkStatus();
}

absl::Status KmipClient::Query() {
  constexpr Operation op = Operation::kQuery;
  KSH_KMIP_TRY(std::string request, EncodeRequest(op, QueryServerInformationPayload()));
  KSH_KMIP_TRY(SecretBytes bytes, Call(op, request, /*idempotent=*/true));
  KSH_KMIP_TRY(Response r, Decode(std::move(bytes), op));
  (void)r;
  ++queries_;
  return absl::OkStatus();
}

#undef KSH_KMIP_TRY

KmipClientStats KmipClient::stats() const {
  KmipClientStats s;
  s.creates = creates_.load();
  s.locates = locates_.load();
  s.gets = gets_.load();
  s.activates = activates_.load();
  s.revokes = revokes_.load();
  s.destroys = destroys_.load();
  s.queries = queries_.load();
  s.registers = registers_.load();
  s.connects = connects_.load();
  s.failures = failures_.load();
  return s;
}

}  // namespace kshield::keys::kmip
