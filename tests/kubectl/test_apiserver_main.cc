// kshield-test-apiserver: the TestApiserver as a process (for benchmarks and manual runs).
//
//   kshield-test-apiserver --cert server.pem --key server-key.pem --client-ca ca.pem
//       [--token-file tokens.txt] [--name east] [--port 0]
//
// Prints `listening 127.0.0.1:<port>` on stdout once it accepts connections, then serves until
// SIGINT / SIGTERM. --token-file holds bearer tokens, one per line. Exit 2 on a usage error, 1 when
// it cannot start.
#include <signal.h>

#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/secret.h"
#include "kubectl/test_apiserver.h"

namespace {

bool ReadFile(const std::string& path, std::string* out) {
  FILE* f = fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out->append(buf, n);
  fclose(f);
  return true;
}

int Usage(const char* why) {
  fprintf(stderr,
          "kshield-test-apiserver: %s\nusage: kshield-test-apiserver --cert FILE --key FILE "
          "[--client-ca FILE] [--token-file FILE] [--name NAME] [--port N]\n",
          why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string cert_file, key_file, ca_file, token_file, name = "test";
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    std::string value;
    if (size_t eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else if (flag == "--help" || flag == "-h") {
      Usage("help");
      return 0;
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return Usage(("missing value for " + flag).c_str());
    }
    if (flag == "--cert") {
      cert_file = value;
    } else if (flag == "--key") {
      key_file = value;
    } else if (flag == "--client-ca") {
      ca_file = value;
    } else if (flag == "--token-file") {
      token_file = value;
    } else if (flag == "--name") {
      name = value;
    } else if (flag == "--port") {
      if (!absl::SimpleAtoi(value, &port) || port < 0 || port > 65535) return Usage("bad --port");
    } else {
      return Usage(("unknown flag " + flag).c_str());
    }
  }
  if (cert_file.empty() || key_file.empty()) return Usage("--cert and --key are required");

  kshield::testing::TestApiserverOptions options;
  options.name = name;
  options.port = static_cast<uint16_t>(port);
  std::string key;
  if (!ReadFile(cert_file, &options.server_cert_pem) || !ReadFile(key_file, &key)) {
    fprintf(stderr, "kshield-test-apiserver: cannot read --cert or --key\n");
    return 1;
  }
  options.server_key_pem = kshield::SecretBytes::CopyFrom(key);
  std::fill(key.begin(), key.end(), '\0');
  if (!ca_file.empty() && !ReadFile(ca_file, &options.client_ca_pem)) {
    fprintf(stderr, "kshield-test-apiserver: cannot read --client-ca\n");
    return 1;
  }
  if (!token_file.empty()) {
    std::string tokens;
    if (!ReadFile(token_file, &tokens)) {
      fprintf(stderr, "kshield-test-apiserver: cannot read --token-file\n");
      return 1;
    }
    for (absl::string_view line : absl::StrSplit(tokens, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (!line.empty()) options.bearer_tokens.emplace_back(line);
    }
  }

  // Block the stop signals before any thread starts, so only sigwait below sees them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto server = kshield::testing::TestApiserver::Start(std::move(options));
  if (!server.ok()) {
    fprintf(stderr, "kshield-test-apiserver: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  printf("listening 127.0.0.1:%u\n", static_cast<unsigned>((*server)->port()));
  fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  (*server)->Stop();
  return 0;
}
