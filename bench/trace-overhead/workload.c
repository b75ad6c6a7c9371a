/* trace-overhead's workload: one thread calls two small functions N times
 * (bw_outer calls bw_inner: 2N traced calls) and prints the nanoseconds per
 * loop iteration it measured itself -- the tracer's start-up and teardown
 * are not in the figure. Compiled with -fpatchable-function-entry=5 so that
 * uftrace (-P, dynamic patching) and libpatch (entry sleds) can both trace it;
 * a uprobe needs no sled. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

__attribute__((noipa)) long bw_inner(long x) { return x * 3 + 1; }
__attribute__((noipa)) long bw_outer(long x) { return bw_inner(x) ^ x; }

static double ns_between(const struct timespec *a, const struct timespec *b) {
  return (b->tv_sec - a->tv_sec) * 1e9 + (b->tv_nsec - a->tv_nsec);
}

/* "clock N": what one clock read costs here -- the floor under any tracer that
 * times each call (two reads per call): the TSC (lptrace's agent, where it is
 * invariant) and clock_gettime(CLOCK_MONOTONIC) (uftrace's default). */
static int clock_cost(long n) {
  struct timespec a, b, t;
  unsigned long long sink = 0;
#if defined(__x86_64__)
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; ++i) sink += __rdtsc();
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("trace-overhead-workload: rdtsc %.2f ns/read\n", ns_between(&a, &b) / (double)n);
#endif
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; ++i) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    sink += (unsigned long long)t.tv_nsec;
  }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("trace-overhead-workload: clock_gettime %.2f ns/read (sink %llu)\n", ns_between(&a, &b) / (double)n,
         sink & 1);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 2 && strcmp(argv[1], "clock") == 0) return clock_cost(atol(argv[2]));
  const long n = argc > 1 ? atol(argv[1]) : 1000000;
  struct timespec a, b;
  long s = 0;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; ++i) s += bw_outer(i);
  clock_gettime(CLOCK_MONOTONIC, &b);
  const double ns = ns_between(&a, &b) / (double)n;
  printf("trace-overhead-workload: %ld iterations, %.2f ns/iteration (checksum %ld)\n", n, ns, s);
  return 0;
}
