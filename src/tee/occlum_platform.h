// The `occlum` platform: kshield runs as an Occlum LibOS process (deploy/occlum/). Occlum's
// /dev/sgx device (tee_io.h SgxDevice):
//   - SGXIOC_GET_DCAP_QUOTE_SIZE then SGXIOC_GEN_DCAP_QUOTE with our 64-byte report data;
//   - SGXIOC_GET_KEY with an sgx_key_request_t for the seal key bound to MRENCLAVE (key policy
//     MRENCLAVE, a fixed key id, CPUSVN / ISVSVN 0 so a TCB update does not lose the key); the
//     16-byte key is expanded with HKDF-SHA256 to 32 bytes.
#pragma once

#include <memory>

#include "tee/platform.h"
#include "tee/tee_io.h"

namespace kshield::tee {

class OcclumPlatform final : public Platform {
 public:
  explicit OcclumPlatform(std::shared_ptr<SgxDevice> device) : device_(std::move(device)) {}
  std::string_view name() const override { return "occlum"; }
  absl::StatusOr<SecretBytes> SealingKey() override;
  absl::StatusOr<std::string> Quote(std::string_view report_data) override;

  // The key request SealingKey() sends (exposed for tests).
  static SgxKeyRequest SealKeyRequest();

 private:
  std::shared_ptr<SgxDevice> device_;
};

}  // namespace kshield::tee
