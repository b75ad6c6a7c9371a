#include "latency.hpp"

namespace lptrace {

unsigned latency_bucket(uint64_t v) {
  if (v < 8) return unsigned(v); // exact below 8
  const unsigned e = 63u - unsigned(__builtin_clzll(v)); // 3..63
  const unsigned sub = unsigned(v >> (e - 3)) & 7u;      // the 3 bits after the leading one
  return (e - 2) * 8 + sub;
}

uint64_t latency_bucket_top(unsigned b) {
  if (b < 8) return b;
  const unsigned e = b / 8 + 2, sub = b % 8;
  const uint64_t lo = (uint64_t(8 + sub)) << (e - 3);
  return lo + (uint64_t(1) << (e - 3)) - 1;
}

void Stats::reset() {
  calls.store(0);
  exits.store(0);
  total.store(0);
  max.store(0);
  for (auto &h : hist) h.store(0);
}

void Summary::add(const Stats &s) {
  calls += s.calls.load(std::memory_order_relaxed);
  exits += s.exits.load(std::memory_order_relaxed);
  total += s.total.load(std::memory_order_relaxed);
  const uint64_t m = s.max.load(std::memory_order_relaxed);
  if (m > max) max = m;
  for (unsigned b = 0; b < kBuckets; ++b) hist[b] += s.hist[b].load(std::memory_order_relaxed);
}

uint64_t Summary::quantile(double q) const {
  uint64_t n = 0;
  for (uint64_t h : hist) n += h;
  if (n == 0) return 0;
  // The rank of the q-quantile: ceil(q * n), at least 1.
  uint64_t want = uint64_t(q * double(n));
  if (double(want) < q * double(n)) ++want;
  if (want == 0) want = 1;
  uint64_t seen = 0;
  for (unsigned b = 0; b < kBuckets; ++b) {
    seen += hist[b];
    if (seen >= want) {
      const uint64_t top = latency_bucket_top(b);
      return top < max ? top : max;
    }
  }
  return max;
}

void Summary::to_json(nlohmann::json &j, double k) const {
  j["exits"] = exits;
  j["total_ns"] = uint64_t(double(total) * k);
  j["mean_ns"] = exits ? uint64_t(double(total) * k / double(exits)) : 0;
  j["p50_ns"] = uint64_t(double(quantile(0.5)) * k);
  j["p99_ns"] = uint64_t(double(quantile(0.99)) * k);
  j["max_ns"] = uint64_t(double(max) * k);
}

} // namespace lptrace
