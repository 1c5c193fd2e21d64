// PKCS#11 declarations (p11-kit's <p11-kit/pkcs11.h>, Cryptoki 2.40) and small helpers shared by
// the pkcs11 provider's files. Include this instead of the p11-kit header directly.
#pragma once

#include <p11-kit/pkcs11.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace kshield::keys::pkcs11 {

// "CKR_PIN_INCORRECT (0xa0)"; unknown values as "CKR_0x... (vendor)".
std::string RvName(CK_RV rv);

// True for return values that say the session, the login, the token or the device is gone: the
// caller should drop its session, find the token again and retry once. Everything else is an
// answer about the request itself.
bool IsTokenGoneRv(CK_RV rv);

// True when a cached object handle is no longer valid (the object was deleted or re-created): look
// the object up again and retry once.
bool IsStaleHandleRv(CK_RV rv);

// True for C_Login answers that mean the PIN itself was refused. Repeating such a login could lock
// the token, so callers must stop trying.
bool IsPinRejectedRv(CK_RV rv);

// A blank-padded fixed-size PKCS#11 text field (token label, manufacturer) without the padding.
std::string PaddedField(const unsigned char* field, size_t size);

}  // namespace kshield::keys::pkcs11
