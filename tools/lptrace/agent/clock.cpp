#include "clock.hpp"

#include <fstream>
#include <string>

namespace lptrace {

void Clock::start() {
#if defined(__x86_64__)
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    tsc_ = line.find(" constant_tsc") != std::string::npos && line.find(" nonstop_tsc") != std::string::npos;
    break;
  }
#endif
  ns0_ = mono_ns();
  tick0_ = now();
}

double Clock::ns_per_tick() const {
  if (!tsc_) return 1.0;
  const uint64_t ns = mono_ns(), t = now();
  if (t <= tick0_ || ns <= ns0_) return 1.0;
  return double(ns - ns0_) / double(t - tick0_);
}

uint64_t Clock::to_mono_ns(uint64_t ticks, double k) const {
  if (!tsc_) return ticks;
  return ns0_ + uint64_t(double(int64_t(ticks - tick0_)) * k);
}

} // namespace lptrace
