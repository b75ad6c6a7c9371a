// Making stores to code visible to instruction fetch on AArch64 (Arm ARM
// DDI0487, B2.4.4 "Implication of caches for the application programmer" and
// D7.5.9 "Ordering and completion of data and instruction cache instructions").
//
// The instruction side is not coherent with the data side: after a store to
// code, the writer itself must
//   1. DC CVAU each data cache line of the range (clean to the point of
//      unification, where instruction fetch looks), unless CTR_EL0.IDC says
//      that clean is not required;
//   2. DSB ISH: the cleans (or, with IDC, the stores) complete for every core
//      of the inner-shareable domain;
//   3. IC IVAU each instruction cache line, unless CTR_EL0.DIC says the
//      instruction caches are coherent; IC IVAU is broadcast to the
//      inner-shareable domain, so it invalidates every core's copy;
//   4. DSB ISH: the invalidations complete;
//   5. ISB on this core.
// Other cores may still hold the OLD instructions in their pipelines: they
// need a context-synchronisation event, which is the protocol's sync
// (membarrier PRIVATE_EXPEDITED_SYNC_CORE, or the signal round: exception
// entry and return are context-synchronising).
//
// Without step 1 a core may fetch the old bytes from the point of unification
// forever; without 3 a core may run a stale line it already cached; without the
// DSBs the sync may overtake the maintenance. EL0 may issue DC CVAU / IC IVAU
// and read CTR_EL0 because Linux sets SCTLR_EL1.UCI and .UCT (or, on parts
// with errata, traps and emulates them: arch/arm64/kernel/traps.c).
//
// qemu-user and qemu's TCG report IDC = DIC = 1 and treat the instructions as
// no-ops (their translated-code cache tracks stores itself), so only a real
// core shows whether this is right: docs/aarch64.md.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lp::aarch64 {

struct CacheGeometry {
  uint32_t dline = 0, iline = 0; // smallest line sizes in bytes (CTR_EL0.DminLine, IminLine)
  bool idc = false, dic = false; // CTR_EL0.IDC, DIC
};
// The calling core's CTR_EL0, decoded.
CacheGeometry cache_geometry();
CacheGeometry decode_ctr(uint64_t ctr_el0);

// Steps 1-5 above for [addr, addr + len). Async-signal-safe.
void sync_code_to_pou(uintptr_t addr, size_t len);

} // namespace lp::aarch64
