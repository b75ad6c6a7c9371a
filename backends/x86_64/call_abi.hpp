// The x86-64 call ABI at a function's entry and at its return, as the call
// runtime (libpatch/src/call_runtime.cpp) needs it on every probed call. Inline
// and compiled into the runtime (`LP_CALL_ABI_HEADER`), not behind the Backend's
// virtual calls: this is the hit path of every exit probe. The same functions,
// with the same names, are in every backends/<arch>/call_abi.hpp.
//
// At an entry (lp_regs of an entry trampoline or a trap at the sled): rsp
// points at the return address the `call` pushed; the caller's rsp after the
// return is rsp + 8. In the return trampoline's lp_regs, rsp is the caller's,
// so the returning call's entry rsp -- its shadow entry's key -- is rsp - 8.
#pragma once

#include <cstdint>

#include "libpatch/regs.h"

namespace lp::call_abi {

inline uintptr_t entry_sp(const lp_regs *r) { return r->rsp; }
inline uintptr_t return_address(const lp_regs *r) { return *reinterpret_cast<const uint64_t *>(r->rsp); }
// Written to the stack at once (the trampolines restore no rsp-relative memory).
inline void set_return_address(lp_regs *r, uintptr_t to) { *reinterpret_cast<uint64_t *>(r->rsp) = to; }
// A skipped call: the entry trampoline's `ret` goes to the skip stub, a lone
// `ret` that pops the real return address with the lp_regs' rax/rdx in place.
inline uintptr_t skip_resume(const lp_regs *, uintptr_t skip_stub) { return skip_stub; }
// The integer return-value register (what lp_regs_ret reads).
inline uintptr_t ret_value(const lp_regs *r) { return r->rax; }
inline void set_ret_value(lp_regs *r, uintptr_t v) { r->rax = v; }
inline uintptr_t caller_sp(const lp_regs *r) { return r->rsp + 8; }
inline uintptr_t entry_sp_at_return(const lp_regs *r) { return r->rsp - 8; }
inline void set_pc(lp_regs *r, uintptr_t pc) { r->rip = pc; }
// Where the function keeps its return address while it runs: exactly the slot
// the call pushed, at the entry rsp.
inline uintptr_t return_slot_hint(uintptr_t entry_sp, bool *exact) {
  *exact = true;
  return entry_sp;
}

// x86-64: the return address is exactly at the entry rsp (return_slot_hint is
// exact), no frame-record walk is needed.
inline constexpr bool kFrameRecordChain = false;
inline uintptr_t frame_record_return_slot(uintptr_t fp) { return fp + 8; }

} // namespace lp::call_abi
