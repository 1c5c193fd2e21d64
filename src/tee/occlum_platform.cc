#include "tee/occlum_platform.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"
#include "crypto/hkdf.h"
#include "crypto/sha256.h"
#include "tee/quote/quote.h"

namespace kshield::tee {
namespace {

absl::Status IoctlError(const char* what, int rc) {
  return absl::UnavailableError(absl::StrCat("occlum /dev/sgx ", what, ": ", ErrnoString(-rc)));
}

}  // namespace

SgxKeyRequest OcclumPlatform::SealKeyRequest() {
  SgxKeyRequest req;
  std::memset(&req, 0, sizeof(req));
  req.key_name = 4;    // SGX_KEYSELECT_SEAL
  req.key_policy = 1;  // SGX_KEYPOLICY_MRENCLAVE
  // The SGX SDK's default seal attribute mask (TSEAL_DEFAULT_FLAGSMASK, TSEAL_DEFAULT_MISCMASK):
  // INIT, DEBUG, MODE64 and the KSS bits are bound; XFRM is not.
  req.attribute_mask_flags = 0xFF0000000000000BULL;
  req.attribute_mask_xfrm = 0;
  req.misc_mask = 0xF0000000;
  // A fixed key id: the same enclave gets the same key at every start.
  const std::string id = crypto::Sha256("kshield occlum sealing key id v1");
  std::memcpy(req.key_id, id.data(), sizeof(req.key_id));
  return req;
}

absl::StatusOr<SecretBytes> OcclumPlatform::SealingKey() {
  SgxKeyRequest req = SealKeyRequest();
  SecretBytes key(16);
  SgxIocGetKeyArg arg{&req, key.UnsafeMutableData()};
  int rc = device_->Ioctl(kSgxIocGetKey, &arg);
  if (rc != 0) return IoctlError("SGXIOC_GET_KEY", rc);
  return crypto::HkdfSha256(key, "", "kshield occlum sealing key v1", kSealingKeySize);
}

absl::StatusOr<std::string> OcclumPlatform::Quote(std::string_view report_data) {
  if (report_data.size() != kReportDataSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("report data must be 64 bytes, got ", report_data.size()));
  }
  uint32_t size = 0;
  int rc = device_->Ioctl(kSgxIocGetDcapQuoteSize, &size);
  if (rc != 0) return IoctlError("SGXIOC_GET_DCAP_QUOTE_SIZE", rc);
  if (size == 0 || size > quote::kMaxQuoteSize) {
    return absl::InternalError(absl::StrCat("occlum reports a DCAP quote size of ", size));
  }
  std::string buf(size, '\0');
  uint8_t rd[kReportDataSize];
  std::memcpy(rd, report_data.data(), sizeof(rd));
  uint32_t len = size;
  SgxIocGenDcapQuoteArg arg{rd, &len, reinterpret_cast<uint8_t*>(buf.data())};
  rc = device_->Ioctl(kSgxIocGenDcapQuote, &arg);
  if (rc != 0) return IoctlError("SGXIOC_GEN_DCAP_QUOTE", rc);
  if (len == 0 || len > size) {
    return absl::InternalError(absl::StrCat("occlum returned a quote length of ", len));
  }
  buf.resize(len);
  auto parsed = quote::ParseQuote(buf);
  if (!parsed.ok()) {
    return absl::InternalError(absl::StrCat("occlum returned a quote that does not parse: ",
                                            parsed.status().message()));
  }
  if (parsed->tee != quote::TeeType::kSgx ||
      std::memcmp(parsed->sgx.report_data.data(), rd, sizeof(rd)) != 0) {
    return absl::InternalError("occlum quote does not carry our report data");
  }
  return buf;
}

}  // namespace kshield::tee
