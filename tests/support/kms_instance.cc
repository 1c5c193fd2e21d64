#include "support/kms_instance.h"

#include <sys/stat.h>
#include <unistd.h>

namespace kshield::testing {
namespace {

template <typename Service>
std::unique_ptr<typename Service::Stub> MakeStub(const std::string& socket) {
  // Tests restart servers under the same path: reconnect quickly instead of gRPC's default
  // 1 s+ backoff.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 50);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 200);
  auto channel =
      grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args);
  return Service::NewStub(channel);
}

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
}

}  // namespace

KmsInstance::KmsInstance(std::vector<std::string> extra_args, const TempDir* dir) {
  if (dir == nullptr) {
    owned_dir_ = std::make_unique<TempDir>();
    dir_ = owned_dir_.get();
  } else {
    dir_ = dir;
  }
  http_port_ = FreeLoopbackPort();
  args_ = {std::string(KSHIELD_BIN_DIR) + "/kshield-kms",
           "--socket=" + socket(),
           "--admin-socket=" + admin_socket(),
           "--data-dir=" + data_dir(),
           "--http=127.0.0.1:" + std::to_string(http_port_),
           "--probe-interval=200ms",
           "--shutdown-grace=5s"};
  for (auto& a : extra_args) args_.push_back(a);
}

KmsInstance::~KmsInstance() {
  if (process_ != nullptr && process_->running()) {
    process_->Signal(SIGKILL);
    process_->Wait(std::chrono::seconds(5));
  }
}

bool KmsInstance::Start(std::chrono::milliseconds timeout) {
  process_ = std::make_unique<ChildProcess>(args_, log_path());
  WaitFor([&] { return access(socket().c_str(), F_OK) == 0 || !process_->running(); }, timeout);
  return WaitFor(
      [&] {
        if (!process_->running()) return true;  // exited: stop waiting, report below
        // A fresh channel per attempt: a channel that failed against a stale socket sits in
        // reconnect backoff.
        auto stub = V2();
        ::v2::StatusResponse r;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
        return stub->Status(&ctx, ::v2::StatusRequest(), &r).ok();
      },
      timeout) &&
         process_->running();
}

void KmsInstance::Stop(int sig) {
  if (process_ != nullptr) process_->Signal(sig);
}

int KmsInstance::WaitExit(std::chrono::milliseconds timeout) {
  return process_ == nullptr ? -1 : process_->Wait(timeout);
}

std::unique_ptr<::v2::KeyManagementService::Stub> KmsInstance::V2() {
  return MakeStub<::v2::KeyManagementService>(socket());
}
std::unique_ptr<::v1beta1::KeyManagementService::Stub> KmsInstance::V1() {
  return MakeStub<::v1beta1::KeyManagementService>(socket());
}
std::unique_ptr<::kshield::admin::v1::Admin::Stub> KmsInstance::Admin() {
  return MakeStub<::kshield::admin::v1::Admin>(admin_socket());
}

grpc::Status V2Status(::v2::KeyManagementService::Stub* stub, ::v2::StatusResponse* out) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  return stub->Status(&ctx, ::v2::StatusRequest(), out);
}

grpc::Status V2Encrypt(::v2::KeyManagementService::Stub* stub, const std::string& plaintext,
                       ::v2::EncryptResponse* out) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  ::v2::EncryptRequest req;
  req.set_plaintext(plaintext);
  req.set_uid("test-uid");
  return stub->Encrypt(&ctx, req, out);
}

grpc::Status V2Decrypt(::v2::KeyManagementService::Stub* stub, const std::string& ciphertext,
                       const std::string& key_id, std::string* plaintext) {
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  ::v2::DecryptRequest req;
  req.set_ciphertext(ciphertext);
  req.set_key_id(key_id);
  req.set_uid("test-uid");
  ::v2::DecryptResponse resp;
  grpc::Status s = stub->Decrypt(&ctx, req, &resp);
  if (plaintext != nullptr) *plaintext = resp.plaintext();
  return s;
}

}  // namespace kshield::testing
