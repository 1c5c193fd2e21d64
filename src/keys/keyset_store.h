// Where a keyset record is persisted. FileKeysetStore is used by the local / pkcs11 / kmip /
// static providers; the replicated service stores records in etcd behind the same interface.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "keyset.pb.h"

namespace kshield::keys {

class KeysetStore {
 public:
  virtual ~KeysetStore() = default;
  // nullopt when no keyset was ever saved. A present but unreadable record is an error (never
  // silently replaced by a new keyset: that would orphan every ciphertext).
  virtual absl::StatusOr<std::optional<kshield::keys::v1::KeysetRecord>> Load() = 0;
  // Durable when it returns OK.
  virtual absl::Status Save(const kshield::keys::v1::KeysetRecord& record) = 0;
  virtual std::string Describe() const = 0;
};

// File layout: "KSHKEYS1" | uint32-BE length | KeysetRecord protobuf | SHA-256 of all before.
// Written with WriteFileAtomic (temp, fsync, rename, fsync dir), mode 0600.
class FileKeysetStore final : public KeysetStore {
 public:
  explicit FileKeysetStore(std::string path) : path_(std::move(path)) {}
  absl::StatusOr<std::optional<kshield::keys::v1::KeysetRecord>> Load() override;
  absl::Status Save(const kshield::keys::v1::KeysetRecord& record) override;
  std::string Describe() const override { return "file " + path_; }

  // Exposed for tests and the fuzz target.
  static std::string Encode(const kshield::keys::v1::KeysetRecord& record);
  static absl::StatusOr<kshield::keys::v1::KeysetRecord> Decode(std::string_view bytes);

 private:
  void RemoveStaleTempFiles() const;
  std::string path_;
};

}  // namespace kshield::keys
