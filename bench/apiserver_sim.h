// kshield-bench apiserver (issue 4 §4): the apiserver's envelope role against a real etcd and a
// running kshield-kms. Writes N Secrets per format exactly as kube-apiserver would (KMS v2 HKDF
// seed, KMS v2 legacy AES_GCM_KEY, KMS v1 with one Encrypt per write, and the identity and local
// AES-GCM baselines in the same run), then cold-reads each format back (v1: one Decrypt per
// Secret; v2: one per distinct DEK source) and prints writes/s, time to read all and plugin calls.
//
// The lead wires it into kshield_bench_main.cc:
//   kshield::bench::ApiserverSimOptions ao;
//   auto* api = app.add_subcommand("apiserver", "...");
//   kshield::bench::AddApiserverSimOptions(api, &ao);
//   ... if (api->parsed()) return kshield::bench::RunApiserverSim(ao);
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace kshield::bench {

struct ApiserverSimOptions {
  std::string socket;                             // kshield-kms KMS socket (path or @abstract)
  std::string endpoints = "127.0.0.1:2379";       // etcd, comma separated
  std::string etcd_cacert, etcd_cert, etcd_key;
  // Not the cluster's /registry: the simulator must never write over real Secrets by default.
  std::string prefix = "/kshield-bench/registry";
  std::string provider_name = "kshield";
  std::string namespace_prefix = "bench";
  int count = 1000;  // Secrets per format
  std::vector<std::string> formats = {"kms-v2-seed", "kms-v2-aes-gcm-key", "kms-v1", "identity",
                                      "aesgcm"};
  int value_size = 64;
  int write_concurrency = 8;
  int read_concurrency = 8;
  bool json = false;
};

void AddApiserverSimOptions(CLI::App* sub, ApiserverSimOptions* o);

// Returns the process exit code: 0 all writes and reads succeeded; 1 some failed; 3 the plugin
// or etcd could not be reached.
int RunApiserverSim(const ApiserverSimOptions& options);

}  // namespace kshield::bench
