// Per-function call latency: count, total, max and a histogram with 8
// buckets per power of two (values within 12.5%), so p50/p99 need no
// samples kept. Lock-free: relaxed atomics, safe from a signal handler.
#pragma once

#include <atomic>
#include <cstdint>

#include <nlohmann/json.hpp>

namespace lptrace {

class Latency {
public:
  static constexpr unsigned kBuckets = 64 * 8;
  void add(uint64_t ns) {
    n_.fetch_add(1, std::memory_order_relaxed);
    total_.fetch_add(ns, std::memory_order_relaxed);
    uint64_t m = max_.load(std::memory_order_relaxed);
    while (ns > m && !max_.compare_exchange_weak(m, ns, std::memory_order_relaxed)) {
    }
    hist_[bucket(ns)].fetch_add(1, std::memory_order_relaxed);
  }
  void reset() {
    n_.store(0);
    total_.store(0);
    max_.store(0);
    for (auto &h : hist_) h.store(0);
  }
  // The upper bound of the bucket holding the q-quantile (0 < q <= 1).
  uint64_t quantile(double q) const;
  void to_json(nlohmann::json &j) const;
  static unsigned bucket(uint64_t ns);
  static uint64_t bucket_top(unsigned b);

private:
  std::atomic<uint64_t> n_{0}, total_{0}, max_{0};
  std::atomic<uint64_t> hist_[kBuckets] = {};
};

} // namespace lptrace
