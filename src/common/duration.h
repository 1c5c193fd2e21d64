// One parser for every duration in our configuration files and flags.
//
// Grammar (Go's time.ParseDuration, which absl::ParseDuration also follows, plus an optional
// bare number):
//
//   duration := sign? term+            "1h30m", "1.5s", "+90s", "-2m"
//             | sign? number           "90", "1.5"   only when rules.allow_bare_number
//   term     := number unit
//   number   := digits ("." digits?)? | "." digits
//   unit     := "ns" | "us" | "ms" | "s" | "m" | "h"
//
// Refused, each with its own reason in the error: the empty string, any whitespace, a unit outside
// the list (units are lower case), "inf" / "nan" and other non-numbers, a number without a unit
// (unless bare numbers are allowed), exponents ("1e3s"), values that do not fit in 64-bit
// nanoseconds (about 292 years; "99999999999h"), and values outside [rules.min, rules.max].
// Errors start with "<field>: " when rules.field is set, and quote the (escaped) input.
//
//   KSH_ASSIGN_OR_RETURN(absl::Duration d,
//                        ParseDuration(text, {.field = "probe_interval",
//                                             .min = absl::Milliseconds(100),
//                                             .allow_bare_number = true}));
#pragma once

#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kshield {

struct DurationRules {
  // Names the setting at the start of every error ("probe_interval: invalid duration ...").
  // Empty: no prefix (the caller adds its own).
  std::string_view field;
  // Inclusive bounds. The default refuses negative durations and has no upper bound beyond the
  // ~292-year representation limit.
  absl::Duration min = absl::ZeroDuration();
  absl::Duration max = absl::InfiniteDuration();
  // Whether "90" (a number without a unit) is accepted, and what one unit of it is.
  bool allow_bare_number = false;
  absl::Duration bare_number_unit = absl::Seconds(1);
};

// Parses `text` by the grammar above and checks it against `rules`. The result is finite and in
// [rules.min, rules.max]. Every error is InvalidArgument.
[[nodiscard]] absl::StatusOr<absl::Duration> ParseDuration(std::string_view text,
                                                           const DurationRules& rules);

}  // namespace kshield
