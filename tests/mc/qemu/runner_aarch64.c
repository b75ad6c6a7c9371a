/* aarch64 differential runner (cross-compiled, static, run under qemu-aarch64):
 * maps the sample blob at its link address, computes reference results, then
 * for every case written by gen_aarch64.cpp writes the site jump and the OOL
 * copy and checks every sample function still returns the same results. The
 * data the literal loads read is rewritten before every round, so a copy that
 * kept a literal's value instead of loading it by address would differ. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define BASE 0x10000000UL
#define SPAN 0x4010000UL

static uint8_t *buf;
static size_t buf_len, pos;

static uint32_t get(void) {
  uint32_t v;
  if (pos + 4 > buf_len) {
    fprintf(stderr, "cases file truncated\n");
    exit(2);
  }
  memcpy(&v, buf + pos, 4);
  pos += 4;
  return v;
}

typedef long (*fn1)(long);
static uint32_t count;
static const uint8_t *table;

static uint32_t entry(uint32_t i, uint32_t field) {
  uint32_t v;
  memcpy(&v, table + 12 * i + 4 * field, 4);
  return v;
}

static uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t x = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL);
  x ^= x >> 29;
  x *= 0xbf58476d1ce4e5b9ULL;
  return x ^ (x >> 32);
}

static long run_all(uint8_t *m) {
  static const long args[] = {0, 1, 2, 5, 7, 8, 40, 41, -3, 100, 0x10000000003L};
  long acc = 0;
  for (uint64_t round = 0; round < 3; ++round) {
    for (uint32_t e = 0; e < count; ++e) /* the data: new values every round */
      if (entry(e, 2) == 2)
        for (uint32_t i = 0; i + 8 <= entry(e, 1); i += 8) {
          const uint64_t v = mix(round, i);
          memcpy(m + entry(e, 0) + i, &v, 8);
        }
    for (uint32_t e = 0; e < count; ++e)
      if (entry(e, 2) == 0)
        for (unsigned i = 0; i < sizeof args / sizeof *args; ++i)
          acc = acc * 31 + ((fn1)(m + entry(e, 0)))(args[i]);
  }
  return acc;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s <cases.bin>\n", argv[0]);
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) {
    perror(argv[1]);
    return 2;
  }
  fseek(f, 0, SEEK_END);
  buf_len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc(buf_len);
  if (!buf || fread(buf, 1, buf_len, f) != buf_len) return 2;
  fclose(f);
  if (get() != 0x4c505141) {
    fprintf(stderr, "%s: bad magic\n", argv[1]);
    return 2;
  }
  const uint32_t code_len = get();
  const uint8_t *code = buf + pos;
  if (code_len < 8 || pos + code_len > buf_len) {
    fprintf(stderr, "%s: bad blob\n", argv[1]);
    return 2;
  }
  pos += code_len;
  memcpy(&count, code + 4, 4);
  table = code + 8;
  uint8_t *m = mmap((void *)BASE, SPAN, PROT_READ | PROT_WRITE | PROT_EXEC,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (m != (uint8_t *)BASE) {
    perror("mmap");
    return 2;
  }
  memcpy(m, code, code_len);
  __builtin___clear_cache((char *)m, (char *)m + code_len);
  const long want = run_all(m);
  const uint32_t n = get();
  unsigned bad = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t site = get();
    uint8_t jump[4];
    memcpy(jump, buf + pos, 4);
    pos += 4;
    const uint32_t dest = get(), clen = get();
    const uint8_t *ool = buf + pos;
    if (pos + clen > buf_len || dest + clen > SPAN || site + 4 > code_len) {
      fprintf(stderr, "case %u: out of bounds\n", i);
      return 2;
    }
    pos += clen;
    memcpy(m, code, code_len);
    memcpy(m + site, jump, 4);
    memcpy(m + dest, ool, clen);
    __builtin___clear_cache((char *)m, (char *)m + code_len);
    __builtin___clear_cache((char *)m + dest, (char *)m + dest + clen);
    const long got = run_all(m);
    if (got != want) {
      fprintf(stderr, "case %u: site +0x%x, copy at +0x%x (%u bytes): %ld != %ld\n", i, site, dest, clen, got, want);
      ++bad;
    }
    memset(m + dest, 0, clen);
  }
  printf("%u cases, %u mismatches\n", n, bad);
  return bad || n == 0 ? 1 : 0;
}
