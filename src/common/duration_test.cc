#include "common/duration.h"

#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kshield {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// The rules every mutation below is checked against, and the one valid input they start from.
const DurationRules kRules{.field = "timeout",
                           .min = absl::Milliseconds(10),
                           .max = absl::Minutes(5),
                           .allow_bare_number = true,
                           .bare_number_unit = absl::Seconds(1)};
constexpr std::string_view kValid = "2s";

std::string Error(std::string_view text, const DurationRules& rules = kRules) {
  absl::StatusOr<absl::Duration> d = ParseDuration(text, rules);
  if (d.ok()) return "accepted as " + absl::FormatDuration(*d);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << text;
  return std::string(d.status().message());
}

absl::Duration Value(std::string_view text, const DurationRules& rules = kRules) {
  absl::StatusOr<absl::Duration> d = ParseDuration(text, rules);
  EXPECT_TRUE(d.ok()) << text << ": " << d.status();
  return d.ok() ? *d : absl::InfiniteDuration();
}

TEST(ParseDurationTest, TheValidInput) { EXPECT_EQ(Value(kValid), absl::Seconds(2)); }

TEST(ParseDurationTest, Empty) {
  EXPECT_EQ(Error(""),
            "timeout: invalid duration \"\": empty (examples: 500ms, 30s, 5m, 1h30m; "
            "a bare number counts seconds)");
}

TEST(ParseDurationTest, Negative) {
  EXPECT_EQ(Error("-2s"), "timeout: duration \"-2s\" is out of range [10ms, 5m]");
  // A negative value is refused by the default minimum (zero) too.
  EXPECT_THAT(Error("-2s", {}), HasSubstr("out of range: must be at least 0"));
  // ...and accepted when the rules allow it.
  EXPECT_EQ(Value("-2s", {.min = -absl::Hours(1)}), absl::Seconds(-2));
  EXPECT_EQ(Value("-0s", {}), absl::ZeroDuration());
}

TEST(ParseDurationTest, Overflow) {
  // Above this caller's maximum: reported as the range.
  EXPECT_THAT(Error("99999999999h"), HasSubstr("\"99999999999h\" is out of range [10ms, 5m]"));
  // Without a maximum: the ~292-year representation limit.
  const DurationRules unbounded;
  EXPECT_THAT(Error("99999999999h", unbounded), HasSubstr("is too large"));
  EXPECT_THAT(Error("99999999999999999999s", unbounded), HasSubstr("is too large"));
  EXPECT_THAT(Error("99999999999999999999", {.allow_bare_number = true}), HasSubstr("too large"));
  // A sum of terms that each fit but together do not.
  EXPECT_THAT(Error("2000000h2000000h", unbounded), HasSubstr("is too large"));
  // The limit itself: 2562047h47m16.854775807s is the largest int64 nanosecond count.
  EXPECT_EQ(Value("2562047h47m16.854775807s", unbounded),
            absl::Nanoseconds(std::numeric_limits<int64_t>::max()));
  EXPECT_THAT(Error("2562047h47m16.854775808s", unbounded), HasSubstr("is too large"));
}

TEST(ParseDurationTest, MissingUnit) {
  const DurationRules no_bare{.field = "timeout"};
  EXPECT_EQ(Error("2", no_bare),
            "timeout: invalid duration \"2\": a number needs a unit (examples: 500ms, 30s, 5m, "
            "1h30m)");
  EXPECT_THAT(Error("0", no_bare), HasSubstr("a number needs a unit"));
  // Only the whole text may be bare: a trailing number after a term is an error either way.
  EXPECT_THAT(Error("1m2"), HasSubstr("the last number has no unit"));
  EXPECT_THAT(Error("s"), HasSubstr("expected a number at \"s\""));
  EXPECT_THAT(Error("+"), HasSubstr("a sign without a number"));
}

TEST(ParseDurationTest, UnknownUnit) {
  EXPECT_THAT(Error("2x"), HasSubstr("unknown unit \"x\" (known: ns, us, ms, s, m, h)"));
  EXPECT_THAT(Error("2S"), HasSubstr("unknown unit \"S\""));  // units are lower case
  EXPECT_THAT(Error("2sec"), HasSubstr("unknown unit \"sec\""));
  EXPECT_THAT(Error("2d"), HasSubstr("unknown unit \"d\""));
  EXPECT_THAT(Error("2e3ms"), HasSubstr("unknown unit \"e\""));         // no exponents
  EXPECT_THAT(Error("2\xc2\xb5s"), HasSubstr("unexpected \"\\xc2\""));  // µs is spelled us
}

TEST(ParseDurationTest, Whitespace) {
  for (const char* text : {" 2s", "2s ", "2 s", "2\ts", "2s\n", "1m 2s"}) {
    EXPECT_THAT(Error(text), HasSubstr("contains whitespace")) << text;
  }
  // The input is escaped in the error: one line, no control characters.
  EXPECT_THAT(Error("2s\n"), HasSubstr("\"2s\\n\""));
  EXPECT_THAT(Error("2\x01s"), HasSubstr("\"2\\x01s\""));
}

TEST(ParseDurationTest, NanAndInf) {
  for (const char* text : {"inf", "+inf", "-inf", "Inf", "infinity", "nan", "NaN"}) {
    EXPECT_THAT(Error(text), HasSubstr("must be a finite number")) << text;
  }
  EXPECT_THAT(Error("infs"), HasSubstr("expected a number at \"infs\""));
  EXPECT_THAT(Error("nanms"), HasSubstr("expected a number"));
}

TEST(ParseDurationTest, Fractional) {
  EXPECT_EQ(Value("2.5s"), absl::Milliseconds(2500));
  EXPECT_EQ(Value(".5s"), absl::Milliseconds(500));
  EXPECT_EQ(Value("2.s"), absl::Seconds(2));
  EXPECT_EQ(Value("0.25m"), absl::Seconds(15));
  EXPECT_EQ(Value("1.5"), absl::Milliseconds(1500));  // bare, in seconds
  EXPECT_EQ(Value("0.000000001s", {}), absl::Nanoseconds(1));
  EXPECT_THAT(Error("."), HasSubstr("expected a number"));
  EXPECT_THAT(Error(".s"), HasSubstr("expected a number"));
  EXPECT_THAT(Error("2..5s"), HasSubstr("unexpected \".\""));
  EXPECT_THAT(Error("2,5s"), HasSubstr("unexpected \",\""));
}

TEST(ParseDurationTest, BelowMin) {
  EXPECT_EQ(Error("9ms"), "timeout: duration \"9ms\" is out of range [10ms, 5m]");
  EXPECT_THAT(Error("9.999ms"), HasSubstr("out of range"));
  EXPECT_THAT(Error("0s"), HasSubstr("out of range"));
  EXPECT_EQ(Value("10ms"), absl::Milliseconds(10));  // inclusive
}

TEST(ParseDurationTest, AboveMax) {
  EXPECT_EQ(Error("2h"), "timeout: duration \"2h\" is out of range [10ms, 5m]");
  EXPECT_THAT(Error("5m1ns"), HasSubstr("out of range"));
  EXPECT_EQ(Value("5m"), absl::Minutes(5));  // inclusive
  EXPECT_EQ(Value("300"), absl::Minutes(5));
  EXPECT_THAT(Error("301"), HasSubstr("out of range"));
}

TEST(ParseDurationTest, BareNumberAllowedOrRefused) {
  EXPECT_EQ(Value("2"), absl::Seconds(2));
  EXPECT_EQ(Value("+2"), absl::Seconds(2));
  EXPECT_EQ(Value("250", {.allow_bare_number = true, .bare_number_unit = absl::Milliseconds(1)}),
            absl::Milliseconds(250));
  DurationRules refused = kRules;
  refused.allow_bare_number = false;
  EXPECT_THAT(Error("2", refused), HasSubstr("a number needs a unit"));
  EXPECT_EQ(Value(kValid, refused), absl::Seconds(2));
  // The hint names the bare unit.
  EXPECT_THAT(Error("x", {.allow_bare_number = true, .bare_number_unit = absl::Minutes(1)}),
              HasSubstr("a bare number counts minutes"));
}

TEST(ParseDurationTest, FieldPrefix) {
  EXPECT_THAT(Error("x"), StartsWith("timeout: invalid duration \"x\""));
  EXPECT_THAT(Error("x", {}), StartsWith("invalid duration \"x\""));
  EXPECT_THAT(Error("-1s", {}), StartsWith("duration \"-1s\" is out of range"));
}

TEST(ParseDurationTest, EveryUnitAndCompoundTerms) {
  const DurationRules any;
  EXPECT_EQ(Value("1ns", any), absl::Nanoseconds(1));
  EXPECT_EQ(Value("1us", any), absl::Microseconds(1));
  EXPECT_EQ(Value("1ms", any), absl::Milliseconds(1));
  EXPECT_EQ(Value("1s", any), absl::Seconds(1));
  EXPECT_EQ(Value("1m", any), absl::Minutes(1));
  EXPECT_EQ(Value("1h", any), absl::Hours(1));
  EXPECT_EQ(Value("1h30m", any), absl::Minutes(90));
  EXPECT_EQ(Value("1h1m1s1ms1us1ns", any), absl::Hours(1) + absl::Minutes(1) + absl::Seconds(1) +
                                               absl::Milliseconds(1) + absl::Microseconds(1) +
                                               absl::Nanoseconds(1));
  EXPECT_EQ(Value("+90s", any), absl::Seconds(90));
  EXPECT_EQ(Value("0s", any), absl::ZeroDuration());
}

// The Go grammar parts agree with absl::ParseDuration, which the relay and the kubectl daemon
// used before this parser.
TEST(ParseDurationTest, AgreesWithAbslOnGoSpellings) {
  const DurationRules any{.min = -absl::Hours(1000)};
  for (const char* text :
       {"1h30m", "1.5h", ".5s", "300us", "1ns", "0.000001s", "+5m", "-5m", "1h1m1s1ms1us1ns",
        "1.000000001s", "2.s", "0.1s", "0.3ms", "10m0s", "1.123456789h", "00012s", "-0s"}) {
    absl::Duration want;
    ASSERT_TRUE(absl::ParseDuration(text, &want)) << text;
    EXPECT_EQ(Value(text, any), want) << text;
  }
}

}  // namespace
}  // namespace kshield
