// Registry: the set of metric families a process exposes on /metrics, rendered in the Prometheus
// text format 0.0.4.
//
//   auto& requests = Registry::Default().Counter(
//       "kshield_kms_requests_total", "KMS requests handled.", {"method", "code"});
//   Counter& ok_encrypts = requests.WithLabels({"Encrypt", "OK"});  // keep this reference
//   ok_encrypts.Inc();
//
//   Registry::Default().GaugeCallback(
//       "kshield_secure_memory_bytes", "Protected memory holding secrets.", {}, [] {
//         return GaugeSamples{{{}, static_cast<double>(GetSecureMemoryStats().bytes_in_use)}};
//       });
//
//   std::string page = Registry::Default().Render();
//
// Promises:
//  - families and children are never removed; every reference handed out stays valid for the
//    registry's lifetime (Default() lives for the whole process);
//  - updates never take a lock; WithLabels() takes the family's lock, so cache its result;
//  - Render() output is sorted (families by name, children by label values) and accepted by
//    `promtool check metrics` as long as names follow the Prometheus naming guide.
//
// Registration is start-up code written by us, so a bad registration (invalid name, a counter
// without the `_total` suffix, a duplicate, a bad bucket list) is a programming error: Counter(),
// Gauge(), Histogram() and GaugeCallback() abort with a message naming the metric. The Try*
// variants return the same problem as an absl::Status instead. Components that may be constructed
// more than once per process (tests!) should take a `Registry&` rather than use Default().
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "metrics/metric.h"

namespace kshield::metrics {

// What a GaugeCallback returns on each scrape: (label values, value) per series.
using GaugeSamples = std::vector<std::pair<std::vector<std::string>, double>>;
using GaugeSamplesFn = std::function<GaugeSamples()>;

// Common part of every family: name, help, label names, and how to render itself.
class Family {
 public:
  virtual ~Family() = default;
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // Appends "# HELP", "# TYPE" and every sample line. Appends nothing for a family without series.
  virtual void RenderTo(std::string* out) const = 0;

 protected:
  Family(std::string name, std::string help, std::vector<std::string> label_names)
      : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}

  void AppendHeader(std::string_view type, std::string* out) const;
  // Appends `suffix`{names="values"...[,extra_name="extra_value"]} value\n.
  void AppendSample(std::string_view suffix, const std::vector<std::string>& label_values,
                    std::string_view extra_name, std::string_view extra_value, double value,
                    std::string* out) const;
  // Aborts with a clear message unless there is one value per label name.
  void CheckArity(const std::vector<std::string>& label_values) const;

 private:
  const std::string name_;
  const std::string help_;
  const std::vector<std::string> label_names_;
};

// A family whose children are objects of type T, one per distinct list of label values.
template <typename T>
class ChildFamily : public Family {
 public:
  // The child for `label_values` (one value per label name, in order), created on first use.
  // Aborts if the number of values is wrong (a programming error). The reference stays valid for
  // the registry's lifetime. For a family without labels call WithLabels() or WithLabels({}).
  T& WithLabels(const std::vector<std::string>& label_values = {});

 protected:
  using Family::Family;
  virtual std::unique_ptr<T> NewChild() const = 0;

  // Children sorted by label values. Pointers are stable; the values behind them keep moving.
  std::vector<std::pair<std::vector<std::string>, const T*>> Children() const;

 private:
  mutable absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_ ABSL_GUARDED_BY(mu_);
};

class CounterFamily final : public ChildFamily<Counter> {
 public:
  CounterFamily(std::string name, std::string help, std::vector<std::string> label_names)
      : ChildFamily(std::move(name), std::move(help), std::move(label_names)) {}
  void RenderTo(std::string* out) const override;

 private:
  std::unique_ptr<Counter> NewChild() const override { return std::make_unique<Counter>(); }
};

class GaugeFamily final : public ChildFamily<Gauge> {
 public:
  GaugeFamily(std::string name, std::string help, std::vector<std::string> label_names)
      : ChildFamily(std::move(name), std::move(help), std::move(label_names)) {}
  void RenderTo(std::string* out) const override;

 private:
  std::unique_ptr<Gauge> NewChild() const override { return std::make_unique<Gauge>(); }
};

class HistogramFamily final : public ChildFamily<Histogram> {
 public:
  HistogramFamily(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> upper_bounds)
      : ChildFamily(std::move(name), std::move(help), std::move(label_names)),
        upper_bounds_(std::move(upper_bounds)) {}
  void RenderTo(std::string* out) const override;

  // Finite, strictly ascending bucket bounds (+Inf is implicit).
  const std::vector<double>& upper_bounds() const { return upper_bounds_; }

 private:
  std::unique_ptr<Histogram> NewChild() const override {
    return std::make_unique<Histogram>(upper_bounds_);
  }
  const std::vector<double> upper_bounds_;
};

// Checks a bucket list for Histogram(): every bound finite and strictly ascending; a trailing +Inf
// is allowed (and dropped, since +Inf is always added). Returns the bounds to use.
absl::StatusOr<std::vector<double>> ValidateBuckets(std::vector<double> upper_bounds);

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // The process-wide registry served on /metrics. Never destroyed.
  static Registry& Default();

  // Registration, returning an error for: an invalid metric or label name; an empty help text; a
  // name already used by this registry; a counter whose name does not end in "_total"; any other
  // metric whose name ends in "_total", "_bucket", "_sum" or "_count" (so no two families can
  // emit the same series, and promtool's linter stays quiet); a duplicate label name; the
  // reserved labels "le" and "quantile"; a bad bucket list. The family lives as long as the
  // registry.
  absl::StatusOr<CounterFamily*> TryCounter(std::string name, std::string help,
                                            std::vector<std::string> label_names);
  absl::StatusOr<GaugeFamily*> TryGauge(std::string name, std::string help,
                                        std::vector<std::string> label_names);
  absl::StatusOr<HistogramFamily*> TryHistogram(std::string name, std::string help,
                                                std::vector<std::string> label_names,
                                                std::vector<double> upper_bounds);
  // A gauge family computed on each Render(). `fn` runs on the scraping thread (possibly several
  // at once, so it must be thread-safe), must be fast, and must not call into this registry.
  // Series whose number of label values is wrong are dropped; of duplicate series the last wins.
  absl::Status TryGaugeCallback(std::string name, std::string help,
                                std::vector<std::string> label_names, GaugeSamplesFn fn);

  // Same as the Try* calls, but abort with the error message on failure.
  CounterFamily& Counter(std::string name, std::string help,
                         std::vector<std::string> label_names = {});
  GaugeFamily& Gauge(std::string name, std::string help, std::vector<std::string> label_names = {});
  HistogramFamily& Histogram(std::string name, std::string help,
                             std::vector<std::string> label_names,
                             std::vector<double> upper_bounds);
  void GaugeCallback(std::string name, std::string help, std::vector<std::string> label_names,
                     GaugeSamplesFn fn);

  // The whole registry in the text format 0.0.4 (serve with kTextContentType). Families without
  // any series are left out.
  std::string Render() const;

 private:
  // Checks the rules every family shares (names, help, uniqueness) and takes ownership.
  absl::Status Add(std::unique_ptr<Family> family);

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Family>> families_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------------------------------------
// Implementation details below.

template <typename T>
T& ChildFamily<T>::WithLabels(const std::vector<std::string>& label_values) {
  CheckArity(label_values);
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = children_.find(label_values);
    if (it != children_.end()) return *it->second;
  }
  absl::MutexLock lock(&mu_);
  auto& slot = children_[label_values];
  if (slot == nullptr) slot = NewChild();
  return *slot;
}

template <typename T>
std::vector<std::pair<std::vector<std::string>, const T*>> ChildFamily<T>::Children() const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<std::pair<std::vector<std::string>, const T*>> out;
  out.reserve(children_.size());
  for (const auto& [values, child] : children_) out.emplace_back(values, child.get());
  return out;
}

}  // namespace kshield::metrics
