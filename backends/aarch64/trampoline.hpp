// AArch64 jump-probe trampolines for entry sites.
//
// Entry trampoline. Reached from the sled's first word, `B tramp` (no link:
// x30 still holds the caller's return address, which is what lp_regs reports
// and an exit probe swaps). It
//   * builds lp_regs on the stack (frame.hpp): x0..x30 as at the site, sp =
//     the site's sp, pc = the site, NZCV, and FPSR/FPCR/q0..q31 unless the
//     handler is GPR-only;
//   * increments the per-thread trampoline depth (tpidr_el0-relative);
//   * calls handler(regs, user), both from the slot's TrampolineData;
//   * decrements the depth, restores every register from lp_regs (so a
//     handler's writes to arguments take effect) and
//   * continues with `B site + site_len`, past the sled: never back into it, so
//     a thread that sleeps in the handler while the site is re-patched cannot
//     return into words that changed under it. The pool keeps every slot within
//     B's +-128 MiB of its site (reach()).
//   For a call probe (spec.call_runtime) the handler is the call runtime and
//   returns where to go (the body, the return trampoline's run stub, or the
//   real return address for a skipped call): it is parked in the frame's x16,
//   restored with the rest, x17 is set to the body (for the run stub) and the
//   trampoline ends with `BR X16`. X16/X17 are dead at an entry (frame.hpp).
//
// Return trampoline (one per patcher). Its run stub, `BLR X17`, enters the
// body of a call with a shadow entry: x30 becomes the return trampoline (the
// swap). The body returns to the trampoline proper with sp = its entry sp and
// x0..x7/q0..q7 the returned values; it builds the same lp_regs (pc 0), calls
// the runtime's exit, which returns the real return address, parks it in x16,
// restores every register from lp_regs and leaves with `RET X16` (a return, so
// the return-address predictor pops the caller's own entry).
//
// Redirect stub (function replacement): `LDR X16, data; BR X16`.
//
// Not handled: code in pages mapped with PROT_BTI (a binary built with
// -mbranch-protection=bti on a kernel with BTI): the call-runtime exit `BR X16`
// into the body lands on an instruction that is not a BTI landing pad. Debian
// 12 builds without BTI; docs/aarch64.md says so.
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend.hpp"
#include "encoding.hpp"

namespace lp::aarch64 {

inline constexpr size_t kSlotSize = 1024;
inline constexpr size_t kDataOffset = kSlotSize - sizeof(TrampolineData); // 1008
// A trampoline's distance from its site, with a slot's size of slack so the
// jump back from anywhere in the slot stays within B's reach.
inline constexpr int64_t kReach = kBRange - 4096;

// 0, LP_EINVAL (misaligned, or the code does not fit the slot) or LP_ERANGE
// (the jump back to the site is beyond B's reach).
int emit_entry_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec);

inline constexpr size_t kReturnTrampolineMax = kDataOffset;
inline constexpr size_t kRedirectStubMax = 8;
int emit_return_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, ReturnTrampoline *out);
// 0, or LP_ERANGE when `data` is beyond LDR (literal)'s +-1 MiB.
int emit_redirect_stub(uint8_t *buf, uintptr_t at, uintptr_t data, size_t *size);

// Bytes of code emit_entry_trampoline produces for `spec` at `at` (tests), or 0.
size_t entry_trampoline_size(uintptr_t at, const TrampolineSpec &spec);

} // namespace lp::aarch64
