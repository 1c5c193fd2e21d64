#include "kms/services.h"

#include <chrono>
#include <ctime>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"
#include "crypto/recipient.h"
#include "keys/key_id.h"

namespace kshield::kms {
namespace {

using Clock = std::chrono::steady_clock;

const char* CodeName(::grpc::StatusCode code) {
  switch (code) {
    case ::grpc::StatusCode::OK:
      return "OK";
    case ::grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case ::grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case ::grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case ::grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case ::grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case ::grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case ::grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case ::grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case ::grpc::StatusCode::ABORTED:
      return "ABORTED";
    case ::grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case ::grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case ::grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case ::grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case ::grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case ::grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

// One call's bookkeeping: authorisation on entry, metrics and the reactor on exit.
class Call {
 public:
  // DefaultReactor() constructs a fresh reactor on every call, so it is taken exactly once here.
  Call(::grpc::CallbackServerContext* context, MethodMetrics* m, ServiceContext* ctx)
      : context_(context), reactor_(context->DefaultReactor()), m_(m), ctx_(ctx) {
    ctx_->in_flight.fetch_add(1, std::memory_order_relaxed);
  }
  ~Call() { ctx_->in_flight.fetch_sub(1, std::memory_order_release); }

  // Checks the caller's uid. Returns false (and finishes the call) if it is not allowed.
  bool Authorize(const ServiceContext& ctx, const UnixListener* listener,
                 std::string_view socket_name) {
    if (ctx.draining.load(std::memory_order_acquire)) {
      Finish(::grpc::Status(::grpc::StatusCode::UNAVAILABLE, "kshield-kms is shutting down"));
      return false;
    }
    auto peer = listener->PeerOf(*context_);
    if (peer.has_value() && ctx.allow.Allows(peer->uid)) return true;
    const char* reason = peer.has_value() ? "uid_not_allowed" : "unknown_peer";
    ctx.metrics->rejected_callers.WithLabels({std::string(socket_name), reason}).Inc();
    log::Warn("call.rejected", {{"socket", std::string(socket_name)},
                                {"method", m_->method},
                                {"reason", reason},
                                {"uid", peer.has_value() ? static_cast<int64_t>(peer->uid) : -1},
                                {"pid", peer.has_value() ? static_cast<int64_t>(peer->pid) : -1}});
    Finish(::grpc::Status(
        ::grpc::StatusCode::PERMISSION_DENIED,
        peer.has_value()
            ? absl::StrCat("caller uid ", peer->uid, " is not allowed to use this plugin")
            : std::string("caller credentials unknown")));
    return false;
  }

  ::grpc::ServerUnaryReactor* Finish(const ::grpc::Status& status) {
    m_->Done(CodeName(status.error_code()),
             std::chrono::duration<double>(Clock::now() - start_).count());
    reactor_->Finish(status);
    return reactor_;
  }
  ::grpc::ServerUnaryReactor* reactor() { return reactor_; }

 private:
  ::grpc::CallbackServerContext* context_;
  ::grpc::ServerUnaryReactor* reactor_;
  MethodMetrics* m_;
  ServiceContext* ctx_;
  Clock::time_point start_ = Clock::now();
};

// Health gate shared by v2 Status and admin Refresh.
::grpc::Status HealthStatus(const ServiceContext& ctx) {
  HealthState h = ctx.health->Get();
  if (!h.healthy) {
    return ::grpc::Status(::grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat("kshield-kms unhealthy: ", h.reason));
  }
  return ::grpc::Status::OK;
}

void CountDecryptFailure(const ServiceContext& ctx, const char* api, std::string_view reason) {
  ctx.metrics->decrypt_failures.WithLabels({api, std::string(reason)}).Inc();
}

}  // namespace

::grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return ::grpc::Status::OK;
  return ::grpc::Status(static_cast<::grpc::StatusCode>(s.code()), std::string(s.message()));
}

// ---- KMS v2 ----------------------------------------------------------------------------------

::grpc::ServerUnaryReactor* KmsV2Service::Status(::grpc::CallbackServerContext* context,
                                                 const ::v2::StatusRequest*,
                                                 ::v2::StatusResponse* response) {
  Call call(context, &ctx_->metrics->v2_status, ctx_);
  if (!call.Authorize(*ctx_, listener_, "kms")) return call.reactor();
  ::grpc::Status health = HealthStatus(*ctx_);
  if (!health.ok()) return call.Finish(health);
  response->set_version("v2");
  response->set_healthz("ok");
  response->set_key_id(ctx_->manager->Current()->primary().key_id);
  return call.Finish(::grpc::Status::OK);
}

::grpc::ServerUnaryReactor* KmsV2Service::Encrypt(::grpc::CallbackServerContext* context,
                                                  const ::v2::EncryptRequest* request,
                                                  ::v2::EncryptResponse* response) {
  Call call(context, &ctx_->metrics->v2_encrypt, ctx_);
  if (!call.Authorize(*ctx_, listener_, "kms")) return call.reactor();
  auto wrapped = cipher_.Wrap(request->plaintext(), keys::WrapFormat::kKmsV2);
  if (!wrapped.ok()) return call.Finish(ToGrpc(wrapped.status()));
  response->set_ciphertext(std::move(wrapped->ciphertext));
  response->set_key_id(std::move(wrapped->key_id));
  return call.Finish(::grpc::Status::OK);
}

::grpc::ServerUnaryReactor* KmsV2Service::Decrypt(::grpc::CallbackServerContext* context,
                                                  const ::v2::DecryptRequest* request,
                                                  ::v2::DecryptResponse* response) {
  Call call(context, &ctx_->metrics->v2_decrypt, ctx_);
  if (!call.Authorize(*ctx_, listener_, "kms")) return call.reactor();
  std::string_view reason;
  auto plain = cipher_.Unwrap(request->ciphertext(), request->key_id(), keys::WrapFormat::kKmsV2,
                              &reason);
  if (!plain.ok()) {
    CountDecryptFailure(*ctx_, "v2", reason);
    return call.Finish(ToGrpc(plain.status()));
  }
  response->set_plaintext(std::move(*plain));
  return call.Finish(::grpc::Status::OK);
}

// ---- KMS v1beta1 -----------------------------------------------------------------------------

namespace {
constexpr std::string_view kV1Version = "v1beta1";

::grpc::Status CheckV1Version(std::string_view got) {
  if (got == kV1Version) return ::grpc::Status::OK;
  std::string shown(got.substr(0, 32));
  for (char& c : shown) {
    if (c < 0x20 || c >= 0x7f) c = '?';
  }
  return ::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("unsupported KMS API version \"", shown,
                                     "\"; this service speaks v1beta1"));
}
}  // namespace

::grpc::ServerUnaryReactor* KmsV1beta1Service::Version(::grpc::CallbackServerContext* context,
                                                       const ::v1beta1::VersionRequest* request,
                                                       ::v1beta1::VersionResponse* response) {
  Call call(context, &ctx_->metrics->v1_version, ctx_);
  if (!call.Authorize(*ctx_, listener_, "kms")) return call.reactor();
  ::grpc::Status v = CheckV1Version(request->version());
  if (!v.ok()) return call.Finish(v);
  response->set_version(std::string(kV1Version));
  response->set_runtime_name("kshield-kms");
  response->set_runtime_version(ctx_->version);
  return call.Finish(::grpc::Status::OK);
}

::grpc::ServerUnaryReactor* KmsV1beta1Service::Encrypt(::grpc::CallbackServerContext* context,
                                                       const ::v1beta1::EncryptRequest* request,
                                                       ::v1beta1::EncryptResponse* response) {
  Call call(context, &ctx_->metrics->v1_encrypt, ctx_);
  if (!call.Authorize(*ctx_, listener_, "kms")) return call.reactor();
  ::grpc::Status v = CheckV1Version(request->version());
  if (!v.ok()) return call.Finish(v);
  auto wrapped = cipher_.Wrap(request->plain(), keys::WrapFormat::kKmsV1beta1);
  if (!wrapped.ok()) return call.Finish(ToGrpc(wrapped.status()));
  response->set_cipher(std::move(wrapped->ciphertext));
  return call.Finish(::grpc::Status::OK);
}

::grpc::ServerUnaryReactor* KmsV1beta1Service::Decrypt(::grpc::CallbackServerContext* context,
                                                       const ::v1beta1::DecryptRequest* request,
                                                       ::v1beta1::DecryptResponse* response) {
  Call call(context, &ctx_->metrics->v1_decrypt, ctx_);
  if (!call.Authorize(*ctx_, listener_, "kms")) return call.reactor();
  ::grpc::Status v = CheckV1Version(request->version());
  if (!v.ok()) return call.Finish(v);
  std::string_view reason;
  auto plain =
      cipher_.Unwrap(request->cipher(), std::nullopt, keys::WrapFormat::kKmsV1beta1, &reason);
  if (!plain.ok()) {
    CountDecryptFailure(*ctx_, "v1beta1", reason);
    return call.Finish(ToGrpc(plain.status()));
  }
  response->set_plain(std::move(*plain));
  return call.Finish(::grpc::Status::OK);
}

// ---- Admin -----------------------------------------------------------------------------------

namespace {
void FillInfo(const ServiceContext& ctx, ::kshield::admin::v1::KeysetInfoResponse* out) {
  auto ks = ctx.manager->Current();
  out->set_keyset_id(ks->keyset_id());
  out->set_primary_key_id(ks->primary().key_id);
  for (const auto& v : ks->versions()) {
    auto* kv = out->add_versions();
    kv->set_version(v.version);
    kv->set_state(std::string(keys::KeyStateName(v.state)));
    kv->set_key_id(v.key_id);
    kv->set_created_unix(v.created_unix);
  }
  out->set_provider(std::string(ctx.manager->provider().name()));
  out->set_tee_platform(ctx.tee_platform);
  HealthState h = ctx.health->Get();
  out->set_healthy(h.healthy);
  out->set_health_reason(h.reason);
}
// Admin methods added after KmsMetrics' fixed set share its admin families (same metric names,
// method label = the RPC name).
MethodMetrics AdminMethod(const MethodMetrics& family_source, const char* method) {
  MethodMetrics m = family_source;
  m.method = method;
  m.ok = &m.requests->WithLabels({m.api, method, "OK"});
  m.latency = &m.latency_family->WithLabels({m.api, method});
  return m;
}

// A PEM public key is well under 1 KiB (X25519) or 1 KiB (RSA-3072); anything far larger is not
// a recipient key.
constexpr size_t kMaxRecipientPemBytes = 16 * 1024;

int64_t PeerUid(const UnixListener* listener, ::grpc::CallbackServerContext* context) {
  auto peer = listener->PeerOf(*context);
  return peer.has_value() ? static_cast<int64_t>(peer->uid) : -1;
}
}  // namespace

AdminService::AdminService(ServiceContext* ctx, const UnixListener* listener)
    : ctx_(ctx),
      listener_(listener),
      retire_metrics_(AdminMethod(ctx->metrics->admin_info, "Retire")),
      backup_metrics_(AdminMethod(ctx->metrics->admin_info, "Backup")) {}

absl::StatusOr<keys::BackupContents> ExportBackupContents(const keys::KeysetManager& manager) {
  const kshield::keys::v1::KeysetRecord record = manager.record();
  if (record.keyset_id().empty()) return absl::FailedPreconditionError("keyset not initialised");
  keys::BackupContents contents;
  contents.keyset_id = record.keyset_id();
  contents.next_version = record.next_version();
  contents.provider = std::string(manager.provider().name());
  contents.created_unix = time(nullptr);
  for (const auto& v : record.versions()) {
    const std::string key_id = keys::FormatKeyId(record.keyset_id(), v.version());
    absl::StatusOr<SecretBytes> kek =
        manager.provider().ExportVersion({record.keyset_id(), v.version()}, v.material());
    if (!kek.ok()) {
      if (v.state() == kshield::keys::v1::KekVersionRecord::RETIRED) {
        log::Warn("admin.backup_skipped_version",
                  {{"key_id", key_id}, {"error", std::string(kek.status().message())}});
        continue;
      }
      return Annotate(kek.status(), absl::StrCat("exporting ", key_id));
    }
    keys::BackupKek k;
    k.version = v.version();
    k.state = v.state();
    k.created_unix = v.created_unix();
    k.kek = std::move(*kek);
    contents.keks.push_back(std::move(k));
  }
  return contents;
}

::grpc::ServerUnaryReactor* AdminService::KeysetInfo(
    ::grpc::CallbackServerContext* context, const ::kshield::admin::v1::KeysetInfoRequest*,
    ::kshield::admin::v1::KeysetInfoResponse* response) {
  Call call(context, &ctx_->metrics->admin_info, ctx_);
  if (!call.Authorize(*ctx_, listener_, "admin")) return call.reactor();
  FillInfo(*ctx_, response);
  return call.Finish(::grpc::Status::OK);
}

::grpc::ServerUnaryReactor* AdminService::Rotate(::grpc::CallbackServerContext* context,
                                                 const ::kshield::admin::v1::RotateRequest*,
                                                 ::kshield::admin::v1::RotateResponse* response) {
  Call call(context, &ctx_->metrics->admin_rotate, ctx_);
  if (!call.Authorize(*ctx_, listener_, "admin")) return call.reactor();
  auto peer = listener_->PeerOf(*context);
  auto result = ctx_->manager->Rotate();
  ctx_->metrics->rotations.WithLabels({result.ok() ? "ok" : "failed"}).Inc();
  if (!result.ok()) {
    log::Error("admin.rotate_failed", {{"error", std::string(result.status().message())},
                                       {"uid", static_cast<int64_t>(peer ? peer->uid : -1)}});
    return call.Finish(ToGrpc(result.status()));
  }
  log::Info("admin.rotate", {{"previous_key_id", result->previous_key_id},
                             {"key_id", result->key_id},
                             {"uid", static_cast<int64_t>(peer ? peer->uid : -1)}});
  ctx_->health->ProbeNow();
  response->set_previous_key_id(result->previous_key_id);
  response->set_key_id(result->key_id);
  return call.Finish(::grpc::Status::OK);
}

::grpc::ServerUnaryReactor* AdminService::Refresh(::grpc::CallbackServerContext* context,
                                                  const ::kshield::admin::v1::RefreshRequest*,
                                                  ::kshield::admin::v1::RefreshResponse* response) {
  Call call(context, &ctx_->metrics->admin_refresh, ctx_);
  if (!call.Authorize(*ctx_, listener_, "admin")) return call.reactor();
  auto peer = listener_->PeerOf(*context);
  absl::Status s = ctx_->before_refresh ? ctx_->before_refresh() : absl::OkStatus();
  if (s.ok()) s = ctx_->manager->Refresh();
  log::Info("admin.refresh", {{"ok", s.ok()},
                              {"error", std::string(s.message())},
                              {"uid", static_cast<int64_t>(peer ? peer->uid : -1)}});
  if (!s.ok()) return call.Finish(ToGrpc(s));
  ctx_->health->ProbeNow();
  HealthState h = ctx_->health->Get();
  response->set_key_id(ctx_->manager->Current()->primary().key_id);
  response->set_healthy(h.healthy);
  response->set_health_reason(h.reason);
  return call.Finish(::grpc::Status::OK);
}

::grpc::ServerUnaryReactor* AdminService::Retire(::grpc::CallbackServerContext* context,
                                                 const ::kshield::admin::v1::RetireRequest* request,
                                                 ::kshield::admin::v1::RetireResponse* response) {
  Call call(context, &retire_metrics_, ctx_);
  if (!call.Authorize(*ctx_, listener_, "admin")) return call.reactor();
  const int64_t uid = PeerUid(listener_, context);
  const uint32_t version = request->version();
  const std::string keyset_id = ctx_->manager->Current()->keyset_id();
  if (version == 0) {
    return call.Finish(::grpc::Status(::grpc::StatusCode::INVALID_ARGUMENT,
                                      "version must be >= 1"));
  }
  absl::Status s = ctx_->manager->Retire(version);
  if (!s.ok()) {
    log::Warn("admin.retire_refused", {{"keyset_id", keyset_id},
                                       {"version", static_cast<uint64_t>(version)},
                                       {"error", std::string(s.message())},
                                       {"uid", uid}});
    return call.Finish(ToGrpc(s));
  }
  const std::string key_id = keys::FormatKeyId(keyset_id, version);
  log::Info("admin.retire", {{"key_id", key_id}, {"uid", uid}});
  ctx_->health->ProbeNow();
  response->set_key_id(key_id);
  return call.Finish(::grpc::Status::OK);
}

::grpc::ServerUnaryReactor* AdminService::Backup(::grpc::CallbackServerContext* context,
                                                 const ::kshield::admin::v1::BackupRequest* request,
                                                 ::kshield::admin::v1::BackupResponse* response) {
  Call call(context, &backup_metrics_, ctx_);
  if (!call.Authorize(*ctx_, listener_, "admin")) return call.reactor();
  const int64_t uid = PeerUid(listener_, context);
  auto fail = [&](const absl::Status& s) {
    log::Error("admin.backup_failed", {{"error", std::string(s.message())}, {"uid", uid}});
    return call.Finish(ToGrpc(s));
  };
  const std::string& pem = request->recipient_public_key_pem();
  if (pem.empty() || pem.size() > kMaxRecipientPemBytes) {
    return fail(absl::InvalidArgumentError(
        absl::StrCat("recipient public key: want a PEM of 1..", kMaxRecipientPemBytes, " bytes")));
  }
  absl::StatusOr<std::string> kind = crypto::RecipientKind(pem);
  if (!kind.ok()) return fail(Annotate(kind.status(), "recipient public key"));
  absl::StatusOr<std::string> fingerprint = crypto::RecipientFingerprint(pem);
  if (!fingerprint.ok()) return fail(Annotate(fingerprint.status(), "recipient public key"));
  absl::StatusOr<keys::BackupContents> contents = ExportBackupContents(*ctx_->manager);
  if (!contents.ok()) return fail(Annotate(contents.status(), "backup"));
  absl::StatusOr<std::string> sealed = keys::SealBackup(*contents, pem);
  if (!sealed.ok()) return fail(Annotate(sealed.status(), "sealing the backup"));
  const std::string primary = ctx_->manager->Current()->primary().key_id;
  log::Info("admin.backup", {{"keyset_id", contents->keyset_id},
                             {"kek_count", static_cast<uint64_t>(contents->keks.size())},
                             {"recipient_kind", *kind},
                             {"recipient_fingerprint", *fingerprint},
                             {"bytes", static_cast<uint64_t>(sealed->size())},
                             {"uid", uid}});
  response->set_backup(std::move(*sealed));
  response->set_keyset_id(contents->keyset_id);
  response->set_kek_count(static_cast<uint32_t>(contents->keks.size()));
  response->set_recipient_fingerprint(*fingerprint);
  response->set_recipient_kind(*kind);
  response->set_primary_key_id(primary);
  response->set_created_unix(contents->created_unix);
  return call.Finish(::grpc::Status::OK);
}

}  // namespace kshield::kms
