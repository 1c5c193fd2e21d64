// Configuration of the `pkcs11` key provider, parsed from a YAML mapping:
//
//   module: /usr/lib/softhsm/libsofthsm2.so  # required, absolute path of the PKCS#11 library
//   token_label: kshield                     # required; tokens are chosen by label, never slot
//   pin_file: /etc/kshield/hsm-pin           # exactly one of pin_file (mode 0600, ours) ...
//   pin_env: KSHIELD_HSM_PIN                 # ... or pin_env (an environment variable name)
//   master_key_label: kshield-master         # default kshield-master
//   mode: cached                             # cached (default) | direct
//   sessions: 8                              # session pool size, 1..256, default 8
//   timeout: 2s                              # per HSM call, e.g. 500ms, 2s, 1m; default 2s
//
// cached: KEK versions are made by kshield, wrapped by the master key (AES-256-GCM on the token)
//         and held unwrapped in protected memory; DEK wraps are local.
// direct: each KEK version is a non-extractable AES-256 key on the token labelled
//         `<master_key_label>-<keyset_id>-<version>`; every DEK wrap / unwrap is an HSM call.
//
// Unknown keys are errors (a typo must not silently fall back to a default).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/secret.h"

namespace YAML {
class Node;
}

namespace kshield::keys {

enum class Pkcs11Mode { kCached, kDirect };

struct Pkcs11Options {
  std::string module;
  std::string token_label;
  std::string pin_file;  // one of pin_file / pin_env is set
  std::string pin_env;
  std::string master_key_label = "kshield-master";
  Pkcs11Mode mode = Pkcs11Mode::kCached;
  size_t sessions = 8;
  std::chrono::milliseconds timeout{2000};
};

// Fills `out` from `node` (a mapping). Errors name the offending key; `out` is untouched on error.
[[nodiscard]] absl::Status ParsePkcs11Options(const YAML::Node& node, Pkcs11Options* out);
// Convenience for tests and tools: parses YAML text.
[[nodiscard]] absl::Status ParsePkcs11OptionsYaml(const std::string& yaml, Pkcs11Options* out);

// Checks cross-field rules (also applied by ParsePkcs11Options): required fields, exactly one PIN
// source, label lengths.
[[nodiscard]] absl::Status ValidatePkcs11Options(const Pkcs11Options& options);

// Reads the PIN: from `pin_file` (read with ReadPrivateFile: 0600 or stricter, our uid or root,
// symlinks followed to the target, e.g. a Secret volume; one trailing newline is dropped) or from
// the environment variable `pin_env`. Errors never contain the PIN.
absl::StatusOr<SecretBytes> LoadPkcs11Pin(const Pkcs11Options& options);

// "pin_file /path" or "environment variable NAME" — for messages.
std::string DescribePinSource(const Pkcs11Options& options);

std::string_view Pkcs11ModeName(Pkcs11Mode mode);

}  // namespace kshield::keys
