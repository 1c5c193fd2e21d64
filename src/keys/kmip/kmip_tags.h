// KMIP 1.x tag and enumeration values used by kshield's KMIP client.
//
// Values from the OASIS KMIP Specification v1.2 (kmip-spec-v1.2-os), §9.1.3.1 "Tags" and
// §9.1.3.2 "Enumerations"; they are unchanged in 1.0 through 1.4. Only the subset the client
// sends or reads is listed.
#pragma once

#include <cstdint>

namespace kshield::keys::kmip {

namespace tag {
inline constexpr uint32_t kAttribute = 0x420008;
inline constexpr uint32_t kAttributeIndex = 0x420009;
inline constexpr uint32_t kAttributeName = 0x42000A;
inline constexpr uint32_t kAttributeValue = 0x42000B;
inline constexpr uint32_t kBatchCount = 0x42000D;
inline constexpr uint32_t kBatchItem = 0x42000F;
inline constexpr uint32_t kCryptographicAlgorithm = 0x420028;
inline constexpr uint32_t kCryptographicLength = 0x42002A;
inline constexpr uint32_t kCryptographicUsageMask = 0x42002C;
inline constexpr uint32_t kKeyBlock = 0x420040;
inline constexpr uint32_t kKeyFormatType = 0x420042;
inline constexpr uint32_t kKeyMaterial = 0x420043;
inline constexpr uint32_t kKeyValue = 0x420045;
inline constexpr uint32_t kKeyWrappingData = 0x420046;
inline constexpr uint32_t kMaximumItems = 0x42004F;
inline constexpr uint32_t kName = 0x420053;
inline constexpr uint32_t kNameType = 0x420054;
inline constexpr uint32_t kNameValue = 0x420055;
inline constexpr uint32_t kObjectType = 0x420057;
inline constexpr uint32_t kOperation = 0x42005C;
inline constexpr uint32_t kProtocolVersion = 0x420069;
inline constexpr uint32_t kProtocolVersionMajor = 0x42006A;
inline constexpr uint32_t kProtocolVersionMinor = 0x42006B;
inline constexpr uint32_t kQueryFunction = 0x420074;
inline constexpr uint32_t kRequestHeader = 0x420077;
inline constexpr uint32_t kRequestMessage = 0x420078;
inline constexpr uint32_t kRequestPayload = 0x420079;
inline constexpr uint32_t kResponseHeader = 0x42007A;
inline constexpr uint32_t kResponseMessage = 0x42007B;
inline constexpr uint32_t kResponsePayload = 0x42007C;
inline constexpr uint32_t kResultMessage = 0x42007D;
inline constexpr uint32_t kResultReason = 0x42007E;
inline constexpr uint32_t kResultStatus = 0x42007F;
inline constexpr uint32_t kRevocationReason = 0x420081;
inline constexpr uint32_t kRevocationReasonCode = 0x420082;
inline constexpr uint32_t kSymmetricKey = 0x42008F;
inline constexpr uint32_t kTemplateAttribute = 0x420091;
inline constexpr uint32_t kTimeStamp = 0x420092;
inline constexpr uint32_t kUniqueBatchItemId = 0x420093;
inline constexpr uint32_t kUniqueIdentifier = 0x420094;
}  // namespace tag

// Operation (§9.1.3.2).
enum class Operation : uint32_t {
  kCreate = 0x01,
  kRegister = 0x03,
  kLocate = 0x08,
  kGet = 0x0A,
  kActivate = 0x12,
  kRevoke = 0x13,
  kDestroy = 0x14,
  kQuery = 0x18,
};

// Result Status (§9.1.3.2).
enum class ResultStatus : uint32_t {
  kSuccess = 0x00,
  kOperationFailed = 0x01,
  kOperationPending = 0x02,
  kOperationUndone = 0x03,
};

// Result Reason (§9.1.3.2).
enum class ResultReason : uint32_t {
  kItemNotFound = 0x01,
  kResponseTooLarge = 0x02,
  kAuthenticationNotSuccessful = 0x03,
  kInvalidMessage = 0x04,
  kOperationNotSupported = 0x05,
  kMissingData = 0x06,
  kInvalidField = 0x07,
  kFeatureNotSupported = 0x08,
  kOperationCanceledByRequester = 0x09,
  kCryptographicFailure = 0x0A,
  kIllegalOperation = 0x0B,
  kPermissionDenied = 0x0C,
  kObjectArchived = 0x0D,
  kIndexOutOfBounds = 0x0E,
  kApplicationNamespaceNotSupported = 0x0F,
  kKeyFormatTypeNotSupported = 0x10,
  kKeyCompressionTypeNotSupported = 0x11,
  kEncodingOptionError = 0x12,
  kKeyValueNotPresent = 0x13,
  kAttestationRequired = 0x14,
  kAttestationFailed = 0x15,
  kGeneralFailure = 0x100,
};

// Object Type (§9.1.3.2).
inline constexpr uint32_t kObjectTypeSymmetricKey = 0x02;
// Cryptographic Algorithm (§9.1.3.2).
inline constexpr uint32_t kCryptographicAlgorithmAes = 0x03;
// Key Format Type (§9.1.3.2).
inline constexpr uint32_t kKeyFormatTypeRaw = 0x01;
// Name Type (§9.1.3.2).
inline constexpr uint32_t kNameTypeUninterpretedTextString = 0x01;
// Revocation Reason Code (§9.1.3.2).
inline constexpr uint32_t kRevocationCessationOfOperation = 0x06;
// Query Function (§9.1.3.2).
inline constexpr uint32_t kQueryServerInformation = 0x03;
// Cryptographic Usage Mask bits (§9.1.3.3).
inline constexpr int32_t kUsageMaskEncrypt = 0x04;
inline constexpr int32_t kUsageMaskDecrypt = 0x08;

}  // namespace kshield::keys::kmip
