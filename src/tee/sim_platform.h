// The `sim` platform: a simulated SGX machine for hosts without a TEE (tests, development).
//
// What it makes is real-format evidence: SGX quote v3 (ECDSA-P256, certification data type 5)
// signed by a simulated Quoting Enclave whose attestation key is certified through a simulated
// PCK chain (leaf CN "kshield Simulated SGX PCK Certificate" → "kshield Simulated SGX PCK
// Processor CA" → "kshield Simulated SGX Root CA"). quote::VerifyQuote accepts these quotes only
// when the simulated root is pinned (RootCaPem()); under Intel's root they fail.
//
// Identity:
//   MRENCLAVE = SHA-256 of the running executable (/proc/self/exe), or options.sim_mrenclave;
//   MRSIGNER  = SHA-256("kshield-sim-signer:" ‖ identity), identity from options.sim_identity /
//               KSHIELD_TEE_SIM_IDENTITY / "kshield-sim";
//   ISVPRODID 1, ISVSVN 1; DEBUG from options.sim_debug / KSHIELD_TEE_SIM_DEBUG=1.
//
// The simulated machine: a 32-byte secret in <data_dir>/tee-sim.key (0600, created on first use).
// Every simulated key (root CA, PCK CA, PCK leaf, QE attestation key) is derived from it, so the
// same data directory keeps the same root CA across restarts; without a data directory the
// secret is random per process (quotes work, SealingKey() is refused).
// Sealing key = HKDF-SHA256(machine secret, info = "kshield sim sealing key v1" ‖ MRENCLAVE ‖
// MRSIGNER): another binary or another identity gets another key, as SGX MRENCLAVE sealing does.
//
// This protects nothing: anyone who can read tee-sim.key can sign quotes and derive sealing keys.
#pragma once

#include <memory>
#include <string>

#include "tee/platform.h"

namespace kshield::tee {

class SimPlatform final : public Platform {
 public:
  static absl::StatusOr<std::unique_ptr<SimPlatform>> New(const PlatformOptions& options);
  ~SimPlatform() override;

  std::string_view name() const override { return "sim"; }
  absl::StatusOr<SecretBytes> SealingKey() override;
  absl::StatusOr<std::string> Quote(std::string_view report_data) override;

  // The simulated root CA certificate (PEM) a verifier pins to accept this machine's quotes.
  const std::string& RootCaPem() const;
  // Raw 32-byte measurements.
  const std::string& mrenclave() const;
  const std::string& mrsigner() const;

  // Where the machine secret lives under a data directory.
  static std::string SecretPath(const std::string& data_dir) { return data_dir + "/tee-sim.key"; }

  struct State;

 private:
  explicit SimPlatform(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

// SHA-256 of a file's content, streamed (raw 32 bytes).
absl::StatusOr<std::string> Sha256File(const std::string& path);

}  // namespace kshield::tee
