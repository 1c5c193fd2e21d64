#include "metrics/registry.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "common/status.h"
#include "metrics/metric.h"
#include "metrics/text_format.h"

namespace kshield::metrics {
namespace {

// Debian's abseil keeps its own absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW is 0), which
// does not convert from std::string_view; bridge explicitly for StrCat / StrAppend.
absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Registration happens at start-up in our own code; failing it is a bug we want loud and early.
[[noreturn]] void Die(std::string_view message) {
  std::fprintf(stderr, "kshield metrics: fatal: %.*s\n", static_cast<int>(message.size()),
               message.data());
  std::fflush(stderr);
  std::abort();
}

template <typename T>
T& ValueOrDie(absl::StatusOr<T*> family) {
  if (!family.ok()) Die(family.status().ToString());
  return **family;
}

// Suffixes Prometheus gives meaning to: counters end in _total; histograms and summaries emit
// _bucket/_sum/_count series. Anything else using them is confusing and flagged by promtool.
absl::Status CheckSuffix(std::string_view name, bool is_counter) {
  if (is_counter) {
    if (!name.ends_with("_total")) {
      return absl::InvalidArgumentError(
          absl::StrCat("counter \"", Sv(name), "\" must have a name ending in \"_total\""));
    }
    return absl::OkStatus();
  }
  for (std::string_view suffix : {"_total", "_bucket", "_sum", "_count"}) {
    if (name.ends_with(suffix)) {
      return absl::InvalidArgumentError(absl::StrCat("metric \"", Sv(name), "\" must not end in \"",
                                                     Sv(suffix),
                                                     "\" (reserved for counters / histograms)"));
    }
  }
  return absl::OkStatus();
}

// A family without labels has exactly one series; create it up front so it renders (as 0) from
// the start, like a plain Prometheus client metric.
template <typename F>
F* WithUnlabeledChild(F* family) {
  if (family->label_names().empty()) family->WithLabels();
  return family;
}

class CallbackGaugeFamily final : public Family {
 public:
  CallbackGaugeFamily(std::string name, std::string help, std::vector<std::string> label_names,
                      GaugeSamplesFn fn)
      : Family(std::move(name), std::move(help), std::move(label_names)), fn_(std::move(fn)) {}

  void RenderTo(std::string* out) const override {
    // Sort and de-duplicate so the output is stable whatever order the callback uses.
    std::map<std::vector<std::string>, double> series;
    for (auto& [values, value] : fn_()) {
      if (values.size() != label_names().size()) continue;  // A bug in the callback; survive it.
      series[std::move(values)] = value;
    }
    if (series.empty()) return;
    AppendHeader("gauge", out);
    for (const auto& [values, value] : series) AppendSample("", values, "", "", value, out);
  }

 private:
  const GaugeSamplesFn fn_;
};

}  // namespace

void Family::AppendHeader(std::string_view type, std::string* out) const {
  absl::StrAppend(out, "# HELP ", name_, " ");
  AppendEscapedHelp(help_, out);
  absl::StrAppend(out, "\n# TYPE ", name_, " ", Sv(type), "\n");
}

void Family::AppendSample(std::string_view suffix, const std::vector<std::string>& label_values,
                          std::string_view extra_name, std::string_view extra_value, double value,
                          std::string* out) const {
  absl::StrAppend(out, name_, Sv(suffix));
  if (!label_names_.empty() || !extra_name.empty()) {
    out->push_back('{');
    for (size_t i = 0; i < label_names_.size(); ++i) {
      if (i > 0) out->push_back(',');
      absl::StrAppend(out, label_names_[i], "=\"");
      AppendEscapedLabelValue(label_values[i], out);
      out->push_back('"');
    }
    if (!extra_name.empty()) {
      if (!label_names_.empty()) out->push_back(',');
      absl::StrAppend(out, Sv(extra_name), "=\"");
      AppendEscapedLabelValue(extra_value, out);
      out->push_back('"');
    }
    out->push_back('}');
  }
  absl::StrAppend(out, " ", FormatValue(value), "\n");
}

void Family::CheckArity(const std::vector<std::string>& label_values) const {
  if (label_values.size() != label_names_.size()) {
    Die(absl::StrCat("metric \"", name_, "\" has labels {", absl::StrJoin(label_names_, ","),
                     "} but WithLabels() got ", label_values.size(), " value(s)"));
  }
}

void CounterFamily::RenderTo(std::string* out) const {
  const auto children = Children();
  if (children.empty()) return;
  AppendHeader("counter", out);
  for (const auto& [values, counter] : children) {
    AppendSample("", values, "", "", counter->Value(), out);
  }
}

void GaugeFamily::RenderTo(std::string* out) const {
  const auto children = Children();
  if (children.empty()) return;
  AppendHeader("gauge", out);
  for (const auto& [values, gauge] : children) {
    AppendSample("", values, "", "", gauge->Value(), out);
  }
}

void HistogramFamily::RenderTo(std::string* out) const {
  const auto children = Children();
  if (children.empty()) return;
  AppendHeader("histogram", out);
  for (const auto& [values, histogram] : children) {
    const Histogram::Snapshot s = histogram->Read();
    for (size_t i = 0; i < s.upper_bounds.size(); ++i) {
      AppendSample("_bucket", values, "le", FormatValue(s.upper_bounds[i]),
                   static_cast<double>(s.cumulative_counts[i]), out);
    }
    AppendSample("_bucket", values, "le", "+Inf", static_cast<double>(s.count), out);
    AppendSample("_sum", values, "", "", s.sum, out);
    AppendSample("_count", values, "", "", static_cast<double>(s.count), out);
  }
}

absl::StatusOr<std::vector<double>> ValidateBuckets(std::vector<double> upper_bounds) {
  if (!upper_bounds.empty() && std::isinf(upper_bounds.back()) && upper_bounds.back() > 0) {
    upper_bounds.pop_back();
  }
  for (size_t i = 0; i < upper_bounds.size(); ++i) {
    if (!std::isfinite(upper_bounds[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("bucket bound ", FormatValue(upper_bounds[i]), " is not finite"));
    }
    if (i > 0 && !(upper_bounds[i - 1] < upper_bounds[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bucket bounds must be strictly ascending: ", FormatValue(upper_bounds[i - 1]),
          " is followed by ", FormatValue(upper_bounds[i])));
    }
  }
  return upper_bounds;
}

Registry& Registry::Default() {
  static Registry* const registry = new Registry();
  return *registry;
}

absl::Status Registry::Add(std::unique_ptr<Family> family) {
  const std::string& name = family->name();
  KSH_RETURN_IF_ERROR(ValidateMetricName(name));
  if (family->help().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("metric \"", name, "\" needs a help text"));
  }
  std::set<std::string_view> seen;
  for (const std::string& label : family->label_names()) {
    KSH_RETURN_IF_ERROR(Annotate(ValidateLabelName(label), absl::StrCat("metric \"", name, "\"")));
    if (label == "le" || label == "quantile") {
      return absl::InvalidArgumentError(absl::StrCat("metric \"", name, "\": label \"", label,
                                                     "\" is reserved for histograms / summaries"));
    }
    if (!seen.insert(label).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("metric \"", name, "\": duplicate label \"", label, "\""));
    }
  }
  absl::MutexLock lock(&mu_);
  if (families_.contains(name)) {
    return absl::AlreadyExistsError(absl::StrCat("metric \"", name, "\" is already registered"));
  }
  families_.emplace(name, std::move(family));
  return absl::OkStatus();
}

absl::StatusOr<CounterFamily*> Registry::TryCounter(std::string name, std::string help,
                                                    std::vector<std::string> label_names) {
  KSH_RETURN_IF_ERROR(CheckSuffix(name, /*is_counter=*/true));
  auto family =
      std::make_unique<CounterFamily>(std::move(name), std::move(help), std::move(label_names));
  CounterFamily* result = WithUnlabeledChild(family.get());
  KSH_RETURN_IF_ERROR(Add(std::move(family)));
  return result;
}

absl::StatusOr<GaugeFamily*> Registry::TryGauge(std::string name, std::string help,
                                                std::vector<std::string> label_names) {
  KSH_RETURN_IF_ERROR(CheckSuffix(name, /*is_counter=*/false));
  auto family =
      std::make_unique<GaugeFamily>(std::move(name), std::move(help), std::move(label_names));
  GaugeFamily* result = WithUnlabeledChild(family.get());
  KSH_RETURN_IF_ERROR(Add(std::move(family)));
  return result;
}

absl::StatusOr<HistogramFamily*> Registry::TryHistogram(std::string name, std::string help,
                                                        std::vector<std::string> label_names,
                                                        std::vector<double> upper_bounds) {
  KSH_RETURN_IF_ERROR(CheckSuffix(name, /*is_counter=*/false));
  absl::StatusOr<std::vector<double>> bounds = ValidateBuckets(std::move(upper_bounds));
  if (!bounds.ok()) return Annotate(bounds.status(), absl::StrCat("histogram \"", name, "\""));
  auto family = std::make_unique<HistogramFamily>(std::move(name), std::move(help),
                                                  std::move(label_names), *std::move(bounds));
  HistogramFamily* result = WithUnlabeledChild(family.get());
  KSH_RETURN_IF_ERROR(Add(std::move(family)));
  return result;
}

absl::Status Registry::TryGaugeCallback(std::string name, std::string help,
                                        std::vector<std::string> label_names, GaugeSamplesFn fn) {
  KSH_RETURN_IF_ERROR(CheckSuffix(name, /*is_counter=*/false));
  if (fn == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("gauge \"", name, "\" has no callback"));
  }
  return Add(std::make_unique<CallbackGaugeFamily>(std::move(name), std::move(help),
                                                   std::move(label_names), std::move(fn)));
}

CounterFamily& Registry::Counter(std::string name, std::string help,
                                 std::vector<std::string> label_names) {
  return ValueOrDie(TryCounter(std::move(name), std::move(help), std::move(label_names)));
}

GaugeFamily& Registry::Gauge(std::string name, std::string help,
                             std::vector<std::string> label_names) {
  return ValueOrDie(TryGauge(std::move(name), std::move(help), std::move(label_names)));
}

HistogramFamily& Registry::Histogram(std::string name, std::string help,
                                     std::vector<std::string> label_names,
                                     std::vector<double> upper_bounds) {
  return ValueOrDie(TryHistogram(std::move(name), std::move(help), std::move(label_names),
                                 std::move(upper_bounds)));
}

void Registry::GaugeCallback(std::string name, std::string help,
                             std::vector<std::string> label_names, GaugeSamplesFn fn) {
  const absl::Status status =
      TryGaugeCallback(std::move(name), std::move(help), std::move(label_names), std::move(fn));
  if (!status.ok()) Die(status.ToString());
}

std::string Registry::Render() const {
  // Families are never removed, so the pointers outlive the lock; rendering (and the callbacks it
  // runs) happens without holding it.
  std::vector<const Family*> families;
  {
    absl::MutexLock lock(&mu_);
    families.reserve(families_.size());
    for (const auto& [name, family] : families_) families.push_back(family.get());
  }
  std::string out;
  for (const Family* family : families) family->RenderTo(&out);
  return out;
}

}  // namespace kshield::metrics
