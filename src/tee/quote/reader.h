// ByteReader — the one bounded reader every quote-layout parser in tee/quote uses.
//
// Untrusted bytes are read front to back; every read first checks the remaining length, and a
// short read fails with a message naming the field, its offset and what was left, without moving
// the cursor. Integers are little-endian (all DCAP quote integers are). Callers parse into locals
// and commit a result only after the last read succeeded.
//
//   ByteReader r(bytes);
//   uint16_t version = 0;
//   KSH_RETURN_IF_ERROR(r.ReadU16("header.version", &version));
//   std::array<uint8_t, 32> mr{};
//   KSH_RETURN_IF_ERROR(r.ReadArray("report.mr_enclave", &mr));
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace kshield::tee::quote {

class ByteReader {
 public:
  explicit ByteReader(std::string_view data) : data_(data) {}

  size_t offset() const { return offset_; }
  size_t remaining() const { return data_.size() - offset_; }

  // A view of the next `n` bytes (valid as long as the input is); the cursor moves past them.
  [[nodiscard]] absl::Status ReadBytes(std::string_view field, size_t n, std::string_view* out) {
    if (n > remaining()) return Short(field, n);
    *out = data_.substr(offset_, n);
    offset_ += n;
    return absl::OkStatus();
  }

  template <size_t N>
  [[nodiscard]] absl::Status ReadArray(std::string_view field, std::array<uint8_t, N>* out) {
    std::string_view bytes;
    absl::Status s = ReadBytes(field, N, &bytes);
    if (!s.ok()) return s;
    std::memcpy(out->data(), bytes.data(), N);
    return absl::OkStatus();
  }

  [[nodiscard]] absl::Status ReadU8(std::string_view field, uint8_t* out) {
    return ReadLe(field, 1, out);
  }
  [[nodiscard]] absl::Status ReadU16(std::string_view field, uint16_t* out) {
    return ReadLe(field, 2, out);
  }
  [[nodiscard]] absl::Status ReadU32(std::string_view field, uint32_t* out) {
    return ReadLe(field, 4, out);
  }
  [[nodiscard]] absl::Status ReadU64(std::string_view field, uint64_t* out) {
    return ReadLe(field, 8, out);
  }

  [[nodiscard]] absl::Status Skip(std::string_view field, size_t n) {
    std::string_view ignored;
    return ReadBytes(field, n, &ignored);
  }

 private:
  template <typename T>
  absl::Status ReadLe(std::string_view field, size_t n, T* out) {
    static_assert(sizeof(T) <= 8);
    if (n > remaining()) return Short(field, n);
    T v = 0;
    for (size_t i = 0; i < n; ++i) {
      v |= static_cast<T>(static_cast<T>(static_cast<uint8_t>(data_[offset_ + i])) << (8 * i));
    }
    *out = v;
    offset_ += n;
    return absl::OkStatus();
  }

  absl::Status Short(std::string_view field, size_t n) const {
    return absl::InvalidArgumentError("quote truncated: " + std::string(field) + " needs " +
                                      std::to_string(n) + " bytes at offset " +
                                      std::to_string(offset_) + ", " + std::to_string(remaining()) +
                                      " left");
  }

  std::string_view data_;
  size_t offset_ = 0;
};

}  // namespace kshield::tee::quote
