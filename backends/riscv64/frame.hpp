// The lp_regs frame both RISC-V trampolines (entry and instruction sites) build
// around the handler call: every integer register, f0..f31 and fcsr, sp as it
// was at the site, pc = x[0] = the probed address.
#pragma once

#include "asm.hpp"
#include "backend.hpp"

namespace lp::riscv64 {

inline constexpr uint32_t kFrame = 528; // sizeof(lp_regs), a multiple of 16

// Pushes the frame. LP_ERANGE when the site is beyond auipc's reach; site 0
// (the return trampoline) leaves pc and x[0] zero.
int emit_save_frame(Asm &a, uintptr_t site);
// handler(regs, user) from the slot's TrampolineData on a 16-byte aligned
// stack, bracketed by the per-thread trampoline depth. LP_EINVAL / LP_ERANGE
// when the TLS offset or the data words are out of reach.
int emit_call_handler(Asm &a, const TrampolineSpec &spec);
// Restores fcsr, f0..f31 and every integer register but x0, sp, gp and tp from
// the frame (a handler's writes take effect), t0 too when `restore_t0` (the
// entry trampoline's t0 is the link, already dead), then pops it.
void emit_restore_frame(Asm &a, bool restore_t0);
// Offset of t0 (x5) in the frame: where a call-runtime result is parked so the
// restore loads it into t0, the register the trampoline then jumps through.
inline constexpr int32_t kFrameT0 = 8 * 5;
inline constexpr int32_t kFrameT1 = 8 * 6;

} // namespace lp::riscv64
