/* consumer.pkgconfig.{shared,static}: built with
 *   cc tracer.c $(pkg-config [--static] --cflags --libs libpatch)
 * Probes its own LP_PATCHABLE function by symbol, calls it N times and checks
 * the handler ran exactly N times with the right arguments; then (builds with
 * instruction sites, $LPC_EXPECT_MC=1) an instruction-site probe on the first
 * body instruction of another function; then disables and checks no more hits.
 * -DLPC_STATIC=1: linked statically (no libpatch.so may be mapped). */
#include "lpc.h"

#ifndef LPC_STATIC
#define LPC_STATIC 0
#endif

enum { N = 1000, M = 250 };

LPC_TARGET long work(long x) { return x * 3 + 1; }
LPC_TARGET long body(long x) { return x * 5 - 2; }

static long work_hits, body_hits;
static unsigned long work_arg_sum;

static void on_work(lp_regs *regs, void *user) {
  lpc_count(regs, user);
  __atomic_fetch_add(&work_arg_sum, (unsigned long)lp_regs_arg(regs, 0), __ATOMIC_RELAXED);
}

int main(void) {
  lp_patcher *p = NULL;
  lp_probe *pw = NULL, *pb = NULL;
  long i, sum = 0;
  const char *mc = getenv("LPC_EXPECT_MC");

  LPC_LINE_BUFFERED();

  LPC_CHECK(strcmp(lp_arch(), "x86_64") == 0 || strcmp(lp_arch(), LP_REGS_ARCH) == 0, "lp_arch()=%s", lp_arch());
  LPC_OK(lp_patcher_open(NULL, &p));
  LPC_OK(lp_probe_symbol(p, "work", on_work, &work_hits, &pw));
  LPC_CHECK(lp_probe_address(pw) == (void *)work, "probe at %p, work at %p", lp_probe_address(pw), (void *)work);
  LPC_OK(lp_probe_enable(pw));
  LPC_OK(lp_commit(p));
  for (i = 0; i < N; ++i) sum += work(i);
  LPC_CHECK(work_hits == N, "work hits %ld, expected %d", work_hits, N);
  LPC_CHECK(work_arg_sum == (unsigned long)N * (N - 1) / 2, "sum of work's arguments seen by the handler %lu, expected %lu",
            work_arg_sum, (unsigned long)N * (N - 1) / 2);
  LPC_CHECK(sum == 3L * N * (N - 1) / 2 + N, "work results corrupted: sum %ld", sum);
  printf("work: hits=%ld\n", work_hits);
  printf("work: probe kind %s\n", lp_probe_is_jump(pw) == 1 ? "jump" : "trap");

  if (mc && strcmp(mc, "1") == 0) {
    LPC_CHECK(lp_supports_instruction_sites() == 1, "lp_supports_instruction_sites()=%d in a build with LLVM MC",
              lp_supports_instruction_sites());
    if (lp_supports_instruction_sites() == 1) {
      LPC_OK(lp_probe_at(p, (char *)body + LP_PATCHABLE_NOPS, lpc_count, &body_hits, &pb));
      LPC_OK(lp_probe_enable(pb));
      LPC_OK(lp_commit(p));
      sum = 0;
      for (i = 0; i < M; ++i) sum += body(i);
      LPC_CHECK(body_hits == M, "instruction-site hits %ld, expected %d", body_hits, M);
      LPC_CHECK(sum == 5L * M * (M - 1) / 2 - 2L * M, "body results corrupted: sum %ld", sum);
      printf("body+%d: hits=%ld, probe kind %s\n", LP_PATCHABLE_NOPS, body_hits,
             lp_probe_is_jump(pb) == 1 ? "jump" : "trap");
    }
  }

  LPC_OK(lp_probe_disable(pw));
  LPC_OK(lp_commit(p));
  LPC_CHECK(work(7) == 22, "work(7) after disable");
  LPC_CHECK(work_hits == N, "disabled probe still counting: %ld", work_hits);
  lp_patcher_close(p);

  lpc_check_maps(!LPC_STATIC);
  if (lpc_failures) {
    fprintf(stderr, "tracer: %d failure(s)\n", lpc_failures);
    return 1;
  }
  printf("tracer: ok\n");
  return 0;
}
