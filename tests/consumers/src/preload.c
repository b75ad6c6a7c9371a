/* consumer.preload: an LD_PRELOAD library linked against libpatch.so. Its
 * constructor probes f and g of the MAIN program by symbol and commits before
 * main runs; its destructor prints the counts to stderr as
 *   lp-preload: f=<hits> g=<hits>
 * and then checks /proc/self/maps (lines "FAIL: ..." on stderr). A failure in
 * the constructor is reported and exits 90 before main. */
#include <unistd.h>

#include "lpc.h"

static lp_patcher *patcher;
static long f_hits, g_hits;

__attribute__((constructor)) static void preload_setup(void) {
  lp_probe *pf = NULL, *pg = NULL;
  int rc;
  const char *what = "lp_patcher_open";
  if ((rc = lp_patcher_open(NULL, &patcher)) != 0) goto fail;
  what = "lp_probe_symbol(f)";
  if ((rc = lp_probe_symbol(patcher, "f", lpc_count, &f_hits, &pf)) != 0) goto fail;
  what = "lp_probe_symbol(g)";
  if ((rc = lp_probe_symbol(patcher, "g", lpc_count, &g_hits, &pg)) != 0) goto fail;
  what = "lp_probe_enable";
  if ((rc = lp_probe_enable(pf)) != 0 || (rc = lp_probe_enable(pg)) != 0) goto fail;
  what = "lp_commit";
  if ((rc = lp_commit(patcher)) != 0) goto fail;
  return;
fail:
  fprintf(stderr, "lp-preload: FAIL: %s returned %d (%s)\n", what, rc, lp_strerror(rc));
  _exit(90);
}

__attribute__((destructor)) static void preload_report(void) {
  fprintf(stderr, "lp-preload: f=%ld g=%ld\n", __atomic_load_n(&f_hits, __ATOMIC_RELAXED),
          __atomic_load_n(&g_hits, __ATOMIC_RELAXED));
  lpc_check_maps(1); /* failures are "FAIL: ..." lines on stderr */
  lp_patcher_close(patcher);
}
