// X.509 helpers for kshield's own PKI: the kshield-kubectl local CA, the relay's cluster CAs,
// CSRs made in daemon memory, and the test apiserver's certificates. OpenSSL 3, EVP only.
//
// Keys are ECDSA P-256; private keys exist only as PKCS#8 PEM inside SecretBytes (hand them to a
// TLS stack with UnsafeView(), never log them). Certificates and CSRs are plain PEM strings.
//
//   KSH_ASSIGN_OR_RETURN(CertificateAuthority ca,
//                        MakeSelfSignedCa({.common_name = "kshield local CA",
//                                          .validity = absl::Hours(24)}));
//   KSH_ASSIGN_OR_RETURN(KeyPair kp, GenerateEcP256Key());
//   KSH_ASSIGN_OR_RETURN(std::string cert,
//       IssueCertificate(ca, kp.public_key_pem,
//                        {.common_name = "127.0.0.1", .ip_addresses = {"127.0.0.1"},
//                         .server_auth = true, .validity = absl::Hours(24)}));
//
// Parsers of untrusted input (ParseCertificate, ParseAndVerifyCsr) never throw or assert; every
// refusal is an InvalidArgument / PermissionDenied status with a reason and no key bytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/secret.h"

namespace kshield::crypto {

struct KeyPair {
  SecretBytes private_key_pem;  // PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----")
  std::string public_key_pem;   // SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----")
};

// A fresh ECDSA P-256 key pair.
absl::StatusOr<KeyPair> GenerateEcP256Key();

struct CertSpec {
  std::string common_name;
  std::vector<std::string> organizations;  // subject O= entries, in order (Kubernetes groups)
  absl::Duration validity = absl::Hours(24);
  // notBefore = now - backdate (tolerates clock skew between hosts).
  absl::Duration backdate = absl::Minutes(5);
  std::vector<std::string> dns_names;     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries (v4 or v6 text)
  bool is_ca = false;                     // basicConstraints CA:TRUE, keyCertSign | cRLSign
  int path_len = -1;                      // CA only: pathLenConstraint, -1 = none
  bool server_auth = false;               // extendedKeyUsage serverAuth
  bool client_auth = false;               // extendedKeyUsage clientAuth
};

struct CertificateAuthority {
  SecretBytes private_key_pem;
  std::string certificate_pem;
};

// A new self-signed CA (its key is generated here). `spec.is_ca` is forced on.
absl::StatusOr<CertificateAuthority> MakeSelfSignedCa(const CertSpec& spec);

// A certificate for `subject_public_key_pem`, signed by `issuer`. A random 128-bit serial;
// notAfter is clamped to the issuer's notAfter. For an intermediate CA set spec.is_ca.
absl::StatusOr<std::string> IssueCertificate(const CertificateAuthority& issuer,
                                             std::string_view subject_public_key_pem,
                                             const CertSpec& spec);

// An intermediate CA: key generated here, certificate signed by `parent`.
absl::StatusOr<CertificateAuthority> MakeIntermediateCa(const CertificateAuthority& parent,
                                                        const CertSpec& spec);

// A PKCS#10 CSR (subject CN / O), signed with `private_key_pem`.
absl::StatusOr<std::string> MakeCsr(const SecretBytes& private_key_pem,
                                    std::string_view common_name,
                                    const std::vector<std::string>& organizations);

struct CsrInfo {
  std::string public_key_pem;
  std::string common_name;
  std::vector<std::string> organizations;
};

// Parses a PEM CSR from outside and checks its self-signature. Refuses anything that is not
// exactly one PEM CSR, keys other than EC P-256/P-384 or RSA ≥ 2048, and oversized input.
absl::StatusOr<CsrInfo> ParseAndVerifyCsr(std::string_view csr_pem);

struct CertInfo {
  std::string common_name;
  std::vector<std::string> organizations;
  std::string issuer_common_name;
  absl::Time not_before;
  absl::Time not_after;
  bool is_ca = false;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  std::string public_key_pem;
  std::string sha256_fingerprint_hex;  // of the DER certificate, lower-case hex
};

// Parses the first certificate of a PEM string (fields only; no trust decision).
absl::StatusOr<CertInfo> ParseCertificate(std::string_view pem);

// Every certificate of a PEM bundle (at most 16), each re-encoded as its own PEM block.
absl::StatusOr<std::vector<std::string>> SplitPemCertificates(std::string_view pem_bundle);

// Verifies `leaf_pem` up to the single trust anchor `root_pem`, through `intermediates_pem`
// (zero or more PEM certificates), at time `at`. Self-signed certificates among the
// intermediates are never used as anchors. `purpose`: "" (any), "client" or "server".
absl::Status VerifyCertificateChain(std::string_view leaf_pem, std::string_view intermediates_pem,
                                    std::string_view root_pem, absl::Time at,
                                    std::string_view purpose = "");

// True when `private_key_pem` is the private half of `public_key_pem`.
bool KeyMatchesPublicKey(const SecretBytes& private_key_pem, std::string_view public_key_pem);

}  // namespace kshield::crypto
