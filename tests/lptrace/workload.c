/* The lptrace tests' workload: functions with known call counts, with entry
 * sleds (wl_sled_*: compiled with -fpatchable-function-entry=5) and without
 * (wl_plain_*, in plain.c), called from several threads and, with "fork", by
 * a fork child too; with 0 calls per thread ("serve") until SIGTERM, for
 * attach; "dlopen": Debian's libz loaded after the start, its crc32 called
 * 9 + 2 times (a dlclose between); "exec": the program then execs itself
 * ("1 3": one thread, 3 calls) in the same process. Every result is
 * checked: the program exits 1 on a wrong one, so a probe that broke a
 * function fails the test. */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noipa)) long wl_sled_add(long a, long b) { return a + b; }
__attribute__((noipa)) long wl_sled_twice(long a) { return wl_sled_add(a, a); }
long wl_plain_mul(long a, long b);
long wl_plain_square(long a);

static int bad;
static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

static void *worker(void *arg) {
  const long n = (long)arg; /* 0: until SIGTERM ("serve") */
  for (long i = 0; n == 0 ? !stop : i < n; ++i) {
    if (wl_sled_twice(i) != 2 * i) __atomic_add_fetch(&bad, 1, __ATOMIC_RELAXED);
    if (wl_plain_square(i) != i * i) __atomic_add_fetch(&bad, 1, __ATOMIC_RELAXED);
  }
  return NULL;
}

int main(int argc, char **argv) {
  const int threads = argc > 1 ? atoi(argv[1]) : 4;
  const long per = argc > 2 ? atol(argv[2]) : 1000;
  const char *mode = argc > 3 ? argv[3] : "";
  const int do_fork = strcmp(mode, "fork") == 0;
  if (per == 0) signal(SIGTERM, on_term);
  pthread_t t[64];
  for (int i = 0; i < threads && i < 64; ++i) pthread_create(&t[i], NULL, worker, (void *)per);
  if (per == 0) {
    printf("ready\n"); /* for the tests: the threads are calling */
    fflush(stdout);
  }
  for (int i = 0; i < threads && i < 64; ++i) pthread_join(t[i], NULL);
  if (do_fork) {
    const pid_t c = fork();
    if (c == 0) {
      for (long i = 0; i < 5; ++i)
        if (wl_plain_mul(i, 3) != 3 * i) bad++;
      _exit(bad ? 1 : 0); /* _exit: no report from this child... */
    }
    int st = 0;
    waitpid(c, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
    const pid_t c2 = fork();
    if (c2 == 0) {
      for (long i = 0; i < 7; ++i)
        if (wl_plain_mul(i, 4) != 4 * i) bad++;
      exit(bad ? 1 : 0); /* ...exit: a report of its own, with its own counts */
    }
    waitpid(c2, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
  }
  if (strcmp(mode, "dlopen") == 0) {
    /* crc32("lptrace"), as zlib and python3's zlib.crc32 compute it. */
    static const unsigned char text[] = "lptrace";
    for (int round = 0; round < 2; ++round) {
      void *z = dlopen("libz.so.1", RTLD_NOW);
      unsigned long (*crc)(unsigned long, const unsigned char *, unsigned) =
          z ? (unsigned long (*)(unsigned long, const unsigned char *, unsigned))dlsym(z, "crc32") : NULL;
      if (!crc) {
        fprintf(stderr, "workload: libz.so.1: %s\n", dlerror());
        bad++;
        break;
      }
      for (int i = 0; i < (round ? 2 : 9); ++i)
        if (crc(0, text, 7) != 0x2d21d692UL) bad++;
      dlclose(z);
    }
  }
  printf("workload: %d threads x %ld calls, %d wrong\n", threads, per, bad);
  if (strcmp(mode, "exec") == 0) {
    fflush(stdout);
    if (bad) return 1;
    execl("/proc/self/exe", argv[0], "1", "3", (char *)NULL);
    perror("workload: exec");
    return 1;
  }
  return bad ? 1 : 0;
}
