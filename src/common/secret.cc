#include "common/secret.h"

#include <openssl/crypto.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <vector>

namespace kshield {
namespace {

// A small arena: secrets are tiny (16..4096 bytes) and numerous (one per KEK version), so one
// mmap per secret would waste pages and the RLIMIT_MEMLOCK budget. Chunks of 64 KiB are mapped,
// mlock'd and marked MADV_DONTDUMP; slots of power-of-two size classes are handed out from them
// and recycled through per-class free lists. Larger requests get their own mapping.
constexpr size_t kChunkSize = 64 * 1024;
constexpr size_t kMinClass = 32;
constexpr size_t kMaxClass = 4096;
constexpr int kNumClasses = 8;  // 32 .. 4096

int ClassIndex(size_t n) {
  size_t c = kMinClass;
  int i = 0;
  while (c < n) {
    c <<= 1;
    ++i;
  }
  return i;
}
size_t ClassSize(int i) { return kMinClass << i; }

class Arena {
 public:
  static Arena& Get() {
    static Arena* arena = new Arena();  // never destroyed: secrets may outlive static teardown
    return *arena;
  }

  uint8_t* Allocate(size_t n) {
    if (n > kMaxClass) {
      uint8_t* p = MapProtected(n);
      if (p != nullptr) big_in_use_ += RoundToPages(n);
      return p;
    }
    int ci = ClassIndex(n);
    std::lock_guard<std::mutex> lock(mu_);
    auto& fl = free_[ci];
    if (fl.empty()) {
      uint8_t* chunk = MapProtected(kChunkSize);
      if (chunk == nullptr) return nullptr;
      for (size_t off = 0; off + ClassSize(ci) <= kChunkSize; off += ClassSize(ci)) {
        fl.push_back(chunk + off);
      }
    }
    uint8_t* p = fl.back();
    fl.pop_back();
    in_use_ += ClassSize(ci);
    return p;
  }

  void Free(uint8_t* p, size_t n) {
    if (n > kMaxClass) {
      OPENSSL_cleanse(p, n);
      Unmap(p, n);
      return;
    }
    int ci = ClassIndex(n);
    OPENSSL_cleanse(p, ClassSize(ci));
    std::lock_guard<std::mutex> lock(mu_);
    free_[ci].push_back(p);
    in_use_ -= ClassSize(ci);
  }

  SecureMemoryStats Stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return {in_use_ + big_in_use_.load(), reserved_.load(), mlock_ok_.load()};
  }

 private:
  static size_t RoundToPages(size_t n) {
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return (n + page - 1) / page * page;
  }

  uint8_t* MapProtected(size_t n) {
    size_t len = RoundToPages(n);
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return nullptr;
    madvise(p, len, MADV_DONTDUMP);
    if (mlock(p, len) != 0) mlock_ok_ = false;
    reserved_ += len;
    return static_cast<uint8_t*>(p);
  }

  void Unmap(uint8_t* p, size_t n) {
    size_t len = RoundToPages(n);
    munlock(p, len);
    munmap(p, len);
    reserved_ -= len;
    big_in_use_ -= len;
  }

  std::mutex mu_;
  std::vector<uint8_t*> free_[kNumClasses];
  size_t in_use_ = 0;
  std::atomic<size_t> big_in_use_{0};
  std::atomic<size_t> reserved_{0};
  std::atomic<bool> mlock_ok_{true};
};

}  // namespace

SecretBytes::SecretBytes(size_t n) {
  if (n == 0) return;
  data_ = Arena::Get().Allocate(n);
  if (data_ == nullptr) {
    // Out of address space for secrets is not survivable: there is nowhere safe to put the key.
    std::abort();
  }
  size_ = n;
  std::memset(data_, 0, n);
}

SecretBytes SecretBytes::CopyFrom(absl::Span<const uint8_t> bytes) {
  SecretBytes s(bytes.size());
  if (!bytes.empty()) std::memcpy(s.data_, bytes.data(), bytes.size());
  return s;
}

SecretBytes SecretBytes::CopyFrom(std::string_view bytes) {
  return CopyFrom(absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            bytes.size()));
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

SecretBytes::~SecretBytes() { Release(); }

void SecretBytes::Release() {
  if (data_ != nullptr) Arena::Get().Free(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

SecretBytes SecretBytes::Clone() const { return CopyFrom(UnsafeView()); }

bool SecretBytes::Equals(const SecretBytes& other) const {
  if (size_ != other.size_) return false;
  if (size_ == 0) return true;
  return CRYPTO_memcmp(data_, other.data_, size_) == 0;
}

SecureMemoryStats GetSecureMemoryStats() { return Arena::Get().Stats(); }

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace kshield
