// Test tool: one KMS call over a unix socket, printing the gRPC status code name and message.
// Used by tests that run the client as another uid (setpriv) to prove the SO_PEERCRED check.
//   kms_client_tool SOCKET status|encrypt|v1-version|admin-info
#include <grpcpp/grpcpp.h>

#include <cstdio>

#include "admin.grpc.pb.h"
#include "kms_v1beta1.grpc.pb.h"
#include "kms_v2.grpc.pb.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s SOCKET status|encrypt|v1-version|admin-info\n", argv[0]);
    return 2;
  }
  auto channel =
      grpc::CreateChannel(std::string("unix:") + argv[1], grpc::InsecureChannelCredentials());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  std::string op = argv[2];
  grpc::Status s;
  if (op == "status") {
    ::v2::StatusResponse r;
    s = ::v2::KeyManagementService::NewStub(channel)->Status(&ctx, {}, &r);
  } else if (op == "encrypt") {
    ::v2::EncryptRequest req;
    req.set_plaintext("0123456789abcdef0123456789abcdef");
    ::v2::EncryptResponse r;
    s = ::v2::KeyManagementService::NewStub(channel)->Encrypt(&ctx, req, &r);
  } else if (op == "v1-version") {
    ::v1beta1::VersionRequest req;
    req.set_version("v1beta1");
    ::v1beta1::VersionResponse r;
    s = ::v1beta1::KeyManagementService::NewStub(channel)->Version(&ctx, req, &r);
  } else if (op == "admin-info") {
    ::kshield::admin::v1::KeysetInfoResponse r;
    s = ::kshield::admin::v1::Admin::NewStub(channel)->KeysetInfo(&ctx, {}, &r);
  } else {
    return 2;
  }
  std::printf("code=%d message=%s\n", static_cast<int>(s.error_code()), s.error_message().c_str());
  return s.ok() ? 0 : 1;
}
