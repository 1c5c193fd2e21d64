// The `none` platform: no TEE. The process is hardened (no core dumps, no ptrace, mlock'd keys),
// and the sealing key is a 0600 file in the data directory — anyone who can read that file as
// root can open the keyset. docs/tee.md explains what this does and does not protect.
#pragma once

#include "tee/platform.h"

namespace kshield::tee {

class NonePlatform final : public Platform {
 public:
  explicit NonePlatform(std::string data_dir) : data_dir_(std::move(data_dir)) {}
  std::string_view name() const override { return "none"; }
  absl::StatusOr<SecretBytes> SealingKey() override;
  absl::StatusOr<std::string> Quote(std::string_view report_data) override;

  std::string sealing_key_path() const { return data_dir_ + "/sealing.key"; }

 private:
  std::string data_dir_;
};

}  // namespace kshield::tee
