// TTLV — the binary encoding of KMIP 1.x messages (KMIP Specification v1.2, §9.1 "TTLV Encoding").
//
// Every item is Tag (3 bytes) | Type (1 byte) | Length (4 bytes, big-endian) | Value, and the
// value is padded with zero bytes to a multiple of 8. A Structure's value is the concatenation of
// its (padded) child items.
//
//   Item req = Item::Structure(tag::kRequestMessage, {
//       Item::Structure(tag::kRequestHeader, {...}),
//       Item::Structure(tag::kBatchItem, {Item::Enumeration(tag::kOperation, 0x0A), ...})});
//   KSH_ASSIGN_OR_RETURN(std::string wire, EncodeTtlv(req));
//   KSH_ASSIGN_OR_RETURN(Item resp, DecodeTtlv(response_bytes));   // borrows response_bytes
//   const Item* payload = resp.Find(tag::kBatchItem)->Find(tag::kResponsePayload);
//
// Decoding is strict and bounded (one reader that checks the remaining length before every read):
//  - the input must be exactly one item, no trailing bytes, at most `max_message_size` bytes;
//  - lengths must match the type: Integer / Enumeration / Interval 4, Long Integer / Boolean /
//    Date-Time 8, Big Integer a non-zero multiple of 8 (§9.1.1.4);
//  - padding bytes must be zero, Boolean values 0 or 1, Text Strings valid UTF-8 — KMIP says
//    "padded with zeros" and a peer that sends anything else is not one we want to trust (we
//    chose strict over tolerant; PyKMIP and every server we know pad with zeros);
//  - Structures nest at most `max_depth` levels (the outermost item is level 1) and a message
//    holds at most `max_items` items, so a hostile peer cannot make us recurse or allocate
//    without bound.
// Errors are InvalidArgument and name the offset and tag; they never echo value bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kshield::keys::kmip {

// §9.1.1.2 Item Type.
enum class ItemType : uint8_t {
  kStructure = 0x01,
  kInteger = 0x02,
  kLongInteger = 0x03,
  kBigInteger = 0x04,
  kEnumeration = 0x05,
  kBoolean = 0x06,
  kTextString = 0x07,
  kByteString = 0x08,
  kDateTime = 0x09,
  kInterval = 0x0A,
};
std::string_view ItemTypeName(ItemType type);

inline constexpr size_t kTtlvHeaderSize = 8;  // tag 3 + type 1 + length 4

// One TTLV item and, for a Structure, its children.
//
// Values of Text String, Byte String and Big Integer items are either owned (items built with the
// factories below) or borrowed (items returned by DecodeTtlv, which point into the decoded buffer
// so that key material is never copied into an unprotected string). Both kinds are safe to move.
class Item {
 public:
  static Item Structure(uint32_t tag, std::vector<Item> children = {});
  static Item Integer(uint32_t tag, int32_t value);
  static Item LongInteger(uint32_t tag, int64_t value);
  // `twos_complement_be`: big-endian two's complement, sign-extended to a multiple of 8 bytes.
  static Item BigInteger(uint32_t tag, std::string twos_complement_be);
  static Item Enumeration(uint32_t tag, uint32_t value);
  static Item Boolean(uint32_t tag, bool value);
  static Item TextString(uint32_t tag, std::string value);
  static Item ByteString(uint32_t tag, std::string value);
  // Seconds since the Unix epoch.
  static Item DateTime(uint32_t tag, int64_t unix_seconds);
  static Item Interval(uint32_t tag, uint32_t seconds);

  uint32_t tag() const { return tag_; }
  ItemType type() const { return type_; }

  // Integer, Long Integer, Date-Time: the signed value. Enumeration, Interval: the unsigned
  // 32-bit value. Boolean: 0 or 1. Other types: 0.
  int64_t number() const { return number_; }
  // Text String, Byte String, Big Integer: the value bytes (no padding). Other types: empty.
  std::string_view bytes() const { return owned_ ? std::string_view(storage_) : borrowed_; }
  // Structure: the children in wire order. Other types: empty.
  const std::vector<Item>& children() const { return children_; }

  // Appends a child (Structures only; ignored otherwise).
  void Add(Item child);
  // The first child with `tag`, or nullptr.
  const Item* Find(uint32_t tag) const;
  std::vector<const Item*> FindAll(uint32_t tag) const;

  // Deep equality of tag, type and value (owned vs borrowed does not matter).
  friend bool operator==(const Item& a, const Item& b);
  friend bool operator!=(const Item& a, const Item& b) { return !(a == b); }

  // Used by the decoder: a value that points into the decoded buffer.
  static Item Borrowed(uint32_t tag, ItemType type, std::string_view value);
  static Item Number(uint32_t tag, ItemType type, int64_t value);

 private:
  Item(uint32_t tag, ItemType type) : tag_(tag), type_(type) {}

  uint32_t tag_ = 0;
  ItemType type_ = ItemType::kStructure;
  int64_t number_ = 0;
  bool owned_ = true;
  std::string storage_;
  std::string_view borrowed_;
  std::vector<Item> children_;
};

struct TtlvLimits {
  size_t max_message_size = 1 << 20;  // 1 MiB, like PyKMIP's own request / response limit
  int max_depth = 16;
  size_t max_items = 1 << 16;
};

// Encodes one item (and its children). Fails on a tag above 0xFFFFFF, a Big Integer whose
// length is not a non-zero multiple of 8, nesting beyond `limits.max_depth`, or a result above
// `limits.max_message_size`.
absl::StatusOr<std::string> EncodeTtlv(const Item& item, const TtlvLimits& limits = {});

// Decodes exactly one item spanning all of `input`. The result BORROWS `input`: keep the buffer
// alive and unchanged while the Item (or anything taken from its bytes()) is in use.
absl::StatusOr<Item> DecodeTtlv(std::string_view input, const TtlvLimits& limits = {});

// Reads the total size (header + padded value) of the item whose 8-byte header starts `header`,
// for framing a message off a stream. Fails if the header is short, its length is not a multiple
// of 8 for a Structure, or the total exceeds `limits.max_message_size`.
absl::StatusOr<size_t> TtlvMessageSize(std::string_view header, const TtlvLimits& limits = {});

// Human-readable dump for debugging and test failure messages. Byte String values are shown
// only as their length (they may be keys).
std::string DebugString(const Item& item);

}  // namespace kshield::keys::kmip
