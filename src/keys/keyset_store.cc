#include "keys/keyset_store.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "crypto/sha256.h"

namespace kshield::keys {
namespace {

constexpr std::string_view kMagic = "KSHKEYS1";
constexpr size_t kMaxFileSize = 16 * 1024 * 1024;

}  // namespace

std::string FileKeysetStore::Encode(const v1::KeysetRecord& record) {
  std::string body = record.SerializeAsString();
  std::string out(kMagic);
  uint32_t n = static_cast<uint32_t>(body.size());
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(body);
  out.append(crypto::Sha256(out));
  return out;
}

absl::StatusOr<v1::KeysetRecord> FileKeysetStore::Decode(std::string_view bytes) {
  if (bytes.size() < kMagic.size() + 4 + 32 || bytes.substr(0, kMagic.size()) != kMagic) {
    return absl::DataLossError("not a kshield keyset file (bad magic or too short)");
  }
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data() + kMagic.size());
  uint32_t n = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  if (size_t{n} != bytes.size() - kMagic.size() - 4 - 32) {
    return absl::DataLossError("keyset file length field does not match its size");
  }
  std::string_view signed_part = bytes.substr(0, bytes.size() - 32);
  if (crypto::Sha256(signed_part) != bytes.substr(bytes.size() - 32)) {
    return absl::DataLossError("keyset file checksum mismatch (corrupted)");
  }
  v1::KeysetRecord record;
  if (!record.ParseFromArray(bytes.data() + kMagic.size() + 4, static_cast<int>(n))) {
    return absl::DataLossError("keyset file body does not parse");
  }
  return record;
}

absl::StatusOr<std::optional<v1::KeysetRecord>> FileKeysetStore::Load() {
  RemoveStaleTempFiles();
  if (!FileExists(path_)) return std::optional<v1::KeysetRecord>();
  KSH_ASSIGN_OR_RETURN(std::string bytes, ReadPrivateFileBounded(path_, kMaxFileSize));
  auto record = Decode(bytes);
  if (!record.ok()) return Annotate(record.status(), path_);
  return std::optional<v1::KeysetRecord>(std::move(*record));
}

void FileKeysetStore::RemoveStaleTempFiles() const {
  // A crash between WriteFileAtomic's create and rename leaves "<path>.tmp.<pid>"; the real file
  // is intact, so the leftovers are only clutter (they hold wrapped material, never clear keys).
  std::error_code ec;
  std::filesystem::path p(path_);
  std::string prefix = p.filename().string() + ".tmp.";
  for (const auto& entry : std::filesystem::directory_iterator(
           p.has_parent_path() ? p.parent_path() : ".", ec)) {
    if (entry.path().filename().string().rfind(prefix, 0) == 0) {
      std::filesystem::remove(entry.path(), ec);
    }
  }
}

absl::Status FileKeysetStore::Save(const v1::KeysetRecord& record) {
  return WriteFileAtomic(path_, Encode(record), 0600);
}

}  // namespace kshield::keys
