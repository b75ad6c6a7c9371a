// RISC-V 64 jump-probe trampoline for entry sites.
//
// Reached from the site by `jal t0, tramp` or `auipc t0, hi; jalr t0, lo(t0)`
// (t0 = x5 is the link register, see encoding.hpp). It
//   * builds an lp_regs on the stack: x1, x3..x31 as they were at the site (x5 =
//     t0 holds the link value, the site's t0 is already gone: it is a dead
//     temporary at function entry), x[2] = the site's sp, x[0] = pc = the site,
//     f0..f31 and fcsr;
//   * increments the per-thread trampoline depth (tp-relative, lui+add when the
//     offset does not fit 12 bits);
//   * calls handler(regs, user) (both read from the slot's TrampolineData) on a
//     16-byte aligned stack;
//   * decrements the depth, restores fcsr, f0..f31 and every integer register
//     but x0, sp, gp, tp and t0 from lp_regs (so a handler's writes to argument
//     registers take effect), and
//   * jumps to site + site_len with `auipc t0; jalr x0` -- NOT `jr t0`: the end of
//     the sled is outside the site, so a thread that sleeps in the handler while
//     the site is re-patched (e.g. to an auipc+jalr of another probe) can never
//     return into the middle of instructions that changed under it.
//     For a call probe (spec.call_runtime) the handler is the call runtime and
//     returns where to go (the sled's end; the return trampoline's run stub
//     when the call has a shadow entry; or ra itself for a skipped call): it
//     is parked in the frame's t0 slot, restored into t0 and jumped through,
//     with t1 = the body for the run stub.
//
// Return trampoline (one per patcher). Its run stub, `jalr ra, t1`, enters the
// body of a call with a shadow entry: ra becomes the return trampoline (the
// swap) and is pushed on the return-address stack, so the body's `ret` is
// predicted. The body returns to the trampoline proper: sp is the function's
// entry sp, a0/a1 and fa0/fa1 the returned values. It builds the same lp_regs
// (pc 0; the runtime fills in the real return address), calls the runtime's
// exit, parks its result (the real return address) in the t0 slot, restores
// every register but sp/gp/tp from lp_regs (a0/a1 as an exit handler left
// them) and jumps through t0, a return hint that pops the caller's own entry
// of the return-address stack.
//
// Redirect stub (function replacement): `auipc t1; ld t1; jr t1` through the
// data word. t1 is a temporary: dead at a function entry, like t0.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend.hpp"
#include "frame.hpp"

namespace lp::riscv64 {

inline constexpr size_t kSlotSize = 1024;
inline constexpr size_t kDataOffset = kSlotSize - sizeof(TrampolineData); // 1008

// Emits the code into `buf` (which will execute at `at`). 0, LP_EINVAL (code
// does not fit or the TLS offset is out of +-2 GiB) or LP_ERANGE (site or data
// beyond auipc's reach).
int emit_entry_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec);

inline constexpr size_t kReturnTrampolineMax = kDataOffset;
inline constexpr size_t kRedirectStubMax = 12;
int emit_return_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, ReturnTrampoline *out);
// 0, or LP_ERANGE when `data` is beyond auipc's reach.
int emit_redirect_stub(uint8_t *buf, uintptr_t at, uintptr_t data, size_t *size);

// Bytes of code emit_entry_trampoline produces for `spec` at `at` (for tests), or 0.
size_t entry_trampoline_size(uintptr_t at, const TrampolineSpec &spec);

} // namespace lp::riscv64
