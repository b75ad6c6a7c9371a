// The patchable functions the workers call: each starts with a nop sled from
// -fpatchable-function-entry (c.nop units with C, nop units without), on pages of
// their own (.bm_sites). noipa: the callers cannot see through them, so every call
// really runs the sled. Site i's probe calls bm_trampI (trampolines.S):
//
//   near sites (i % 4 != 3): `jal t0, bm_trampI` (+ the rest of the sled as nops);
//       sleds of 2, 3 or 5 c.nop (rv64gc) / 1, 2 or 3 nop (rv64g). A 1-nop rv64g
//       sled is a one-instruction site: no evacuation needed.
//   far sites (i % 4 == 3): bm_trampI is 2 MiB away (out of jal's +-1 MiB), so
//       `auipc t0, hi; jalr t0, lo(t0)` (8 bytes) + nops; sleds of 4 or 6 c.nop /
//       2 or 3 nop.
#include "bm.hpp"

#if defined(__riscv_compressed)
#define NEAR_A 2
#define NEAR_B 3
#define NEAR_C 5
#define FAR_A 4
#define FAR_B 6
#else
#define NEAR_A 1
#define NEAR_B 2
#define NEAR_C 3
#define FAR_A 2
#define FAR_B 3
#endif

// Never patched, alone at the start of the sites' page: while QEMU holds a
// translation of it, the page stays write-protected for code, so every store to a
// site goes through QEMU's self-modifying-code check. When the last translation of
// a page is invalidated, QEMU unprotects the page, and a store racing with the next
// translation of a site is more easily missed (a "stale" fetch, see docs/baremetal.md).
extern "C" __attribute__((noipa, aligned(64), section(".bm_sites"))) void bm_anchor() {
  asm volatile("" ::: "memory");
}

#define BM_SITE_FN(i, sled)                                                                        \
  extern "C" __attribute__((noipa, aligned(64), patchable_function_entry(sled, 0),                  \
                            section(".bm_sites"))) uint64_t bm_f##i(uint64_t x) {                   \
    return bm::mix(x, i);                                                                          \
  }

BM_SITE_FN(0, NEAR_A)
BM_SITE_FN(1, NEAR_B)
BM_SITE_FN(2, NEAR_C)
BM_SITE_FN(3, FAR_A)
BM_SITE_FN(4, NEAR_C)
BM_SITE_FN(5, NEAR_A)
BM_SITE_FN(6, NEAR_B)
BM_SITE_FN(7, FAR_B)
BM_SITE_FN(8, NEAR_B)
BM_SITE_FN(9, NEAR_C)
BM_SITE_FN(10, NEAR_A)
BM_SITE_FN(11, FAR_A)
BM_SITE_FN(12, NEAR_A)
BM_SITE_FN(13, NEAR_B)
BM_SITE_FN(14, NEAR_C)
BM_SITE_FN(15, FAR_B)

extern "C" uint64_t (*const bm_site_fns[bm::kNumSites])(uint64_t) = {
    bm_f0, bm_f1, bm_f2, bm_f3, bm_f4, bm_f5, bm_f6, bm_f7,
    bm_f8, bm_f9, bm_f10, bm_f11, bm_f12, bm_f13, bm_f14, bm_f15};
extern "C" const uint32_t bm_sled_units[bm::kNumSites] = {
    NEAR_A, NEAR_B, NEAR_C, FAR_A, NEAR_C, NEAR_A, NEAR_B, FAR_B,
    NEAR_B, NEAR_C, NEAR_A, FAR_A, NEAR_A, NEAR_B, NEAR_C, FAR_B};
