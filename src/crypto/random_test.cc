#include "crypto/random.h"

#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace kshield::crypto {
namespace {

TEST(Random, FillProducesDistinctOutputs) {
  std::vector<uint8_t> a(32), b(32);
  ASSERT_TRUE(RandomFill(absl::MakeSpan(a)).ok());
  ASSERT_TRUE(RandomFill(absl::MakeSpan(b)).ok());
  EXPECT_NE(a, b);
  EXPECT_NE(a, std::vector<uint8_t>(32, 0));
}

TEST(Random, FillEmptyIsOk) { EXPECT_TRUE(RandomFill(absl::Span<uint8_t>()).ok()); }

TEST(Random, StringSizes) {
  for (size_t n : {0, 1, 12, 32, 1000}) {
    EXPECT_EQ(RandomString(n).size(), n);
  }
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(RandomString(16));
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(Random, SecretSizesAndDistinct) {
  SecretBytes a = RandomSecret(32);
  SecretBytes b = RandomSecret(32);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_FALSE(a.Equals(b));
  EXPECT_TRUE(RandomSecret(0).empty());
}

TEST(Random, HexIsLowercaseAndTwiceAsLong) {
  const std::string h = RandomHex(16);
  ASSERT_EQ(h.size(), 32u);
  for (char c : h) {
    EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << c;
  }
  EXPECT_NE(RandomHex(16), h);
}

TEST(Random, BytesLookUniform) {
  // Loose sanity: every byte value shows up in 64 KiB of output.
  const std::string s = RandomString(64 * 1024);
  std::vector<int> counts(256, 0);
  for (unsigned char c : s) ++counts[c];
  for (int v = 0; v < 256; ++v) EXPECT_GT(counts[v], 0) << v;
}

}  // namespace
}  // namespace kshield::crypto
