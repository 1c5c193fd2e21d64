// DekCipher — wraps and unwraps the apiserver's DEKs / seeds with the keyset's KEKs, in kshield's
// wrapped-DEK format (keys/wrapped_dek.h). Shared by KMS v2, v1beta1, and (later) keyd.
//
//   DekCipher cipher(&manager);
//   KSH_ASSIGN_OR_RETURN(Wrapped w, cipher.Wrap(dek, WrapFormat::kKmsV2));
//   KSH_ASSIGN_OR_RETURN(std::string dek2, cipher.Unwrap(w.ciphertext, w.key_id,
//                                                         WrapFormat::kKmsV2, &reason));
//
// Error contract (no decryption oracle, but clear errors about public facts):
//  - a key_id from another keyset, an unknown or retired version: a specific message (key ids and
//    versions are public);
//  - anything wrong with the ciphertext bytes (size, magic, format, version/key_id mismatch, tag):
//    InvalidArgument("authentication failed"); `reason` says which, for metrics only.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "keys/keyset_manager.h"
#include "keys/wrapped_dek.h"

namespace kshield::keys {

struct Wrapped {
  std::string ciphertext;
  std::string key_id;
};

class DekCipher {
 public:
  explicit DekCipher(const KeysetManager* manager) : manager_(manager) {}

  // `dek` must be 1..kMaxDekSize bytes.
  absl::StatusOr<Wrapped> Wrap(std::string_view dek, WrapFormat format) const;

  // `key_id`: the one the caller claims (v2), or nullopt (v1beta1: the header names the version).
  // `reason` (optional) receives a fixed metric label on failure: too_short, too_long, bad_magic,
  // bad_format, bad_version, wrong_api, key_id_mismatch, other_keyset, unknown_version, retired,
  // malformed_key_id, auth.
  absl::StatusOr<std::string> Unwrap(std::string_view ciphertext,
                                     std::optional<std::string_view> key_id, WrapFormat format,
                                     std::string_view* reason = nullptr) const;

 private:
  const KeysetManager* manager_;
};

}  // namespace kshield::keys
