#include "latency.hpp"

namespace lptrace {

unsigned Latency::bucket(uint64_t ns) {
  if (ns < 8) return unsigned(ns); // exact below 8 ns
  const unsigned e = 63u - unsigned(__builtin_clzll(ns)); // 3..63
  const unsigned sub = unsigned(ns >> (e - 3)) & 7u;      // the 3 bits after the leading one
  return (e - 2) * 8 + sub;
}

uint64_t Latency::bucket_top(unsigned b) {
  if (b < 8) return b;
  const unsigned e = b / 8 + 2, sub = b % 8;
  const uint64_t lo = (uint64_t(8 + sub)) << (e - 3);
  return lo + (uint64_t(1) << (e - 3)) - 1;
}

uint64_t Latency::quantile(double q) const {
  const uint64_t n = n_.load(std::memory_order_relaxed);
  if (n == 0) return 0;
  // The rank of the q-quantile: ceil(q * n), at least 1.
  uint64_t want = uint64_t(q * double(n));
  if (double(want) < q * double(n)) ++want;
  if (want == 0) want = 1;
  uint64_t seen = 0;
  for (unsigned b = 0; b < kBuckets; ++b) {
    seen += hist_[b].load(std::memory_order_relaxed);
    if (seen >= want) {
      const uint64_t top = bucket_top(b), mx = max_.load(std::memory_order_relaxed);
      return top < mx ? top : mx;
    }
  }
  return max_.load(std::memory_order_relaxed);
}

void Latency::to_json(nlohmann::json &j) const {
  const uint64_t n = n_.load(std::memory_order_relaxed), total = total_.load(std::memory_order_relaxed);
  j["exits"] = n;
  j["total_ns"] = total;
  j["mean_ns"] = n ? total / n : 0;
  j["p50_ns"] = quantile(0.5);
  j["p99_ns"] = quantile(0.99);
  j["max_ns"] = max_.load(std::memory_order_relaxed);
}

} // namespace lptrace
