// The three metric kinds a family hands out: Counter, Gauge, Histogram.
//
// Each is a single time series (one set of label values). Updates are lock-free and safe from any
// thread; a hot path looks its child up once and keeps the reference:
//
//   static Counter& rejected = Registry::Default()
//       .Counter("kshield_kms_rejected_total", "Requests rejected, by reason.", {"reason"})
//       .WithLabels({"peer_uid"});
//   rejected.Inc();
//
// Reads (Value(), Read()) are for rendering and tests; they are not atomic across fields.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace kshield::metrics {

// A monotonically increasing value (requests served, bytes written). Exact for integral increments
// up to 2^53.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `v`. A counter never goes down: a negative or NaN `v` is ignored.
  void Inc(double v = 1);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A value that goes up and down (queue depth, keys loaded, seconds since last rotation).
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Inc(double v = 1);
  void Dec(double v = 1) { Inc(-v); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations into buckets with fixed upper bounds (inclusive: an observation v lands in
// the first bucket with v <= bound) plus an implicit +Inf bucket, and keeps their sum.
class Histogram {
 public:
  struct Snapshot {
    std::vector<double> upper_bounds;         // finite bounds, ascending; +Inf is implicit
    std::vector<uint64_t> cumulative_counts;  // upper_bounds.size() + 1 entries, last is +Inf
    uint64_t count = 0;                       // == cumulative_counts.back()
    double sum = 0;
  };

  // `upper_bounds` must be finite and strictly ascending (the registry validates this; see
  // ValidateBuckets in registry.h).
  explicit Histogram(std::vector<double> upper_bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Lock-free: one atomic add on the bucket and one on the sum. NaN lands in the +Inf bucket.
  void Observe(double v);

  // Counts are read bucket by bucket, so a snapshot taken during Observe() may lag the sum by one
  // observation, but `count` always equals the +Inf bucket.
  Snapshot Read() const;

 private:
  const std::vector<double> upper_bounds_;
  // Per-bucket (non-cumulative) counts; index upper_bounds_.size() is the +Inf bucket.
  const std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// `count` bounds: start, start*factor, start*factor^2, ... Requires start > 0, factor > 1.
std::vector<double> ExponentialBuckets(double start, double factor, int count);
// `count` bounds: start, start+width, start+2*width, ... Requires width > 0.
std::vector<double> LinearBuckets(double start, double width, int count);

}  // namespace kshield::metrics
