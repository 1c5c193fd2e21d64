// `kshieldctl attest verify|quote` (issue 5 §6).
//
//   kshieldctl attest verify FILE [--collateral FILE] [--policy FILE] [--at RFC3339]
//                                 [--root PEM] [-o json]
//     FILE: a raw DCAP quote (binary, or hex / base64 text) or an RA-TLS certificate (PEM or DER;
//     evidence in 2.23.133.5.4.9 or Gramine's legacy 1.2.840.113741.1337.6, bound to the
//     certificate's key). Prints the parsed fields and the verdict; JSON keys: tee_type, version,
//     mrenclave, mrsigner, isv_prod_id, isv_svn, debug, mrtd, rtmr, report_data, signature_valid,
//     chain_valid, tcb_status, advisories, policy_ok (null without --policy), errors.
//     --root defaults to /etc/kshield/intel_sgx_root_ca.pem when that file exists.
//     Exit 0 only when verification (and the policy, if given) passed; 1 when it did not;
//     2 for usage errors (unreadable files, no pinned root, bad --at).
//
//   kshieldctl attest quote --report-data HEX [--tee auto|none|sim|gramine|occlum|tsm]
//                           [--data-dir DIR] [--encoding hex|base64] [--out FILE]
//                           [--root-out FILE]
//     Prints this platform's evidence over REPORTDATA (HEX: up to 64 bytes, zero-padded on the
//     right). --data-dir is the platform's data directory (`sim`: where its machine secret lives,
//     so the quote comes from the same simulated machine as a server using that directory);
//     --root-out writes the `sim` platform's root CA (PEM) for `attest verify --root`.
//
// Wiring (kshieldctl_main.cc): before app.parse(),
//   int attest_exit = -1;
//   kshield::cmd::AddAttestCommands(app, &format, &attest_exit);
// and right after a successful parse:
//   if (attest_exit >= 0) return attest_exit;
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace kshield::cmd {

// Registers the `attest` subcommand tree on `app`. `output_format` points at the global
// -o/--output value ("table" | "json" | "yaml"), read when the command runs; `exit_code` is set
// (>= 0) when an attest command ran.
void AddAttestCommands(CLI::App& app, const std::string* output_format, int* exit_code);

}  // namespace kshield::cmd
