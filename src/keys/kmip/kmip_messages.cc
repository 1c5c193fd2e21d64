#include "keys/kmip/kmip_messages.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace kshield::keys::kmip {
namespace {

Item Attribute(std::string_view name, Item value) {
  return Item::Structure(tag::kAttribute, {Item::TextString(tag::kAttributeName, std::string(name)),
                                           std::move(value)});
}

Item NameValue(uint32_t value_tag, std::string_view name) {
  return Item::Structure(value_tag,
                         {Item::TextString(tag::kNameValue, std::string(name)),
                          Item::Enumeration(tag::kNameType, kNameTypeUninterpretedTextString)});
}

absl::Status Malformed(Operation op, std::string_view what) {
  return absl::DataLossError(
      absl::StrCat("malformed KMIP ", AV(OperationName(op)), " response: ", AV(what)));
}

// The child `t` of `parent`, which must exist once and have type `type`.
absl::StatusOr<const Item*> Child(const Item& parent, uint32_t t, ItemType type, Operation op,
                                  std::string_view name) {
  const Item* c = parent.Find(t);
  if (c == nullptr) return Malformed(op, absl::StrCat("missing ", AV(name)));
  if (c->type() != type) {
    return Malformed(op, absl::StrCat(AV(name), " has type ", AV(ItemTypeName(c->type())),
                                      ", want ", AV(ItemTypeName(type))));
  }
  return c;
}

}  // namespace

std::string_view OperationName(Operation op) {
  switch (op) {
    case Operation::kCreate:
      return "Create";
    case Operation::kRegister:
      return "Register";
    case Operation::kLocate:
      return "Locate";
    case Operation::kGet:
      return "Get";
    case Operation::kActivate:
      return "Activate";
    case Operation::kRevoke:
      return "Revoke";
    case Operation::kDestroy:
      return "Destroy";
    case Operation::kQuery:
      return "Query";
  }
  return "unknown operation";
}

std::string_view ResultReasonName(uint32_t reason) {
  switch (static_cast<ResultReason>(reason)) {
    case ResultReason::kItemNotFound:
      return "Item Not Found";
    case ResultReason::kResponseTooLarge:
      return "Response Too Large";
    case ResultReason::kAuthenticationNotSuccessful:
      return "Authentication Not Successful";
    case ResultReason::kInvalidMessage:
      return "Invalid Message";
    case ResultReason::kOperationNotSupported:
      return "Operation Not Supported";
    case ResultReason::kMissingData:
      return "Missing Data";
    case ResultReason::kInvalidField:
      return "Invalid Field";
    case ResultReason::kFeatureNotSupported:
      return "Feature Not Supported";
    case ResultReason::kOperationCanceledByRequester:
      return "Operation Canceled By Requester";
    case ResultReason::kCryptographicFailure:
      return "Cryptographic Failure";
    case ResultReason::kIllegalOperation:
      return "Illegal Operation";
    case ResultReason::kPermissionDenied:
      return "Permission Denied";
    case ResultReason::kObjectArchived:
      return "Object Archived";
    case ResultReason::kIndexOutOfBounds:
      return "Index Out of Bounds";
    case ResultReason::kApplicationNamespaceNotSupported:
      return "Application Namespace Not Supported";
    case ResultReason::kKeyFormatTypeNotSupported:
      return "Key Format Type Not Supported";
    case ResultReason::kKeyCompressionTypeNotSupported:
      return "Key Compression Type Not Supported";
    case ResultReason::kEncodingOptionError:
      return "Encoding Option Error";
    case ResultReason::kKeyValueNotPresent:
      return "Key Value Not Present";
    case ResultReason::kAttestationRequired:
      return "Attestation Required";
    case ResultReason::kAttestationFailed:
      return "Attestation Failed";
    case ResultReason::kGeneralFailure:
      return "General Failure";
  }
  return "unknown reason";
}

absl::StatusCode ResultReasonToCode(uint32_t reason) {
  switch (static_cast<ResultReason>(reason)) {
    case ResultReason::kItemNotFound:
    case ResultReason::kKeyValueNotPresent:
      return absl::StatusCode::kNotFound;
    case ResultReason::kResponseTooLarge:
      return absl::StatusCode::kResourceExhausted;
    case ResultReason::kAuthenticationNotSuccessful:
    case ResultReason::kPermissionDenied:
    case ResultReason::kAttestationRequired:
    case ResultReason::kAttestationFailed:
      return absl::StatusCode::kPermissionDenied;
    case ResultReason::kInvalidMessage:
    case ResultReason::kMissingData:
    case ResultReason::kInvalidField:
    case ResultReason::kEncodingOptionError:
      return absl::StatusCode::kInvalidArgument;
    case ResultReason::kOperationNotSupported:
    case ResultReason::kFeatureNotSupported:
    case ResultReason::kApplicationNamespaceNotSupported:
    case ResultReason::kKeyFormatTypeNotSupported:
    case ResultReason::kKeyCompressionTypeNotSupported:
      return absl::StatusCode::kUnimplemented;
    case ResultReason::kOperationCanceledByRequester:
      return absl::StatusCode::kCancelled;
    case ResultReason::kIllegalOperation:
    case ResultReason::kObjectArchived:
      return absl::StatusCode::kFailedPrecondition;
    case ResultReason::kIndexOutOfBounds:
      return absl::StatusCode::kOutOfRange;
    case ResultReason::kCryptographicFailure:
    case ResultReason::kGeneralFailure:
      return absl::StatusCode::kInternal;
  }
  return absl::StatusCode::kUnknown;
}

std::string SanitizeServerText(std::string_view text) {
  constexpr size_t kMax = 200;
  std::string out;
  out.reserve(std::min(text.size(), kMax + 3));
  for (char c : text.substr(0, kMax)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u >= 0x20 && u < 0x7F ? c : '?');
  }
  if (text.size() > kMax) out.append("...");
  return out;
}

Item BuildRequest(Operation op, Item payload) {
  Item header =
      Item::Structure(tag::kRequestHeader,
                      {Item::Structure(tag::kProtocolVersion,
                                       {Item::Integer(tag::kProtocolVersionMajor, kProtocolMajor),
                                        Item::Integer(tag::kProtocolVersionMinor, kProtocolMinor)}),
                       Item::Integer(tag::kBatchCount, 1)});
  Item batch = Item::Structure(
      tag::kBatchItem,
      {Item::Enumeration(tag::kOperation, static_cast<uint32_t>(op)), std::move(payload)});
  return Item::Structure(tag::kRequestMessage, {std::move(header), std::move(batch)});
}

absl::StatusOr<std::string> EncodeRequest(Operation op, Item payload) {
  return EncodeTtlv(BuildRequest(op, std::move(payload)));
}

Item CreateAes256Payload(std::string_view name) {
  Item attrs = Item::Structure(
      tag::kTemplateAttribute,
      {Attribute("Cryptographic Algorithm",
                 Item::Enumeration(tag::kAttributeValue, kCryptographicAlgorithmAes)),
       Attribute("Cryptographic Length", Item::Integer(tag::kAttributeValue, 256)),
       Attribute("Cryptographic Usage Mask",
                 Item::Integer(tag::kAttributeValue, kUsageMaskEncrypt | kUsageMaskDecrypt)),
       Attribute("Name", NameValue(tag::kAttributeValue, name))});
  return Item::Structure(
      tag::kRequestPayload,
      {Item::Enumeration(tag::kObjectType, kObjectTypeSymmetricKey), std::move(attrs)});
}

Item RegisterSymmetricKeyPayload(std::string_view name, std::string key_material) {
  const auto bits = static_cast<int32_t>(key_material.size() * 8);
  Item attrs = Item::Structure(
      tag::kTemplateAttribute,
      {Attribute("Cryptographic Usage Mask",
                 Item::Integer(tag::kAttributeValue, kUsageMaskEncrypt | kUsageMaskDecrypt)),
       Attribute("Name", NameValue(tag::kAttributeValue, name))});
  Item block = Item::Structure(
      tag::kKeyBlock, {Item::Enumeration(tag::kKeyFormatType, kKeyFormatTypeRaw),
                       Item::Structure(tag::kKeyValue, {Item::ByteString(tag::kKeyMaterial,
                                                                         std::move(key_material))}),
                       Item::Enumeration(tag::kCryptographicAlgorithm, kCryptographicAlgorithmAes),
                       Item::Integer(tag::kCryptographicLength, bits)});
  return Item::Structure(
      tag::kRequestPayload,
      {Item::Enumeration(tag::kObjectType, kObjectTypeSymmetricKey), std::move(attrs),
       Item::Structure(tag::kSymmetricKey, {std::move(block)})});
}

absl::StatusOr<SecretBytes> EncodeRegisterSymmetricKeyRequest(std::string_view name,
                                                              const SecretBytes& key) {
  const size_t n = key.size();
  if (n != 16 && n != 24 && n != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("KMIP Register: an AES key of ", n, " bytes; want 16, 24 or 32"));
  }
  KSH_ASSIGN_OR_RETURN(
      std::string wire,
      EncodeRequest(Operation::kRegister, RegisterSymmetricKeyPayload(name, std::string(n, '\0'))));
  // The Key Material item: tag 42 00 43, type 08 (Byte String), length n, then n zero bytes
  // (n is a multiple of 8: no padding). It must occur exactly once; a name that happened to
  // contain the same bytes would make the position ambiguous, so that is refused, not guessed.
  std::string marker = {'\x42', '\x00', '\x43', '\x08', '\0', '\0', '\0', static_cast<char>(n)};
  marker.append(n, '\0');
  const size_t at = wire.find(marker);
  if (at == std::string::npos || wire.find(marker, at + 1) != std::string::npos) {
    return absl::InvalidArgumentError(
        "KMIP Register: cannot place the key in the request unambiguously (unusual object name)");
  }
  SecretBytes out = SecretBytes::CopyFrom(wire);
  std::memcpy(out.UnsafeMutableData() + at + kTtlvHeaderSize, key.UnsafeView().data(), n);
  return out;
}

Item LocateByNamePayload(std::string_view name, int32_t max_items) {
  Item p = Item::Structure(tag::kRequestPayload);
  if (max_items > 0) p.Add(Item::Integer(tag::kMaximumItems, max_items));
  p.Add(Attribute("Name", NameValue(tag::kAttributeValue, name)));
  return p;
}

Item GetPayload(std::string_view uid) {
  return Item::Structure(tag::kRequestPayload,
                         {Item::TextString(tag::kUniqueIdentifier, std::string(uid)),
                          Item::Enumeration(tag::kKeyFormatType, kKeyFormatTypeRaw)});
}

Item UidPayload(std::string_view uid) {
  return Item::Structure(tag::kRequestPayload,
                         {Item::TextString(tag::kUniqueIdentifier, std::string(uid))});
}

Item RevokePayload(std::string_view uid) {
  return Item::Structure(tag::kRequestPayload,
                         {Item::TextString(tag::kUniqueIdentifier, std::string(uid)),
                          Item::Structure(tag::kRevocationReason,
                                          {Item::Enumeration(tag::kRevocationReasonCode,
                                                             kRevocationCessationOfOperation)})});
}

Item QueryServerInformationPayload() {
  return Item::Structure(tag::kRequestPayload,
                         {Item::Enumeration(tag::kQueryFunction, kQueryServerInformation)});
}

absl::StatusOr<const Item*> CheckResponse(const Item& response, Operation op) {
  if (response.tag() != tag::kResponseMessage || response.type() != ItemType::kStructure) {
    return Malformed(op, "not a Response Message");
  }
  KSH_ASSIGN_OR_RETURN(const Item* header, Child(response, tag::kResponseHeader,
                                                 ItemType::kStructure, op, "Response Header"));
  KSH_ASSIGN_OR_RETURN(const Item* count,
                       Child(*header, tag::kBatchCount, ItemType::kInteger, op, "Batch Count"));
  std::vector<const Item*> batch = response.FindAll(tag::kBatchItem);
  if (count->number() != 1 || batch.size() != 1) {
    return Malformed(op, absl::StrCat("want exactly one Batch Item, got ", batch.size(),
                                      " (Batch Count ", count->number(), ")"));
  }
  const Item& item = *batch[0];
  if (item.type() != ItemType::kStructure) return Malformed(op, "Batch Item is not a Structure");
  if (const Item* o = item.Find(tag::kOperation); o != nullptr) {
    if (o->type() != ItemType::kEnumeration || o->number() != static_cast<int64_t>(op)) {
      return Malformed(op, absl::StrCat("answers operation ", o->number()));
    }
  }
  KSH_ASSIGN_OR_RETURN(const Item* status, Child(item, tag::kResultStatus, ItemType::kEnumeration,
                                                 op, "Result Status"));
  if (status->number() != static_cast<int64_t>(ResultStatus::kSuccess)) {
    const Item* reason = item.Find(tag::kResultReason);
    const Item* message = item.Find(tag::kResultMessage);
    uint32_t r = reason != nullptr && reason->type() == ItemType::kEnumeration
                     ? static_cast<uint32_t>(reason->number())
                     : static_cast<uint32_t>(ResultReason::kGeneralFailure);
    std::string text = message != nullptr && message->type() == ItemType::kTextString
                           ? SanitizeServerText(message->bytes())
                           : std::string("(no message)");
    absl::StatusCode code = ResultReasonToCode(r);
    if (status->number() == static_cast<int64_t>(ResultStatus::kOperationPending)) {
      code = absl::StatusCode::kUnavailable;  // we never ask for asynchronous operations
    }
    return absl::Status(code, absl::StrCat("KMIP ", AV(OperationName(op)),
                                           " failed: ", AV(ResultReasonName(r)), ": ", text));
  }
  const Item* payload = item.Find(tag::kResponsePayload);
  if (payload != nullptr && payload->type() != ItemType::kStructure) {
    return Malformed(op, "Response Payload is not a Structure");
  }
  return payload;
}

absl::StatusOr<std::string> ParseUniqueIdentifier(const Item* payload, Operation op) {
  if (payload == nullptr) return Malformed(op, "no Response Payload");
  KSH_ASSIGN_OR_RETURN(const Item* uid, Child(*payload, tag::kUniqueIdentifier,
                                              ItemType::kTextString, op, "Unique Identifier"));
  if (uid->bytes().empty()) return Malformed(op, "empty Unique Identifier");
  return std::string(uid->bytes());
}

absl::StatusOr<std::vector<std::string>> ParseLocate(const Item* payload) {
  std::vector<std::string> out;
  if (payload == nullptr) return out;  // KMIP 1.x: no payload items when nothing matched
  for (const Item* uid : payload->FindAll(tag::kUniqueIdentifier)) {
    if (uid->type() != ItemType::kTextString || uid->bytes().empty()) {
      return Malformed(Operation::kLocate, "bad Unique Identifier");
    }
    out.emplace_back(uid->bytes());
  }
  return out;
}

absl::StatusOr<SecretBytes> ParseGetSymmetricKey(const Item* payload, std::string_view uid,
                                                 size_t key_size) {
  constexpr Operation op = Operation::kGet;
  if (payload == nullptr) return Malformed(op, "no Response Payload");
  KSH_ASSIGN_OR_RETURN(const Item* type, Child(*payload, tag::kObjectType, ItemType::kEnumeration,
                                               op, "Object Type"));
  if (type->number() != kObjectTypeSymmetricKey) {
    return absl::FailedPreconditionError(absl::StrCat(
        "KMIP object ", AV(uid), " is not a Symmetric Key (Object Type ", type->number(), ")"));
  }
  KSH_ASSIGN_OR_RETURN(const Item* got_uid, Child(*payload, tag::kUniqueIdentifier,
                                                  ItemType::kTextString, op, "Unique Identifier"));
  if (got_uid->bytes() != uid) {
    return Malformed(op, absl::StrCat("asked for object ", AV(uid), ", got ",
                                      SanitizeServerText(got_uid->bytes())));
  }
  KSH_ASSIGN_OR_RETURN(const Item* key, Child(*payload, tag::kSymmetricKey, ItemType::kStructure,
                                              op, "Symmetric Key"));
  KSH_ASSIGN_OR_RETURN(const Item* block,
                       Child(*key, tag::kKeyBlock, ItemType::kStructure, op, "Key Block"));
  KSH_ASSIGN_OR_RETURN(const Item* format, Child(*block, tag::kKeyFormatType,
                                                 ItemType::kEnumeration, op, "Key Format Type"));
  if (format->number() != kKeyFormatTypeRaw) {
    return absl::FailedPreconditionError(absl::StrCat(
        "KMIP object ", AV(uid), " came back in Key Format Type ", format->number(), ", want Raw"));
  }
  if (block->Find(tag::kKeyWrappingData) != nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("KMIP object ", AV(uid), " came back wrapped; kshield asks for a raw key"));
  }
  KSH_ASSIGN_OR_RETURN(const Item* alg,
                       Child(*block, tag::kCryptographicAlgorithm, ItemType::kEnumeration, op,
                             "Cryptographic Algorithm"));
  if (alg->number() != kCryptographicAlgorithmAes) {
    return absl::FailedPreconditionError(
        absl::StrCat("KMIP object ", AV(uid), " is not an AES key (Cryptographic Algorithm ",
                     alg->number(), ")"));
  }
  KSH_ASSIGN_OR_RETURN(const Item* value,
                       Child(*block, tag::kKeyValue, ItemType::kStructure, op, "Key Value"));
  KSH_ASSIGN_OR_RETURN(const Item* material,
                       Child(*value, tag::kKeyMaterial, ItemType::kByteString, op, "Key Material"));
  if (material->bytes().size() != key_size) {
    return absl::FailedPreconditionError(absl::StrCat("KMIP object ", AV(uid), " holds a ",
                                                      material->bytes().size() * 8,
                                                      "-bit key, want ", key_size * 8));
  }
  return SecretBytes::CopyFrom(material->bytes());
}

}  // namespace kshield::keys::kmip
