// Probes at arbitrary instruction boundaries (not just entry sleds): the
// displaced instructions are decoded (lp::mc: LLVM MC, or the built-in RV64
// decoder in the riscv64 cross builds), relocated into an out-of-line (OOL) copy
// behind the trampoline, and the site gets a jump. A site that cannot take a
// jump falls back to a trap probe (whose OOL copy holds just the first
// instruction) when the policy allows, or fails with the reason.
//
// RISC-V has two site jumps: `jal x0` (4 bytes, +-1 MiB, clobbers nothing) and,
// when no trampoline memory can be mapped that close, the far form `auipc rX;
// jalr x0, lo(rX)` (8 bytes, +-2 GiB) with rX proven dead at the site
// (riscv64/liveness.hpp). A thread can stop between the auipc and the jalr, so
// leaving the far form evacuates that pc to the trampoline, where the jalr was
// taking it.
// A build with no decoder for its ISA (x86-64 without LLVM MC) keeps entry
// sleds only: there lp_probe_at on a non-sled address is LP_ENOTSUP.
#pragma once

#include <cstdint>
#include <vector>

#include "mc/reloc.hpp"
#include "site_table.hpp"
#include "trampoline_pool.hpp"

struct lp_patcher;
struct lp_probe;

namespace lp {

struct InsnSite {
  std::vector<uint8_t> jump_bytes; // the enabled site: jmp to the trampoline + fill
  std::vector<PcMapPair> map;      // boundary -> OOL offset, for evacuation
  uintptr_t ool = 0;               // where the displaced code runs (trap resume too)
  bool multi = false;              // the displaced range holds several instructions
  Slot ool_slot;                   // trap probes: the slot of the OOL copy
  // Far jump form (RISC-V auipc+jalr): a thread at jump_map's boundary continues
  // at jump_evac_base (the trampoline) when the site leaves the jump form.
  bool far = false;
  uintptr_t jump_evac_base = 0;
  std::vector<PcMapPair> jump_map;
  // Exit traps of the OOL copy (absolute pc -> where the thread continues):
  // published in the site table for as long as the probe object lives, which
  // outlasts the grace period of its slot.
  std::vector<mc::ExitTrap> exits;
};

// Fills probe.shape / probe.insn / probe.tramp / probe.jump for `addr`.
int prepare_insn_probe(lp_patcher &p, lp_probe &probe, uintptr_t addr);

} // namespace lp
