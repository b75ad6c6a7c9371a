// x86-64 trampolines of entry sites and calls.
//
// Entry trampoline, reached by `call rel32` from the site. It builds an lp_regs
// on the stack (all GPRs, rflags, the probed rip and rsp) plus xmm0-7 (argument
// registers), bumps the per-thread trampoline depth, calls handler(regs, user)
// on a 16-byte aligned stack, and restores everything the handler may have
// clobbered (argument writes through lp_regs are applied). It leaves with `ret`
// through the return address the site's call pushed (site + 5, the sled's end).
// Call trampoline (a call probe's entry, spec.call_runtime): reached by `jmp
// rel32` from the sled, so the stack is exactly the function's at its entry
// and the return-stack buffer (RSB) holds the caller's return. Same lp_regs;
// the handler is the call runtime, which returns where to continue (C): the
// body (no shadow entry for this call), the return trampoline's run stub (a
// shadow entry was pushed: see below) or its skip stub (a skipped call: a
// lone `ret` to the caller, predicted, with the rax/rdx lp_regs held). C is
// parked just below the entry rsp and jumped to through the red zone.
//
// Return trampoline, one per patcher, in three parts: the run stub drops the
// return address (saved on the shadow stack) and `call`s the body, which puts
// the return trampoline's address in the same stack slot and on top of the
// RSB -- the body's `ret` is predicted, where an in-place swap would
// mispredict it and misalign the RSB for every return above. The body returns
// into the return trampoline proper (rsp = the entry rsp + 8, rax/rdx/xmm0/
// xmm1 the returned values): a placeholder is pushed where the return address
// was, an lp_regs built (rip 0, rsp the caller's), the runtime's exit called
// (it returns the real return address, stored into the placeholder), rax/rdx
// (an exit handler may have changed them) and xmm0/xmm1 restored, and `ret`
// returns to it, predicted again (the RSB's top is the caller's own call).
// A trap-flavour call probe swaps the return address in place instead (one
// misprediction, on a path that costs a signal anyway). Flags are dead at
// entries and returns.
//
// Redirect stub (function replacement): `jmp [rip+data]`, entered by a `jmp`.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend.hpp"

namespace lp::x86_64 {

inline constexpr size_t kSlotSize = 320;
inline constexpr size_t kDataOffset = 304; // TrampolineData (handler, user)
inline constexpr size_t kReturnTrampolineMax = 240;
inline constexpr size_t kRedirectStubMax = 16;

// Emits the code into `buf` (which will execute at `at`). 0 or LP_EINVAL.
int emit_entry_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec);
// The call trampoline (emit_entry_trampoline with spec.call_runtime).
int emit_call_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec);
// The return trampoline (spec.data: its handler word; spec.tls_depth,
// spec.save_vector as for entry trampolines). 0 or LP_EINVAL.
int emit_return_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, ReturnTrampoline *out);
// 0, or LP_EINVAL when `data` is beyond rip-relative reach.
int emit_redirect_stub(uint8_t *buf, uintptr_t at, uintptr_t data, size_t *size);

} // namespace lp::x86_64
