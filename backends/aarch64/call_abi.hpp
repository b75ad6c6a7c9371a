// The AArch64 call ABI (AAPCS64) at a function's entry and at its return, as
// the call runtime (libpatch/src/call_runtime.cpp) needs it on every probed
// call. Inline and compiled into the runtime (`LP_CALL_ABI_HEADER`); the same
// functions, with the same names, are in every backends/<arch>/call_abi.hpp.
//
// At an entry the return address is in x30 (BL pushes nothing), so the
// caller's sp after the return is the callee's entry sp, and in the return
// trampoline's lp_regs the sp is the returning call's entry sp (its key).
#pragma once

#include <cstdint>

#include "libpatch/regs.h"

namespace lp::call_abi {

inline uintptr_t entry_sp(const lp_regs *r) { return r->sp; }
inline uintptr_t return_address(const lp_regs *r) { return r->x[30]; }
// Applied when the trampoline (or the trap handler) restores x30 from lp_regs.
inline void set_return_address(lp_regs *r, uintptr_t to) { r->x[30] = to; }
// A skipped call: the entry trampoline branches straight to x30 (the real
// one: a skipped call's return address is never swapped), x0/x1 from lp_regs.
inline uintptr_t skip_resume(const lp_regs *r, uintptr_t) { return r->x[30]; }
// The integer return-value register (what lp_regs_ret reads).
inline uintptr_t ret_value(const lp_regs *r) { return r->x[0]; }
inline void set_ret_value(lp_regs *r, uintptr_t v) { r->x[0] = v; }
inline uintptr_t caller_sp(const lp_regs *r) { return r->sp; }
inline uintptr_t entry_sp_at_return(const lp_regs *r) { return r->sp; }
inline void set_pc(lp_regs *r, uintptr_t pc) { r->pc = pc; }
// Where the function keeps its return address while it runs: in its frame
// record (x29, x30), which GCC and Clang put at the BOTTOM of the frame
// (`stp x29, x30, [sp, #-N]!`), so its distance below the entry sp depends on
// the frame size: searched for downwards from entry_sp - 8.
inline uintptr_t return_slot_hint(uintptr_t entry_sp, bool *exact) {
  *exact = false;
  return entry_sp - 8;
}

// AArch64: the frame record {x29, x30} a function's prologue pushes is linked
// through x29 (GCC and Clang keep frame records in non-leaf functions on
// Linux; a signal frame has one too), and record + 8 is the saved x30 the
// unwinder reads. The call runtime follows that chain first: searching down
// from the hint can stop at a stale copy of the trampoline's address in an
// unused word of the frame (the signal frame of a trap taken at a tail
// callee's entry, whose x30 already was the trampoline, leaves one at
// entry_sp - 8). The search stays as the fallback for frames without records.
inline constexpr bool kFrameRecordChain = true;
inline uintptr_t frame_record_return_slot(uintptr_t fp) { return fp + 8; }

} // namespace lp::call_abi
