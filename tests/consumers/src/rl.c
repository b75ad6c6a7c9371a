/* consumer.readline: linked against libpatch.so, with a probe enabled on its
 * own function, it dlopen()s GNU readline (libreadline.so.8) and reads a line
 * from stdin (a pipe) with readline(). Reproduces a real bug: libLLVM-16.so
 * pulled in libedit, whose readline symbols interposed GNU readline's and
 * crashed Lua's REPL. Also fails if libLLVM/libedit/libz3/libicu/libxml2 is
 * mapped. Exit 77: libreadline.so.8 not installed (skip). */
#include <dlfcn.h>

#include "lpc.h"

enum { N = 100 };

LPC_TARGET long tick(long x) { return x + 2; }

static long hits;

int main(void) {
  lp_patcher *p = NULL;
  lp_probe *pr = NULL;
  long i, sum = 0;
  void *h;
  char *(*rl)(const char *);
  FILE **rl_out;
  char *line;

  LPC_LINE_BUFFERED();

  LPC_OK(lp_patcher_open(NULL, &p));
  LPC_OK(lp_probe_symbol(p, "tick", lpc_count, &hits, &pr));
  LPC_OK(lp_probe_enable(pr));
  LPC_OK(lp_commit(p));
  for (i = 0; i < N / 2; ++i) sum += tick(i);

  h = dlopen("libreadline.so.8", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    fprintf(stderr, "SKIP: dlopen(libreadline.so.8): %s (Debian package libreadline8)\n", dlerror());
    return 77;
  }
  *(void **)&rl = dlsym(h, "readline");
  rl_out = (FILE **)dlsym(h, "rl_outstream");
  if (!rl || !rl_out) {
    fprintf(stderr, "FAIL: dlsym(readline / rl_outstream): %s\n", dlerror());
    return 1;
  }
  *rl_out = fopen("/dev/null", "w"); /* readline echoes what it reads: keep stdout clean */
  line = rl("");
  printf("readline: [%s]\n", line ? line : "(null: EOF or error)");
  LPC_CHECK(line && strcmp(line, "hello") == 0, "readline() returned %s%s%s", line ? "\"" : "", line ? line : "NULL",
            line ? "\"" : "");
  free(line);

  for (; i < N; ++i) sum += tick(i);
  LPC_CHECK(hits == N, "tick hits %ld, expected %d", hits, N);
  LPC_CHECK(sum == (long)N * (N - 1) / 2 + 2L * N, "tick results corrupted: sum %ld", sum);
  printf("tick: hits=%ld\n", hits);
  lpc_check_maps(1);
  lp_patcher_close(p);
  if (lpc_failures) {
    fprintf(stderr, "rl: %d failure(s)\n", lpc_failures);
    return 1;
  }
  printf("rl: ok\n");
  return 0;
}
