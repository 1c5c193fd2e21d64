#include "cmd/kshieldctl_attest.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <yaml-cpp/yaml.h>

#include "cmd/output.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "common/file_util.h"
#include "common/status.h"
#include "crypto/sha256.h"
#include "tee/platform.h"
#include "tee/quote/collateral.h"
#include "tee/quote/policy.h"
#include "tee/quote/verify.h"
#include "tee/quote/x509.h"
#include "tee/ratls_evidence.h"
#include "tee/sim_platform.h"

namespace kshield::cmd {
namespace {

constexpr char kDefaultRoot[] = "/etc/kshield/intel_sgx_root_ca.pem";
constexpr size_t kMaxInput = 1024 * 1024;

struct VerifyArgs {
  std::string file, collateral, policy, at, root;
};

struct QuoteArgs {
  std::string report_data, tee = "auto", data_dir, encoding = "hex", out, root_out;
};

int UsageError(const std::string& msg) {
  std::fprintf(stderr, "kshieldctl attest: %s\n", msg.c_str());
  return kExitUsage;
}

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

std::string StripSpace(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (!IsSpace(c)) out.push_back(c);
  }
  return out;
}

// The evidence in a file: a certificate (PEM / DER) or a quote (binary, hex or base64 text).
struct Input {
  std::string quote;
  std::optional<tee::CertEvidence> evidence;  // set for a certificate
  std::string kind;                           // for messages
  std::string evidence_error;  // a certificate without usable evidence: a verification failure
};

absl::StatusOr<Input> ReadInput(const std::string& path) {
  KSH_ASSIGN_OR_RETURN(std::string data, ReadFileBounded(path, kMaxInput));
  Input in;
  tee::quote::X509Ptr cert;
  // A quote's certification data holds PEM too, so only a file that starts with PEM is one.
  const size_t first = data.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && data.compare(first, 27, "-----BEGIN CERTIFICATE-----") == 0) {
    KSH_ASSIGN_OR_RETURN(cert, tee::quote::ParsePemCertificate(data));
    in.kind = "certificate (PEM)";
  } else {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(data.data());
    X509* der = d2i_X509(nullptr, &p, static_cast<long>(data.size()));
    if (der != nullptr && p == reinterpret_cast<const unsigned char*>(data.data()) + data.size()) {
      cert.reset(der);
      in.kind = "certificate (DER)";
    } else {
      X509_free(der);
    }
  }
  if (cert) {
    auto ev = tee::ExtractCertEvidence(cert.get());
    if (!ev.ok()) {
      in.evidence_error = "certificate: " + std::string(ev.status().message());
      return in;
    }
    in.quote = ev->quote;
    in.evidence = std::move(*ev);
    return in;
  }
  const std::string compact = StripSpace(data);
  std::string decoded;
  const bool texty = !compact.empty() && compact.size() * 2 >= data.size();
  if (texty && compact.size() % 2 == 0 &&
      std::all_of(compact.begin(), compact.end(), [](char c) { return absl::ascii_isxdigit(c); })) {
    in.quote = absl::HexStringToBytes(compact);
    in.kind = "quote (hex)";
  } else if (texty && absl::Base64Unescape(compact, &decoded) && !decoded.empty()) {
    in.quote = std::move(decoded);
    in.kind = "quote (base64)";
  } else {
    in.quote = std::move(data);
    in.kind = "quote (binary)";
  }
  return in;
}

void Print(const std::string& format, const nlohmann::json& j) {
  cmd::Print(format, j, [&] {
    for (auto it = j.begin(); it != j.end(); ++it) {
      std::string v = it.value().is_string() ? it.value().get<std::string>() : it.value().dump();
      std::printf("%-16s %s\n", (it.key() + ":").c_str(), v.c_str());
    }
    std::fflush(stdout);
  });
}

int RunVerify(const VerifyArgs& a, const std::string& format) {
  // Inputs first: every usage problem is reported before anything is verified.
  std::string root_path = a.root;
  if (root_path.empty()) {
    if (!FileExists(kDefaultRoot)) {
      return UsageError(std::string("no pinned root CA: pass --root PEM (the default ") +
                        kDefaultRoot + " does not exist)");
    }
    root_path = kDefaultRoot;
  }
  auto root_pem = ReadFileBounded(root_path, 64 * 1024);
  if (!root_pem.ok()) return UsageError("--root: " + std::string(root_pem.status().message()));

  std::optional<absl::Time> at;
  if (!a.at.empty()) {
    absl::Time t;
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, a.at, &t, &err)) {
      return UsageError("--at: \"" + a.at + "\" is not an RFC 3339 time (" + err + ")");
    }
    at = t;
  }
  std::optional<tee::quote::Collateral> collateral;
  if (!a.collateral.empty()) {
    auto text = ReadFileBounded(a.collateral, tee::quote::kMaxCollateralFileSize);
    if (!text.ok()) return UsageError("--collateral: " + std::string(text.status().message()));
    auto c = tee::quote::ParseCollateralJson(*text);
    if (!c.ok()) return UsageError("--collateral: " + std::string(c.status().message()));
    collateral = std::move(*c);
  }
  std::optional<tee::quote::Policy> policy;
  if (!a.policy.empty()) {
    auto p = tee::quote::LoadPolicyFile(a.policy);
    if (!p.ok()) return UsageError("--policy: " + std::string(p.status().message()));
    policy = std::move(*p);
  }
  auto input = ReadInput(a.file);
  if (!input.ok()) return UsageError(a.file + ": " + std::string(input.status().message()));

  tee::quote::VerifyOptions opts;
  opts.root_pem = *root_pem;
  opts.at = at;
  opts.collateral = collateral ? &*collateral : nullptr;
  tee::quote::VerifiedQuote v;
  if (input->evidence_error.empty()) {
    v = tee::quote::VerifyQuote(input->quote, opts);
  } else {
    v.errors.push_back(input->evidence_error);
  }
  if (input->evidence.has_value() && v.quote.has_value()) {
    const auto& q = *v.quote;
    const auto& rd = q.tee == tee::quote::TeeType::kSgx ? q.sgx.report_data : q.td.report_data;
    absl::Status b = tee::CheckBinding(
        *input->evidence, std::string_view(reinterpret_cast<const char*>(rd.data()), rd.size()));
    if (!b.ok()) v.errors.push_back(std::string(b.message()));
  }
  bool ok = v.ok();
  nlohmann::json j = tee::quote::ToJson(v);
  if (policy.has_value()) {
    absl::Status p = tee::quote::CheckPolicy(*policy, v);
    j["policy_ok"] = p.ok();
    if (!p.ok()) {
      j["errors"].push_back(std::string(p.message()));
      ok = false;
    }
  } else {
    j["policy_ok"] = nullptr;
  }
  Print(format, j);
  if (!ok && format == "table") {
    std::fprintf(stderr, "kshieldctl attest verify: %s did NOT verify\n", input->kind.c_str());
  }
  return ok ? kExitOk : kExitFailed;
}

int RunQuote(const QuoteArgs& a, const std::string& format) {
  std::string rd_hex = StripSpace(a.report_data);
  if (rd_hex.size() % 2 != 0 || rd_hex.size() > 2 * tee::kReportDataSize ||
      !std::all_of(rd_hex.begin(), rd_hex.end(), [](char c) { return absl::ascii_isxdigit(c); })) {
    return UsageError("--report-data must be hex of at most 64 bytes");
  }
  std::string rd = absl::HexStringToBytes(rd_hex);
  rd.resize(tee::kReportDataSize, '\0');

  tee::PlatformOptions options;
  options.data_dir = a.data_dir;
  std::unique_ptr<tee::Platform> platform;
  std::string root_pem;
  if (a.tee == "sim") {
    auto sim = tee::SimPlatform::New(options);
    if (!sim.ok()) return UsageError("--tee sim: " + std::string(sim.status().message()));
    root_pem = (*sim)->RootCaPem();
    platform = std::move(*sim);
  } else {
    auto p = tee::MakePlatform(a.tee, options);
    if (!p.ok()) return UsageError("--tee " + a.tee + ": " + std::string(p.status().message()));
    platform = std::move(*p);
  }
  if (!a.root_out.empty()) {
    if (root_pem.empty()) return UsageError("--root-out is only for --tee sim");
    absl::Status s = WriteFileAtomic(a.root_out, root_pem, 0644);
    if (!s.ok()) return UsageError("--root-out: " + std::string(s.message()));
  }
  auto quote = platform->Quote(rd);
  if (!quote.ok()) {
    std::fprintf(stderr, "kshieldctl attest quote: %s\n",
                 std::string(quote.status().message()).c_str());
    return kExitFailed;
  }
  if (!a.out.empty()) {
    absl::Status s = WriteFileAtomic(a.out, *quote, 0644);
    if (!s.ok()) return UsageError("--out: " + std::string(s.message()));
  }
  const std::string encoded =
      a.encoding == "base64" ? absl::Base64Escape(*quote) : crypto::HexEncode(*quote);
  if (format == "table") {
    std::printf("%s\n", encoded.c_str());
  } else {
    Print(format, {{"tee_platform", std::string(platform->name())},
                   {"encoding", a.encoding},
                   {"report_data", crypto::HexEncode(rd)},
                   {"evidence", encoded}});
  }
  return kExitOk;
}

}  // namespace

void AddAttestCommands(CLI::App& app, const std::string* output_format, int* exit_code) {
  auto* attest = app.add_subcommand("attest", "TEE attestation: verify evidence, print a quote");
  attest->require_subcommand(1);

  auto verify_args = std::make_shared<VerifyArgs>();
  auto* verify = attest->add_subcommand(
      "verify",
      "verify a DCAP quote or an RA-TLS certificate (PEM/DER) and print its fields and verdict; "
      "exit 0 only if it verified (and met --policy)");
  verify->add_option("FILE", verify_args->file, "quote (binary, hex, base64) or certificate")
      ->required();
  verify->add_option("--collateral", verify_args->collateral,
                     "collateral JSON (TCB info, QE identity, CRLs) for TCB status");
  verify->add_option("--policy", verify_args->policy, "attestation policy YAML");
  verify->add_option("--at", verify_args->at, "verification time, RFC 3339 [now]");
  verify->add_option("--root", verify_args->root,
                     std::string("pinned root CA certificate, PEM [") + kDefaultRoot + "]");
  verify->callback([verify_args, output_format, exit_code] {
    *exit_code = RunVerify(*verify_args, *output_format);
  });

  auto quote_args = std::make_shared<QuoteArgs>();
  auto* quote = attest->add_subcommand("quote", "print this platform's attestation evidence");
  quote->add_option("--report-data", quote_args->report_data,
                    "REPORTDATA as hex, at most 64 bytes (zero-padded)")
      ->required();
  quote->add_option("--tee", quote_args->tee, "auto | none | sim | gramine | occlum | tsm [auto]")
      ->check(CLI::IsMember({"auto", "none", "sim", "gramine", "occlum", "tsm"}));
  quote->add_option("--data-dir", quote_args->data_dir,
                    "platform data directory (sim: its machine secret)");
  quote->add_option("--encoding", quote_args->encoding, "hex | base64 [hex]")
      ->check(CLI::IsMember({"hex", "base64"}));
  quote->add_option("--out", quote_args->out, "also write the raw evidence to this file");
  quote->add_option("--root-out", quote_args->root_out,
                    "sim only: write the simulated root CA (PEM) here");
  quote->callback([quote_args, output_format, exit_code] {
    *exit_code = RunQuote(*quote_args, *output_format);
  });
}

}  // namespace kshield::cmd
