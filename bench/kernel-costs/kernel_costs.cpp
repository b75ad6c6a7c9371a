/* kernel-costs: what each kernel operation a libpatch commit causes costs on
 * this kernel, with 0 and with N other threads of the process busy running
 * code (as a probed program's threads are). Where a commit's time goes:
 *
 *   mprotect RWX+RX, 1 page       the mprotect writer's window, per run of pages:
 *                                 each call is a TLB shootdown of every other
 *                                 core running the process (IPI / SBI remote
 *                                 sfence.vma)
 *   mprotect RWX+RX, 4 pages x1   the same 4 pages as one range (one shootdown)
 *   mprotect RWX+RX, 4 pages x4   one call per page (what one window per page costs)
 *   riscv_flush_icache            LP_SYNC_FLUSH_ICACHE: fence.i on every hart of
 *                                 the process (riscv64 only)
 *   membarrier PRIVATE_EXPEDITED  an IPI to every core running the process (the
 *                                 SYNC_CORE flavour is LP_SYNC_MEMBARRIER, where
 *                                 the kernel has it)
 *   procmem 4-byte pwrite         LP_WRITER_PROCMEM's store (on riscv64 one
 *                                 flush_icache_mm of every hart per write)
 *   getppid                       a system call that touches no other core
 *
 * Not a test: it prints numbers. bench/kernel-costs/run.sh runs it inside the
 * rv64gc Linux guest (farm/boards) and natively side by side.
 *
 * usage: kernel-costs [ROUNDS] [BUSY_THREADS...]   (default 200, and 0 and 3) */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../bench_util.hpp"

#ifndef SYS_membarrier
#define SYS_membarrier 283
#endif

static volatile int g_stop;
static volatile long g_sink;

/* Four pages of code of our own, R-X, that the busy threads run (so their
 * cores have the text's translations, like a probed program's threads). */
static uint8_t *g_text;
static long g_page;

static void *busy(void *arg) {
  (void)arg;
  long (*f)(long) = (long (*)(long))(void *)g_text;
  long s = 0;
  while (!g_stop) s += f(s);
  g_sink = s;
  return NULL;
}

static int make_text(void) {
  g_page = sysconf(_SC_PAGESIZE);
  void *m = mmap(NULL, 4 * (size_t)g_page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return -1;
  g_text = static_cast<uint8_t *>(m);
#if defined(__riscv)
  const uint32_t code[] = {0x00150513u /* addi a0, a0, 1 */, 0x00008067u /* ret */};
#elif defined(__x86_64__)
  const uint8_t code[] = {0x48, 0x8d, 0x47, 0x01 /* lea rax, [rdi+1] */, 0xc3 /* ret */};
#elif defined(__aarch64__)
  const uint32_t code[] = {0x91000400u /* add x0, x0, #1 */, 0xd65f03c0u /* ret */};
#else
#error "kernel-costs: no code for this architecture"
#endif
  memcpy(g_text, code, sizeof code);
  __builtin___clear_cache((char *)g_text, (char *)g_text + sizeof code);
  return mprotect(g_text, 4 * (size_t)g_page, PROT_READ | PROT_EXEC);
}

typedef void (*Op)(void *);

static void op_mprotect1(void *u) {
  (void)u;
  mprotect(g_text, (size_t)g_page, PROT_READ | PROT_WRITE | PROT_EXEC);
  mprotect(g_text, (size_t)g_page, PROT_READ | PROT_EXEC);
}
static void op_mprotect4_range(void *u) {
  (void)u;
  mprotect(g_text, 4 * (size_t)g_page, PROT_READ | PROT_WRITE | PROT_EXEC);
  mprotect(g_text, 4 * (size_t)g_page, PROT_READ | PROT_EXEC);
}
static void op_mprotect4_pages(void *u) {
  (void)u;
  for (int i = 0; i < 4; ++i) mprotect(g_text + i * g_page, (size_t)g_page, PROT_READ | PROT_WRITE | PROT_EXEC);
  for (int i = 0; i < 4; ++i) mprotect(g_text + i * g_page, (size_t)g_page, PROT_READ | PROT_EXEC);
}
#if defined(__riscv)
static void op_flush_icache(void *u) {
  (void)u;
  syscall(259 /* riscv_flush_icache */, 0, 0, 0);
}
#endif
static void op_membarrier(void *u) {
  (void)u;
  syscall(SYS_membarrier, 8 /* MEMBARRIER_CMD_PRIVATE_EXPEDITED */, 0, 0);
}
static void op_procmem(void *u) {
  const int fd = *(int *)u;
  uint32_t w;
  memcpy(&w, g_text + 64, 4); /* the same bytes back: only the kernel's work */
  if (pwrite(fd, &w, 4, (off_t)(uintptr_t)(g_text + 64)) != 4) g_sink = errno;
}
static void op_getppid(void *u) {
  (void)u;
  g_sink = g_sink + syscall(SYS_getppid);
}

/* Microseconds per call: the median of 5 runs of `rounds` calls. */
static double measure(Op op, void *u, int rounds) {
  return lp_bench::median_of(5, [&] {
    const double a = lp_bench::now_s();
    for (int i = 0; i < rounds; ++i) op(u);
    return (lp_bench::now_s() - a) / rounds * 1e6;
  });
}

int main(int argc, char **argv) {
  int rounds = 200;
  int busy_counts[8] = {0, 3};
  int nbusy = 2;
  if (argc > 1) {
    char *end = NULL;
    rounds = (int)strtol(argv[1], &end, 10);
    if (!end || *end || rounds < 1) {
      fprintf(stderr, "kernel-costs: ROUNDS must be a positive number, got '%s'\n", argv[1]);
      return 2;
    }
  }
  if (argc > 2) {
    nbusy = 0;
    for (int i = 2; i < argc && nbusy < 8; ++i) {
      char *end = NULL;
      const long n = strtol(argv[i], &end, 10);
      if (!end || *end || n < 0 || n > 64) {
        fprintf(stderr, "kernel-costs: BUSY_THREADS must be 0..64, got '%s'\n", argv[i]);
        return 2;
      }
      busy_counts[nbusy++] = (int)n;
    }
  }
  if (make_text() != 0) {
    perror("kernel-costs: text");
    return 1;
  }
  int fd = open("/proc/self/mem", O_RDWR | O_CLOEXEC);
  syscall(SYS_membarrier, 16 /* REGISTER_PRIVATE_EXPEDITED */, 0, 0);
  struct {
    const char *name;
    Op op;
    void *u;
  } ops[] = {
      {"getppid (no other core)", op_getppid, NULL},
      {"mprotect RWX+RX, 1 page", op_mprotect1, NULL},
      {"mprotect RWX+RX, 4 pages x1", op_mprotect4_range, NULL},
      {"mprotect RWX+RX, 4 pages x4", op_mprotect4_pages, NULL},
#if defined(__riscv)
      {"riscv_flush_icache", op_flush_icache, NULL},
#endif
      {"membarrier PRIVATE_EXPEDITED", op_membarrier, NULL},
      {"procmem 4-byte pwrite", fd >= 0 ? op_procmem : NULL, &fd},
  };
  const int nops = (int)(sizeof ops / sizeof ops[0]);
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  printf("kernel-costs: %ld cpus online, %d rounds, median of 5, microseconds per call\n", cpus, rounds);
  printf("  %-30s", "operation");
  for (int b = 0; b < nbusy; ++b) printf("  %7d busy", busy_counts[b]);
  if (nbusy > 1) printf("   ratio");
  printf("\n");
  double res[16][8];
  for (int b = 0; b < nbusy; ++b) {
    pthread_t t[64];
    g_stop = 0;
    for (int i = 0; i < busy_counts[b]; ++i) pthread_create(&t[i], NULL, busy, NULL);
    usleep(100000);
    for (int k = 0; k < nops; ++k) res[k][b] = ops[k].op ? measure(ops[k].op, ops[k].u, rounds) : -1;
    g_stop = 1;
    for (int i = 0; i < busy_counts[b]; ++i) pthread_join(t[i], NULL);
  }
  for (int k = 0; k < nops; ++k) {
    printf("  %-30s", ops[k].name);
    for (int b = 0; b < nbusy; ++b) {
      if (res[k][b] < 0) printf("  %12s", "n/a");
      else printf("  %12.1f", res[k][b]);
    }
    if (nbusy > 1 && res[k][0] > 0) printf("  %6.1fx", res[k][nbusy - 1] / res[k][0]);
    printf("\n");
  }
  printf("{\"bench\":\"kernel-costs\",\"cpus\":%ld,\"rounds\":%d,\"us\":{", cpus, rounds);
  for (int k = 0; k < nops; ++k) {
    printf("%s\"%s\":[", k ? "," : "", ops[k].name);
    for (int b = 0; b < nbusy; ++b) printf("%s%.2f", b ? "," : "", res[k][b]);
    printf("]");
  }
  printf("},\"busy\":[");
  for (int b = 0; b < nbusy; ++b) printf("%s%d", b ? "," : "", busy_counts[b]);
  printf("]}\n");
  if (fd >= 0) close(fd);
  return 0;
}
