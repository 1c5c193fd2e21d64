#include "keys/kmip/ttlv.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"

namespace kshield::keys::kmip {
namespace {

constexpr size_t kAlign = 8;

size_t Padded(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

bool IsKnownType(uint8_t t) { return t >= 0x01 && t <= 0x0A; }

// The value length a fixed-size type must carry (§9.1.1.4), or 0 for variable-length types.
size_t FixedLength(ItemType t) {
  switch (t) {
    case ItemType::kInteger:
    case ItemType::kEnumeration:
    case ItemType::kInterval:
      return 4;
    case ItemType::kLongInteger:
    case ItemType::kBoolean:
    case ItemType::kDateTime:
      return 8;
    default:
      return 0;
  }
}

uint32_t ReadBe32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}
uint64_t ReadBe64(const uint8_t* p) {
  return (uint64_t{ReadBe32(p)} << 32) | uint64_t{ReadBe32(p + 4)};
}
void AppendBe32(std::string* out, uint32_t v) {
  char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
               static_cast<char>(v)};
  out->append(b, 4);
}
void AppendBe64(std::string* out, uint64_t v) {
  AppendBe32(out, static_cast<uint32_t>(v >> 32));
  AppendBe32(out, static_cast<uint32_t>(v));
}

// RFC 3629 UTF-8 (no overlongs, no surrogates, max U+10FFFF).
bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    uint8_t c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t min, cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, min = 0x10000, cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

std::string TagHex(uint32_t tag) { return absl::StrFormat("0x%06X", tag); }

// The one bounded reader. `pos_` only moves forward after a length check.
class Reader {
 public:
  Reader(std::string_view in, const TtlvLimits& limits) : in_(in), limits_(limits) {}

  absl::StatusOr<Item> ReadItem(int depth) {
    const size_t start = pos_;
    if (depth > limits_.max_depth) {
      return Fail(start, absl::StrCat("structures nested deeper than ", limits_.max_depth));
    }
    if (++items_ > limits_.max_items) {
      return Fail(start, absl::StrCat("more than ", limits_.max_items, " items"));
    }
    if (Remaining() < kTtlvHeaderSize) {
      return Fail(start, absl::StrCat("truncated: need ", kTtlvHeaderSize, " header bytes, have ",
                                      Remaining()));
    }
    const uint8_t* h = Data() + pos_;
    const uint32_t tag = (uint32_t{h[0]} << 16) | (uint32_t{h[1]} << 8) | uint32_t{h[2]};
    const uint8_t raw_type = h[3];
    const uint32_t length = ReadBe32(h + 4);
    if (!IsKnownType(raw_type)) {
      return Fail(start, absl::StrFormat("tag %s has unknown type 0x%02X", TagHex(tag), raw_type));
    }
    const auto type = static_cast<ItemType>(raw_type);
    const size_t fixed = FixedLength(type);
    if (fixed != 0 && length != fixed) {
      return Fail(start, absl::StrCat("tag ", TagHex(tag), " of type ", AV(ItemTypeName(type)),
                                      " has length ", length, ", want ", fixed));
    }
    if (type == ItemType::kBigInteger && (length == 0 || length % kAlign != 0)) {
      return Fail(start, absl::StrCat("tag ", TagHex(tag), " Big Integer length ", length,
                                      " is not a non-zero multiple of 8"));
    }
    if (type == ItemType::kStructure && length % kAlign != 0) {
      return Fail(start, absl::StrCat("tag ", TagHex(tag), " Structure length ", length,
                                      " is not a multiple of 8"));
    }
    pos_ += kTtlvHeaderSize;
    // `length` < 2^32 and Remaining() is a size_t: compare before padding so nothing overflows.
    if (length > Remaining() || Padded(length) > Remaining()) {
      return Fail(start,
                  absl::StrCat("tag ", TagHex(tag), " declares ", length, " value bytes (padded ",
                               Padded(length), "), only ", Remaining(), " remain"));
    }
    const size_t value_at = pos_;
    const uint8_t* v = Data() + value_at;

    if (type == ItemType::kStructure) {
      Item s = Item::Structure(tag);
      const size_t end = value_at + length;
      while (pos_ < end) {
        // Children may only use this structure's bytes, not the parent's remainder.
        Reader child(in_.substr(0, end), limits_);
        child.pos_ = pos_;
        child.items_ = items_;
        auto c = child.ReadItem(depth + 1);
        if (!c.ok()) return c.status();
        pos_ = child.pos_;
        items_ = child.items_;
        s.Add(std::move(*c));
      }
      return s;
    }

    // Padding must be zero (strict; see ttlv.h).
    for (size_t i = length; i < Padded(length); ++i) {
      if (v[i] != 0) {
        return Fail(start, absl::StrCat("tag ", TagHex(tag), " has non-zero padding"));
      }
    }
    pos_ += Padded(length);

    switch (type) {
      case ItemType::kInteger:
        return Item::Number(tag, type, static_cast<int32_t>(ReadBe32(v)));
      case ItemType::kEnumeration:
      case ItemType::kInterval:
        return Item::Number(tag, type, static_cast<int64_t>(ReadBe32(v)));
      case ItemType::kLongInteger:
      case ItemType::kDateTime:
        return Item::Number(tag, type, static_cast<int64_t>(ReadBe64(v)));
      case ItemType::kBoolean: {
        uint64_t b = ReadBe64(v);
        if (b > 1) {
          return Fail(start, absl::StrCat("tag ", TagHex(tag), " Boolean is neither 0 nor 1"));
        }
        return Item::Number(tag, type, static_cast<int64_t>(b));
      }
      case ItemType::kTextString: {
        std::string_view text = in_.substr(value_at, length);
        if (!IsValidUtf8(text)) {
          return Fail(start, absl::StrCat("tag ", TagHex(tag), " Text String is not UTF-8"));
        }
        return Item::Borrowed(tag, type, text);
      }
      case ItemType::kByteString:
      case ItemType::kBigInteger:
        return Item::Borrowed(tag, type, in_.substr(value_at, length));
      case ItemType::kStructure:
        break;
    }
    return Fail(start, "unreachable item type");
  }

  size_t pos() const { return pos_; }

 private:
  size_t Remaining() const { return in_.size() - pos_; }
  const uint8_t* Data() const { return reinterpret_cast<const uint8_t*>(in_.data()); }
  static absl::Status Fail(size_t offset, std::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat("TTLV at offset ", offset, ": ", AV(what)));
  }

  std::string_view in_;
  const TtlvLimits& limits_;
  size_t pos_ = 0;
  size_t items_ = 0;
};

absl::Status EncodeInto(const Item& item, int depth, const TtlvLimits& limits, std::string* out) {
  if (depth > limits.max_depth) {
    return absl::InvalidArgumentError(
        absl::StrCat("TTLV encode: structures nested deeper than ", limits.max_depth));
  }
  if (item.tag() > 0xFFFFFF) {
    return absl::InvalidArgumentError(absl::StrCat("TTLV encode: tag ", item.tag(), " > 24 bits"));
  }
  if (out->size() > limits.max_message_size) {
    return absl::InvalidArgumentError("TTLV encode: message exceeds the size limit");
  }
  const size_t header_at = out->size();
  out->push_back(static_cast<char>(item.tag() >> 16));
  out->push_back(static_cast<char>(item.tag() >> 8));
  out->push_back(static_cast<char>(item.tag()));
  out->push_back(static_cast<char>(item.type()));
  AppendBe32(out, 0);  // length, patched below
  const size_t value_at = out->size();
  switch (item.type()) {
    case ItemType::kStructure:
      for (const Item& c : item.children()) {
        KSH_RETURN_IF_ERROR(EncodeInto(c, depth + 1, limits, out));
      }
      break;
    case ItemType::kInteger:
    case ItemType::kEnumeration:
    case ItemType::kInterval:
      AppendBe32(out, static_cast<uint32_t>(item.number()));
      break;
    case ItemType::kLongInteger:
    case ItemType::kBoolean:
    case ItemType::kDateTime:
      AppendBe64(out, static_cast<uint64_t>(item.number()));
      break;
    case ItemType::kBigInteger:
      if (item.bytes().empty() || item.bytes().size() % kAlign != 0) {
        return absl::InvalidArgumentError(
            "TTLV encode: Big Integer length must be a non-zero multiple of 8");
      }
      out->append(item.bytes());
      break;
    case ItemType::kTextString:
    case ItemType::kByteString:
      out->append(item.bytes());
      break;
  }
  const size_t length = out->size() - value_at;
  if (length > 0xFFFFFFFFu || out->size() > limits.max_message_size) {
    return absl::InvalidArgumentError("TTLV encode: message exceeds the size limit");
  }
  const uint32_t len32 = static_cast<uint32_t>(length);
  char* lp = out->data() + header_at + 4;
  lp[0] = static_cast<char>(len32 >> 24);
  lp[1] = static_cast<char>(len32 >> 16);
  lp[2] = static_cast<char>(len32 >> 8);
  lp[3] = static_cast<char>(len32);
  out->append(Padded(length) - length, '\0');
  if (out->size() > limits.max_message_size) {
    return absl::InvalidArgumentError("TTLV encode: message exceeds the size limit");
  }
  return absl::OkStatus();
}

void DebugInto(const Item& item, int indent, std::string* out) {
  out->append(static_cast<size_t>(indent) * 2, ' ');
  absl::StrAppend(out, TagHex(item.tag()), " ", AV(ItemTypeName(item.type())));
  switch (item.type()) {
    case ItemType::kStructure:
      out->append("\n");
      for (const Item& c : item.children()) DebugInto(c, indent + 1, out);
      return;
    case ItemType::kTextString:
      absl::StrAppend(out, " \"", AV(item.bytes()), "\"\n");
      return;
    case ItemType::kByteString:
    case ItemType::kBigInteger:
      absl::StrAppend(out, " (", item.bytes().size(), " bytes)\n");
      return;
    default:
      absl::StrAppend(out, " ", item.number(), "\n");
      return;
  }
}

}  // namespace

std::string_view ItemTypeName(ItemType type) {
  switch (type) {
    case ItemType::kStructure:
      return "Structure";
    case ItemType::kInteger:
      return "Integer";
    case ItemType::kLongInteger:
      return "Long Integer";
    case ItemType::kBigInteger:
      return "Big Integer";
    case ItemType::kEnumeration:
      return "Enumeration";
    case ItemType::kBoolean:
      return "Boolean";
    case ItemType::kTextString:
      return "Text String";
    case ItemType::kByteString:
      return "Byte String";
    case ItemType::kDateTime:
      return "Date-Time";
    case ItemType::kInterval:
      return "Interval";
  }
  return "unknown";
}

Item Item::Structure(uint32_t tag, std::vector<Item> children) {
  Item i(tag, ItemType::kStructure);
  i.children_ = std::move(children);
  return i;
}
Item Item::Integer(uint32_t tag, int32_t value) { return Number(tag, ItemType::kInteger, value); }
Item Item::LongInteger(uint32_t tag, int64_t value) {
  return Number(tag, ItemType::kLongInteger, value);
}
Item Item::BigInteger(uint32_t tag, std::string twos_complement_be) {
  Item i(tag, ItemType::kBigInteger);
  i.storage_ = std::move(twos_complement_be);
  return i;
}
Item Item::Enumeration(uint32_t tag, uint32_t value) {
  return Number(tag, ItemType::kEnumeration, value);
}
Item Item::Boolean(uint32_t tag, bool value) {
  return Number(tag, ItemType::kBoolean, value ? 1 : 0);
}
Item Item::TextString(uint32_t tag, std::string value) {
  Item i(tag, ItemType::kTextString);
  i.storage_ = std::move(value);
  return i;
}
Item Item::ByteString(uint32_t tag, std::string value) {
  Item i(tag, ItemType::kByteString);
  i.storage_ = std::move(value);
  return i;
}
Item Item::DateTime(uint32_t tag, int64_t unix_seconds) {
  return Number(tag, ItemType::kDateTime, unix_seconds);
}
Item Item::Interval(uint32_t tag, uint32_t seconds) {
  return Number(tag, ItemType::kInterval, seconds);
}
Item Item::Borrowed(uint32_t tag, ItemType type, std::string_view value) {
  Item i(tag, type);
  i.owned_ = false;
  i.borrowed_ = value;
  return i;
}
Item Item::Number(uint32_t tag, ItemType type, int64_t value) {
  Item i(tag, type);
  i.number_ = value;
  return i;
}

void Item::Add(Item child) {
  if (type_ == ItemType::kStructure) children_.push_back(std::move(child));
}

const Item* Item::Find(uint32_t tag) const {
  for (const Item& c : children_) {
    if (c.tag() == tag) return &c;
  }
  return nullptr;
}

std::vector<const Item*> Item::FindAll(uint32_t tag) const {
  std::vector<const Item*> out;
  for (const Item& c : children_) {
    if (c.tag() == tag) out.push_back(&c);
  }
  return out;
}

bool operator==(const Item& a, const Item& b) {
  return a.tag_ == b.tag_ && a.type_ == b.type_ && a.number_ == b.number_ &&
         a.bytes() == b.bytes() && a.children_ == b.children_;
}

absl::StatusOr<std::string> EncodeTtlv(const Item& item, const TtlvLimits& limits) {
  std::string out;
  KSH_RETURN_IF_ERROR(EncodeInto(item, 1, limits, &out));
  return out;
}

absl::StatusOr<Item> DecodeTtlv(std::string_view input, const TtlvLimits& limits) {
  if (input.size() > limits.max_message_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TTLV message of ", input.size(), " bytes exceeds the limit of ", limits.max_message_size));
  }
  Reader reader(input, limits);
  KSH_ASSIGN_OR_RETURN(Item item, reader.ReadItem(1));
  if (reader.pos() != input.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TTLV: ", input.size() - reader.pos(), " trailing bytes after the message"));
  }
  return item;
}

absl::StatusOr<size_t> TtlvMessageSize(std::string_view header, const TtlvLimits& limits) {
  if (header.size() < kTtlvHeaderSize) {
    return absl::InvalidArgumentError("TTLV: short message header");
  }
  const auto* h = reinterpret_cast<const uint8_t*>(header.data());
  if (!IsKnownType(h[3])) {
    return absl::InvalidArgumentError(absl::StrFormat("TTLV: unknown type 0x%02X", h[3]));
  }
  const uint32_t length = ReadBe32(h + 4);
  if (static_cast<ItemType>(h[3]) == ItemType::kStructure && length % kAlign != 0) {
    return absl::InvalidArgumentError("TTLV: message length is not a multiple of 8");
  }
  const size_t total = kTtlvHeaderSize + Padded(length);
  if (total > limits.max_message_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TTLV: message of ", total, " bytes exceeds the limit of ", limits.max_message_size));
  }
  return total;
}

std::string DebugString(const Item& item) {
  std::string out;
  DebugInto(item, 0, &out);
  return out;
}

}  // namespace kshield::keys::kmip
