// The `kmip` key provider: KEK versions are AES-256 Symmetric Keys held by a KMIP server.
//
//   KSH_ASSIGN_OR_RETURN(KmipOptions o, ParseKmipOptionsYaml(yaml));
//   KSH_ASSIGN_OR_RETURN(std::unique_ptr<KeyProvider> p, NewKmipProvider(o));
//   KeysetManager mgr(std::make_unique<FileKeysetStore>(path), std::move(p));
//
//  - CreateVersion: KMIP Create (AES-256, usage Encrypt|Decrypt, Name
//    "<name_prefix>-<keyset_id>-<version>") then Activate. The persisted material is the
//    object's Unique Identifier. An object left over under the same name (a rotation that failed
//    before its version was persisted) is reported in a warning, never reused or destroyed: in
//    a replicated deployment it could belong to a peer.
//  - OpenVersion: one KMIP Get; the key goes into protected memory and every DEK wrap / unwrap is
//    then local AES-256-GCM (the seed's SecretKeyName:SecretKeyVersion -> SecretKeyData cache:
//    KeysetManager opens each version once and keeps it).
//  - Probe: a KMIP Locate by a name that matches nothing — a real round trip through the
//    server's object store, bounded by `timeout`; it fails while the server is down and passes
//    again, with the same provider, once it is back.
//  - DestroyVersion: Revoke (Cessation of Operation) then Destroy; an object already gone, or
//    never activated, is fine.
//  - ExportVersion (backups): one KMIP Get, as OpenVersion; the raw key is returned.
//  - ImportVersion (restore from a backup): KMIP Register of the KEK as an AES-256 Symmetric Key
//    named like CreateVersion's, then Activate, then a Get that must return the same bytes; the
//    material is the new object's Unique Identifier. (Register needs the server to accept
//    client-supplied key material; PyKMIP 0.10 does. A server that refuses answers with a KMIP
//    error that is passed on.)
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "keys/kmip/kmip_client.h"
#include "keys/kmip/kmip_options.h"
#include "keys/provider.h"

namespace kshield::keys::kmip {

class KmipProvider final : public KeyProvider {
 public:
  // Validates `options` and loads the TLS material; does not contact the server.
  static absl::StatusOr<std::unique_ptr<KmipProvider>> New(const KmipOptions& options);

  std::string_view name() const override { return "kmip"; }
  absl::StatusOr<std::string> CreateVersion(const KekContext& ctx) override;
  absl::StatusOr<std::shared_ptr<const crypto::Aead>> OpenVersion(
      const KekContext& ctx, std::string_view material) override;
  absl::Status Probe() override;
  absl::Status DestroyVersion(const KekContext& ctx, std::string_view material) override;
  absl::StatusOr<SecretBytes> ExportVersion(const KekContext& ctx,
                                            std::string_view material) override;
  absl::StatusOr<std::string> ImportVersion(const KekContext& ctx, const SecretBytes& kek) override;

  // "<name_prefix>-<keyset_id>-<version>".
  std::string ObjectName(const KekContext& ctx) const;
  // For metrics and tests (e.g. Gets per version).
  KmipClientStats stats() const { return client_->stats(); }
  const std::string& endpoint() const { return client_->endpoint(); }

 private:
  KmipProvider(KmipOptions options, std::unique_ptr<KmipClient> client)
      : options_(std::move(options)), client_(std::move(client)) {}
  KmipOptions options_;
  std::unique_ptr<KmipClient> client_;
};

absl::StatusOr<std::unique_ptr<KeyProvider>> NewKmipProvider(const KmipOptions& options);

}  // namespace kshield::keys::kmip
