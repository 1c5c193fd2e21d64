// KMIP 1.2 request messages kshield sends and the checks applied to the responses
// (KMIP Specification v1.2 §7 "Message Contents", §4 "Client-to-Server Operations").
// Pure functions, no I/O: KmipClient puts them on the wire.
//
//   KSH_ASSIGN_OR_RETURN(std::string wire, EncodeRequest(Operation::kGet, GetPayload(uid)));
//   ... send, receive `response_bytes` ...
//   KSH_ASSIGN_OR_RETURN(Item response, DecodeTtlv(response_bytes));
//   KSH_ASSIGN_OR_RETURN(const Item* payload, CheckResponse(response, Operation::kGet));
//   KSH_ASSIGN_OR_RETURN(SecretBytes key, ParseGetSymmetricKey(payload, uid, 32));
//
// Every request carries Protocol Version 1.2 and Batch Count 1 (PyKMIP 0.10 defaults to 1.2 and
// accepts 1.0-1.4 and 2.0). No Time Stamp is sent: PyKMIP rejects requests whose stamp differs
// from its clock by 60 s or more, and the TLS session already gives freshness.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/secret.h"
#include "keys/kmip/kmip_tags.h"
#include "keys/kmip/ttlv.h"

namespace kshield::keys::kmip {

inline constexpr int32_t kProtocolMajor = 1;
inline constexpr int32_t kProtocolMinor = 2;

std::string_view OperationName(Operation op);
std::string_view ResultReasonName(uint32_t reason);

// Request Message { Request Header { Protocol Version 1.2, Batch Count 1 },
//                   Batch Item { Operation, Request Payload } }.
Item BuildRequest(Operation op, Item payload);
absl::StatusOr<std::string> EncodeRequest(Operation op, Item payload);

// Create: Object Type Symmetric Key; Template-Attribute with Cryptographic Algorithm AES,
// Cryptographic Length 256, Cryptographic Usage Mask Encrypt|Decrypt, Name (Uninterpreted Text
// String) `name` — the attribute order PyKMIP's own client uses.
Item CreateAes256Payload(std::string_view name);
// Register (§4.3): Object Type Symmetric Key; Template-Attribute with Cryptographic Usage Mask
// Encrypt|Decrypt and Name `name`; Symmetric Key { Key Block { Key Format Type Raw, Key Value
// { Key Material }, Cryptographic Algorithm AES, Cryptographic Length 8 * size } } — the layout
// PyKMIP's own client sends. Algorithm and length travel in the Key Block only (PyKMIP refuses
// a template attribute that repeats them).
Item RegisterSymmetricKeyPayload(std::string_view name, std::string key_material);
// The whole Register request for an AES key of 16, 24 or 32 bytes, in protected memory: the
// message is encoded with a zero placeholder of the key's size and the key is copied over the
// placeholder inside the SecretBytes, so key bytes never sit in an ordinary heap buffer.
absl::StatusOr<SecretBytes> EncodeRegisterSymmetricKeyRequest(std::string_view name,
                                                              const SecretBytes& key);
// Locate: Attribute Name = `name`, and Maximum Items when `max_items` > 0.
Item LocateByNamePayload(std::string_view name, int32_t max_items = 0);
// Get: Unique Identifier, Key Format Type Raw.
Item GetPayload(std::string_view uid);
// Activate, Destroy: Unique Identifier.
Item UidPayload(std::string_view uid);
// Revoke: Unique Identifier, Revocation Reason { Cessation of Operation }.
Item RevokePayload(std::string_view uid);
// Query: Query Function Query Server Information.
Item QueryServerInformationPayload();

// Checks the Response Message envelope for a request of operation `op`: tag and types, exactly
// one Batch Item, the Operation (when echoed) equal to `op`. A failed result becomes a status
// whose code follows the Result Reason and whose message carries the server's Result Message
// (trimmed and stripped of control characters; KMIP servers do not put key bytes there).
// Returns the Response Payload, or nullptr when the server sent none.
absl::StatusOr<const Item*> CheckResponse(const Item& response, Operation op);

// The Unique Identifier of a Create / Activate / Revoke / Destroy response payload.
absl::StatusOr<std::string> ParseUniqueIdentifier(const Item* payload, Operation op);
// All Unique Identifiers of a Locate response payload (empty when nothing matched).
absl::StatusOr<std::vector<std::string>> ParseLocate(const Item* payload);
// The raw key of a Get response for a Symmetric Key: Object Type Symmetric Key, the same Unique
// Identifier, Key Format Type Raw, no Key Wrapping Data, Cryptographic Algorithm AES, Key Material
// of exactly `key_size` bytes. The bytes go straight from the (borrowed) response buffer into
// protected memory.
absl::StatusOr<SecretBytes> ParseGetSymmetricKey(const Item* payload, std::string_view uid,
                                                 size_t key_size);

// Maps a KMIP Result Reason to a status code (Item Not Found -> NotFound, Permission Denied and
// Authentication Not Successful -> PermissionDenied, Illegal Operation -> FailedPrecondition, ...).
absl::StatusCode ResultReasonToCode(uint32_t reason);

// Server text made safe for our errors and logs: at most 200 bytes, control characters and
// non-ASCII replaced by '?'.
std::string SanitizeServerText(std::string_view text);

}  // namespace kshield::keys::kmip
