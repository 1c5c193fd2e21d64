// The I/O the TEE platforms do, behind small interfaces so tests can stand in for the devices:
//  - TeeFileSystem: Gramine's /dev/attestation pseudo-files and Linux configfs-tsm. Paths are
//    absolute as on a real system ("/dev/attestation/quote"); the real implementation prefixes a
//    root directory, so a test can also point it at a temp directory laid out like the device.
//  - SgxDevice: Occlum's /dev/sgx ioctls.
//
//   auto fs = std::make_shared<RealTeeFileSystem>("/");
//   KSH_ASSIGN_OR_RETURN(std::string quote, fs->ReadFile("/dev/attestation/quote", 64 * 1024));
#pragma once

#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace kshield::tee {

class TeeFileSystem {
 public:
  virtual ~TeeFileSystem() = default;
  virtual bool Exists(const std::string& path) = 0;
  // Writes `data` at offset 0 of an existing file (pseudo-files take one write; no truncate).
  [[nodiscard]] virtual absl::Status WriteFile(const std::string& path, std::string_view data) = 0;
  // Reads the whole file; more than `max_bytes` is an error.
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes) = 0;
  [[nodiscard]] virtual absl::Status MakeDir(const std::string& path) = 0;
  [[nodiscard]] virtual absl::Status RemoveDir(const std::string& path) = 0;
};

// The real file system under `root` ("/" in production).
class RealTeeFileSystem final : public TeeFileSystem {
 public:
  explicit RealTeeFileSystem(std::string root);
  bool Exists(const std::string& path) override;
  absl::Status WriteFile(const std::string& path, std::string_view data) override;
  absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes) override;
  absl::Status MakeDir(const std::string& path) override;
  absl::Status RemoveDir(const std::string& path) override;
  std::string Resolve(const std::string& path) const;

 private:
  std::string root_;  // without a trailing '/'; "" for "/"
};

// Occlum's SGX device (occlum/src/libos/src/fs/dev_fs/dev_sgx). Request numbers and argument
// layouts (x86-64) are those of Occlum's `sgx_ioctl` / occlum_dcap.h.
inline constexpr unsigned long kSgxIocGetDcapQuoteSize = 0x80047307;  // _IOR('s', 7, uint32_t)
inline constexpr unsigned long kSgxIocGenDcapQuote = 0xc0187308;      // _IOWR('s', 8, 24 bytes)
inline constexpr unsigned long kSgxIocGetKey = 0xc010730b;            // _IOWR('s', 11, 16 bytes)

struct SgxIocGenDcapQuoteArg {
  const uint8_t* report_data;  // sgx_report_data_t (64 bytes)
  uint32_t* quote_len;         // in: buffer size, out: quote size
  uint8_t* quote_buf;
};
static_assert(sizeof(SgxIocGenDcapQuoteArg) == 24);

// sgx_key_request_t (Intel SGX SDK sgx_key.h), 512 bytes.
struct SgxKeyRequest {
  uint16_t key_name;    // SGX_KEYSELECT_SEAL = 4
  uint16_t key_policy;  // SGX_KEYPOLICY_MRENCLAVE = 1, MRSIGNER = 2
  uint16_t isv_svn;
  uint16_t reserved1;
  uint8_t cpu_svn[16];
  uint64_t attribute_mask_flags;
  uint64_t attribute_mask_xfrm;
  uint8_t key_id[32];
  uint32_t misc_mask;
  uint16_t config_svn;
  uint8_t reserved2[434];
};
static_assert(sizeof(SgxKeyRequest) == 512);

struct SgxIocGetKeyArg {
  const SgxKeyRequest* key_request;
  uint8_t* key;  // sgx_key_128bit_t (16 bytes)
};
static_assert(sizeof(SgxIocGetKeyArg) == 16);

class SgxDevice {
 public:
  virtual ~SgxDevice() = default;
  // ioctl(fd, request, arg): 0 on success, otherwise -errno.
  virtual int Ioctl(unsigned long request, void* arg) = 0;
};

// open(<root>/dev/sgx) on first use, then ioctl.
class RealSgxDevice final : public SgxDevice {
 public:
  explicit RealSgxDevice(std::string path) : path_(std::move(path)) {}
  ~RealSgxDevice() override;
  int Ioctl(unsigned long request, void* arg) override;

 private:
  std::string path_;
  std::mutex mu_;
  int fd_ = -1;  // guarded by mu_
};

}  // namespace kshield::tee
