// kshield-bench micro: Google Benchmark microbenchmarks of the hot path, without gRPC:
// the DEK wrap / unwrap the plugin does per call, and its building blocks.
#include <benchmark/benchmark.h>

#include "common/log.h"
#include "common/testing/temp_dir.h"
#include "crypto/aead.h"
#include "crypto/hkdf.h"
#include "crypto/random.h"
#include "keys/dek_cipher.h"
#include "keys/local_provider.h"
#include "tee/none_platform.h"

namespace kshield::bench {
namespace {

struct Fixture {
  testing::TempDir dir;
  tee::NonePlatform platform{dir.path()};
  std::unique_ptr<keys::KeysetManager> manager;
  std::unique_ptr<keys::DekCipher> cipher;
  Fixture() {
    log::SetLevel(log::Level::kError);
    auto p = keys::LocalProvider::New(platform);
    manager = std::make_unique<keys::KeysetManager>(
        std::make_unique<keys::FileKeysetStore>(dir.Sub("keyset.bin")),
        std::shared_ptr<keys::KeyProvider>(std::move(*p)));
    if (!manager->Init().ok()) abort();
    cipher = std::make_unique<keys::DekCipher>(manager.get());
  }
};

Fixture& F() {
  static Fixture* f = new Fixture();
  return *f;
}

void BM_DekWrap(benchmark::State& state) {
  std::string dek = crypto::RandomString(32);
  for (auto _ : state) {
    auto w = F().cipher->Wrap(dek, keys::WrapFormat::kKmsV2);
    benchmark::DoNotOptimize(w);
  }
}
BENCHMARK(BM_DekWrap)->ThreadRange(1, 2);

void BM_DekUnwrap(benchmark::State& state) {
  auto w = F().cipher->Wrap(crypto::RandomString(32), keys::WrapFormat::kKmsV2);
  for (auto _ : state) {
    auto p = F().cipher->Unwrap(w->ciphertext, w->key_id, keys::WrapFormat::kKmsV2);
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_DekUnwrap)->ThreadRange(1, 2);

void BM_AesGcmEncrypt32(benchmark::State& state) {
  auto aead = crypto::AesGcmAead::New(crypto::RandomSecret(32));
  std::string pt = crypto::RandomString(32);
  for (auto _ : state) {
    auto c = (*aead)->Encrypt(pt, "ksh1:0123456789abcdef:1");
    benchmark::DoNotOptimize(c);
  }
}
BENCHMARK(BM_AesGcmEncrypt32);

void BM_HkdfExpand(benchmark::State& state) {
  SecretBytes seed = crypto::RandomSecret(32);
  std::string info = crypto::RandomString(32);
  for (auto _ : state) {
    auto k = crypto::HkdfExpandSha256(seed, info, 32);
    benchmark::DoNotOptimize(k);
  }
}
BENCHMARK(BM_HkdfExpand);

}  // namespace

int RunMicro(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace kshield::bench
