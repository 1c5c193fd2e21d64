#include "keys/pkcs11/options.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/duration.h"
#include "common/file_util.h"
#include "common/status.h"
#include "openssl/crypto.h"

namespace kshield::keys {
namespace {

constexpr size_t kMaxTokenLabel = 32;  // CK_TOKEN_INFO.label
constexpr size_t kMaxObjectLabel = 128;
constexpr size_t kMaxSessions = 256;
constexpr size_t kMaxPinSize = 256;
constexpr std::chrono::milliseconds kMinTimeout{10};
constexpr std::chrono::milliseconds kMaxTimeout{300000};

absl::Status KeyError(std::string_view key, std::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("pkcs11 option \"", AV(key), "\": ", AV(what)));
}

absl::StatusOr<std::chrono::milliseconds> ParseTimeout(std::string_view key, std::string_view s) {
  const std::string field = absl::StrCat("pkcs11 option \"", AV(key), "\"");
  KSH_ASSIGN_OR_RETURN(absl::Duration d, ParseDuration(s, {.field = field,
                                                           .min = absl::FromChrono(kMinTimeout),
                                                           .max = absl::FromChrono(kMaxTimeout),
                                                           .allow_bare_number = true,  // seconds
                                                           .bare_number_unit = absl::Seconds(1)}));
  return absl::ToChronoMilliseconds(d);
}

absl::Status ParseNode(const YAML::Node& node, Pkcs11Options* out) {
  if (!node.IsDefined() || node.IsNull()) {
    return absl::InvalidArgumentError("pkcs11 options are missing");
  }
  if (!node.IsMap()) return absl::InvalidArgumentError("pkcs11 options must be a YAML mapping");
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) return absl::InvalidArgumentError("pkcs11 options: non-scalar key");
    const std::string key = kv.first.Scalar();
    const YAML::Node& v = kv.second;
    if (!v.IsScalar()) return KeyError(key, "must be a scalar");
    const std::string s = v.Scalar();
    if (key == "module") {
      out->module = s;
    } else if (key == "token_label") {
      out->token_label = s;
    } else if (key == "pin_file") {
      out->pin_file = s;
    } else if (key == "pin_env") {
      out->pin_env = s;
    } else if (key == "master_key_label") {
      out->master_key_label = s;
    } else if (key == "mode") {
      if (s == "cached") {
        out->mode = Pkcs11Mode::kCached;
      } else if (s == "direct") {
        out->mode = Pkcs11Mode::kDirect;
      } else {
        return KeyError(key, absl::StrCat("must be cached or direct, got \"", s, "\""));
      }
    } else if (key == "sessions") {
      uint64_t n = 0;
      if (!absl::SimpleAtoi(AV(s), &n) || n < 1 || n > kMaxSessions) {
        return KeyError(
            key, absl::StrCat("must be an integer from 1 to ", kMaxSessions, ", got \"", s, "\""));
      }
      out->sessions = n;
    } else if (key == "timeout") {
      KSH_ASSIGN_OR_RETURN(out->timeout, ParseTimeout(key, s));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown pkcs11 option \"", key,
          "\" (known: module, token_label, pin_file, pin_env, master_key_label, mode, sessions, "
          "timeout)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view Pkcs11ModeName(Pkcs11Mode mode) {
  return mode == Pkcs11Mode::kDirect ? "direct" : "cached";
}

absl::Status ValidatePkcs11Options(const Pkcs11Options& o) {
  if (o.module.empty()) return KeyError("module", "is required");
  if (o.module[0] != '/') return KeyError("module", "must be an absolute path");
  if (o.token_label.empty()) return KeyError("token_label", "is required");
  if (o.token_label.size() > kMaxTokenLabel) {
    return KeyError("token_label", absl::StrCat("is longer than ", kMaxTokenLabel, " bytes"));
  }
  if (o.pin_file.empty() == o.pin_env.empty()) {
    return absl::InvalidArgumentError(
        "pkcs11 options: set exactly one of \"pin_file\" and \"pin_env\"");
  }
  if (!o.pin_file.empty() && o.pin_file[0] != '/') {
    return KeyError("pin_file", "must be an absolute path");
  }
  if (o.master_key_label.empty()) return KeyError("master_key_label", "must not be empty");
  if (o.master_key_label.size() > kMaxObjectLabel) {
    return KeyError("master_key_label", absl::StrCat("is longer than ", kMaxObjectLabel, " bytes"));
  }
  if (o.sessions < 1 || o.sessions > kMaxSessions) {
    return KeyError("sessions", absl::StrCat("must be from 1 to ", kMaxSessions));
  }
  if (o.timeout < kMinTimeout || o.timeout > kMaxTimeout) {
    return KeyError("timeout", "out of range");
  }
  return absl::OkStatus();
}

absl::Status ParsePkcs11Options(const YAML::Node& node, Pkcs11Options* out) {
  Pkcs11Options parsed;
  try {
    KSH_RETURN_IF_ERROR(ParseNode(node, &parsed));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("pkcs11 options: ", e.what()));
  }
  KSH_RETURN_IF_ERROR(ValidatePkcs11Options(parsed));
  *out = std::move(parsed);
  return absl::OkStatus();
}

absl::Status ParsePkcs11OptionsYaml(const std::string& yaml, Pkcs11Options* out) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("pkcs11 options are not valid YAML: line ", e.mark.line + 1, ": ", e.msg));
  }
  return ParsePkcs11Options(root, out);
}

std::string DescribePinSource(const Pkcs11Options& o) {
  if (!o.pin_file.empty()) return "pin_file " + o.pin_file;
  return "environment variable " + o.pin_env;
}

absl::StatusOr<SecretBytes> LoadPkcs11Pin(const Pkcs11Options& o) {
  if (!o.pin_file.empty()) {
    absl::StatusOr<SecretBytes> text = ReadPrivateFile(o.pin_file, kMaxPinSize);
    if (!text.ok()) return Annotate(text.status(), "pkcs11 pin_file");
    std::string_view pin = text->UnsafeStringView();
    if (!pin.empty() && pin.back() == '\n') pin.remove_suffix(1);
    if (!pin.empty() && pin.back() == '\r') pin.remove_suffix(1);
    SecretBytes secret = SecretBytes::CopyFrom(pin);  // protected memory to protected memory
    if (secret.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("pkcs11 pin_file ", o.pin_file, " is empty"));
    }
    return secret;
  }
  const char* value = getenv(o.pin_env.c_str());
  if (value == nullptr || *value == '\0') {
    return absl::InvalidArgumentError(
        absl::StrCat("pkcs11 pin_env: environment variable ", o.pin_env, " is not set or empty"));
  }
  if (strlen(value) > kMaxPinSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("pkcs11 pin_env: environment variable ", o.pin_env, " is too long"));
  }
  return SecretBytes::CopyFrom(std::string_view(value));
}

}  // namespace kshield::keys
