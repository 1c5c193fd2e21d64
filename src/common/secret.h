// SecretBytes: the one type that holds key material (KEKs, sealing keys, seeds we own).
//
// Promises:
//  - the bytes live in pages that are mlock'd (never swapped; best effort, see SecureMemoryStats) and
//    excluded from core dumps (MADV_DONTDUMP);
//  - the bytes are zeroized (OPENSSL_cleanse) when the object is destroyed or moved from;
//  - raw access is explicit and greppable: UnsafeView() / UnsafeMutableData(). Nothing converts a
//    SecretBytes to a string implicitly, and there is no operator<<.
//
//   SecretBytes key = RandomSecret(32);
//   EVP_EncryptInit_ex(ctx, cipher, nullptr, key.UnsafeView().data(), iv);
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/types/span.h"

namespace kshield {

class SecretBytes {
 public:
  SecretBytes() = default;
  // n zero bytes in protected memory.
  explicit SecretBytes(size_t n);
  // Copies `bytes` into protected memory. The caller remains responsible for clearing its source.
  static SecretBytes CopyFrom(absl::Span<const uint8_t> bytes);
  static SecretBytes CopyFrom(std::string_view bytes);

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  ~SecretBytes();

  // An explicit copy (rare; e.g. handing a key to a second owner).
  SecretBytes Clone() const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Raw access. Keep every call site short-lived; never log or copy into an unprotected buffer
  // unless a library (OpenSSL, PKCS#11, gRPC) needs it and clears it.
  absl::Span<const uint8_t> UnsafeView() const { return {data_, size_}; }
  std::string_view UnsafeStringView() const {
    return {reinterpret_cast<const char*>(data_), size_};
  }
  uint8_t* UnsafeMutableData() { return data_; }

  // Constant-time comparison.
  bool Equals(const SecretBytes& other) const;

 private:
  void Release();
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Process-wide view of the protected arena (for metrics and the start-up log).
struct SecureMemoryStats {
  size_t bytes_in_use = 0;
  size_t bytes_reserved = 0;  // pages mapped for secrets
  bool mlock_ok = true;       // false once an mlock failed (RLIMIT_MEMLOCK); pages still DONTDUMP
};
SecureMemoryStats GetSecureMemoryStats();

// Constant-time equality for non-secret-typed buffers (tags, MACs).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace kshield
