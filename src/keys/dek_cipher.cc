#include "keys/dek_cipher.h"

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "crypto/aead.h"
#include "keys/key_id.h"

namespace kshield::keys {

absl::StatusOr<Wrapped> DekCipher::Wrap(std::string_view dek, WrapFormat format) const {
  if (dek.empty()) return absl::InvalidArgumentError("plaintext is empty");
  if (dek.size() > kMaxDekSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("plaintext is ", dek.size(), " bytes; at most ", kMaxDekSize, " allowed"));
  }
  std::shared_ptr<const Keyset> ks = manager_->Current();
  const KeyVersion& primary = ks->primary();
  std::string header = BuildWrappedDekHeader(format, primary.version);
  KSH_ASSIGN_OR_RETURN(std::string body,
                       primary.kek->Encrypt(dek, WrappedDekAad(header, primary.key_id)));
  Wrapped out;
  out.ciphertext.reserve(header.size() + body.size());
  out.ciphertext.append(header);
  out.ciphertext.append(body);
  out.key_id = primary.key_id;
  return out;
}

absl::StatusOr<std::string> DekCipher::Unwrap(std::string_view ciphertext,
                                              std::optional<std::string_view> key_id,
                                              WrapFormat format, std::string_view* reason) const {
  auto fail = [&](std::string_view why, absl::Status status) -> absl::Status {
    if (reason != nullptr) *reason = why;
    return status;
  };
  const absl::Status auth_failed = absl::InvalidArgumentError(AV(crypto::kAuthFailed));
  std::shared_ptr<const Keyset> ks = manager_->Current();

  // Public facts first: a key_id we never issued gets a clear answer.
  std::optional<KeyId> claimed;
  if (key_id.has_value()) {
    if (key_id->empty()) {
      return fail("malformed_key_id", absl::InvalidArgumentError("key_id is required"));
    }
    auto parsed = ParseKeyId(*key_id);
    if (!parsed.ok()) return fail("malformed_key_id", parsed.status());
    if (parsed->keyset_id != ks->keyset_id()) {
      return fail("other_keyset",
                  absl::InvalidArgumentError(absl::StrCat(
                      "key_id ", AV(*key_id), " belongs to keyset ", parsed->keyset_id,
                      ", not to keyset ", ks->keyset_id(), " served by this plugin")));
    }
    claimed = std::move(*parsed);
  }

  ParseError perr;
  auto wrapped = ParseWrappedDek(ciphertext, &perr);
  if (!wrapped.ok()) return fail(ParseErrorName(perr), auth_failed);
  if (wrapped->format != format) return fail("wrong_api", auth_failed);
  if (claimed.has_value() && claimed->version != wrapped->version) {
    return fail("key_id_mismatch", auth_failed);
  }

  const KeyVersion* kv = ks->Find(wrapped->version);
  if (kv == nullptr) {
    return fail("unknown_version",
                absl::NotFoundError(absl::StrCat("key version ", wrapped->version,
                                                 " is unknown to keyset ", ks->keyset_id())));
  }
  if (kv->state == KeyState::kRetired || kv->kek == nullptr) {
    return fail("retired", absl::FailedPreconditionError(
                               absl::StrCat("key ", kv->key_id, " is retired")));
  }
  auto plain = kv->kek->Decrypt(wrapped->body, WrappedDekAad(wrapped->header, kv->key_id));
  if (!plain.ok()) {
    // Direct (per-call) providers can fail for reasons other than authentication; keep their
    // code (UNAVAILABLE, DEADLINE_EXCEEDED) so the apiserver retries, but never their detail.
    if (plain.status().code() == absl::StatusCode::kUnavailable ||
        plain.status().code() == absl::StatusCode::kDeadlineExceeded) {
      return fail("provider_unavailable", plain.status());
    }
    return fail("auth", auth_failed);
  }
  return plain;
}

}  // namespace kshield::keys
