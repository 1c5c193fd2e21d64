// kshield-bench rss: memory of a real kshield-kms holding N KEK versions.
// Builds a keyset with N versions directly (one persisted write, not N rotations), starts
// kshield-kms on it, drives traffic over every version, and reads VmRSS / VmHWM from /proc.
#include "rss.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>

#include "common/log.h"
#include "common/testing/temp_dir.h"
#include "crypto/random.h"
#include "keys/key_id.h"
#include "keys/keyset_store.h"
#include "keys/local_provider.h"
#include "kms_load.h"
#include "tee/none_platform.h"

namespace kshield::bench {
namespace {

long ProcStatusKb(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::string(field).size() + 1));
  }
  return -1;
}

}  // namespace

int RunRss(const std::string& kms_binary, int versions, double duration_s) {
  log::SetLevel(log::Level::kError);
  testing::TempDir dir;
  std::string data = dir.Sub("data");
  tee::NonePlatform platform(data);
  auto provider = keys::LocalProvider::New(platform);
  if (!provider.ok()) {
    std::fprintf(stderr, "provider: %s\n", std::string(provider.status().message()).c_str());
    return 1;
  }
  keys::v1::KeysetRecord rec;
  rec.set_format(1);
  rec.set_keyset_id(crypto::RandomHex(8));
  for (int v = 1; v <= versions; ++v) {
    auto m = (*provider)->CreateVersion({rec.keyset_id(), static_cast<uint32_t>(v)});
    if (!m.ok()) return 1;
    auto* kv = rec.add_versions();
    kv->set_version(static_cast<uint32_t>(v));
    kv->set_state(v == versions ? keys::v1::KekVersionRecord::PRIMARY
                                : keys::v1::KekVersionRecord::ACTIVE);
    kv->set_created_unix(time(nullptr));
    kv->set_provider("local");
    kv->set_material(*m);
  }
  rec.set_next_version(static_cast<uint32_t>(versions + 1));
  keys::FileKeysetStore store(data + "/keyset.bin");
  if (!store.Save(rec).ok()) return 1;

  std::string sock = dir.Sub("kms.sock");
  pid_t pid = fork();
  if (pid == 0) {
    execl(kms_binary.c_str(), kms_binary.c_str(), ("--socket=" + sock).c_str(),
          ("--admin-socket=" + dir.Sub("admin.sock")).c_str(), ("--data-dir=" + data).c_str(),
          "--http=off", "--no-snippet", "--log-level=warn", nullptr);
    _exit(127);
  }
  KmsLoadOptions o;
  o.socket = sock;
  o.clients = 64;
  o.duration_s = duration_s;
  o.warmup_s = 0.5;
  o.op = "encrypt";
  KmsLoadResult r;
  bool reachable = false;
  for (int i = 0; i < 200 && !reachable; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    reachable = access(sock.c_str(), F_OK) == 0;
  }
  long rss_idle = ProcStatusKb(pid, "VmRSS:");
  bool ok = reachable && RunKmsLoad(o, &r);
  long rss = ProcStatusKb(pid, "VmRSS:");
  long hwm = ProcStatusKb(pid, "VmHWM:");
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  if (!ok) {
    std::fprintf(stderr, "load failed: %s\n", r.first_error.c_str());
    return 1;
  }
  std::printf("versions=%d rss_after_load_kib=%ld rss_under_load_kib=%ld peak_rss_kib=%ld "
              "(%.1f MiB peak) encrypt_ops_per_s=%.0f errors=%llu\n",
              versions, rss_idle, rss, hwm, static_cast<double>(hwm) / 1024.0, r.ops_per_s,
              static_cast<unsigned long long>(r.errors));
  return 0;
}

}  // namespace kshield::bench
