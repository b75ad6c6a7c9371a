// x86-64 trampolines of entry sites and calls.
//
// Entry trampoline, reached by `call rel32` from the site. It builds an lp_regs
// on the stack (all GPRs, rflags, the probed rip and rsp) plus xmm0-7 (argument
// registers), bumps the per-thread trampoline depth, calls handler(regs, user)
// on a 16-byte aligned stack, and restores everything the handler may have
// clobbered (argument writes through lp_regs are applied). It leaves with `ret`
// through the return address the site's call pushed (site + 5, the sled's end).
// For a call probe (spec.call_runtime) the handler is the call runtime and
// returns where to continue: that value replaces the pushed return address, so
// the same `ret` reaches the sled's end or, for a skipped call, the return
// trampoline's skip stub (a lone `ret` that returns to the function's caller
// with the rax/rdx lp_regs held).
//
// Return trampoline, one per patcher, reached by the probed function's own
// `ret` through the return address the call runtime swapped (rsp = the entry
// rsp + 8, rax/rdx/xmm0/xmm1 the returned values). It pushes a placeholder
// where the return address was, builds an lp_regs (rip 0, rsp the caller's),
// calls the runtime's exit (which returns the real return address), stores
// that in the placeholder, restores rax/rdx (an exit handler may have changed
// them) and xmm0/xmm1, and `ret`s to it. Flags are dead at a return.
//
// Redirect stub (function replacement): `jmp [rip+data]`, after dropping the
// return address when entered by the sled's call.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend.hpp"

namespace lp::x86_64 {

inline constexpr size_t kSlotSize = 256;
inline constexpr size_t kDataOffset = 240; // TrampolineData (handler, user)
inline constexpr size_t kReturnTrampolineMax = 240;
inline constexpr size_t kRedirectStubMax = 16;

// Emits the code into `buf` (which will execute at `at`). 0 or LP_EINVAL.
int emit_entry_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec);
// The return trampoline (spec.data: its handler word; spec.tls_depth,
// spec.save_vector as for entry trampolines). 0 or LP_EINVAL.
int emit_return_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, ReturnTrampoline *out);
// 0, or LP_EINVAL when `data` is beyond rip-relative reach.
int emit_redirect_stub(uint8_t *buf, uintptr_t at, uintptr_t data, bool from_entry_sled, size_t *size);

} // namespace lp::x86_64
