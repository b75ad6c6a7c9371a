// consumer.find_package, C++, linked with libpatch::patch, through <libpatch/patch.hpp>.
#include <cstdio>
#include <libpatch/patch.hpp>

#include "lpc.h"

constexpr int N = 123;

extern "C" LPC_TARGET int fp_cxx_target(int x) { return x + 40; }

static long hits;

int main() {
  LPC_LINE_BUFFERED();
  auto p = libpatch::Patcher::open();
  if (!p) {
    std::fprintf(stderr, "FAIL: Patcher::open: %s\n", p.message().c_str());
    return 1;
  }
  auto pr = p->probe_symbol("fp_cxx_target", lpc_count, &hits);
  if (!pr) {
    std::fprintf(stderr, "FAIL: probe_symbol(fp_cxx_target): %s\n", pr.message().c_str());
    return 1;
  }
  if (int rc = pr->enable(); rc != 0) {
    std::fprintf(stderr, "FAIL: Probe::enable: %s\n", lp_strerror(rc));
    return 1;
  }
  if (int rc = p->commit(); rc != 0) {
    std::fprintf(stderr, "FAIL: Patcher::commit: %s\n", lp_strerror(rc));
    return 1;
  }
  long sum = 0;
  for (int i = 0; i < N; ++i) sum += fp_cxx_target(i);
  LPC_CHECK(hits == N, "hits %ld, expected %d", hits, N);
  LPC_CHECK(sum == long(N) * (N - 1) / 2 + 40L * N, "results corrupted: sum %ld", sum);
  LPC_CHECK(p->stats().commits == 1, "stats().commits %llu, expected 1", (unsigned long long)p->stats().commits);
  p->reset();
  lpc_check_maps(1);
  std::printf("cxx_shared: hits=%ld %s\n", hits, lpc_failures ? "FAILED" : "ok");
  return lpc_failures ? 1 : 0;
}
