// AArch64 trampoline for instruction sites.
//
// The site's first instruction becomes `B tramp` (no link: at an arbitrary
// instruction every register may be live, x16/x17 and x30 included, so
// nothing is clobbered on the way in). The code builds the same lp_regs
// frame as the entry trampoline (frame.hpp: it saves every register before it
// uses x16/x17 as scratch), calls the handler, restores every register -- x16,
// x17, x30 and NZCV included -- and falls through into the out-of-line copy of
// the displaced instruction that the core places right behind it; the copy
// ends with `B site + 4` back (relocator.hpp). AAPCS64 (Linux) has no red
// zone, so pushing the frame below sp clobbers nothing live.
//
// The first word changes between the original instruction, BRK #0xc9 and B:
// the original instruction is not in the B2.2.5 list, so those stores take the
// stopped protocol (Backend::store_needs_stop, lp_probe_protocol).
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend.hpp"
#include "trampoline.hpp"

namespace lp::aarch64 {

inline constexpr size_t kInsnTrampolineMax = 640;

int emit_insn_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, size_t *code_size);

} // namespace lp::aarch64
