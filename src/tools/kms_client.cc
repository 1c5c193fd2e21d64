#include "tools/kms_client.h"

#include <grpcpp/grpcpp.h>
#include <openssl/crypto.h>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "kms_v1beta1.grpc.pb.h"
#include "kms_v2.grpc.pb.h"

namespace kshield::tools {
namespace {

absl::Status FromGrpc(std::string_view what, const std::string& socket, const grpc::Status& s) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("KMS ", AV(what), " on ", socket, ": ", s.error_message()));
}

// Clears a protobuf bytes field that held a plaintext.
void Wipe(std::string* s) {
  if (!s->empty()) OPENSSL_cleanse(s->data(), s->size());
  s->clear();
}

}  // namespace

struct KmsClient::Stubs {
  std::unique_ptr<::v2::KeyManagementService::Stub> v2;
  std::unique_ptr<::v1beta1::KeyManagementService::Stub> v1;
};

absl::StatusOr<std::unique_ptr<KmsClient>> KmsClient::Create(const std::string& socket,
                                                             std::chrono::milliseconds timeout) {
  if (socket.empty()) return absl::InvalidArgumentError("KMS socket: empty path");
  std::string target = socket[0] == '@' ? "unix-abstract:" + socket.substr(1) : "unix:" + socket;
  grpc::ChannelArguments args;
  // The apiserver dials with authority "localhost".
  args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, "localhost");
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 4 << 20);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  auto stubs = std::make_unique<Stubs>();
  stubs->v2 = ::v2::KeyManagementService::NewStub(channel);
  stubs->v1 = ::v1beta1::KeyManagementService::NewStub(channel);
  return std::unique_ptr<KmsClient>(new KmsClient(socket, timeout, std::move(stubs)));
}

KmsClient::KmsClient(std::string socket, std::chrono::milliseconds timeout,
                     std::unique_ptr<Stubs> stubs)
    : socket_(std::move(socket)), timeout_(timeout), stubs_(std::move(stubs)) {}

KmsClient::~KmsClient() = default;

#define KSH_KMS_CTX(ctx)                                        \
  grpc::ClientContext ctx;                                      \
  ctx.set_deadline(std::chrono::system_clock::now() + timeout_); \
  ctx.set_wait_for_ready(true)

absl::StatusOr<std::string> KmsClient::StatusKeyId() {
  KSH_KMS_CTX(ctx);
  ::v2::StatusResponse resp;
  status_.fetch_add(1, std::memory_order_relaxed);
  grpc::Status s = stubs_->v2->Status(&ctx, ::v2::StatusRequest(), &resp);
  if (!s.ok()) return FromGrpc("Status", socket_, s);
  if (resp.version() != "v2") {
    return absl::FailedPreconditionError(
        absl::StrCat("KMS Status on ", socket_, ": version is not v2"));
  }
  if (resp.healthz() != "ok") {
    return absl::UnavailableError(absl::StrCat("KMS Status on ", socket_, ": unhealthy"));
  }
  if (resp.key_id().empty()) {
    return absl::FailedPreconditionError(absl::StrCat("KMS Status on ", socket_, ": no key_id"));
  }
  return resp.key_id();
}

absl::StatusOr<KmsClient::V2Wrapped> KmsClient::EncryptV2(const SecretBytes& plaintext) {
  KSH_KMS_CTX(ctx);
  ::v2::EncryptRequest req;
  req.set_plaintext(std::string(plaintext.UnsafeStringView()));
  ::v2::EncryptResponse resp;
  v2_encrypt_.fetch_add(1, std::memory_order_relaxed);
  grpc::Status s = stubs_->v2->Encrypt(&ctx, req, &resp);
  Wipe(req.mutable_plaintext());
  if (!s.ok()) return FromGrpc("Encrypt", socket_, s);
  if (resp.ciphertext().empty() || resp.key_id().empty()) {
    return absl::InternalError(
        absl::StrCat("KMS Encrypt on ", socket_, ": empty ciphertext or key_id"));
  }
  V2Wrapped w;
  w.ciphertext = std::move(*resp.mutable_ciphertext());
  w.key_id = std::move(*resp.mutable_key_id());
  for (const auto& [k, v] : resp.annotations()) w.annotations[k] = v;
  return w;
}

absl::StatusOr<SecretBytes> KmsClient::DecryptV2(
    std::string_view ciphertext, std::string_view key_id,
    const std::map<std::string, std::string>& annotations) {
  KSH_KMS_CTX(ctx);
  ::v2::DecryptRequest req;
  req.set_ciphertext(std::string(ciphertext));
  req.set_key_id(std::string(key_id));
  for (const auto& [k, v] : annotations) (*req.mutable_annotations())[k] = v;
  ::v2::DecryptResponse resp;
  v2_decrypt_.fetch_add(1, std::memory_order_relaxed);
  grpc::Status s = stubs_->v2->Decrypt(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc("Decrypt", socket_, s);
  SecretBytes out = SecretBytes::CopyFrom(resp.plaintext());
  Wipe(resp.mutable_plaintext());
  if (out.empty()) {
    return absl::InternalError(absl::StrCat("KMS Decrypt on ", socket_, ": empty plaintext"));
  }
  return out;
}

absl::StatusOr<std::string> KmsClient::EncryptV1(const SecretBytes& plaintext) {
  KSH_KMS_CTX(ctx);
  ::v1beta1::EncryptRequest req;
  req.set_version("v1beta1");
  req.set_plain(std::string(plaintext.UnsafeStringView()));
  ::v1beta1::EncryptResponse resp;
  v1_encrypt_.fetch_add(1, std::memory_order_relaxed);
  grpc::Status s = stubs_->v1->Encrypt(&ctx, req, &resp);
  Wipe(req.mutable_plain());
  if (!s.ok()) return FromGrpc("v1beta1 Encrypt", socket_, s);
  if (resp.cipher().empty()) {
    return absl::InternalError(absl::StrCat("KMS v1beta1 Encrypt on ", socket_, ": empty cipher"));
  }
  return std::move(*resp.mutable_cipher());
}

absl::StatusOr<SecretBytes> KmsClient::DecryptV1(std::string_view ciphertext) {
  KSH_KMS_CTX(ctx);
  ::v1beta1::DecryptRequest req;
  req.set_version("v1beta1");
  req.set_cipher(std::string(ciphertext));
  ::v1beta1::DecryptResponse resp;
  v1_decrypt_.fetch_add(1, std::memory_order_relaxed);
  grpc::Status s = stubs_->v1->Decrypt(&ctx, req, &resp);
  if (!s.ok()) return FromGrpc("v1beta1 Decrypt", socket_, s);
  SecretBytes out = SecretBytes::CopyFrom(resp.plain());
  Wipe(resp.mutable_plain());
  if (out.empty()) {
    return absl::InternalError(absl::StrCat("KMS v1beta1 Decrypt on ", socket_, ": empty plain"));
  }
  return out;
}

#undef KSH_KMS_CTX

KmsClient::Counters KmsClient::counters() const {
  Counters c;
  c.status = status_.load();
  c.v2_encrypt = v2_encrypt_.load();
  c.v2_decrypt = v2_decrypt_.load();
  c.v1_encrypt = v1_encrypt_.load();
  c.v1_decrypt = v1_decrypt_.load();
  return c;
}

}  // namespace kshield::tools
