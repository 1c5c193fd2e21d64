#include "common/base64.h"

#include <openssl/crypto.h>

#include <array>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace kshield {
namespace {

constexpr char kStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<int8_t, 256> MakeTable(const char* alphabet) {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr std::array<int8_t, 256> kStdTable = MakeTable(kStd);
constexpr std::array<int8_t, 256> kUrlTable = MakeTable(kUrl);

bool IsSpace(char c) { return c == '\n' || c == '\r' || c == ' ' || c == '\t'; }

absl::Status Error(const Base64Options& o, std::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat(o.url_alphabet ? "base64url: " : "base64: ", AV(what)));
}

// Validates `text` completely; returns the decoded size. Decode() then cannot fail.
absl::StatusOr<size_t> DecodedSize(std::string_view text, const Base64Options& o) {
  const auto& table = o.url_alphabet ? kUrlTable : kStdTable;
  size_t symbols = 0, pad = 0;
  int last = 0;
  for (char c : text) {
    if (IsSpace(c)) {
      if (!o.allow_whitespace) return Error(o, "whitespace");
      continue;
    }
    if (c == '=') {
      ++pad;
      continue;
    }
    if (pad > 0) return Error(o, "data after '=' padding");
    const int v = table[static_cast<unsigned char>(c)];
    if (v < 0) return Error(o, "invalid character");
    last = v;
    ++symbols;
  }
  if (symbols == 0 && pad == 0) {
    if (o.allow_empty) return 0;
    return Error(o, "empty");
  }
  const size_t rem = symbols % 4;
  if (rem == 1) return Error(o, "truncated input");
  if (pad > 0 && o.padding == Base64Padding::kForbidden) return Error(o, "unexpected '=' padding");
  if (pad > 2 || (pad > 0 && (symbols + pad) % 4 != 0)) return Error(o, "bad padding");
  if (pad == 0 && rem != 0 && o.padding == Base64Padding::kRequired) {
    return Error(o, "missing '=' padding");
  }
  // The unused low bits of the last symbol must be zero (one canonical encoding).
  if ((rem == 2 && (last & 0x0f) != 0) || (rem == 3 && (last & 0x03) != 0)) {
    return Error(o, "non-zero trailing bits");
  }
  return symbols / 4 * 3 + (rem == 0 ? 0 : rem - 1);
}

void Decode(std::string_view text, const Base64Options& o, uint8_t* out) {
  const auto& table = o.url_alphabet ? kUrlTable : kStdTable;
  uint32_t acc = 0;
  int bits = 0;
  size_t n = 0;
  for (char c : text) {
    const int v = table[static_cast<unsigned char>(c)];
    if (v < 0) continue;  // whitespace and padding, validated before
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = static_cast<uint8_t>(acc >> bits);
    }
  }
  OPENSSL_cleanse(&acc, sizeof(acc));
}

}  // namespace

absl::StatusOr<SecretBytes> Base64DecodeSecret(std::string_view text,
                                               const Base64Options& options) {
  auto size = DecodedSize(text, options);
  if (!size.ok()) return size.status();
  SecretBytes out(*size);
  if (*size > 0) Decode(text, options, out.UnsafeMutableData());
  return out;
}

absl::StatusOr<std::string> Base64Decode(std::string_view text, const Base64Options& options) {
  auto size = DecodedSize(text, options);
  if (!size.ok()) return size.status();
  std::string out(*size, '\0');
  if (*size > 0) Decode(text, options, reinterpret_cast<uint8_t*>(out.data()));
  return out;
}

std::string Base64Encode(std::string_view bytes, bool url_alphabet, bool pad) {
  const char* alphabet = url_alphabet ? kUrl : kStd;
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : bytes) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(alphabet[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(alphabet[(acc << (6 - bits)) & 0x3f]);
  if (pad) {
    while (out.size() % 4 != 0) out.push_back('=');
  }
  return out;
}

}  // namespace kshield
