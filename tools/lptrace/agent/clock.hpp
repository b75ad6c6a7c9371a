// The agent's clock on the hit path: the TSC on x86-64 where it is invariant
// (/proc/cpuinfo: constant_tsc and nonstop_tsc), 14 ns here against 22 ns for
// clock_gettime; CLOCK_MONOTONIC nanoseconds elsewhere. Ticks become
// nanoseconds by the rate measured against CLOCK_MONOTONIC between the start
// and the report (a linear map: latency buckets of ticks convert too).
#pragma once

#include <cstdint>
#include <ctime>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace lptrace {

inline uint64_t mono_ns() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return uint64_t(t.tv_sec) * 1000000000ull + uint64_t(t.tv_nsec);
}

class Clock {
public:
  void start();
  uint64_t now() const {
#if defined(__x86_64__)
    if (tsc_) return __rdtsc();
#endif
    return mono_ns();
  }
  // Nanoseconds per tick, measured now; and a tick count as CLOCK_MONOTONIC
  // ns by the rate `k` one such measurement gave. Every conversion of one
  // report must use the same k: a rate measured again per event moves later
  // events by (ticks - start) times the rate's change, which reorders events
  // microseconds apart and pushes a callee out of its caller.
  double ns_per_tick() const;
  uint64_t to_mono_ns(uint64_t ticks, double k) const;
  bool tsc() const { return tsc_; }

private:
  bool tsc_ = false;
  uint64_t tick0_ = 0, ns0_ = 0;
};

} // namespace lptrace
