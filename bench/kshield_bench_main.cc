// kshield-bench: load generator and benchmarks.
//   kshield-bench kms --socket PATH --clients N --duration S --op status|encrypt|decrypt|v1-encrypt|v1-decrypt
//   kshield-bench compare --socket PATH [--clients 64 --duration 5]   status vs encrypt vs decrypt, one run, ratios
//   kshield-bench rss [--versions 1000]                                 RSS of kshield-kms with N KEK versions
//   kshield-bench micro [--benchmark_filter=...]                        Google Benchmark microbenchmarks
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>

#include "absl/synchronization/mutex.h"
#include "apiserver_sim.h"
#include "kms_load.h"
#include "rss.h"

namespace kshield::bench {
int RunMicro(int argc, char** argv);
}

namespace {

std::string SelfDir() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

void Print(const kshield::bench::KmsLoadOptions& o, const kshield::bench::KmsLoadResult& r) {
  std::printf(
      "op=%-10s clients=%d channels=%d duration=%.1fs ops=%llu ops/s=%.0f p50=%.3fms p90=%.3fms "
      "p99=%.3fms max=%.3fms errors=%llu%s%s\n",
      o.op.c_str(), o.clients, o.channels, r.seconds, static_cast<unsigned long long>(r.ok),
      r.ops_per_s, r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms,
      static_cast<unsigned long long>(r.errors), r.first_error.empty() ? "" : " first_error=",
      r.first_error.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // Same setting as kshield-kms: no abseil mutex deadlock-graph bookkeeping in the load client.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (argc >= 2 && std::string(argv[1]) == "micro") {
    return kshield::bench::RunMicro(argc - 1, argv + 1);
  }
  CLI::App app{"kshield-bench — load generator and benchmarks for kshield"};
  app.require_subcommand(1);
  kshield::bench::KmsLoadOptions o;
  auto* kms = app.add_subcommand("kms", "closed-loop load on a KMS plugin socket");
  kms->add_option("--socket", o.socket, "plugin socket (path or @abstract)")->required();
  kms->add_option("--clients", o.clients, "concurrent outstanding calls [64]");
  kms->add_option("--channels", o.channels, "HTTP/2 connections shared by the clients [1]");
  kms->add_option("--duration", o.duration_s, "measured seconds [10]");
  kms->add_option("--warmup", o.warmup_s, "unmeasured seconds first [1]");
  kms->add_option("--op", o.op, "status | encrypt | decrypt | v1-encrypt | v1-decrypt")
      ->check(CLI::IsMember({"status", "encrypt", "decrypt", "v1-encrypt", "v1-decrypt"}));
  kms->add_option("--plaintext-size", o.plaintext_size, "bytes per Encrypt [32]");

  kshield::bench::KmsLoadOptions c;
  c.duration_s = 5;
  auto* cmp = app.add_subcommand("compare", "status, encrypt, decrypt in one run, with ratios");
  cmp->add_option("--socket", c.socket, "plugin socket")->required();
  cmp->add_option("--clients", c.clients, "concurrent outstanding calls [64]");
  cmp->add_option("--channels", c.channels, "HTTP/2 connections [1]");
  cmp->add_option("--duration", c.duration_s, "seconds per op [5]");

  int versions = 1000;
  double rss_duration = 3;
  std::string kms_binary = SelfDir() + "/kshield-kms";
  auto* rss = app.add_subcommand("rss", "RSS of kshield-kms holding N KEK versions, under load");
  rss->add_option("--versions", versions, "KEK versions [1000]");
  rss->add_option("--duration", rss_duration, "seconds of Encrypt load [3]");
  rss->add_option("--kms-binary", kms_binary, "kshield-kms to start [next to kshield-bench]");

  kshield::bench::ApiserverSimOptions ao;
  auto* api = app.add_subcommand(
      "apiserver", "kube-apiserver's envelope role against a real etcd through a running plugin");
  kshield::bench::AddApiserverSimOptions(api, &ao);

  CLI11_PARSE(app, argc, argv);
  if (api->parsed()) return kshield::bench::RunApiserverSim(ao);

  if (kms->parsed()) {
    kshield::bench::KmsLoadResult r;
    if (!kshield::bench::RunKmsLoad(o, &r)) {
      std::fprintf(stderr, "kshield-bench: %s\n", r.first_error.c_str());
      return 1;
    }
    Print(o, r);
    return r.errors == 0 ? 0 : 1;
  }
  if (cmp->parsed()) {
    double status_rate = 0;
    for (const char* op : {"status", "encrypt", "decrypt", "v1-encrypt"}) {
      kshield::bench::KmsLoadOptions run = c;
      run.op = op;
      kshield::bench::KmsLoadResult r;
      if (!kshield::bench::RunKmsLoad(run, &r)) {
        std::fprintf(stderr, "kshield-bench: %s\n", r.first_error.c_str());
        return 1;
      }
      Print(run, r);
      if (run.op == "status") {
        status_rate = r.ops_per_s;
      } else if (status_rate > 0) {
        std::printf("  ratio %s/status = %.2f\n", op, r.ops_per_s / status_rate);
      }
    }
    return 0;
  }
  if (rss->parsed()) return kshield::bench::RunRss(kms_binary, versions, rss_duration);
  return 2;
}
