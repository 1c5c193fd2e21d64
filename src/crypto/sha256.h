// SHA-256 (OpenSSL EVP). Returns the 32-byte digest.
#pragma once

#include <string>
#include <string_view>

namespace kshield::crypto {

std::string Sha256(std::string_view data);
std::string HexEncode(std::string_view bytes);

}  // namespace kshield::crypto
