#include "cache.hpp"

namespace lp::aarch64 {

CacheGeometry decode_ctr(uint64_t ctr) {
  CacheGeometry g;
  g.iline = 4u << (ctr & 0xf);          // IminLine: log2 of words
  g.dline = 4u << ((ctr >> 16) & 0xf);  // DminLine: log2 of words
  g.idc = (ctr >> 28) & 1;
  g.dic = (ctr >> 29) & 1;
  return g;
}

CacheGeometry cache_geometry() {
  uint64_t ctr;
  asm volatile("mrs %0, ctr_el0" : "=r"(ctr));
  return decode_ctr(ctr);
}

void sync_code_to_pou(uintptr_t addr, size_t len) {
  // Read every time (a few cycles): a thread may migrate between cores of a
  // big.LITTLE system whose line sizes differ, and Linux then reports the
  // system-wide minimum anyway (arch/arm64/kernel/cpufeature.c, CTR_EL0 is a
  // sanitised register).
  const CacheGeometry g = cache_geometry();
  const uintptr_t end = addr + len;
  if (!g.idc) {
    for (uintptr_t p = addr & ~uintptr_t(g.dline - 1); p < end; p += g.dline)
      asm volatile("dc cvau, %0" ::"r"(p) : "memory");
  }
  asm volatile("dsb ish" ::: "memory");
  if (!g.dic) {
    for (uintptr_t p = addr & ~uintptr_t(g.iline - 1); p < end; p += g.iline)
      asm volatile("ic ivau, %0" ::"r"(p) : "memory");
    asm volatile("dsb ish" ::: "memory");
  }
  asm volatile("isb" ::: "memory");
}

} // namespace lp::aarch64
