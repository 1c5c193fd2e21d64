// A small stand-in for libFuzzer's driver, so fuzz targets build with GCC and run on every ctest
// run (labels unit;fuzz). It is not coverage-guided; it replays the seed corpus and then a fixed,
// deterministic stream of mutations of it:
//
//   wrapped_dek_fuzz_standalone [-runs=N] [-seed=S] [-max_len=L] CORPUS_DIR_OR_FILE...
//
//  1. every file under the given paths (directories are walked recursively), and the empty input
//     (no paths: the empty input is the only seed);
//  2. N inputs (default 20000; ctest passes -runs), each a seed with 1..4 mutations: bit flips, byte overwrites with
//     random or boundary values, truncation, erasure, insertion, duplication of a range, and
//     splicing with another seed. Same seed => same inputs, so a failure reproduces.
//
// A crash (abort, FUZZ_CHECK, segfault) writes the offending input to ./crash-<target>-<pid> and
// names it on stderr; replay it with `<binary> ./crash-...` or the libFuzzer build.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

// State read by the crash handler (async-signal-safe access only).
const uint8_t* volatile g_current = nullptr;
volatile size_t g_current_size = 0;
char g_crash_path[512];

void OnCrash(int sig) {
  int fd = open(g_crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd >= 0) {
    const uint8_t* p = g_current;
    size_t n = g_current_size;
    while (p != nullptr && n > 0) {
      ssize_t w = write(fd, p, n);
      if (w <= 0) break;
      p += w;
      n -= static_cast<size_t>(w);
    }
    close(fd);
  }
  static const char kMsg[] = "standalone fuzz: crashing input written to ";
  ssize_t unused = write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
  unused = write(STDERR_FILENO, g_crash_path, strlen(g_crash_path));
  unused = write(STDERR_FILENO, "\n", 1);
  (void)unused;
  signal(sig, SIG_DFL);
  raise(sig);
}

// splitmix64: small, fast, and the same on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n); n > 0.
  size_t Below(size_t n) { return static_cast<size_t>(Next() % n); }

 private:
  uint64_t state_;
};

using Bytes = std::vector<uint8_t>;

void Mutate(Bytes& b, const std::vector<Bytes>& corpus, Rng& rng, size_t max_len) {
  static constexpr uint8_t kInteresting[] = {0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff, ':', '0'};
  switch (rng.Below(9)) {
    case 0:  // flip one bit
      if (!b.empty()) b[rng.Below(b.size())] ^= static_cast<uint8_t>(1u << rng.Below(8));
      break;
    case 1:  // random byte
      if (!b.empty()) b[rng.Below(b.size())] = static_cast<uint8_t>(rng.Next());
      break;
    case 2:  // boundary byte
      if (!b.empty()) {
        b[rng.Below(b.size())] = kInteresting[rng.Below(sizeof(kInteresting))];
      }
      break;
    case 3:  // truncate
      b.resize(b.empty() ? 0 : rng.Below(b.size() + 1));
      break;
    case 4: {  // erase a range
      if (b.empty()) break;
      size_t at = rng.Below(b.size());
      size_t n = 1 + rng.Below(std::min<size_t>(16, b.size() - at));
      b.erase(b.begin() + static_cast<ptrdiff_t>(at), b.begin() + static_cast<ptrdiff_t>(at + n));
      break;
    }
    case 5: {  // insert random bytes
      size_t at = rng.Below(b.size() + 1);
      size_t n = 1 + rng.Below(16);
      Bytes ins(n);
      for (auto& c : ins) c = static_cast<uint8_t>(rng.Next());
      b.insert(b.begin() + static_cast<ptrdiff_t>(at), ins.begin(), ins.end());
      break;
    }
    case 6: {  // duplicate a range
      if (b.empty()) break;
      size_t from = rng.Below(b.size());
      size_t n = 1 + rng.Below(std::min<size_t>(64, b.size() - from));
      Bytes chunk(b.begin() + static_cast<ptrdiff_t>(from),
                  b.begin() + static_cast<ptrdiff_t>(from + n));
      size_t at = rng.Below(b.size() + 1);
      b.insert(b.begin() + static_cast<ptrdiff_t>(at), chunk.begin(), chunk.end());
      break;
    }
    case 7: {  // 32-bit big-endian boundary value (lengths, versions)
      if (b.size() < 4) break;
      static constexpr uint32_t kValues[] = {0, 1, 2, 0x7fffffff, 0x80000000, 0xffffffff, 1024, 1025};
      uint32_t v = kValues[rng.Below(std::size(kValues))];
      size_t at = rng.Below(b.size() - 3);
      for (int i = 0; i < 4; ++i) b[at + static_cast<size_t>(i)] = static_cast<uint8_t>(v >> (24 - 8 * i));
      break;
    }
    case 8: {  // splice: our prefix + another seed's suffix
      const Bytes& other = corpus[rng.Below(corpus.size())];
      size_t keep = rng.Below(b.size() + 1);
      size_t from = rng.Below(other.size() + 1);
      b.resize(keep);
      b.insert(b.end(), other.begin() + static_cast<ptrdiff_t>(from), other.end());
      break;
    }
  }
  if (b.size() > max_len) b.resize(max_len);
}

bool ReadFile(const std::filesystem::path& p, Bytes* out) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return false;
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  return true;
}

// Runs one input from an exactly-sized heap copy (so an over-read is a heap over-read, which the
// sanitizers and glibc's allocator are best placed to notice).
void RunOne(const Bytes& input) {
  uint8_t* buf = static_cast<uint8_t*>(std::malloc(input.empty() ? 1 : input.size()));
  if (buf == nullptr) std::abort();
  if (!input.empty()) std::memcpy(buf, input.data(), input.size());
  g_current = buf;
  g_current_size = input.size();
  LLVMFuzzerTestOneInput(buf, input.size());
  g_current = nullptr;
  g_current_size = 0;
  std::free(buf);
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);

  long runs = 20000;
  uint64_t seed = 0x6b736869656c64ULL;  // "kshield"
  size_t max_len = 0;  // 0: chosen from the seeds below
  std::vector<std::filesystem::path> paths;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("-runs=", 0) == 0) {
      runs = std::strtol(a.c_str() + 6, nullptr, 10);
    } else if (a.rfind("-seed=", 0) == 0) {
      seed = std::strtoull(a.c_str() + 6, nullptr, 10);
    } else if (a.rfind("-max_len=", 0) == 0) {
      max_len = std::strtoull(a.c_str() + 9, nullptr, 10);
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "unknown flag %s\nusage: %s [-runs=N] [-seed=S] [-max_len=L] PATH...\n",
                   a.c_str(), argv[0]);
      return 2;
    } else {
      paths.emplace_back(a);
    }
  }

  std::string target = std::filesystem::path(argv[0]).filename().string();
  std::snprintf(g_crash_path, sizeof(g_crash_path), "crash-%s-%d", target.c_str(),
                static_cast<int>(getpid()));
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) signal(sig, OnCrash);

  std::vector<Bytes> corpus;
  for (const auto& p : paths) {
    std::error_code ec;
    if (std::filesystem::is_directory(p, ec)) {
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::recursive_directory_iterator(p, ec)) {
        if (e.is_regular_file()) files.push_back(e.path());
      }
      std::sort(files.begin(), files.end());  // directory order is not stable
      for (const auto& f : files) {
        Bytes b;
        if (ReadFile(f, &b)) corpus.push_back(std::move(b));
      }
    } else {
      Bytes b;
      if (!ReadFile(p, &b)) {
        std::fprintf(stderr, "cannot read %s\n", p.c_str());
        return 2;
      }
      corpus.push_back(std::move(b));
    }
  }
  if (!paths.empty() && corpus.empty()) {
    // A mistyped corpus path would otherwise quietly weaken this test.
    std::fprintf(stderr, "no corpus inputs found under the given paths\n");
    return 2;
  }
  if (corpus.empty()) corpus.emplace_back();  // no seeds at all: mutate the empty input
  if (max_len == 0) {
    // Like libFuzzer: 4096 or the largest seed, whichever is larger.
    max_len = 4096;
    for (const auto& c : corpus) max_len = std::max(max_len, c.size());
  }

  const auto start = std::chrono::steady_clock::now();
  RunOne(Bytes());
  for (const auto& input : corpus) RunOne(input);

  Rng rng(seed);
  Bytes input;
  for (long i = 0; i < runs; ++i) {
    // Mostly fresh seeds, sometimes keep mutating the previous input (deeper changes).
    if (i == 0 || rng.Below(4) != 0) input = corpus[rng.Below(corpus.size())];
    const size_t n = 1 + rng.Below(4);
    for (size_t m = 0; m < n; ++m) Mutate(input, corpus, rng, max_len);
    RunOne(input);
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("standalone fuzz %s: %zu corpus inputs, %ld mutations, seed %llu, %.2f s, no crash\n",
              target.c_str(), corpus.size(), runs, static_cast<unsigned long long>(seed), secs);
  return 0;
}
