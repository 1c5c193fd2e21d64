// X.509 and ECDSA helpers shared by the quote and collateral verifiers (OpenSSL 3, EVP only).
//
// Every OpenSSL object lives in a std::unique_ptr with its deleter. A chain is only ever anchored
// at the root the caller pins: self-signed certificates shipped inside a quote or a collateral
// chain are dropped before chain building, so they can never act as a trust anchor.
#pragma once

#include <openssl/types.h>
#include <openssl/x509.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kshield::tee::quote {

struct X509Deleter {
  void operator()(X509* p) const { X509_free(p); }
};
struct X509CrlDeleter {
  void operator()(X509_CRL* p) const { X509_CRL_free(p); }
};
struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using X509CrlPtr = std::unique_ptr<X509_CRL, X509CrlDeleter>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;

// At most this many certificates are read from one PEM chain.
inline constexpr size_t kMaxChainCertificates = 8;

// Parses one PEM certificate (the pinned root, typically).
absl::StatusOr<X509Ptr> ParsePemCertificate(std::string_view pem);
// Parses a concatenated PEM chain, leaf first; trailing NUL bytes are ignored. At least one and
// at most kMaxChainCertificates certificates.
absl::StatusOr<std::vector<X509Ptr>> ParsePemChain(std::string_view pem);
// Parses a DER CRL.
absl::StatusOr<X509CrlPtr> ParseDerCrl(std::string_view der);

// Verifies that chain[0] chains through chain[1..] to `root` at time `at` (validity windows of
// every certificate). With CRLs, every certificate's issuer must have a current CRL among them
// (validity window checked at `at`) and no certificate may be revoked. The error names the
// certificate (depth and subject) and OpenSSL's reason.
[[nodiscard]] absl::Status VerifyChain(const std::vector<X509Ptr>& chain, X509* root,
                                       const std::vector<X509_CRL*>& crls, absl::Time at);

// An ECDSA P-256 public key from its raw x ‖ y encoding (64 bytes); refuses points off the curve.
absl::StatusOr<EvpPkeyPtr> P256KeyFromRaw(std::string_view xy);

// Verifies an ECDSA-P256-SHA256 signature given as raw r ‖ s (64 bytes) over `data`.
[[nodiscard]] bool VerifyEcdsaP256Sha256(EVP_PKEY* key, std::string_view data,
                                         std::string_view raw_signature);

// The certificate subject's CN ("" when absent), and the one-line subject for messages.
std::string SubjectCommonName(X509* cert);
std::string SubjectOneLine(X509* cert);

// RFC 3339 ("2025-07-19T10:56:11Z") formatting for messages.
std::string Rfc3339(absl::Time t);

}  // namespace kshield::tee::quote
