#include "apiserver_sim.h"

#include <CLI/CLI.hpp>
#include <cstdio>

#include "absl/strings/str_split.h"
#include "etcd/client.h"
#include "tools/apiserver_writer.h"
#include "tools/kms_client.h"
#include "tools/value_decryptor.h"

namespace kshield::bench {
namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUnreachable = 3;

int Fail(const char* what, const absl::Status& s) {
  std::fprintf(stderr, "kshield-bench apiserver: %s: %s\n", what,
               std::string(s.message()).c_str());
  return s.code() == absl::StatusCode::kUnavailable ||
                 s.code() == absl::StatusCode::kDeadlineExceeded
             ? kExitUnreachable
             : kExitFailed;
}

}  // namespace

void AddApiserverSimOptions(CLI::App* sub, ApiserverSimOptions* o) {
  sub->add_option("--socket", o->socket, "kshield-kms KMS socket (path or @abstract)")->required();
  sub->add_option("--endpoints", o->endpoints, "etcd endpoints, comma separated [127.0.0.1:2379]");
  sub->add_option("--etcd-cacert", o->etcd_cacert, "CA bundle for etcd");
  sub->add_option("--etcd-cert", o->etcd_cert, "client certificate for etcd");
  sub->add_option("--etcd-key", o->etcd_key, "client key for etcd");
  sub->add_option("--prefix", o->prefix, "etcd prefix to write under [/kshield-bench/registry]");
  sub->add_option("--provider-name", o->provider_name, "KMS provider name in values [kshield]");
  sub->add_option("--namespace-prefix", o->namespace_prefix,
                  "namespaces are <this>-<format> [bench]");
  sub->add_option("--count", o->count, "Secrets per format [1000]")->check(CLI::Range(1, 10000000));
  sub->add_option("--formats", o->formats,
                  "kms-v2-seed, kms-v2-aes-gcm-key, kms-v1, identity, aesgcm [all]")
      ->delimiter(',');
  sub->add_option("--value-size", o->value_size, "bytes of the payload data entry [64]")
      ->check(CLI::Range(0, 1 << 20));
  sub->add_option("--write-concurrency", o->write_concurrency, "concurrent writers [8]")
      ->check(CLI::Range(1, 256));
  sub->add_option("--read-concurrency", o->read_concurrency, "concurrent readers [8]")
      ->check(CLI::Range(1, 256));
  sub->add_flag("--json", o->json, "one JSON object per format instead of a table");
}

int RunApiserverSim(const ApiserverSimOptions& options) {
  std::vector<tools::SimFormat> formats;
  for (const auto& name : options.formats) {
    absl::StatusOr<tools::SimFormat> f = tools::ParseSimFormat(name);
    if (!f.ok()) return Fail("--formats", f.status());
    formats.push_back(*f);
  }
  etcd::ClientOptions eo;
  eo.endpoints.clear();
  for (absl::string_view e : absl::StrSplit(options.endpoints, ',', absl::SkipWhitespace())) {
    eo.endpoints.emplace_back(e);
  }
  eo.ca_file = options.etcd_cacert;
  eo.cert_file = options.etcd_cert;
  eo.key_file = options.etcd_key;
  absl::StatusOr<std::unique_ptr<etcd::Client>> etcd = etcd::Client::Create(eo);
  if (!etcd.ok()) return Fail("etcd", etcd.status());
  absl::StatusOr<std::unique_ptr<tools::KmsClient>> kms = tools::KmsClient::Create(options.socket);
  if (!kms.ok()) return Fail("plugin", kms.status());

  tools::ApiserverOptions ao;
  ao.prefix = options.prefix;
  ao.provider_name = options.provider_name;
  tools::ApiserverWriter writer(etcd->get(), kms->get(), ao);
  if (absl::Status s = writer.PollStatus(); !s.ok()) return Fail("KMS Status", s);

  tools::WriteSecretsOptions wo;
  wo.per_format = options.count;
  wo.formats = formats;
  wo.namespace_prefix = options.namespace_prefix;
  wo.value_size = options.value_size;
  wo.concurrency = options.write_concurrency;
  absl::StatusOr<std::vector<tools::FormatWriteStats>> writes = tools::WriteSecrets(writer, wo);
  if (!writes.ok()) return Fail("write", writes.status());

  if (!options.json) {
    std::printf("kshield-bench apiserver: %d Secrets per format, key_id %s, etcd %s, prefix %s\n",
                options.count, writer.key_id().c_str(), options.endpoints.c_str(),
                options.prefix.c_str());
    std::printf("%-20s %8s %10s %10s %11s %10s %12s %11s %7s\n", "FORMAT", "SECRETS", "WRITES/S",
                "WRITE_S", "READ_ALL_S", "READS/S", "CALLS_WRITE", "CALLS_READ", "ERRORS");
  }
  bool all_ok = true;
  for (const tools::FormatWriteStats& w : *writes) {
    // A cold reader: a new DEK cache, as after an apiserver restart.
    tools::ValueDecryptor decryptor(kms->get(), options.provider_name);
    decryptor.AddAesGcmKey(ao.aesgcm_key_name, writer.aesgcm_key());
    std::string key_prefix =
        tools::SecretEtcdKey(options.prefix, tools::SimNamespace(options.namespace_prefix, w.format),
                             "");
    absl::StatusOr<tools::ReadStats> r = tools::ColdReadSecrets(
        **etcd, decryptor, kms->get(), key_prefix, options.read_concurrency);
    if (!r.ok()) return Fail("read", r.status());
    int64_t errors = w.failed + r->failed;
    if (errors > 0 || r->read != w.written) all_ok = false;
    double wps = w.seconds > 0 ? static_cast<double>(w.written) / w.seconds : 0;
    double rps = r->seconds > 0 ? static_cast<double>(r->read) / r->seconds : 0;
    if (options.json) {
      std::printf(
          "{\"format\":\"%s\",\"secrets\":%lld,\"writes_per_s\":%.0f,\"write_s\":%.3f,"
          "\"read_all_s\":%.3f,\"reads_per_s\":%.0f,\"plugin_calls_write\":%llu,"
          "\"plugin_calls_read\":%llu,\"errors\":%lld}\n",
          std::string(tools::SimFormatName(w.format)).c_str(), static_cast<long long>(w.written),
          wps, w.seconds, r->seconds, rps,
          static_cast<unsigned long long>(w.plugin_calls.total()),
          static_cast<unsigned long long>(r->plugin_calls.total()),
          static_cast<long long>(errors));
    } else {
      std::printf("%-20s %8lld %10.0f %10.3f %11.3f %10.0f %12llu %11llu %7lld\n",
                  std::string(tools::SimFormatName(w.format)).c_str(),
                  static_cast<long long>(w.written), wps, w.seconds, r->seconds, rps,
                  static_cast<unsigned long long>(w.plugin_calls.total()),
                  static_cast<unsigned long long>(r->plugin_calls.total()),
                  static_cast<long long>(errors));
    }
    if (!w.first_error.empty()) {
      std::fprintf(stderr, "  %s write error: %s\n", std::string(tools::SimFormatName(w.format)).c_str(),
                   w.first_error.c_str());
    }
    if (!r->first_error.empty()) {
      std::fprintf(stderr, "  %s read error: %s\n", std::string(tools::SimFormatName(w.format)).c_str(),
                   r->first_error.c_str());
    }
  }
  std::fflush(stdout);
  return all_ok ? 0 : kExitFailed;
}

}  // namespace kshield::bench
