// kshield-bench kms: a closed-loop load generator against a running KMS plugin socket.
#pragma once

#include <string>

namespace kshield::bench {

struct KmsLoadOptions {
  std::string socket;
  int clients = 64;     // concurrent outstanding calls (closed loop)
  int channels = 1;     // HTTP/2 connections they share (the apiserver uses one)
  double duration_s = 10;
  double warmup_s = 1;
  std::string op = "encrypt";  // status | encrypt | decrypt | v1-encrypt | v1-decrypt
  int plaintext_size = 32;     // the apiserver's seed / DEK
};

struct KmsLoadResult {
  uint64_t ok = 0;
  uint64_t errors = 0;
  double seconds = 0;
  double ops_per_s = 0;
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;
  std::string first_error;
};

// Runs the load; returns false (with a message in first_error) if the plugin cannot be reached.
bool RunKmsLoad(const KmsLoadOptions& options, KmsLoadResult* result);

}  // namespace kshield::bench
