// Test support: a kshield-kms process in its own temp dir, with stubs for both KMS APIs and the
// admin API.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "admin.grpc.pb.h"
#include "common/testing/temp_dir.h"
#include "kms_v1beta1.grpc.pb.h"
#include "kms_v2.grpc.pb.h"
#include "support/process.h"

namespace kshield::testing {

class KmsInstance {
 public:
  // `extra_args` are appended to the defaults (temp socket / admin socket / data dir / http on a
  // free port / probe interval 200ms).
  explicit KmsInstance(std::vector<std::string> extra_args = {}, const TempDir* dir = nullptr);
  ~KmsInstance();

  // Starts the process and waits until Status answers OK (or `timeout`). Returns false if it
  // exited or never became ready; the log says why.
  bool Start(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  void Stop(int sig = SIGTERM);
  int WaitExit(std::chrono::milliseconds timeout = std::chrono::seconds(20));

  std::string dir() const { return dir_->path(); }
  std::string socket() const { return dir_->path() + "/run/kms.sock"; }
  std::string admin_socket() const { return dir_->path() + "/run/admin.sock"; }
  std::string data_dir() const { return dir_->path() + "/data"; }
  std::string log_path() const { return dir_->path() + "/kms.log"; }
  std::string log() const { return ReadWholeFile(log_path()); }
  int http_port() const { return http_port_; }
  ChildProcess* process() { return process_.get(); }

  std::unique_ptr<::v2::KeyManagementService::Stub> V2();
  std::unique_ptr<::v1beta1::KeyManagementService::Stub> V1();
  std::unique_ptr<::kshield::admin::v1::Admin::Stub> Admin();

 private:
  std::unique_ptr<TempDir> owned_dir_;
  const TempDir* dir_;
  std::vector<std::string> args_;
  int http_port_;
  std::unique_ptr<ChildProcess> process_;
};

// One-call helpers with a deadline.
grpc::Status V2Status(::v2::KeyManagementService::Stub* stub, ::v2::StatusResponse* out);
grpc::Status V2Encrypt(::v2::KeyManagementService::Stub* stub, const std::string& plaintext,
                       ::v2::EncryptResponse* out);
grpc::Status V2Decrypt(::v2::KeyManagementService::Stub* stub, const std::string& ciphertext,
                       const std::string& key_id, std::string* plaintext);

}  // namespace kshield::testing
