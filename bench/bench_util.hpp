// Shared helpers of the benchmark programs (not tests: they print numbers).
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace lp_bench {

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median of `reps` measurements of f() (each returning seconds for one run).
template <typename F> double median_of(int reps, F f) {
  std::vector<double> v;
  for (int i = 0; i < reps; ++i) v.push_back(f());
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

} // namespace lp_bench
