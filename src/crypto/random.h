// Cryptographically secure random bytes (OpenSSL RAND_bytes, seeded from the kernel).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "common/secret.h"

namespace kshield::crypto {

// Fills `out`; fails only if the CSPRNG is not seeded (then nothing must be encrypted).
[[nodiscard]] absl::Status RandomFill(absl::Span<uint8_t> out);
// n random bytes for non-secret uses (nonces, ids). Aborts if the CSPRNG fails: a process that
// cannot make a nonce must not go on.
std::string RandomString(size_t n);
// n random bytes in protected memory (keys). Aborts on CSPRNG failure, as above.
SecretBytes RandomSecret(size_t n);
// 2*n lowercase hex chars from n random bytes (ids such as keyset_id).
std::string RandomHex(size_t n);

}  // namespace kshield::crypto
