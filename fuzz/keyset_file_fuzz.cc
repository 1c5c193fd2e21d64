// Fuzz target: the keyset file (keys::FileKeysetStore::Decode, then KeysetManager::Validate).
// The file sits on disk and may be corrupted or planted; loading it must never crash.
//
// The file ends in a SHA-256 over everything before it, so random bytes almost never get past the
// checksum. Each input is therefore tried twice:
//  1. as a whole file;
//  2. as the protobuf body of a file framed correctly around it (magic, length, checksum), which
//     sends the fuzzer's bytes through the protobuf parser and Validate().
// Invariants: Decode never crashes and reports DataLoss; a decoded record re-encodes to a file
// that decodes to the same record; a record Validate() accepts builds a Keyset snapshot (whose
// constructor aborts unless there is exactly one primary) and every version is found in it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "crypto/sha256.h"
#include "google/protobuf/stubs/logging.h"
#include "fuzz_check.h"
#include "keys/keyset.h"
#include "keys/keyset_manager.h"
#include "keys/keyset_store.h"

namespace {

using kshield::keys::FileKeysetStore;
using kshield::keys::KeysetManager;
using kshield::keys::v1::KekVersionRecord;
using kshield::keys::v1::KeysetRecord;

// The framing of keyset_store.h: "KSHKEYS1" | uint32-BE length | body | SHA-256 of all before.
std::string Frame(std::string_view body) {
  std::string out("KSHKEYS1");
  const uint32_t n = static_cast<uint32_t>(body.size());
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(body);
  out.append(kshield::crypto::Sha256(out));
  return out;
}

void CheckFile(std::string_view file) {
  auto record = FileKeysetStore::Decode(file);
  if (!record.ok()) {
    FUZZ_CHECK(record.status().code() == absl::StatusCode::kDataLoss);
    return;
  }
  // Re-encoding is stable: Decode(Encode(r)) == r.
  const std::string encoded = FileKeysetStore::Encode(*record);
  auto again = FileKeysetStore::Decode(encoded);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->SerializeAsString() == record->SerializeAsString());

  if (!KeysetManager::Validate(*record).ok()) return;
  // What Validate promises is what KeysetManager::BuildSnapshot relies on.
  std::vector<kshield::keys::KeyVersion> versions;
  for (const auto& v : record->versions()) {
    kshield::keys::KeyVersion kv;
    kv.version = v.version();
    kv.state = v.state() == KekVersionRecord::PRIMARY   ? kshield::keys::KeyState::kPrimary
               : v.state() == KekVersionRecord::RETIRED ? kshield::keys::KeyState::kRetired
                                                        : kshield::keys::KeyState::kActive;
    versions.push_back(std::move(kv));
  }
  kshield::keys::Keyset keyset(record->keyset_id(), std::move(versions));
  FUZZ_CHECK(keyset.primary().state == kshield::keys::KeyState::kPrimary);
  for (const auto& v : record->versions()) {
    FUZZ_CHECK(v.version() >= 1 && v.version() < record->next_version());
    const auto* found = keyset.Find(v.version());
    FUZZ_CHECK(found != nullptr && found->version == v.version());
  }
}

}  // namespace

// protobuf logs every string field with invalid UTF-8 it meets; at fuzzing rates that is noise.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  CheckFile(in);
  CheckFile(Frame(in));
  return 0;
}
