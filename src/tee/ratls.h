// RA-TLS: a TLS identity whose certificate proves which enclave holds its private key.
//
// Making one (inside the platform): a fresh P-256 key; claims {"pubkey-hash": SHA-256 of the
// certificate's SubjectPublicKeyInfo}; a quote whose REPORTDATA = SHA-256(claims) ‖ 0^32; a
// self-signed X.509 certificate carrying tag 60000 [quote, claims] in the TCG DICE
// tagged-evidence extension 2.23.133.5.4.9 (ratls_evidence.h). The private key never leaves the
// process.
//
// Verifying a peer: extract the evidence (DICE, or Gramine's legacy extension), check that it
// binds the certificate's key, then quote::VerifyQuote to the pinned root and quote::CheckPolicy.
//
//   KSH_ASSIGN_OR_RETURN(RaTlsIdentity id, MakeRaTlsIdentity(*platform, "kshield-keyd"));
//   RaTlsVerifier verifier({.root_pem = sim_or_intel_root, .policy = policy});
//   absl::Status s = verifier.VerifyPem(peer_cert_pem);
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/secret.h"
#include "tee/platform.h"
#include "tee/quote/collateral.h"
#include "tee/quote/policy.h"
#include "tee/quote/verify.h"

namespace kshield::tee {

struct RaTlsIdentity {
  SecretBytes private_key_pem;  // PKCS#8 PEM; hand to TLS stacks only
  std::string certificate_pem;
  std::string certificate_der;
};

struct RaTlsOptions {
  std::string common_name = "kshield RA-TLS";
  absl::Duration validity = absl::Hours(24);
  // Also (or only) write Gramine's legacy extension — for interoperability tests.
  bool legacy_extension = false;
  bool dice_extension = true;
};

absl::StatusOr<RaTlsIdentity> MakeRaTlsIdentity(Platform& platform,
                                                const RaTlsOptions& options = {});

struct RaTlsVerifyOptions {
  std::string root_pem;  // pinned attestation root (Intel's, or the sim platform's)
  std::optional<quote::Policy> policy;  // unset: any verified quote (tests / `kshieldctl` only)
  const quote::Collateral* collateral = nullptr;
  std::optional<absl::Time> at;
};

struct RaTlsVerdict {
  quote::VerifiedQuote quote;  // what the evidence says (fields filled when the quote parsed)
  bool binding_ok = false;
  absl::Status status;  // OK only when binding, quote and policy all passed
};

// Verifies a peer's RA-TLS certificate (its own validity window is not what is trusted: the
// quote is). Never throws; every refusal is in `status` (PermissionDenied with the reason).
RaTlsVerdict VerifyRaTlsCertificate(X509* cert, const RaTlsVerifyOptions& options);
RaTlsVerdict VerifyRaTlsCertificatePem(std::string_view pem, const RaTlsVerifyOptions& options);

}  // namespace kshield::tee
