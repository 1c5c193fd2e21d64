#include "metrics/metric.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace kshield::metrics {
namespace {

static_assert(std::atomic<double>::is_always_lock_free, "metrics need lock-free atomic<double>");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "metrics need lock-free atomic<uint64>");

// A CAS loop rather than atomic<double>::fetch_add so the memory order and the retry are explicit
// and do not depend on library support. compare_exchange compares object representations, so
// this also terminates when the stored value is NaN.
void AtomicAdd(std::atomic<double>& target, double v) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + v, std::memory_order_relaxed,
                                       std::memory_order_relaxed)) {
  }
}

}  // namespace

void Counter::Inc(double v) {
  if (!(v >= 0)) return;  // Also rejects NaN.
  AtomicAdd(value_, v);
}

void Gauge::Inc(double v) { AtomicAdd(value_, v); }

Histogram::Histogram(std::vector<double> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      counts_(new std::atomic<uint64_t>[upper_bounds_.size() + 1]()) {}

void Histogram::Observe(double v) {
  // First bound >= v; NaN compares false with everything, so send it to +Inf explicitly.
  const size_t bucket =
      std::isnan(v)
          ? upper_bounds_.size()
          : static_cast<size_t>(std::lower_bound(upper_bounds_.begin(), upper_bounds_.end(), v) -
                                upper_bounds_.begin());
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, v);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.upper_bounds = upper_bounds_;
  s.cumulative_counts.reserve(upper_bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= upper_bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    s.cumulative_counts.push_back(running);
  }
  s.count = running;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> bounds;
  if (!(start > 0) || !(factor > 1) || count <= 0) return bounds;
  bounds.reserve(count);
  double b = start;
  for (int i = 0; i < count && std::isfinite(b); ++i, b *= factor) bounds.push_back(b);
  return bounds;
}

std::vector<double> LinearBuckets(double start, double width, int count) {
  std::vector<double> bounds;
  if (!(width > 0) || !std::isfinite(start) || count <= 0) return bounds;
  bounds.reserve(count);
  for (int i = 0; i < count; ++i) {
    const double b = start + width * i;
    if (!std::isfinite(b)) break;
    bounds.push_back(b);
  }
  return bounds;
}

}  // namespace kshield::metrics
