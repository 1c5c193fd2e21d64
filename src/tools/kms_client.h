// A KMS plugin client for the operator tools (kshieldctl etcd ..., kshield-bench apiserver): the
// calls kube-apiserver makes (KMS v2 Status / Encrypt / Decrypt, v1beta1 Encrypt / Decrypt) over
// the plugin's unix socket, with a per-call deadline and counters of the calls made.
//
//   KSH_ASSIGN_OR_RETURN(auto kms, KmsClient::Create("/var/run/kshield-kms.sock"));
//   KSH_ASSIGN_OR_RETURN(std::string key_id, kms->StatusKeyId());
//   KSH_ASSIGN_OR_RETURN(KmsClient::V2Wrapped w, kms->EncryptV2(seed));
//   KSH_ASSIGN_OR_RETURN(SecretBytes back, kms->DecryptV2(w.ciphertext, w.key_id, w.annotations));
//
// Plaintexts (DEKs, seeds) come back as SecretBytes; errors carry the gRPC status code and message
// of the plugin, never a plaintext. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "common/secret.h"
#include "tools/dek_decrypter.h"

namespace kshield::tools {

class KmsClient final : public DekDecrypter {
 public:
  struct V2Wrapped {
    std::string ciphertext;
    std::string key_id;
    std::map<std::string, std::string> annotations;
  };
  using Counters = KmsCallCounters;

  // `socket`: a path, or "@name" for an abstract socket. Connects lazily.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KmsClient>> Create(
      const std::string& socket,
      std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));
  ~KmsClient() override;

  // KMS v2 Status: the current key_id. Fails unless version is "v2" and healthz is "ok".
  absl::StatusOr<std::string> StatusKeyId();
  absl::StatusOr<V2Wrapped> EncryptV2(const SecretBytes& plaintext);
  absl::StatusOr<SecretBytes> DecryptV2(
      std::string_view ciphertext, std::string_view key_id,
      const std::map<std::string, std::string>& annotations) override;
  absl::StatusOr<std::string> EncryptV1(const SecretBytes& plaintext);
  absl::StatusOr<SecretBytes> DecryptV1(std::string_view ciphertext) override;

  Counters counters() const override;
  const std::string& socket() const { return socket_; }

 private:
  struct Stubs;
  KmsClient(std::string socket, std::chrono::milliseconds timeout, std::unique_ptr<Stubs> stubs);

  std::string socket_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Stubs> stubs_;
  std::atomic<uint64_t> status_{0}, v2_encrypt_{0}, v2_decrypt_{0}, v1_encrypt_{0},
      v1_decrypt_{0};
};

}  // namespace kshield::tools
