#include "common/duration.h"

#include <cstdint>
#include <limits>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace kshield {
namespace {

// Every result fits in int64 nanoseconds, so callers may convert it to any std::chrono duration
// (and add it to a clock's now()) without overflow.
const absl::Duration kLargest = absl::Nanoseconds(std::numeric_limits<int64_t>::max());

// Fraction digits beyond this are ignored (they are below a picosecond for seconds, ~4ns for
// hours). The cap keeps frac * unit well inside absl::Duration's range.
constexpr int kMaxFractionDigits = 15;

struct Number {
  int64_t whole = 0;
  int64_t frac = 0;
  int64_t frac_scale = 1;  // frac / frac_scale is the fractional part
  bool overflow = false;   // `whole` did not fit in int64
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// number := digits ("." digits?)? | "." digits. Returns false if there is no number at the front.
bool ConsumeNumber(std::string_view* s, Number* n) {
  size_t i = 0;
  for (; i < s->size() && IsDigit((*s)[i]); ++i) {
    const int d = (*s)[i] - '0';
    if (n->whole > (std::numeric_limits<int64_t>::max() - d) / 10) {
      n->overflow = true;
    } else {
      n->whole = n->whole * 10 + d;
    }
  }
  const bool have_whole = i > 0;
  bool have_frac = false;
  if (i < s->size() && (*s)[i] == '.') {
    size_t j = i + 1;
    for (int digits = 0; j < s->size() && IsDigit((*s)[j]); ++j, ++digits) {
      have_frac = true;
      if (digits < kMaxFractionDigits) {
        n->frac = n->frac * 10 + ((*s)[j] - '0');
        n->frac_scale *= 10;
      }
    }
    if (!have_whole && !have_frac) return false;  // "." alone
    i = j;
  }
  if (!have_whole && !have_frac) return false;
  s->remove_prefix(i);
  return true;
}

// The unit named by `name`, or false.
bool LookUpUnit(std::string_view name, absl::Duration* unit) {
  static constexpr struct {
    std::string_view name;
    int64_t ns;
  } kUnits[] = {{"ns", 1},
                {"us", 1000},
                {"ms", 1000 * 1000},
                {"s", int64_t{1000} * 1000 * 1000},
                {"m", int64_t{60} * 1000 * 1000 * 1000},
                {"h", int64_t{3600} * 1000 * 1000 * 1000}};
  for (const auto& u : kUnits) {
    if (u.name == name) {
      *unit = absl::Nanoseconds(u.ns);
      return true;
    }
  }
  return false;
}

// n * unit; infinite when it does not fit (absl::Duration arithmetic saturates).
absl::Duration Scale(const Number& n, absl::Duration unit) {
  if (n.overflow) return absl::InfiniteDuration();
  absl::Duration d = unit * n.whole;
  if (n.frac != 0) d += unit * n.frac / n.frac_scale;
  return d;
}

std::string UnitName(absl::Duration unit) {
  if (unit == absl::Nanoseconds(1)) return "nanoseconds";
  if (unit == absl::Microseconds(1)) return "microseconds";
  if (unit == absl::Milliseconds(1)) return "milliseconds";
  if (unit == absl::Seconds(1)) return "seconds";
  if (unit == absl::Minutes(1)) return "minutes";
  if (unit == absl::Hours(1)) return "hours";
  return absl::StrCat("units of ", absl::FormatDuration(unit));
}

class Errors {
 public:
  Errors(std::string_view text, const DurationRules& rules) : text_(text), rules_(rules) {}

  absl::Status Invalid(std::string_view why) const {
    std::string hint = "examples: 500ms, 30s, 5m, 1h30m";
    if (rules_.allow_bare_number) {
      absl::StrAppend(&hint, "; a bare number counts ", UnitName(rules_.bare_number_unit));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(Prefix(), "invalid duration \"", Quoted(), "\": ", AV(why), " (", hint, ")"));
  }

  absl::Status OutOfRange() const {
    std::string range = rules_.max == absl::InfiniteDuration()
                            ? absl::StrCat(": must be at least ", absl::FormatDuration(rules_.min))
                            : absl::StrCat(" [", absl::FormatDuration(rules_.min), ", ",
                                           absl::FormatDuration(rules_.max), "]");
    return absl::InvalidArgumentError(
        absl::StrCat(Prefix(), "duration \"", Quoted(), "\" is out of range", range));
  }

  absl::Status TooLarge() const {
    if (rules_.max < kLargest) return OutOfRange();
    return absl::InvalidArgumentError(absl::StrCat(
        Prefix(), "duration \"", Quoted(), "\" is too large (the limit is about 292 years)"));
  }

 private:
  std::string Prefix() const {
    return rules_.field.empty() ? std::string() : absl::StrCat(AV(rules_.field), ": ");
  }
  // Config text is not secret, but it may hold control characters: keep error lines one line.
  std::string Quoted() const { return absl::CHexEscape(AV(text_)); }

  std::string_view text_;
  const DurationRules& rules_;
};

}  // namespace

absl::StatusOr<absl::Duration> ParseDuration(std::string_view text, const DurationRules& rules) {
  const Errors err(text, rules);
  if (text.empty()) return err.Invalid("empty");
  for (char c : text) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      return err.Invalid("contains whitespace");
    }
  }

  std::string_view rest = text;
  bool negative = false;
  if (rest.front() == '+' || rest.front() == '-') {
    negative = rest.front() == '-';
    rest.remove_prefix(1);
  }
  if (rest.empty()) return err.Invalid("a sign without a number");

  absl::Duration total = absl::ZeroDuration();
  bool first = true;
  while (!rest.empty()) {
    Number n;
    if (!ConsumeNumber(&rest, &n)) {
      const std::string word = absl::AsciiStrToLower(AV(rest));
      if (first && (word == "inf" || word == "infinity" || word == "nan")) {
        return err.Invalid("must be a finite number");
      }
      return err.Invalid(absl::StrCat("expected a number at \"", absl::CHexEscape(AV(rest)), "\""));
    }
    size_t letters = 0;
    while (letters < rest.size() &&
           absl::ascii_isalpha(static_cast<unsigned char>(rest[letters]))) {
      ++letters;
    }
    absl::Duration unit;
    if (letters == 0) {
      if (!rest.empty()) {
        return err.Invalid(
            absl::StrCat("unexpected \"", absl::CHexEscape(AV(rest.substr(0, 1))), "\""));
      }
      if (!first) return err.Invalid("the last number has no unit");
      if (!rules.allow_bare_number) return err.Invalid("a number needs a unit");
      unit = rules.bare_number_unit;
    } else if (!LookUpUnit(rest.substr(0, letters), &unit)) {
      return err.Invalid(absl::StrCat("unknown unit \"", AV(rest.substr(0, letters)),
                                      "\" (known: ns, us, ms, s, m, h)"));
    }
    rest.remove_prefix(letters);
    total += Scale(n, unit);
    // Checked per term so that a long sum cannot wrap: absl::Duration saturates at infinity.
    if (total > kLargest) return err.TooLarge();
    first = false;
  }

  const absl::Duration d = negative ? -total : total;
  if (d < rules.min || d > rules.max) return err.OutOfRange();
  return d;
}

}  // namespace kshield
