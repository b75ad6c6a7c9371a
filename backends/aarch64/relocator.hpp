// AArch64 (A64) displaced-instruction relocator (hosted only; decodes with lp::mc,
// either engine: LLVM MC on the host, the built-in decoder in the aarch64 cross
// build).
//
// The site jump is ONE `B target` word (+-128 MiB): displaced_len is always 4,
// exactly one instruction moves. There is no far form for instruction sites:
// ADRP X16 + BR X16 needs two words and a dead X16, and at an arbitrary
// instruction no register is known dead (nor is the NOP -> ADRP change of a
// first word one the architecture lets us make under running threads:
// encoding.hpp). So site_far_len = site_jump_len = 4, and a trampoline beyond
// B's reach is LP_ERANGE.
//
// relocate() writes, for `dest` (4-aligned), an out-of-line copy that behaves
// like the instruction at `site` and ends with `B site+4` (the jump back)
// unless the copy never falls through:
//   * adr/adrp Xd      -> Xd gets the exact ORIGINAL value: ADR from the copy
//                        (+-1 MiB), else ADRP (+ ADD of the low 12 bits) within
//                        +-4 GiB, else MOVZ + MOVKs (aarch64::Asm::la). Xd = xzr:
//                        copied (it writes nothing).
//   * ldr literal      -> a load BY ADDRESS, never a copy of the value (the
//                        literal may be data that changes):
//       ldr wt/xt, ldrsw xt   Xt = the literal's address (as for adr), then
//                        `ldr wt/xt, [xt]` / `ldrsw xt, [xt]`: the destination
//                        itself holds the address, nothing else is touched.
//       ldr st/dt     no GPR is free, but the destination vector register vT is
//                        dead until the load writes it, and its 128 bits hold
//                        X16's old value and the loaded one:
//                          fmov dT, x16            ; vT.d[0] = old x16
//                          x16 = literal address   ; (adr / adrp+add / movz+movk)
//                          ldr w16|x16, [x16]      ; the load, same size and kind
//                          mov vT.d[1], x16        ; vT = {old x16, value}
//                          fmov x16, dT            ; x16 restored
//                          mov sT, vT.s[2] | mov dT, vT.d[1]  ; vT = value, upper bits 0
//                        No stack, no memory but the literal; the result has
//                        ldr's exact effect (scalar writes zero the rest of the
//                        V/Z register). FP/SIMD is always present in Linux
//                        user space (the arm64 ABI requires it).
//       ldr qt        128 bits of value and 64 of X16 do not fit in vT: X16 is
//                        spilled below SP:
//                          str x16, [sp, #-16]!  x16 = address  ldr qT, [x16]  ldr x16, [sp], #16
//                        Safe because on AArch64 Linux SP is 16-byte aligned at
//                        every instruction (EL0 SP alignment checking is on:
//                        any SP-based access faults with a misaligned SP, so
//                        compiled code never leaves SP misaligned) and AAPCS64
//                        has no red zone: nothing below SP is live, and a signal
//                        delivered between these words lands below the lowered
//                        SP. It needs 16 bytes of stack below SP (a thread at the
//                        very end of its stack takes SIGSEGV where the original
//                        would not), and SP must be a stack pointer at the site
//                        (code that parks a non-stack value in SP is not supported).
//       prfm literal  -> NOP: a prefetch is a hint with no architectural effect;
//                        dropping it costs one hint, a spill would cost more.
//       ldr wzr/xzr literal -> NOP too (the value is discarded; the only effect
//                        lost is a fault on an unmapped literal).
//   * b                -> `B target` from the copy.
//   * bl               -> X30 = site+4 (materialised like adr), then `B target`:
//                        the callee returns into the original code right after
//                        the site, as without the probe (and unwinders see the
//                        original return address). No jump back.
//   * b.cond, bc.cond, cbz, cbnz, tbz, tbnz -> the same instruction retargeted
//                        when the target is in its reach from the copy (+-1 MiB;
//                        tb(n)z +-32 KiB), else the inverted condition over a
//                        `B target` (+-128 MiB); b.al / b.nv always branch: `B target`.
//   * blr xn, blraa(z)/blrab(z) xn(, xm) -> X30 = site+4, then br xn /
//                        braa(z)/brab(z) xn(, xm) (the same key and modifier):
//                        the callee returns to site+4. No jump back. Refused
//                        when xn or xm is x30 (the link would overwrite the
//                        target or the modifier): RelocStatus::Unsupported.
//                        BTI caveat: `br xn` sets BTYPE 11 where blr set 10 (x16
//                        and x17 give 01); a callee on a BTI-guarded page whose
//                        landing pad is `bti c` (or paciasp) refuses BTYPE 11 and
//                        the call takes a Branch Target exception (SIGILL). Only
//                        processes with guarded pages (BTI-built binaries on
//                        FEAT_BTI hardware) are affected; libpatch does not
//                        detect them here.
//   * br, ret, braa(z), brab(z), retaa, retab, svc and every other instruction
//     that does not read the pc -> copied unchanged (no jump back after
//     br/ret: they never fall through).
// Refused (each with its RelocStatus and a reason naming the instruction):
//   * exclusive sequences (Unsupported, reason "exclusive sequence: ..."): a
//     site that is a load/store exclusive (ldxr, ldaxr, ldxp, ldaxp, stxr, stlxr,
//     stxp, stlxp: any size), or, when RelocInput::func_code is given, a site
//     inside an exclusive sequence of its function: the nearest exclusive before
//     the site (in address order) is a load-exclusive, or the nearest after it is
//     a store-exclusive. The trampoline's register saves (stores), the copy's
//     own accesses, a trap's exception entry and return may all clear the
//     exclusive monitor: the store-exclusive would then fail on every try and
//     the retry loop never finish.
//     Without func_code only the site itself is checked;
//   * BTI landing pads (Unsupported): bti, bti c/j/jc, paciasp, pacibsp (implicit
//     `bti c`). On a guarded page an indirect branch to the site must land on
//     one; after patching it would land on the `B` (or the BRK) and fault;
//   * what never returns to the next instruction in user space: brk, hlt, udf,
//     hvc, smc, dcps*, eret*, drps (Unsupported, "traps");
//   * a branch elsewhere in the function that targets the displaced range
//     strictly inside (BranchTarget; with one 4-byte word nothing is strictly
//     inside, but the generic check stays);
//   * undecodable words (Undecodable); the function ending before the site's
//     word (TooShort); a site that is not a 4-aligned word of its function, or
//     misaligned (NotBoundary); a destination out of reach: a target beyond B's
//     +-128 MiB from the copy, a conditional branch beyond both forms, the jump
//     back (Range) — unless RelocInput::trap_exits: each such jump becomes an
//     exit trap word (trap_insn(): BRK #kBrkImm) listed in Relocation::exits,
//     and the trap handler continues the thread at its target.
// RelocInput::scratch_reg is ignored (no A64 form uses one).
//
// Emission is bounded: plan_relocation() gives max_code_size, the worst case
// of the instruction's form for any dest (ldr s/d literal: 9 words + the jump
// back); relocate() measures the copy with a dry run of the backend's bounded
// writer (asm.hpp) and then writes exactly that many bytes.
#pragma once

#include <stdint.h>

#include "mc/decoder.hpp"
#include "mc/reloc.hpp"

namespace lp::aarch64 {

inline constexpr uint32_t kSiteJumpLen = 4; // b target (+-128 MiB)

// Every dest-independent check, displaced_len (4), boundaries and
// max_code_size; code/pc_map empty.
mc::Relocation plan_relocation(const mc::Decoder &dec, const mc::RelocInput &in);

// The OOL copy for `dest` (4-aligned). On success code.size() <= plan.max_code_size.
mc::Relocation relocate(const mc::Decoder &dec, const mc::RelocInput &in, uintptr_t dest);

// The enabled site word: `B target`. displaced_len must be 4. false when
// `target` is beyond B's +-128 MiB or either address is misaligned.
bool encode_site_jump(uintptr_t site, uintptr_t target, uint32_t displaced_len, uint8_t *out);

} // namespace lp::aarch64
