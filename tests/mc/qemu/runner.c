/* riscv64 differential runner (cross-compiled, run under qemu-riscv64): maps the
 * sample blob at its fixed base, computes reference results, then for every case
 * written by gen.cpp patches the site with the jump, places the relocated copy and
 * checks every sample function still returns the same results. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define BASE 0x10000000UL
#define SPAN 0x4400000UL

static uint8_t *buf;
static size_t buf_len, pos;

static uint32_t get(void) {
  uint32_t v;
  if (pos + 4 > buf_len) { fprintf(stderr, "truncated\n"); exit(2); }
  memcpy(&v, buf + pos, 4);
  pos += 4;
  return v;
}

typedef long (*fn1)(long);
static uint32_t off_pcrel, off_loop, off_calls;

static long run_all(uint8_t *m) {
  long acc = 0;
  static const long args[] = {0, 1, 5, 40, 41, -3, 100};
  for (unsigned i = 0; i < sizeof args / sizeof *args; ++i) {
    acc = acc * 31 + ((fn1)(m + off_pcrel))(args[i]);
    if (args[i] >= 0) acc = acc * 31 + ((fn1)(m + off_loop))(args[i]);
    acc = acc * 31 + ((fn1)(m + off_calls))(args[i]);
  }
  return acc;
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  FILE *f = fopen(argv[1], "rb");
  if (!f) { perror(argv[1]); return 2; }
  fseek(f, 0, SEEK_END);
  buf_len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc(buf_len);
  if (fread(buf, 1, buf_len, f) != buf_len) return 2;
  fclose(f);
  if (get() != 0x4c50514d) { fprintf(stderr, "bad magic\n"); return 2; }
  const uint32_t code_len = get();
  const uint8_t *code = buf + pos;
  pos += code_len;
  off_pcrel = get(), off_loop = get(), off_calls = get();
  uint8_t *m = mmap((void *)BASE, SPAN, PROT_READ | PROT_WRITE | PROT_EXEC,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (m != (uint8_t *)BASE) { perror("mmap"); return 2; }
  memcpy(m, code, code_len);
  __builtin___clear_cache((char *)m, (char *)m + code_len);
  const long want = run_all(m);
  const uint32_t n = get();
  unsigned bad = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t site = get(), dlen = get();
    const uint8_t *jump = buf + pos;
    pos += dlen;
    const uint32_t dest = get(), clen = get();
    const uint8_t *ool = buf + pos;
    pos += clen;
    memcpy(m, code, code_len);
    memcpy(m + site, jump, dlen);
    memcpy(m + dest, ool, clen);
    __builtin___clear_cache((char *)m, (char *)m + SPAN);
    const long got = run_all(m);
    if (got != want) {
      fprintf(stderr, "case %u: site +0x%x (%u bytes) copy at +0x%x: %ld != %ld\n", i, site, dlen, dest, got, want);
      ++bad;
    }
    memset(m + dest, 0, clen);
  }
  printf("%u cases, %u mismatches\n", n, bad);
  return bad ? 1 : 0;
}
