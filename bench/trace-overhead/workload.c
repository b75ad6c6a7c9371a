/* trace-overhead's workload: one thread calls two small functions N times
 * (bw_outer calls bw_inner: 2N traced calls) and prints the nanoseconds per
 * loop iteration it measured itself -- the tracer's start-up and teardown
 * are not in the figure. Compiled with -fpatchable-function-entry=5 so that
 * uftrace (-P, dynamic patching) and libpatch (entry sleds) can both trace it;
 * a uprobe needs no sled. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

__attribute__((noipa)) long bw_inner(long x) { return x * 3 + 1; }
__attribute__((noipa)) long bw_outer(long x) { return bw_inner(x) ^ x; }

int main(int argc, char **argv) {
  const long n = argc > 1 ? atol(argv[1]) : 1000000;
  struct timespec a, b;
  long s = 0;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (long i = 0; i < n; ++i) s += bw_outer(i);
  clock_gettime(CLOCK_MONOTONIC, &b);
  const double ns = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / (double)n;
  printf("trace-overhead-workload: %ld iterations, %.2f ns/iteration (checksum %ld)\n", n, ns, s);
  return 0;
}
