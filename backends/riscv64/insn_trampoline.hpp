// RISC-V 64 trampoline for instruction sites.
//
// The site holds `jal x0, tramp` (no link register: at an arbitrary boundary
// every register may be live, t0 included, so nothing is clobbered on the way
// in; the cost is jal's +-1 MiB reach, see Backend::insn_reach). The code
// builds the same lp_regs frame as the entry trampoline (frame.hpp), calls the
// handler, restores every register but sp/gp/tp -- t0 included -- and falls
// through into the out-of-line copy of the displaced instructions that the core
// places right behind it; the copy ends with `jal x0` back to the site's end.
// No red zone to skip: the psABI keeps nothing below sp.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend.hpp"

namespace lp::riscv64 {

inline constexpr size_t kInsnTrampolineMax = 768;
// jal's reach, less a chunk of slack so a whole slot (and the copy's jump back)
// stays in range: [-2^20, 2^20).
inline constexpr int64_t kInsnReach = (int64_t(1) << 20) - 8192;

int emit_insn_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, size_t *code_size);

} // namespace lp::riscv64
