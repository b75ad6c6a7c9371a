// Per-function call statistics: calls, and the latency of those with exits --
// count, total, max and a histogram with 8 buckets per power of two (values
// within 12.5%), so p50/p99 need no samples kept. Values are clock ticks
// (clock.hpp), converted to nanoseconds in the report.
//
// Kept per thread (thread_stats.hpp: one Stats per function per thread,
// written only by its thread with plain relaxed stores, no locked
// instruction on the hit path), summed at the report. A Stats shared by all
// threads (atomic read-modify-writes) is the fallback for functions beyond a
// thread's table.
#pragma once

#include <atomic>
#include <cstdint>

#include <nlohmann/json.hpp>

namespace lptrace {

inline constexpr unsigned kBuckets = 64 * 8;
unsigned latency_bucket(uint64_t v);
uint64_t latency_bucket_top(unsigned b);

struct Stats {
  std::atomic<uint64_t> calls{0}, exits{0}, total{0}, max{0};
  std::atomic<uint32_t> hist[kBuckets] = {};

  // The owner thread only: no read-modify-write.
  void own_call() { calls.store(calls.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  void own_exit(uint64_t v) {
    exits.store(exits.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    total.store(total.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
    if (v > max.load(std::memory_order_relaxed)) max.store(v, std::memory_order_relaxed);
    auto &h = hist[latency_bucket(v)];
    h.store(h.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  // Any thread.
  void shared_call() { calls.fetch_add(1, std::memory_order_relaxed); }
  void shared_exit(uint64_t v) {
    exits.fetch_add(1, std::memory_order_relaxed);
    total.fetch_add(v, std::memory_order_relaxed);
    uint64_t m = max.load(std::memory_order_relaxed);
    while (v > m && !max.compare_exchange_weak(m, v, std::memory_order_relaxed)) {
    }
    hist[latency_bucket(v)].fetch_add(1, std::memory_order_relaxed);
  }
  void reset();
};

// A sum of Stats, for the report.
struct Summary {
  uint64_t calls = 0, exits = 0, total = 0, max = 0;
  uint64_t hist[kBuckets] = {};
  void add(const Stats &s);
  uint64_t quantile(double q) const; // in ticks: the top of the bucket holding it
  void to_json(nlohmann::json &j, double ns_per_tick) const;
};

} // namespace lptrace
