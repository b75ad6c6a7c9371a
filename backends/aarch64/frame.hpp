// The lp_regs frame the AArch64 trampolines build around the handler call:
// x0..x30, sp as it was at the site, pc = the probed address, NZCV, FPSR, FPCR
// and q0..q31 (libpatch/regs.h; 800 bytes, a multiple of 16).
//
// Invariants the code relies on:
//  * SP is 16-byte aligned at every instruction of user code (AAPCS64, and
//    Linux sets SCTLR_EL1.SA0: an SP-based access with a misaligned SP faults),
//    so sp - 800 is aligned for the handler call without re-alignment.
//  * AAPCS64 (Linux) has no red zone: nothing live lies below the site's sp.
//  * X16/X17 (IP0/IP1) are dead at a function's entry: any call may go through
//    a linker veneer or a PLT stub that clobbers them. The frame code saves
//    them like every register (a handler sees them in lp_regs), then uses them
//    as its scratch; the entry trampoline's way out may leave them changed.
//  * The handler may clobber everything AAPCS64 lets a callee clobber (x0-x18,
//    x30, the upper halves of v8-v15, v0-v7 and v16-v31, NZCV, FPSR): the
//    restore reloads every register from the frame, so a handler's writes to
//    lp_regs (arguments, return value, flags) take effect and nothing else moves.
#pragma once

#include "asm.hpp"
#include "backend.hpp"

namespace lp::aarch64 {

inline constexpr uint32_t kFrame = 800; // sizeof(lp_regs)
inline constexpr int32_t kFrameX16 = 8 * 16; // where a call-runtime result is parked (restored into x16)
inline constexpr int32_t kFrameSp = 248, kFramePc = 256, kFramePstate = 264, kFrameFpsr = 272, kFrameV = 288;

// Pushes the frame. site 0 (the return trampoline) leaves pc zero. With
// !save_vector (LP_FLAG_HANDLER_GPR_ONLY) q0..q31, FPSR and FPCR are neither
// saved nor restored: the handler promised not to touch them.
void emit_save_frame(Asm &a, uintptr_t site, bool save_vector);
// handler(regs, user) from the slot's TrampolineData, bracketed by the
// per-thread trampoline depth at tpidr_el0 + spec.tls_depth.
void emit_call_handler(Asm &a, const TrampolineSpec &spec);
// Restores every register from the frame (x16 too: a call-runtime result
// parked at kFrameX16) and pops it.
void emit_restore_frame(Asm &a, bool save_vector);

} // namespace lp::aarch64
