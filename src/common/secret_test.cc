#include "common/secret.h"

#include <cstring>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"

namespace kshield {
namespace {

static_assert(!std::is_copy_constructible_v<SecretBytes>);
static_assert(!std::is_copy_assignable_v<SecretBytes>);
static_assert(std::is_nothrow_move_constructible_v<SecretBytes>);
static_assert(std::is_nothrow_move_assignable_v<SecretBytes>);
static_assert(!std::is_convertible_v<SecretBytes, std::string>);
static_assert(!std::is_convertible_v<SecretBytes, std::string_view>);

bool AllBytesAre(const uint8_t* p, size_t n, uint8_t v) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != v) return false;
  }
  return true;
}

SecretBytes Filled(size_t n, uint8_t v) {
  SecretBytes s(n);
  if (n > 0) std::memset(s.UnsafeMutableData(), v, n);
  return s;
}

TEST(SecretBytes, DefaultIsEmpty) {
  SecretBytes s;
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.size(), 0u);
  EXPECT_TRUE(s.UnsafeView().empty());
  EXPECT_TRUE(s.UnsafeStringView().empty());
  SecretBytes zero(0);
  EXPECT_TRUE(zero.empty());
}

TEST(SecretBytes, SizedConstructorIsZeroed) {
  for (size_t n : {1, 31, 32, 33, 4096, 4097, 20000}) {
    SCOPED_TRACE(n);
    SecretBytes s(n);
    ASSERT_EQ(s.size(), n);
    EXPECT_TRUE(AllBytesAre(s.UnsafeView().data(), n, 0));
  }
}

TEST(SecretBytes, CopyFromSpanAndStringView) {
  const std::vector<uint8_t> raw = {1, 2, 3, 4, 5};
  SecretBytes a = SecretBytes::CopyFrom(absl::MakeConstSpan(raw));
  ASSERT_EQ(a.size(), raw.size());
  EXPECT_EQ(std::vector<uint8_t>(a.UnsafeView().begin(), a.UnsafeView().end()), raw);
  EXPECT_NE(a.UnsafeView().data(), raw.data());

  SecretBytes b = SecretBytes::CopyFrom(std::string_view("hello\0world", 11));
  EXPECT_EQ(b.UnsafeStringView(), std::string_view("hello\0world", 11));
  EXPECT_TRUE(SecretBytes::CopyFrom(std::string_view()).empty());
}

TEST(SecretBytes, MoveConstructTransfersAndEmptiesSource) {
  SecretBytes a = SecretBytes::CopyFrom(std::string_view("key material"));
  const uint8_t* p = a.UnsafeView().data();
  SecretBytes b(std::move(a));
  EXPECT_EQ(b.UnsafeView().data(), p);  // no copy left behind anywhere
  EXPECT_EQ(b.UnsafeStringView(), "key material");
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.UnsafeView().data(), nullptr);
}

TEST(SecretBytes, MoveAssignZeroizesReplacedBuffer) {
  SecretBytes a = Filled(48, 0xAA);
  SecretBytes b = Filled(48, 0xBB);
  // Small secrets live in arena chunks that stay mapped, so the old slot can be inspected after
  // it was released.
  const uint8_t* old_a = a.UnsafeView().data();
  const uint8_t* old_b = b.UnsafeView().data();
  a = std::move(b);
  EXPECT_EQ(a.UnsafeView().data(), old_b);
  EXPECT_TRUE(AllBytesAre(a.UnsafeView().data(), 48, 0xBB));
  EXPECT_TRUE(AllBytesAre(old_a, 64, 0x00)) << "released slot was not cleared";
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(b.UnsafeView().data(), nullptr);
}

TEST(SecretBytes, DestructorZeroizes) {
  const uint8_t* p = nullptr;
  {
    SecretBytes s = Filled(100, 0x5C);
    p = s.UnsafeView().data();
    ASSERT_TRUE(AllBytesAre(p, 100, 0x5C));
  }
  EXPECT_TRUE(AllBytesAre(p, 128, 0x00)) << "destroyed secret was not cleared";
}

TEST(SecretBytes, CloneIsIndependentCopy) {
  SecretBytes a = SecretBytes::CopyFrom(std::string_view("0123456789abcdef"));
  SecretBytes c = a.Clone();
  EXPECT_TRUE(a.Equals(c));
  EXPECT_NE(a.UnsafeView().data(), c.UnsafeView().data());
  c.UnsafeMutableData()[0] = 'X';
  EXPECT_FALSE(a.Equals(c));
  EXPECT_EQ(a.UnsafeStringView(), "0123456789abcdef");
  EXPECT_TRUE(SecretBytes().Clone().empty());
}

TEST(SecretBytes, Equals) {
  SecretBytes a = SecretBytes::CopyFrom(std::string_view("abcdef"));
  SecretBytes same = SecretBytes::CopyFrom(std::string_view("abcdef"));
  SecretBytes last_differs = SecretBytes::CopyFrom(std::string_view("abcdeg"));
  SecretBytes shorter = SecretBytes::CopyFrom(std::string_view("abcde"));
  EXPECT_TRUE(a.Equals(a));
  EXPECT_TRUE(a.Equals(same));
  EXPECT_FALSE(a.Equals(last_differs));
  EXPECT_FALSE(a.Equals(shorter));
  EXPECT_FALSE(shorter.Equals(a));
  EXPECT_TRUE(SecretBytes().Equals(SecretBytes()));
  EXPECT_FALSE(SecretBytes().Equals(a));
}

TEST(ConstantTimeEquals, Basics) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("tag", "tag"));
  EXPECT_FALSE(ConstantTimeEquals("tag", "taG"));
  EXPECT_FALSE(ConstantTimeEquals("tag", "tags"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
}

TEST(SecureMemoryStats, TrackSmallAndLargeAllocations) {
  const SecureMemoryStats before = GetSecureMemoryStats();
  {
    std::vector<SecretBytes> small;
    for (int i = 0; i < 100; ++i) small.emplace_back(64);
    SecretBytes big(10000);
    const SecureMemoryStats during = GetSecureMemoryStats();
    EXPECT_GE(during.bytes_in_use, before.bytes_in_use + 100 * 64 + 10000);
    EXPECT_GE(during.bytes_reserved, during.bytes_in_use);
    EXPECT_GT(during.bytes_reserved, before.bytes_reserved);
  }
  const SecureMemoryStats after = GetSecureMemoryStats();
  EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
  // Not asserted: mlock may legitimately fail under a small RLIMIT_MEMLOCK.
  RecordProperty("mlock_ok", after.mlock_ok ? "true" : "false");
}

TEST(SecretBytes, ManyAllocationsAcrossSizeClasses) {
  const std::vector<size_t> sizes = {1,    2,    16,   31,   32,    33,    63,    64,   65,
                                     127,  128,  129,  255,  256,   257,   511,   512,  513,
                                     1000, 1023, 1024, 1025, 2047,  2048,  2049,  4095, 4096,
                                     4097, 5000, 8192, 8193, 65536, 70000, 200000};
  constexpr int kPerSize = 40;  // 40 * 4096 spans several 64 KiB chunks
  const SecureMemoryStats before = GetSecureMemoryStats();
  std::vector<SecretBytes> secrets;
  for (int round = 0; round < kPerSize; ++round) {
    for (size_t n : sizes) {
      const uint8_t pattern = static_cast<uint8_t>(secrets.size() * 7 + 1);
      secrets.push_back(Filled(n, pattern));
    }
  }
  // No two live secrets overlap: every one still holds its own pattern.
  for (size_t i = 0; i < secrets.size(); ++i) {
    const uint8_t pattern = static_cast<uint8_t>(i * 7 + 1);
    ASSERT_TRUE(AllBytesAre(secrets[i].UnsafeView().data(), secrets[i].size(), pattern)) << i;
  }
  // Free every other one, reallocate, and check fresh secrets start zeroed and do not disturb
  // the survivors.
  for (size_t i = 0; i < secrets.size(); i += 2) secrets[i] = SecretBytes();
  for (size_t i = 0; i < secrets.size(); i += 2) {
    const size_t n = sizes[i % sizes.size()];
    secrets[i] = SecretBytes(n);
    ASSERT_TRUE(AllBytesAre(secrets[i].UnsafeView().data(), n, 0)) << i;
  }
  for (size_t i = 1; i < secrets.size(); i += 2) {
    const uint8_t pattern = static_cast<uint8_t>(i * 7 + 1);
    ASSERT_TRUE(AllBytesAre(secrets[i].UnsafeView().data(), secrets[i].size(), pattern)) << i;
  }
  secrets.clear();
  EXPECT_EQ(GetSecureMemoryStats().bytes_in_use, before.bytes_in_use);
}

TEST(SecretBytes, ConcurrentAllocationSmoke) {
  const SecureMemoryStats before = GetSecureMemoryStats();
  std::vector<std::thread> threads;
  std::vector<int> errors(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &errors] {
      for (int i = 0; i < 2000; ++i) {
        const size_t n = 1 + static_cast<size_t>((i * 37 + t * 11) % 5000);
        const uint8_t v = static_cast<uint8_t>(t + 1);
        SecretBytes s = Filled(n, v);
        SecretBytes c = s.Clone();
        if (!AllBytesAre(c.UnsafeView().data(), n, v) || !s.Equals(c)) ++errors[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(errors[t], 0);
  EXPECT_EQ(GetSecureMemoryStats().bytes_in_use, before.bytes_in_use);
}

}  // namespace
}  // namespace kshield
