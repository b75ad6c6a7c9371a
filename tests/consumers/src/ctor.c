/* consumer.constructor.{shared,static}: libpatch used from a constructor.
 * The constructor (priority 101: before every default-priority initialiser,
 * including any a static link pulls in) opens the patcher, probes ctor_f and
 * ctor_g by symbol, enables both, commits, and calls ctor_f once; main then
 * calls them known numbers of times and checks the exact counts.
 * -DLPC_STATIC=1: linked statically. */
#include "lpc.h"

#ifndef LPC_STATIC
#define LPC_STATIC 0
#endif

enum { NF = 37, NG = 5 };

LPC_TARGET int ctor_f(int x) { return x + 1; }
LPC_TARGET int ctor_g(int x) { return x * 2; }

static long f_hits, g_hits;
static int ctor_stage;    /* how far the constructor got: 4 = all done */
static int ctor_rc;       /* the failing call's error */
static long f_hits_in_ctor;
static lp_patcher *patcher;

__attribute__((constructor(101))) static void setup(void) {
  lp_probe *pf = NULL, *pg = NULL;
  if ((ctor_rc = lp_patcher_open(NULL, &patcher)) != 0) return;
  ctor_stage = 1;
  if ((ctor_rc = lp_probe_symbol(patcher, "ctor_f", lpc_count, &f_hits, &pf)) != 0) return;
  if ((ctor_rc = lp_probe_symbol(patcher, "ctor_g", lpc_count, &g_hits, &pg)) != 0) return;
  ctor_stage = 2;
  if ((ctor_rc = lp_probe_enable(pf)) != 0 || (ctor_rc = lp_probe_enable(pg)) != 0) return;
  ctor_stage = 3;
  if ((ctor_rc = lp_commit(patcher)) != 0) return;
  ctor_stage = 4;
  (void)ctor_f(100);
  f_hits_in_ctor = f_hits;
}

int main(void) {
  int i;
  long sum = 0;
  static const char *const stage[] = {"lp_patcher_open", "lp_probe_symbol", "lp_probe_enable", "lp_commit"};

  LPC_LINE_BUFFERED();
  if (ctor_stage != 4) {
    fprintf(stderr, "FAIL: in the constructor, %s returned %d (%s)\n", stage[ctor_stage], ctor_rc, lp_strerror(ctor_rc));
    return 1;
  }
  LPC_CHECK(f_hits_in_ctor == 1, "ctor_f hits inside the constructor %ld, expected 1", f_hits_in_ctor);
  LPC_CHECK(g_hits == 0, "ctor_g hits before main %ld, expected 0", g_hits);
  for (i = 0; i < NF; ++i) sum += ctor_f(i);
  for (i = 0; i < NG; ++i) sum += ctor_g(i);
  LPC_CHECK(f_hits == NF + 1, "ctor_f hits %ld, expected %d", f_hits, NF + 1);
  LPC_CHECK(g_hits == NG, "ctor_g hits %ld, expected %d", g_hits, NG);
  LPC_CHECK(sum == (long)NF * (NF - 1) / 2 + NF + (long)NG * (NG - 1), "results corrupted: sum %ld", sum);
  printf("ctor: f=%ld g=%ld\n", f_hits, g_hits);
  lp_patcher_close(patcher);
  lpc_check_maps(!LPC_STATIC);
  if (lpc_failures) {
    fprintf(stderr, "ctor: %d failure(s)\n", lpc_failures);
    return 1;
  }
  printf("ctor: ok\n");
  return 0;
}
