// The `pkcs11` key provider: the root of trust is a key on a PKCS#11 token (HSM, SoftHSM, cloud
// HSM client library), chosen by token label. See options.h for configuration.
//
//   Pkcs11Options o;
//   KSH_RETURN_IF_ERROR(ParsePkcs11Options(yaml_node, &o));
//   KSH_ASSIGN_OR_RETURN(std::unique_ptr<KeyProvider> provider, NewPkcs11Provider(o));
//   KeysetManager mgr(std::make_unique<FileKeysetStore>(path), std::move(provider));
//
// cached mode (default). Needs an AES key labelled `master_key_label` on the token, usable for
// CKA_ENCRYPT / CKA_DECRYPT with CKM_AES_GCM; the operator creates it once, e.g.
//   pkcs11-tool --module <module> --token-label <token> --login --keygen --key-type AES:32
//               --label kshield-master
//   CreateVersion: 32 random bytes in protected memory, encrypted on the token with the master key
//     (CKM_AES_GCM, 12-byte IV from us, 128-bit tag,
//     AAD "kshield/pkcs11/kek/v1:<keyset_id>:<version>" so material cannot be moved between
//     versions or keysets), checked by decrypting it once.
//     material = "P11C1" || IV(12) || ciphertext(32) || tag(16).
//   OpenVersion: one C_Decrypt into SecretBytes; returns a local AES-256-GCM Aead. DEK wraps and
//     unwraps never touch the token, so they keep working while it is away.
//   GCM rather than CKM_AES_KEY_WRAP_PAD: the AAD binds keyset and version, and direct mode needs
//   the same mechanism, so one capability covers both.
//
// direct mode. CreateVersion generates a token AES-256 key (C_GenerateKey, CKA_TOKEN,
//   CKA_SENSITIVE, non-extractable) labelled `<master_key_label>-<keyset_id>-<version>` with a
//   random 16-byte CKA_ID; material = "P11D1" || CKA_ID(16) || label. (The CKA_ID makes a key left
//   behind by a rotation that failed before it was persisted harmless: it is never referenced.)
//   OpenVersion returns an Aead whose every Encrypt / Decrypt is a CKM_AES_GCM call on the token
//   (random 12-byte IV from us, 128-bit tag, AAD as given); output nonce || ciphertext || tag,
//   like crypto::AesGcmAead. Decrypt failures are InvalidArgument("authentication failed") while
//   the token is healthy (SoftHSM 2.6 reports a bad tag as CKR_GENERAL_ERROR), UNAVAILABLE when
//   the session / token / device is gone or the call misses its deadline.
//
// Backups (keys/backup.h): ExportVersion of cached-mode material is one C_Decrypt with the
// master key (the KEK exists outside the token in cached mode anyway); ImportVersion in cached
// mode wraps the given KEK exactly as CreateVersion wraps a new one. Direct mode refuses both
// with FailedPrecondition ("pkcs11 direct mode keys are non-extractable").
//
// Probe() makes real calls on a session: C_GetTokenInfo and an uncached lookup of the master key
// (cached mode) or a canary encryption with the newest opened version (direct mode). A token that
// comes back is picked up by the next call or probe, without restart.
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "keys/pkcs11/options.h"
#include "keys/provider.h"

namespace kshield::keys {

// Loads the module, finds the token, reads the PIN and logs in; in cached mode also checks that
// the master key exists (error names the label and the pkcs11-tool command to create it).
absl::StatusOr<std::unique_ptr<KeyProvider>> NewPkcs11Provider(const Pkcs11Options& options);

}  // namespace kshield::keys
