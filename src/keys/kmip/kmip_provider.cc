#include "keys/kmip/kmip_provider.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "common/status.h"
#include "crypto/aead.h"
#include "keys/kmip/kmip_messages.h"

namespace kshield::keys::kmip {
namespace {

constexpr size_t kKekSize = 32;
constexpr size_t kMaxUidSize = 1024;

// The material is the object's Unique Identifier, a KMIP Text String we wrote ourselves; still,
// a corrupted keyset must not smuggle control characters into requests or logs.
absl::Status CheckUid(const KekContext& ctx, std::string_view uid) {
  bool ok = !uid.empty() && uid.size() <= kMaxUidSize;
  for (char c : uid) {
    const auto u = static_cast<unsigned char>(c);
    ok = ok && u >= 0x20 && u != 0x7F;
  }
  if (!ok) {
    return absl::DataLossError(absl::StrCat("KEK version ", ctx.version, " of keyset ",
                                            ctx.keyset_id,
                                            " has no valid KMIP object identifier; was it made by "
                                            "the kmip provider?"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<KmipProvider>> KmipProvider::New(const KmipOptions& options) {
  KSH_RETURN_IF_ERROR(ValidateKmipOptions(options));
  KSH_ASSIGN_OR_RETURN(HostPort hp, ParseEndpoint(options.endpoint));
  KmipClientOptions co;
  co.host = hp.host;
  co.port = hp.port;
  co.ca_file = options.ca_file;
  co.cert_file = options.cert_file;
  co.key_file = options.key_file;
  co.server_name = options.server_name;
  co.timeout = options.timeout;
  KSH_ASSIGN_OR_RETURN(std::unique_ptr<KmipClient> client, KmipClient::New(co));
  return std::unique_ptr<KmipProvider>(new KmipProvider(options, std::move(client)));
}

std::string KmipProvider::ObjectName(const KekContext& ctx) const {
  return absl::StrCat(options_.name_prefix, "-", ctx.keyset_id, "-", ctx.version);
}

absl::StatusOr<std::string> KmipProvider::CreateVersion(const KekContext& ctx) {
  const std::string name = ObjectName(ctx);
  auto existing = client_->LocateByName(name);
  if (!existing.ok()) return Annotate(existing.status(), absl::StrCat("creating KMIP key ", name));
  if (!existing->empty()) {
    log::Warn("kmip.leftover_objects",
              {{"name", name},
               {"unique_identifiers", absl::StrJoin(*existing, ",")},
               {"note", "left by an earlier rotation that was not persisted; not reused"}});
  }
  auto uid = client_->CreateAes256Key(name);
  if (!uid.ok()) return Annotate(uid.status(), absl::StrCat("creating KMIP key ", name));
  absl::Status activated = client_->Activate(*uid);
  if (!activated.ok()) {
    // The object is still Pre-Active and never left this call: remove it so it is not orphaned.
    absl::Status cleanup = client_->Destroy(*uid);
    log::Warn("kmip.activate_failed", {{"name", name},
                                       {"unique_identifier", *uid},
                                       {"cleanup", cleanup.ok() ? std::string("destroyed")
                                                                : std::string(cleanup.message())}});
    return Annotate(activated, absl::StrCat("activating KMIP key ", name, " (", *uid, ")"));
  }
  log::Info("kmip.key_created",
            {{"name", name}, {"unique_identifier", *uid}, {"endpoint", client_->endpoint()}});
  return *std::move(uid);
}

absl::StatusOr<std::shared_ptr<const crypto::Aead>> KmipProvider::OpenVersion(
    const KekContext& ctx, std::string_view material) {
  KSH_RETURN_IF_ERROR(CheckUid(ctx, material));
  auto key = client_->GetSymmetricKey(material, kKekSize);
  if (!key.ok()) {
    return Annotate(key.status(),
                    absl::StrCat("fetching KEK version ", ctx.version, " (KMIP object ",
                                 AV(material), ") from ", client_->endpoint()));
  }
  KSH_ASSIGN_OR_RETURN(auto aead, crypto::AesGcmAead::New(*std::move(key)));
  return std::shared_ptr<const crypto::Aead>(std::move(aead));
}

absl::StatusOr<SecretBytes> KmipProvider::ExportVersion(const KekContext& ctx,
                                                        std::string_view material) {
  KSH_RETURN_IF_ERROR(CheckUid(ctx, material));
  auto key = client_->GetSymmetricKey(material, kKekSize);
  if (!key.ok()) {
    return Annotate(key.status(),
                    absl::StrCat("exporting KEK version ", ctx.version, " (KMIP object ",
                                 AV(material), ") from ", client_->endpoint()));
  }
  return *std::move(key);
}

absl::StatusOr<std::string> KmipProvider::ImportVersion(const KekContext& ctx,
                                                        const SecretBytes& kek) {
  if (kek.size() != kKekSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("KEK version ", ctx.version, " is ", kek.size(), " bytes, want ", kKekSize));
  }
  const std::string name = ObjectName(ctx);
  const std::string where = absl::StrCat("registering restored KEK version ", ctx.version,
                                         " as KMIP key ", name, " on ", client_->endpoint());
  auto existing = client_->LocateByName(name);
  if (!existing.ok()) return Annotate(existing.status(), where);
  if (!existing->empty()) {
    log::Warn("kmip.leftover_objects",
              {{"name", name},
               {"unique_identifiers", absl::StrJoin(*existing, ",")},
               {"note", "an object with this name exists already; not reused"}});
  }
  auto uid = client_->RegisterSymmetricKey(name, kek);
  if (!uid.ok()) return Annotate(uid.status(), where);
  // Until the caller persists the material nothing references the object: on any failure below
  // remove it so it is not orphaned (it is Pre-Active, or Active and never used).
  auto discard = [&](const absl::Status& why) {
    absl::Status revoked = client_->Revoke(*uid);
    absl::Status destroyed = client_->Destroy(*uid);
    log::Warn(
        "kmip.import_failed",
        {{"name", name},
         {"unique_identifier", *uid},
         {"cleanup", destroyed.ok() ? std::string("destroyed") : std::string(destroyed.message())},
         {"revoke", revoked.ok() ? std::string("ok") : std::string(revoked.message())}});
    return Annotate(why, absl::StrCat(where, " (", *uid, ")"));
  };
  absl::Status activated = client_->Activate(*uid);
  if (!activated.ok()) return discard(activated);
  auto back = client_->GetSymmetricKey(*uid, kKekSize);
  if (!back.ok()) return discard(back.status());
  if (!back->Equals(kek)) {
    return discard(absl::InternalError("the KMIP server returned different key bytes"));
  }
  log::Info("kmip.key_registered",
            {{"name", name}, {"unique_identifier", *uid}, {"endpoint", client_->endpoint()}});
  return *std::move(uid);
}

absl::Status KmipProvider::Probe() {
  auto r = client_->LocateByName(absl::StrCat(options_.name_prefix, "-probe"), 1);
  if (!r.ok()) return Annotate(r.status(), absl::StrCat("KMIP server ", client_->endpoint()));
  return absl::OkStatus();
}

absl::Status KmipProvider::DestroyVersion(const KekContext& ctx, std::string_view material) {
  KSH_RETURN_IF_ERROR(CheckUid(ctx, material));
  const std::string where =
      absl::StrCat("destroying KEK version ", ctx.version, " (KMIP object ", AV(material), ")");
  absl::Status revoked = client_->Revoke(material);
  if (revoked.code() == absl::StatusCode::kNotFound) return absl::OkStatus();  // already gone
  // FailedPrecondition (Illegal Operation): not Active — never activated or already revoked.
  if (!revoked.ok() && revoked.code() != absl::StatusCode::kFailedPrecondition) {
    return Annotate(revoked, where);
  }
  absl::Status destroyed = client_->Destroy(material);
  if (!destroyed.ok() && destroyed.code() != absl::StatusCode::kNotFound) {
    return Annotate(destroyed, where);
  }
  log::Info("kmip.key_destroyed", {{"keyset_id", ctx.keyset_id},
                                   {"version", ctx.version},
                                   {"unique_identifier", std::string(material)}});
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<KeyProvider>> NewKmipProvider(const KmipOptions& options) {
  KSH_ASSIGN_OR_RETURN(std::unique_ptr<KmipProvider> p, KmipProvider::New(options));
  return std::unique_ptr<KeyProvider>(std::move(p));
}

}  // namespace kshield::keys::kmip
