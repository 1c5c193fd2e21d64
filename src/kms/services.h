// The gRPC services of kshield-kms: KMS v2 and v1beta1 (one socket) and the admin service (its
// own socket). Every call is checked against the uid allow-list first.
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "admin.grpc.pb.h"
#include "keys/backup.h"
#include "keys/dek_cipher.h"
#include "keys/keyset_manager.h"
#include "kms/health.h"
#include "kms/kms_metrics.h"
#include "kms/unix_listener.h"
#include "kms_v1beta1.grpc.pb.h"
#include "kms_v2.grpc.pb.h"

namespace kshield::kms {

// What the services share. Owned by KmsServer, outlives the services.
struct ServiceContext {
  keys::KeysetManager* manager = nullptr;
  HealthMonitor* health = nullptr;
  KmsMetrics* metrics = nullptr;
  UidAllowList allow;
  std::string tee_platform;
  std::string version;  // kshield version, reported as v1beta1 runtime_version
  // Set at SIGTERM: new calls are refused with UNAVAILABLE while in-flight calls finish.
  std::atomic<bool> draining{false};
  std::atomic<int> in_flight{0};
  // Provider-specific step before a Refresh (may be empty).
  std::function<absl::Status()> before_refresh;
};

class KmsV2Service final : public ::v2::KeyManagementService::CallbackService {
 public:
  KmsV2Service(ServiceContext* ctx, const UnixListener* listener)
      : ctx_(ctx), listener_(listener), cipher_(ctx->manager) {}

  ::grpc::ServerUnaryReactor* Status(::grpc::CallbackServerContext* context,
                                     const ::v2::StatusRequest* request,
                                     ::v2::StatusResponse* response) override;
  ::grpc::ServerUnaryReactor* Encrypt(::grpc::CallbackServerContext* context,
                                      const ::v2::EncryptRequest* request,
                                      ::v2::EncryptResponse* response) override;
  ::grpc::ServerUnaryReactor* Decrypt(::grpc::CallbackServerContext* context,
                                      const ::v2::DecryptRequest* request,
                                      ::v2::DecryptResponse* response) override;

 private:
  ServiceContext* ctx_;
  const UnixListener* listener_;
  keys::DekCipher cipher_;
};

class KmsV1beta1Service final : public ::v1beta1::KeyManagementService::CallbackService {
 public:
  KmsV1beta1Service(ServiceContext* ctx, const UnixListener* listener)
      : ctx_(ctx), listener_(listener), cipher_(ctx->manager) {}

  ::grpc::ServerUnaryReactor* Version(::grpc::CallbackServerContext* context,
                                      const ::v1beta1::VersionRequest* request,
                                      ::v1beta1::VersionResponse* response) override;
  ::grpc::ServerUnaryReactor* Encrypt(::grpc::CallbackServerContext* context,
                                      const ::v1beta1::EncryptRequest* request,
                                      ::v1beta1::EncryptResponse* response) override;
  ::grpc::ServerUnaryReactor* Decrypt(::grpc::CallbackServerContext* context,
                                      const ::v1beta1::DecryptRequest* request,
                                      ::v1beta1::DecryptResponse* response) override;

 private:
  ServiceContext* ctx_;
  const UnixListener* listener_;
  keys::DekCipher cipher_;
};

class AdminService final : public ::kshield::admin::v1::Admin::CallbackService {
 public:
  // `ctx->metrics` must be set: the Retire / Backup call metrics hang off its admin families.
  AdminService(ServiceContext* ctx, const UnixListener* listener);

  ::grpc::ServerUnaryReactor* KeysetInfo(::grpc::CallbackServerContext* context,
                                         const ::kshield::admin::v1::KeysetInfoRequest* request,
                                         ::kshield::admin::v1::KeysetInfoResponse* response) override;
  ::grpc::ServerUnaryReactor* Rotate(::grpc::CallbackServerContext* context,
                                     const ::kshield::admin::v1::RotateRequest* request,
                                     ::kshield::admin::v1::RotateResponse* response) override;
  ::grpc::ServerUnaryReactor* Refresh(::grpc::CallbackServerContext* context,
                                      const ::kshield::admin::v1::RefreshRequest* request,
                                      ::kshield::admin::v1::RefreshResponse* response) override;
  ::grpc::ServerUnaryReactor* Retire(::grpc::CallbackServerContext* context,
                                     const ::kshield::admin::v1::RetireRequest* request,
                                     ::kshield::admin::v1::RetireResponse* response) override;
  // Audited (recipient fingerprint, KEK count, caller uid); the log never carries key bytes.
  ::grpc::ServerUnaryReactor* Backup(::grpc::CallbackServerContext* context,
                                     const ::kshield::admin::v1::BackupRequest* request,
                                     ::kshield::admin::v1::BackupResponse* response) override;

 private:
  ServiceContext* ctx_;
  const UnixListener* listener_;
  MethodMetrics retire_metrics_;
  MethodMetrics backup_metrics_;
};

// The keyset's versions with their KEK bytes (provider ExportVersion on each stored material),
// ready for keys::SealBackup. Retired versions whose material the provider can no longer export
// are left out (logged); any other export failure fails the whole backup.
absl::StatusOr<keys::BackupContents> ExportBackupContents(const keys::KeysetManager& manager);

// absl::Status -> grpc::Status (same code numbers; the message is passed as is, so it must already
// be safe to show: our errors never carry key material).
::grpc::Status ToGrpc(const absl::Status& s);

}  // namespace kshield::kms
