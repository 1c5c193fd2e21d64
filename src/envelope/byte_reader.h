// ByteReader: the one bounded reader for the non-protobuf layers of etcd values (the
// `k8s:enc:...:` prefixes, the KMS v1 length-prefixed DEK, the fixed-size info / nonce headers of
// encryptedData). Every read checks the remaining length first and, on failure, consumes nothing
// and returns false; nothing ever reads past the input. The protobuf layers are parsed by the
// protobuf runtime, which is bounded the same way.
//
//   ByteReader r(value);
//   std::string_view provider;
//   uint16_t n = 0;
//   if (!r.Skip("k8s:enc:kms:v1:") || !r.ReadUntil(':', &provider) || !r.ReadU16BE(&n)) return ...;
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kshield::envelope {

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : rest_(in) {}

  size_t remaining() const { return rest_.size(); }
  bool empty() const { return rest_.empty(); }
  // What has not been read yet (a view into the input).
  std::string_view rest() const { return rest_; }

  // Consumes `literal` if the input continues with it.
  [[nodiscard]] bool Skip(std::string_view literal) {
    if (!rest_.starts_with(literal)) return false;
    rest_.remove_prefix(literal.size());
    return true;
  }

  // Reads exactly n bytes.
  [[nodiscard]] bool Read(size_t n, std::string_view* out) {
    if (n > rest_.size()) return false;
    *out = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return true;
  }

  [[nodiscard]] bool ReadU16BE(uint16_t* out) {
    if (rest_.size() < 2) return false;
    const auto* p = reinterpret_cast<const unsigned char*>(rest_.data());
    *out = static_cast<uint16_t>((uint16_t{p[0]} << 8) | uint16_t{p[1]});
    rest_.remove_prefix(2);
    return true;
  }

  // Reads the bytes before the next `delim` and consumes the delimiter too. False (nothing
  // consumed) if `delim` does not occur.
  [[nodiscard]] bool ReadUntil(char delim, std::string_view* out) {
    const size_t pos = rest_.find(delim);
    if (pos == std::string_view::npos) return false;
    *out = rest_.substr(0, pos);
    rest_.remove_prefix(pos + 1);
    return true;
  }

 private:
  std::string_view rest_;
};

}  // namespace kshield::envelope
