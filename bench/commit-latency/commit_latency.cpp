// commit-latency: time to enable N sites (N = 1, 10, 100, 1000, 10000) while
// threads keep calling them, as one batch vs one site per commit; prints
// milliseconds, syncs per commit path and the batch speed-up.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <utility>
#include <vector>

#include "../bench_util.hpp"
#include "libpatch/patch.h"
#include "libpatch/patchable.h"

namespace {

constexpr unsigned kFunctions = 10000;
using Fn = uint64_t (*)(uint64_t);

template <unsigned I> LP_PATCHABLE uint64_t f(uint64_t x) {
  asm volatile("" ::: "memory");
  return x + I;
}
template <unsigned... I> std::vector<Fn> table(std::integer_sequence<unsigned, I...>) { return {&f<I>...}; }

void handler(lp_regs *, void *) {}

struct Sample {
  double ms;
  uint64_t syncs;
};

Sample enable_all(lp_patcher *p, std::vector<lp_probe *> &probes, size_t n, bool batch) {
  lp_stats s0{}, s1{};
  lp_patcher_stats(p, &s0);
  const double t0 = lp_bench::now_s();
  for (size_t i = 0; i < n; ++i) {
    lp_probe_enable(probes[i]);
    if (!batch) lp_commit(p);
  }
  if (batch) lp_commit(p);
  const double t = lp_bench::now_s() - t0;
  lp_patcher_stats(p, &s1);
  for (size_t i = 0; i < n; ++i) lp_probe_disable(probes[i]);
  lp_commit(p);
  return {t * 1e3, s1.syncs - s0.syncs};
}

} // namespace

int main(int argc, char **argv) {
  const unsigned threads = argc > 1 ? unsigned(std::atoi(argv[1])) : 2;
  const std::vector<Fn> fns = table(std::make_integer_sequence<unsigned, kFunctions>{});
  lp_options o;
  lp_options_init(&o);
  o.policy = LP_PROBE_JUMP;
  lp_patcher *p = nullptr;
  if (int rc = lp_patcher_open(&o, &p); rc != 0) {
    std::fprintf(stderr, "commit-latency: %s\n", lp_strerror(rc));
    return 1;
  }
  std::vector<lp_probe *> probes(kFunctions);
  for (unsigned i = 0; i < kFunctions; ++i) {
    if (int rc = lp_probe_at(p, reinterpret_cast<void *>(fns[i]), handler, nullptr, &probes[i]); rc != 0) {
      std::fprintf(stderr, "commit-latency: probe %u: %s\n", i, lp_strerror(rc));
      return 1;
    }
  }
  // Touch every site once so the gcc nop sleds are normalised (first commit of
  // a site evacuates) and the measured commits are the steady state.
  enable_all(p, probes, kFunctions, true);

  std::atomic<bool> stop{false};
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t)
    workers.emplace_back([&, t] {
      uint64_t acc = 0, i = t;
      while (!stop.load(std::memory_order_relaxed)) acc += fns[(i += 7919) % kFunctions](i);
      if (acc == 1) std::puts("");
    });

  std::printf("commit-latency (%s), %u threads calling the probed functions, median of 3\n", lp_arch(), threads);
  std::printf("  %8s  %14s %8s  %18s %8s  %8s\n", "sites", "batch ms", "syncs", "one-per-commit ms", "syncs", "speedup");
  for (size_t n : {size_t(1), size_t(10), size_t(100), size_t(1000), size_t(10000)}) {
    Sample b{}, s{};
    b.ms = lp_bench::median_of(3, [&] { Sample x = enable_all(p, probes, n, true); b.syncs = x.syncs; return x.ms; });
    s.ms = lp_bench::median_of(n >= 10000 ? 1 : 3, [&] { Sample x = enable_all(p, probes, n, false); s.syncs = x.syncs; return x.ms; });
    std::printf("  %8zu  %14.3f %8llu  %18.3f %8llu  %7.1fx\n", n, b.ms, (unsigned long long)b.syncs, s.ms,
                (unsigned long long)s.syncs, s.ms / b.ms);
    std::printf("{\"bench\":\"commit-latency\",\"arch\":\"%s\",\"sites\":%zu,\"batch_ms\":%.3f,\"batch_syncs\":%llu,"
                "\"single_ms\":%.3f,\"single_syncs\":%llu}\n",
                lp_arch(), n, b.ms, (unsigned long long)b.syncs, s.ms, (unsigned long long)s.syncs);
  }
  stop = true;
  for (auto &w : workers) w.join();
  lp_patcher_close(p);
  return 0;
}
