#include "tee/none_platform.h"

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"
#include "crypto/random.h"

namespace kshield::tee {

absl::StatusOr<SecretBytes> NonePlatform::SealingKey() {
  if (data_dir_.empty()) {
    return absl::FailedPreconditionError("the none platform needs a data directory for its key");
  }
  const std::string path = sealing_key_path();
  if (!FileExists(path)) {
    KSH_RETURN_IF_ERROR(MakeDirs(data_dir_, 0700));
    SecretBytes key = crypto::RandomSecret(kSealingKeySize);
    KSH_RETURN_IF_ERROR(WriteFileAtomic(path, key.UnsafeStringView(), 0600));
    log::Info("tee.sealing_key_created", {{"platform", "none"}, {"path", path}});
    return key;
  }
  KSH_ASSIGN_OR_RETURN(SecretBytes key, ReadPrivateFile(path, 1024));
  if (key.size() != kSealingKeySize) {
    return absl::DataLossError(absl::StrCat("sealing key file ", path, " holds ", key.size(),
                                            " bytes, expected ", kSealingKeySize));
  }
  return key;
}

absl::StatusOr<std::string> NonePlatform::Quote(std::string_view) {
  return absl::FailedPreconditionError(
      "the none platform has no attestation; run with --tee=sim|gramine|occlum|tsm");
}

}  // namespace kshield::tee
