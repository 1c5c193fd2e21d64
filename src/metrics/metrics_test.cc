#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metrics/metric.h"
#include "metrics/registry.h"
#include "metrics/text_format.h"

namespace kshield::metrics {
namespace {

using ::testing::HasSubstr;

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(FormatValueTest, IntegersHaveNoExponentOrFraction) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(1), "1");
  EXPECT_EQ(FormatValue(-42), "-42");
  EXPECT_EQ(FormatValue(1e6), "1000000");
  EXPECT_EQ(FormatValue(123456789012), "123456789012");
  EXPECT_EQ(FormatValue(9007199254740992.0), "9007199254740992");
}

TEST(FormatValueTest, FractionsAndHugeValuesRoundTrip) {
  EXPECT_EQ(FormatValue(0.5), "0.5");
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(-2.25), "-2.25");
  EXPECT_EQ(FormatValue(1e20), "1e+20");
  EXPECT_EQ(FormatValue(1e-9), "1e-09");
  for (double v : {0.1, 1.0 / 3, 2.5e-300, 1.7976931348623157e308, 12345.678}) {
    EXPECT_EQ(std::strtod(FormatValue(v).c_str(), nullptr), v) << FormatValue(v);
  }
}

TEST(FormatValueTest, SpecialValues) {
  EXPECT_EQ(FormatValue(kInf), "+Inf");
  EXPECT_EQ(FormatValue(-kInf), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(EscapeTest, LabelValueEscapesBackslashQuoteNewline) {
  std::string out;
  AppendEscapedLabelValue("a\\b\"c\nd", &out);
  EXPECT_EQ(out, R"(a\\b\"c\nd)");
}

TEST(EscapeTest, HelpEscapesBackslashNewlineButNotQuote) {
  std::string out;
  AppendEscapedHelp("line1\nline2 \\ \"q\"", &out);
  EXPECT_EQ(out, R"(line1\nline2 \\ "q")");
}

TEST(EscapeTest, InvalidUtf8IsReplacedValidIsKept) {
  const std::string kFffd = "\xEF\xBF\xBD";
  std::string out;
  AppendEscapedLabelValue("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x94\x91", &out);  // é € 🔑
  EXPECT_EQ(out, "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x94\x91");

  out.clear();
  AppendEscapedLabelValue("ok\xFF", &out);  // Not a UTF-8 byte at all.
  EXPECT_EQ(out, "ok" + kFffd);
  out.clear();
  AppendEscapedLabelValue("\xC0\xAF", &out);  // Overlong "/".
  EXPECT_EQ(out, kFffd + kFffd);
  out.clear();
  AppendEscapedLabelValue("\xED\xA0\x80", &out);  // UTF-16 surrogate.
  EXPECT_EQ(out, kFffd + kFffd + kFffd);
  out.clear();
  AppendEscapedLabelValue("\xE2\x82", &out);  // Truncated sequence.
  EXPECT_EQ(out, kFffd + kFffd);
}

TEST(NameTest, MetricNames) {
  EXPECT_TRUE(ValidateMetricName("kshield_requests_total").ok());
  EXPECT_TRUE(ValidateMetricName("_x:y9").ok());
  EXPECT_FALSE(ValidateMetricName("").ok());
  EXPECT_FALSE(ValidateMetricName("9lives").ok());
  EXPECT_FALSE(ValidateMetricName("has-dash").ok());
  EXPECT_FALSE(ValidateMetricName("has space").ok());
  EXPECT_FALSE(ValidateMetricName("caf\xC3\xA9").ok());
}

TEST(NameTest, LabelNames) {
  EXPECT_TRUE(ValidateLabelName("method").ok());
  EXPECT_TRUE(ValidateLabelName("_a1").ok());
  EXPECT_FALSE(ValidateLabelName("").ok());
  EXPECT_FALSE(ValidateLabelName("a:b").ok());
  EXPECT_FALSE(ValidateLabelName("1a").ok());
  EXPECT_FALSE(ValidateLabelName("__name__").ok());
}

TEST(RegistryTest, RendersExactText) {
  Registry r;
  auto& requests = r.Counter("kshield_requests_total", "Requests handled.", {"method", "code"});
  requests.WithLabels({"Encrypt", "OK"}).Inc();
  requests.WithLabels({"Encrypt", "OK"}).Inc(2);
  requests.WithLabels({"Decrypt", "OK"}).Inc();
  r.Gauge("kshield_keys", "Keys loaded.").WithLabels().Set(2.5);
  auto& latency = r.Histogram("kshield_latency_seconds", "Latency.", {}, {0.125, 1});
  latency.WithLabels().Observe(0.0625);
  latency.WithLabels().Observe(0.5);
  latency.WithLabels().Observe(4);
  r.GaugeCallback("kshield_up", "Always one.", {}, [] { return GaugeSamples{{{}, 1}}; });
  r.Counter("kshield_idle_total", "Never incremented; still rendered.");
  r.Gauge("kshield_unused", "Labelled, no series yet: left out.", {"x"});

  EXPECT_EQ(r.Render(),
            "# HELP kshield_idle_total Never incremented; still rendered.\n"
            "# TYPE kshield_idle_total counter\n"
            "kshield_idle_total 0\n"
            "# HELP kshield_keys Keys loaded.\n"
            "# TYPE kshield_keys gauge\n"
            "kshield_keys 2.5\n"
            "# HELP kshield_latency_seconds Latency.\n"
            "# TYPE kshield_latency_seconds histogram\n"
            "kshield_latency_seconds_bucket{le=\"0.125\"} 1\n"
            "kshield_latency_seconds_bucket{le=\"1\"} 2\n"
            "kshield_latency_seconds_bucket{le=\"+Inf\"} 3\n"
            "kshield_latency_seconds_sum 4.5625\n"
            "kshield_latency_seconds_count 3\n"
            "# HELP kshield_requests_total Requests handled.\n"
            "# TYPE kshield_requests_total counter\n"
            "kshield_requests_total{method=\"Decrypt\",code=\"OK\"} 1\n"
            "kshield_requests_total{method=\"Encrypt\",code=\"OK\"} 3\n"
            "# HELP kshield_up Always one.\n"
            "# TYPE kshield_up gauge\n"
            "kshield_up 1\n");
}

TEST(RegistryTest, EscapesLabelValuesAndHelp) {
  Registry r;
  r.Gauge("kshield_g", "Help with \\ and\nnewline and \"quotes\".", {"path"})
      .WithLabels({"C:\\dir\n\"x\""})
      .Set(1);
  EXPECT_EQ(r.Render(),
            "# HELP kshield_g Help with \\\\ and\\nnewline and \"quotes\".\n"
            "# TYPE kshield_g gauge\n"
            "kshield_g{path=\"C:\\\\dir\\n\\\"x\\\"\"} 1\n");
}

TEST(RegistryTest, HistogramBucketsAreCumulativeWithLabels) {
  Registry r;
  auto& family = r.Histogram("kshield_size_bytes", "Sizes.", {"op"}, {10, 100, 1000});
  Histogram& h = family.WithLabels({"wrap"});
  for (double v : {1.0, 10.0, 11.0, 100.0, 5000.0, -3.0}) h.Observe(v);
  h.Observe(std::nan(""));  // Lands in +Inf; sum becomes NaN.

  const Histogram::Snapshot s = h.Read();
  EXPECT_EQ(s.upper_bounds, (std::vector<double>{10, 100, 1000}));
  EXPECT_EQ(s.cumulative_counts, (std::vector<uint64_t>{3, 5, 5, 7}));
  EXPECT_EQ(s.count, 7u);
  EXPECT_TRUE(std::isnan(s.sum));

  EXPECT_EQ(r.Render(),
            "# HELP kshield_size_bytes Sizes.\n"
            "# TYPE kshield_size_bytes histogram\n"
            "kshield_size_bytes_bucket{op=\"wrap\",le=\"10\"} 3\n"
            "kshield_size_bytes_bucket{op=\"wrap\",le=\"100\"} 5\n"
            "kshield_size_bytes_bucket{op=\"wrap\",le=\"1000\"} 5\n"
            "kshield_size_bytes_bucket{op=\"wrap\",le=\"+Inf\"} 7\n"
            "kshield_size_bytes_sum{op=\"wrap\"} NaN\n"
            "kshield_size_bytes_count{op=\"wrap\"} 7\n");
}

TEST(RegistryTest, HistogramAcceptsTrailingInfAndRejectsBadBuckets) {
  Registry r;
  auto family = r.TryHistogram("kshield_a_seconds", "A.", {}, {1, 2, kInf});
  ASSERT_TRUE(family.ok()) << family.status();
  EXPECT_EQ((*family)->upper_bounds(), (std::vector<double>{1, 2}));

  EXPECT_FALSE(r.TryHistogram("kshield_b_seconds", "B.", {}, {1, 1}).ok());
  EXPECT_FALSE(r.TryHistogram("kshield_c_seconds", "C.", {}, {2, 1}).ok());
  EXPECT_FALSE(r.TryHistogram("kshield_d_seconds", "D.", {}, {-kInf, 1}).ok());
  EXPECT_FALSE(r.TryHistogram("kshield_e_seconds", "E.", {}, {std::nan(""), 1}).ok());
  EXPECT_FALSE(r.TryHistogram("kshield_f_seconds", "F.", {"le"}, {1}).ok());
  EXPECT_TRUE(r.TryHistogram("kshield_g_seconds", "Only +Inf.", {}, {}).ok());
}

TEST(RegistryTest, BucketHelpers) {
  EXPECT_EQ(ExponentialBuckets(0.001, 10, 4), (std::vector<double>{0.001, 0.01, 0.1, 1}));
  EXPECT_EQ(LinearBuckets(0, 5, 3), (std::vector<double>{0, 5, 10}));
  EXPECT_TRUE(ExponentialBuckets(0, 2, 3).empty());
  EXPECT_TRUE(LinearBuckets(0, -1, 3).empty());
}

TEST(RegistryTest, RefusesBadRegistrations) {
  Registry r;
  ASSERT_TRUE(r.TryCounter("kshield_x_total", "X.", {"a"}).ok());

  const auto expect_error = [](const absl::Status& s, absl::StatusCode code, const char* text) {
    EXPECT_EQ(s.code(), code) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(text));
  };
  expect_error(r.TryCounter("kshield_x_total", "Again.", {}).status(),
               absl::StatusCode::kAlreadyExists, "already registered");
  expect_error(r.TryGauge("kshield_x_total", "Gauge with a counter name.", {}).status(),
               absl::StatusCode::kInvalidArgument, "_total");
  expect_error(r.TryCounter("kshield_x", "No suffix.", {}).status(),
               absl::StatusCode::kInvalidArgument, "must have a name ending in \"_total\"");
  expect_error(r.TryGauge("kshield_y_count", "Reserved suffix.", {}).status(),
               absl::StatusCode::kInvalidArgument, "_count");
  expect_error(r.TryGauge("kshield-y", "Bad name.", {}).status(),
               absl::StatusCode::kInvalidArgument, "invalid metric name");
  expect_error(r.TryGauge("kshield_y", "Bad label.", {"a-b"}).status(),
               absl::StatusCode::kInvalidArgument, "invalid label name");
  expect_error(r.TryGauge("kshield_y", "Dup label.", {"a", "a"}).status(),
               absl::StatusCode::kInvalidArgument, "duplicate label");
  expect_error(r.TryGauge("kshield_y", "Reserved label.", {"quantile"}).status(),
               absl::StatusCode::kInvalidArgument, "reserved");
  expect_error(r.TryGauge("kshield_y", "", {}).status(), absl::StatusCode::kInvalidArgument,
               "help");
  expect_error(r.TryGaugeCallback("kshield_y", "No fn.", {}, nullptr),
               absl::StatusCode::kInvalidArgument, "callback");
  // None of the failures registered anything.
  EXPECT_TRUE(r.TryGauge("kshield_y", "Now fine.", {}).ok());
}

TEST(RegistryDeathTest, ProgrammingErrorsAbortWithAClearMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  Registry r;
  EXPECT_DEATH(r.Counter("kshield_requests", "No suffix."),
               "kshield metrics: fatal: .*kshield_requests.*_total");
  auto& family = r.Counter("kshield_requests_total", "Requests.", {"method", "code"});
  EXPECT_DEATH(family.WithLabels({"Encrypt"}), "has labels \\{method,code\\}.*got 1 value");
  EXPECT_DEATH(r.Counter("kshield_requests_total", "Again."), "already registered");
}

TEST(RegistryTest, ChildReferencesAreStable) {
  Registry r;
  auto& family = r.Gauge("kshield_g", "G.", {"k"});
  Gauge* first = &family.WithLabels({"a"});
  for (int i = 0; i < 1000; ++i) family.WithLabels({absl::StrCat("k", i)});
  EXPECT_EQ(&family.WithLabels({"a"}), first);
  first->Inc(3);
  first->Dec();
  EXPECT_EQ(family.WithLabels({"a"}).Value(), 2);
}

TEST(RegistryTest, CounterIgnoresNegativeAndNaN) {
  Counter c;
  c.Inc(2);
  c.Inc(-1);
  c.Inc(std::nan(""));
  EXPECT_EQ(c.Value(), 2);
}

TEST(RegistryTest, GaugeCallbackSortsDedupsAndDropsWrongArity) {
  Registry r;
  r.GaugeCallback("kshield_keys", "Keys by state.", {"state"}, [] {
    return GaugeSamples{{{"retired"}, 1}, {{"active"}, 3}, {{"a", "b"}, 9}, {{"active"}, 4}};
  });
  EXPECT_EQ(r.Render(),
            "# HELP kshield_keys Keys by state.\n"
            "# TYPE kshield_keys gauge\n"
            "kshield_keys{state=\"active\"} 4\n"
            "kshield_keys{state=\"retired\"} 1\n");
}

TEST(RegistryTest, DefaultIsOneInstance) { EXPECT_EQ(&Registry::Default(), &Registry::Default()); }

TEST(ConcurrencyTest, ParallelUpdatesAreExact) {
  Registry r;
  auto& counters = r.Counter("kshield_ops_total", "Ops.", {"t"});
  auto& gauge = r.Gauge("kshield_level", "Level.").WithLabels();
  auto& histogram = r.Histogram("kshield_obs", "Obs.", {}, {0.5, 1.5}).WithLabels();
  constexpr int kThreads = 8;
  constexpr int kIters = 100000;

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Every thread looks up the shared child itself, racing on creation.
      Counter& shared = counters.WithLabels({"shared"});
      Counter& own = counters.WithLabels({absl::StrCat("t", t)});
      for (int i = 0; i < kIters; ++i) {
        shared.Inc();
        own.Inc(0.5);
        gauge.Inc(2);
        gauge.Dec();
        histogram.Observe(i % 3);  // 0, 1, 2 -> one per bucket
      }
    });
  }
  // Scrape while writers run: must not crash or deadlock.
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(r.Render().empty());
  for (auto& th : threads) th.join();

  EXPECT_EQ(counters.WithLabels({"shared"}).Value(), kThreads * kIters);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(counters.WithLabels({absl::StrCat("t", t)}).Value(), kIters * 0.5);
  }
  EXPECT_EQ(gauge.Value(), kThreads * kIters);
  const Histogram::Snapshot s = histogram.Read();
  EXPECT_EQ(s.count, static_cast<uint64_t>(kThreads) * kIters);
  // i % 3 over [0, kIters): 0 and 1 occur ceil-ish; compute exactly.
  uint64_t zeros = 0, ones = 0;
  double sum = 0;
  for (int i = 0; i < kIters; ++i) {
    zeros += i % 3 == 0;
    ones += i % 3 == 1;
    sum += i % 3;
  }
  EXPECT_EQ(s.cumulative_counts[0], kThreads * zeros);
  EXPECT_EQ(s.cumulative_counts[1], kThreads * (zeros + ones));
  EXPECT_EQ(s.sum, kThreads * sum);
}

// Runs `promtool check metrics` on `text` (through stdin). Returns exit status and combined output.
struct PromtoolResult {
  int exit_code = -1;
  std::string output;
};

constexpr char kPromtool[] = "/usr/bin/promtool";

PromtoolResult RunPromtool(const std::string& text) {
  char path[] = "/tmp/kshield_metrics_test_XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return {};
  close(fd);
  std::ofstream(path, std::ios::binary) << text;
  PromtoolResult result;
  const std::string cmd = absl::StrCat(kPromtool, " check metrics < ", path, " 2>&1");
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe != nullptr) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) result.output.append(buf, n);
    const int status = pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  unlink(path);
  return result;
}

class PromtoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kPromtool, X_OK) != 0) {
      GTEST_SKIP() << kPromtool << " not found; install the Debian package 'prometheus' to run "
                   << "the exposition-format check";
    }
  }
};

TEST_F(PromtoolTest, AcceptsRenderedRegistry) {
  Registry r;
  auto& requests = r.Counter("kshield_kms_requests_total", "KMS requests handled, by method.",
                             {"method", "code"});
  requests.WithLabels({"Encrypt", "OK"}).Inc(12345678);
  requests.WithLabels({"Decrypt", "PERMISSION_DENIED"}).Inc(0.5);
  r.Counter("kshield_kms_rejected_total", "Requests rejected, by reason.", {"reason"})
      .WithLabels({"peer \"uid\"\nwith\\escapes and bad utf8 \xFF\xC0"})
      .Inc();
  r.Gauge("kshield_keys", "Keys in the keyset.\nSecond line with \\ backslash.", {"state"})
      .WithLabels({"active"})
      .Set(-1.5e-7);
  r.Gauge("kshield_big", "A huge value.").WithLabels().Set(1e300);
  r.Gauge("kshield_nan", "Not a number.").WithLabels().Set(std::nan(""));
  r.Gauge("kshield_inf", "Infinity.").WithLabels().Set(-kInf);
  auto& latency = r.Histogram("kshield_kms_latency_seconds", "Request latency.", {"method"},
                              ExponentialBuckets(0.0001, 4, 8));
  for (double v : {0.00005, 0.001, 0.3, 20.0}) latency.WithLabels({"Encrypt"}).Observe(v);
  r.Histogram("kshield_dek_bytes", "Plaintext sizes.", {}, {}).WithLabels().Observe(3);
  r.GaugeCallback("kshield_secure_memory_bytes", "Locked bytes.", {"kind"}, [] {
    return GaugeSamples{{{"locked"}, 4096}, {{"limit"}, 65536}};
  });

  const std::string text = r.Render();
  const PromtoolResult result = RunPromtool(text);
  EXPECT_EQ(result.exit_code, 0) << result.output << "\n--- input ---\n" << text;
  EXPECT_EQ(result.output, "") << "\n--- input ---\n" << text;
}

// The harness must be able to fail: promtool reports a counter without the _total suffix.
TEST_F(PromtoolTest, HarnessDetectsProblems) {
  const PromtoolResult result =
      RunPromtool("# HELP kshield_bad A counter.\n# TYPE kshield_bad counter\nkshield_bad 1\n");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.output, HasSubstr("_total"));
}

}  // namespace
}  // namespace kshield::metrics
