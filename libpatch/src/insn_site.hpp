// Probes at arbitrary instruction boundaries (not just entry sleds): the
// displaced instructions are decoded with LLVM MC, relocated into an
// out-of-line (OOL) copy behind the trampoline, and the site gets a jump. A site
// that cannot take a jump falls back to a trap probe (whose OOL copy holds just
// the first instruction) when the policy allows, or fails with the reason.
// Hosted builds with LLVM only (LP_HAVE_MC); elsewhere lp_probe_at on a
// non-sled address is LP_EBOUNDARY.
#pragma once

#include <cstdint>
#include <vector>

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
};

// Fills probe.shape / probe.insn / probe.tramp / probe.jump for `addr`.
int prepare_insn_probe(lp_patcher &p, lp_probe &probe, uintptr_t addr);

} // namespace lp
