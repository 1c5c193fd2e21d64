// Test helper for tests/keyset_crash_test.cc.
//
//   keyset_crash_helper run DATA_DIR LOG     rotate and wrap in a loop forever, appending one line
//                                            "<key_id> <hex ciphertext> <hex dek>" per issued
//                                            ciphertext (one write(2) each) — killed by the test
//   keyset_crash_helper verify DATA_DIR LOG  load the keyset; every complete line must decrypt to
//                                            its DEK. Prints "verified N versions M"; exit 0 / 1.
//
// The DEKs are random test values: this is a test tool, not a place for real keys.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "common/log.h"
#include "crypto/random.h"
#include "crypto/sha256.h"
#include "keys/dek_cipher.h"
#include "keys/keyset_manager.h"
#include "keys/local_provider.h"
#include "tee/none_platform.h"

using namespace kshield;

namespace {

std::string FromHex(const std::string& h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(h.substr(i, 2), nullptr, 16)));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s run|verify DATA_DIR LOG\n", argv[0]);
    return 2;
  }
  std::string mode = argv[1], dir = argv[2], logfile = argv[3];
  kshield::log::SetLevel(kshield::log::Level::kError);
  tee::NonePlatform platform(dir);
  auto provider = keys::LocalProvider::New(platform);
  if (!provider.ok()) {
    std::fprintf(stderr, "provider: %s\n", std::string(provider.status().message()).c_str());
    return 1;
  }
  keys::KeysetManager manager(std::make_unique<keys::FileKeysetStore>(dir + "/keyset.bin"),
                              std::shared_ptr<keys::KeyProvider>(std::move(*provider)));
  absl::Status s = manager.Init();
  if (!s.ok()) {
    std::fprintf(stderr, "init: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  keys::DekCipher cipher(&manager);

  if (mode == "run") {
    int fd = open(logfile.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return 1;
    std::printf("ready\n");
    std::fflush(stdout);
    for (uint64_t i = 0;; ++i) {
      if (i % 4 == 0) {
        auto r = manager.Rotate();
        if (!r.ok()) {
          std::fprintf(stderr, "rotate: %s\n", std::string(r.status().message()).c_str());
          return 1;
        }
      }
      std::string dek = crypto::RandomString(32);
      auto w = cipher.Wrap(dek, keys::WrapFormat::kKmsV2);
      if (!w.ok()) return 1;
      std::string line = w->key_id + " " + crypto::HexEncode(w->ciphertext) + " " +
                         crypto::HexEncode(dek) + "\n";
      if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 1;
    }
  }

  std::ifstream in(logfile);
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream lines(contents);
  std::string line;
  size_t verified = 0;
  size_t pos = 0;
  while (std::getline(lines, line)) {
    pos += line.size() + 1;
    if (pos > contents.size()) break;  // last line without '\n': torn by the kill, not issued
    std::istringstream f(line);
    std::string key_id, ct_hex, dek_hex;
    f >> key_id >> ct_hex >> dek_hex;
    auto p = cipher.Unwrap(FromHex(ct_hex), key_id, keys::WrapFormat::kKmsV2);
    if (!p.ok() || *p != FromHex(dek_hex)) {
      std::fprintf(stderr, "line %zu (%s) does not decrypt: %s\n", verified + 1, key_id.c_str(),
                   p.ok() ? "wrong plaintext" : std::string(p.status().message()).c_str());
      return 1;
    }
    ++verified;
  }
  std::printf("verified %zu versions %zu\n", verified, manager.Current()->versions().size());
  return 0;
}
