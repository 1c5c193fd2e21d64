// Test support: a private SoftHSM2 instance in a temp dir.
//
//   SoftHsm hsm;                                   // temp dir, softhsm2.conf, sets SOFTHSM2_CONF
//   ASSERT_TRUE(hsm.InitToken("kshield", kPin).ok());
//   ASSERT_TRUE(hsm.KeygenWithPkcs11Tool("kshield", kPin, "kshield-master").ok());
//   keys::Pkcs11Options o = hsm.Options("kshield", hsm.WritePinFile(kPin));
//
// SoftHSM reads SOFTHSM2_CONF in C_Initialize, so each SoftHsm must be used by providers created
// after it and destroyed before the next one (the provider's module is finalised when the last
// provider using it goes away). Under ctest every test case runs in its own process anyway.
#pragma once

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "common/testing/temp_dir.h"
#include "keys/pkcs11/options.h"

namespace kshield::testing {

inline constexpr char kSoftHsmModule[] = "/usr/lib/softhsm/libsofthsm2.so";

class SoftHsm {
 public:
  // Empty when SoftHSM2 (module + softhsm2-util) and, if asked, opensc's pkcs11-tool are installed;
  // otherwise a reason for GTEST_SKIP.
  static std::string MissingTools(bool need_pkcs11_tool = true);

  SoftHsm();
  SoftHsm(const SoftHsm&) = delete;
  SoftHsm& operator=(const SoftHsm&) = delete;

  const std::string& dir() const { return tmp_.path(); }
  const std::string& conf() const { return conf_; }

  // softhsm2-util --init-token --free --label <label> --so-pin ... --pin <pin>
  absl::Status InitToken(const std::string& label, const std::string& pin);
  // pkcs11-tool --keygen --key-type AES:32 --label <key_label> (opensc, a standard tool).
  absl::Status KeygenWithPkcs11Tool(const std::string& token_label, const std::string& pin,
                                    const std::string& key_label);
  // pkcs11-tool --delete-object --type secrkey --label <key_label>
  absl::Status DeleteKeyWithPkcs11Tool(const std::string& token_label, const std::string& pin,
                                       const std::string& key_label);
  // pkcs11-tool --list-objects output (after login).
  std::string ListObjects(const std::string& token_label, const std::string& pin);

  // Writes `pin` (with a trailing newline) to a new file with `mode`; returns its path.
  std::string WritePinFile(const std::string& pin, mode_t mode = 0600);

  // Moves every token directory out of the token dir (the token "is unplugged") and back.
  absl::Status MoveTokensAway();
  absl::Status MoveTokensBack();

  keys::Pkcs11Options Options(const std::string& token_label, const std::string& pin_file,
                              keys::Pkcs11Mode mode = keys::Pkcs11Mode::kCached) const;

 private:
  absl::Status Run(const std::string& command, std::string* output = nullptr);
  TempDir tmp_;
  std::string conf_;
  std::string tokens_;
  std::string away_;
  int pin_files_ = 0;
};

}  // namespace kshield::testing
