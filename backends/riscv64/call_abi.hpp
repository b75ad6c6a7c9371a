// The RISC-V 64 call ABI at a function's entry and at its return, as the call
// runtime (libpatch/src/call_runtime.cpp) needs it on every probed call. Inline
// and compiled into the runtime (`LP_CALL_ABI_HEADER`), not behind the Backend's
// virtual calls: this is the hit path of every exit probe. The same functions,
// with the same names, are in every backends/<arch>/call_abi.hpp.
//
// At an entry the return address is in ra (x1); a call pushes nothing, so the
// caller's sp after the return is the callee's entry sp, and in the return
// trampoline's lp_regs the sp is the returning call's entry sp (its key).
#pragma once

#include <cstdint>

#include "libpatch/regs.h"

namespace lp::call_abi {

inline uintptr_t entry_sp(const lp_regs *r) { return r->x[2]; }
inline uintptr_t return_address(const lp_regs *r) { return r->x[1]; }
// Applied when the trampoline (or the trap handler) restores ra from lp_regs.
inline void set_return_address(lp_regs *r, uintptr_t to) { r->x[1] = to; }
// A skipped call: the entry trampoline jumps straight to ra (the real one: a
// skipped call's return address is never swapped), a0/a1 from lp_regs.
inline uintptr_t skip_resume(const lp_regs *r, uintptr_t) { return r->x[1]; }
// The integer return-value register (what lp_regs_ret reads).
inline uintptr_t ret_value(const lp_regs *r) { return r->x[10]; }
inline void set_ret_value(lp_regs *r, uintptr_t v) { r->x[10] = v; }
inline uintptr_t caller_sp(const lp_regs *r) { return r->x[2]; }
inline uintptr_t entry_sp_at_return(const lp_regs *r) { return r->x[2]; }
inline void set_pc(lp_regs *r, uintptr_t pc) {
  r->pc = pc;
  r->x[0] = pc; // x[0] reads as the pc
}
// Where the function keeps its return address while it runs: wherever its
// prologue saved ra. GCC and Clang save it at the top of the frame, entry_sp - 8,
// with or without a frame pointer; elsewhere it is searched for downwards.
inline uintptr_t return_slot_hint(uintptr_t entry_sp, bool *exact) {
  *exact = false;
  return entry_sp - 8;
}

// RISC-V: GCC and Clang save ra at entry_sp - 8 (the hint), no walk.
inline constexpr bool kFrameRecordChain = false;
inline uintptr_t frame_record_return_slot(uintptr_t fp) { return fp - 8; }

} // namespace lp::call_abi
