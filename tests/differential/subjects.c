/* Functions the differential test probes at every instruction boundary:
 * loops, branches (into what a probe displaces), rip-relative data, calls,
 * recursion. Built with -fno-jump-tables: targets of indirect jumps are
 * invisible to the relocator's branch-target scan. */
#include <stdint.h>

/* LPD_SECTION: a section of their own, which the riscv64 near-layout binary
 * links at 256 MiB (see tests/CMakeLists.txt). */
#ifdef LPD_SECTION
#define LPD_FN __attribute__((noinline, section(LPD_SECTION)))
#else
#define LPD_FN __attribute__((noinline))
#endif

int64_t lpd_table[8] = {3, 1, 4, 1, 5, 9, 2, 6};
static volatile int64_t lpd_global = 17;

LPD_FN int64_t lpd_sum_loop(int64_t n) {
  int64_t s = 0;
  for (int64_t i = 0; i < n; ++i) s += i * i ^ (s >> 3);
  return s;
}

LPD_FN int64_t lpd_pcrel(int64_t x) {
  return lpd_table[x & 7] * x + lpd_global;
}

LPD_FN int64_t lpd_branches(int64_t x) {
  if (x < 0) return -x * 3;
  if (x & 1) {
    x = x * 5 + 1;
    if (x > 100) x -= 7;
  } else {
    x >>= 1;
  }
  while (x > 1000) x /= 3;
  return x + (x & 4 ? 11 : 13);
}

LPD_FN int64_t lpd_fib(int64_t n) { return n < 2 ? n : lpd_fib(n - 1) + lpd_fib(n - 2); }

LPD_FN int64_t lpd_calls(int64_t x) { return lpd_pcrel(x) + lpd_branches(x - 3) * 2; }
