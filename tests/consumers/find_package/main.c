/* consumer.find_package, C, linked with libpatch::patch_static. */
#include "lpc.h"

enum { N = 321 };

LPC_TARGET int fp_c_target(int x) { return x ^ 0x5a; }

static long hits;

int main(void) {
  lp_patcher *p = NULL;
  lp_probe *pr = NULL;
  long i, sum = 0, want = 0;

  LPC_LINE_BUFFERED();
  LPC_OK(lp_patcher_open(NULL, &p));
  LPC_OK(lp_probe_symbol(p, "fp_c_target", lpc_count, &hits, &pr));
  LPC_OK(lp_probe_enable(pr));
  LPC_OK(lp_commit(p));
  for (i = 0; i < N; ++i) {
    sum += fp_c_target((int)i);
    want += i ^ 0x5a;
  }
  LPC_CHECK(hits == N, "hits %ld, expected %d", hits, N);
  LPC_CHECK(sum == want, "results corrupted: %ld != %ld", sum, want);
  lp_patcher_close(p);
  lpc_check_maps(0);
  printf("c_static: hits=%ld %s\n", hits, lpc_failures ? "FAILED" : "ok");
  return lpc_failures ? 1 : 0;
}
