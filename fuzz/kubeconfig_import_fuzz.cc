// Fuzz target: the kubeconfig import parser (proxy/kubeconfig.h: ParseKubeconfig, SelectImports,
// DecodeBase64). `kshield-kubectl import` feeds it a file the user names; the daemon parses it.
// Invariants:
//  - ParseKubeconfig never crashes or throws; a failure is InvalidArgument with a bounded message;
//  - a parsed context is either unusable (a reason, no credential) or usable: an https server, a
//    PEM-looking CA (or none), and exactly one credential — certificate + key, or a token;
//  - SelectImports never crashes, returns indices inside the context list, only usable contexts,
//    and never two contexts for one cluster;
//  - DecodeBase64 succeeds exactly when DecodeBase64Secret does, with the same bytes, and the
//    canonical re-encoding decodes to the same bytes.
// fuzz-libs: kshield_kubectl_core
// fuzz-sources: src/proxy/kubeconfig.cc
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "proxy/kubeconfig.h"

using kshield::kubectl::DecodeBase64;
using kshield::kubectl::DecodeBase64Secret;
using kshield::kubectl::EncodeBase64;
using kshield::kubectl::ImportOptions;
using kshield::kubectl::ParseKubeconfig;
using kshield::kubectl::ParsedKubeconfig;
using kshield::kubectl::SelectImports;

namespace {

constexpr char kFakeCert[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

void CheckBase64(std::string_view in) {
  absl::StatusOr<std::string> plain = DecodeBase64(in);
  absl::StatusOr<kshield::SecretBytes> secret = DecodeBase64Secret(in);
  FUZZ_CHECK(plain.ok() == secret.ok());
  if (!plain.ok()) return;
  FUZZ_CHECK(secret->UnsafeStringView() == *plain);
  absl::StatusOr<std::string> again = DecodeBase64(EncodeBase64(*plain));
  FUZZ_CHECK(again.ok() && *again == *plain);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (size < 4096) CheckBase64(input);

  ImportOptions opts;
  opts.base_dir = "/fuzz";
  // File references: paths containing "ca" or "crt" read as a certificate, others fail.
  opts.read_file = [](const std::string& path) -> absl::StatusOr<std::string> {
    if (path.find("ca") != std::string::npos || path.find("crt") != std::string::npos) {
      return std::string(kFakeCert);
    }
    return absl::NotFoundError("no such file");
  };
  absl::StatusOr<ParsedKubeconfig> kc = ParseKubeconfig(input, opts);
  if (!kc.ok()) {
    FUZZ_CHECK(kc.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(kc.status().message().size() < 64 * 1024 + 1024);
    return 0;
  }
  FUZZ_CHECK(!kc->contexts.empty());
  std::vector<std::string> importable;
  for (const auto& c : kc->contexts) {
    if (!c.unusable.empty()) {
      FUZZ_CHECK(c.client_cert_pem.empty() && c.client_key_pem.empty() && c.token.empty());
      continue;
    }
    FUZZ_CHECK(c.server.rfind("https://", 0) == 0);
    FUZZ_CHECK(c.ca_pem.empty() || c.ca_pem.find("-----BEGIN CERTIFICATE-----") != std::string::npos);
    const bool has_cert = !c.client_cert_pem.empty();
    FUZZ_CHECK(has_cert == !c.client_key_pem.empty());
    FUZZ_CHECK(has_cert != !c.token.empty());
    importable.push_back(c.context);
  }
  importable.push_back(kc->contexts.front().cluster);
  std::vector<std::string> notes;
  auto targets = SelectImports(*kc, importable, {}, &notes);
  if (targets.ok()) {
    std::set<std::string> seen;
    for (const auto& t : *targets) {
      FUZZ_CHECK(t.context_index < kc->contexts.size());
      FUZZ_CHECK(kc->contexts[t.context_index].unusable.empty());
      FUZZ_CHECK(seen.insert(t.daemon_cluster).second);
    }
  }
  return 0;
}
