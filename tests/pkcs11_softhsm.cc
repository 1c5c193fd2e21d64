#include "pkcs11_softhsm.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "support/process.h"

namespace kshield::testing {
namespace {

const char kSoPin[] = "so-pin-5678";

bool Executable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

}  // namespace

std::string SoftHsm::MissingTools(bool need_pkcs11_tool) {
  if (access(kSoftHsmModule, R_OK) != 0) return "SoftHSM2 module not installed (softhsm2)";
  if (!Executable("/usr/bin/softhsm2-util")) return "softhsm2-util not installed (softhsm2)";
  if (need_pkcs11_tool && !Executable("/usr/bin/pkcs11-tool")) {
    return "pkcs11-tool not installed (opensc)";
  }
  return "";
}

SoftHsm::SoftHsm() {
  tokens_ = tmp_.Sub("tokens");
  away_ = tmp_.Sub("away");
  conf_ = tmp_.Sub("softhsm2.conf");
  std::filesystem::create_directories(tokens_);
  std::filesystem::create_directories(away_);
  std::ofstream(conf_) << "directories.tokendir = " << tokens_ << "\n"
                       << "objectstore.backend = file\n"
                       << "log.level = ERROR\n"
                       << "slots.removable = false\n";
  setenv("SOFTHSM2_CONF", conf_.c_str(), 1);
}

absl::Status SoftHsm::Run(const std::string& command, std::string* output) {
  std::string out;
  int rc = RunCommand("SOFTHSM2_CONF=" + conf_ + " " + command, &out);
  if (output != nullptr) *output = out;
  if (rc != 0) {
    return absl::InternalError("command failed (rc " + std::to_string(rc) + "): " + command + "\n" +
                               out);
  }
  return absl::OkStatus();
}

absl::Status SoftHsm::InitToken(const std::string& label, const std::string& pin) {
  return Run("/usr/bin/softhsm2-util --init-token --free --label '" + label + "' --so-pin " +
             kSoPin + " --pin '" + pin + "'");
}

absl::Status SoftHsm::KeygenWithPkcs11Tool(const std::string& token_label, const std::string& pin,
                                           const std::string& key_label) {
  return Run(std::string("/usr/bin/pkcs11-tool --module ") + kSoftHsmModule + " --token-label '" +
             token_label + "' --login --pin '" + pin + "' --keygen --key-type AES:32 --label '" +
             key_label + "'");
}

absl::Status SoftHsm::DeleteKeyWithPkcs11Tool(const std::string& token_label,
                                              const std::string& pin,
                                              const std::string& key_label) {
  return Run(std::string("/usr/bin/pkcs11-tool --module ") + kSoftHsmModule + " --token-label '" +
             token_label + "' --login --pin '" + pin +
             "' --delete-object --type secrkey --label '" + key_label + "'");
}

std::string SoftHsm::ListObjects(const std::string& token_label, const std::string& pin) {
  std::string out;
  Run(std::string("/usr/bin/pkcs11-tool --module ") + kSoftHsmModule + " --token-label '" +
          token_label + "' --login --pin '" + pin + "' --list-objects",
      &out)
      .IgnoreError();
  return out;
}

std::string SoftHsm::WritePinFile(const std::string& pin, mode_t mode) {
  std::string path = tmp_.Sub("pin" + std::to_string(++pin_files_));
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd >= 0) {
    std::string text = pin + "\n";
    ssize_t n = write(fd, text.data(), text.size());
    (void)n;
    fchmod(fd, mode);
    close(fd);
  }
  return path;
}

absl::Status SoftHsm::MoveTokensAway() {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(tokens_, ec)) {
    std::filesystem::rename(e.path(), away_ + "/" + e.path().filename().string(), ec);
    if (ec) return absl::InternalError("moving token away: " + ec.message());
  }
  return ec ? absl::InternalError(ec.message()) : absl::OkStatus();
}

absl::Status SoftHsm::MoveTokensBack() {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(away_, ec)) {
    std::filesystem::rename(e.path(), tokens_ + "/" + e.path().filename().string(), ec);
    if (ec) return absl::InternalError("moving token back: " + ec.message());
  }
  return ec ? absl::InternalError(ec.message()) : absl::OkStatus();
}

keys::Pkcs11Options SoftHsm::Options(const std::string& token_label, const std::string& pin_file,
                                     keys::Pkcs11Mode mode) const {
  keys::Pkcs11Options o;
  o.module = kSoftHsmModule;
  o.token_label = token_label;
  o.pin_file = pin_file;
  o.master_key_label = "kshield-master";
  o.mode = mode;
  o.sessions = 4;
  o.timeout = std::chrono::milliseconds(2000);
  return o;
}

}  // namespace kshield::testing
