// AArch64 (A64) encodings and what the architecture lets us change under
// running threads. Freestanding (no libc, no heap), like every ISA's encoding
// library. This header is the spec the aarch64 backend builds on (backend.cpp
// applies it; docs/aarch64.md tells the whole story).
//
// Facts (Arm ARM DDI0487, "Concurrent modification and execution of
// instructions", B2.2.5):
//  * Every A64 instruction is one naturally aligned 32-bit word, and an aligned
//    32-bit store is single-copy atomic. So there is no torn *word*; the hazard
//    is semantic: while one thread writes an instruction another may be
//    executing, the architecture guarantees the executing thread sees the old
//    or the new instruction ONLY when both are in this list:
//        B, BL, BRK, HVC, ISB, NOP, SMC, SVC
//    (concurrent_modification_safe() below). For any other pair the result is
//    CONSTRAINED UNPREDICTABLE: the thread may execute any instruction that
//    could be executed at that exception level, not just old or new.
//  * Even for a listed pair, another core is only guaranteed to execute the
//    NEW instruction after the writer did the cache maintenance (DC CVAU to the
//    point of unification unless CTR_EL0.IDC, DSB ISH, IC IVAU unless
//    CTR_EL0.DIC, DSB ISH) and the other core had a context-synchronising
//    event (ISB, exception entry/return: Linux's membarrier
//    PRIVATE_EXPEDITED_SYNC_CORE, or a signal round).
//
// Consequences for libpatch:
//  * An entry sled (`-fpatchable-function-entry=N`, N >= 1 NOPs; a `bti c` or
//    `paciasp` the compiler put first is never touched) is probed by flipping
//    its first NOP to `B trampoline` or to `BRK #kBrkImm`: NOP <-> B, NOP <->
//    BRK and B <-> BRK are all listed pairs, so every store of the engine's
//    three phases (BRK over the first word, nothing in between, the new first
//    word) is one aligned word between two listed instructions. We use B, not
//    Linux ftrace's BL: libpatch's trampolines are per site, so they know where
//    to return (site + 4) and need no link register, and LR still holds the
//    caller's return address when the trampoline runs (what an exit probe
//    swaps). Linux needs BL because its one ftrace trampoline must learn the
//    call site from LR, and so first turns the sled's first NOP into
//    `MOV X9, X30` once (a non-listed change it makes under stop_machine).
//    B reaches +-128 MiB (kBRange); a trampoline farther away needs
//    ADRP X16 + BR X16 over two sled words, whose first word's NOP -> ADRP is
//    NOT a listed change: that form would need the protocol below; it is not
//    implemented (such a site is a trap probe, lp_probe_fallback LP_ERANGE).
//  * Instruction sites (any instruction) are never in the list, whatever we
//    write: the stores that leave or enter the original instruction take the
//    "stopped" protocol (Backend::store_needs_stop, linux_platform::round_hold:
//    every other thread held in a signal handler while the word changes).
//  * The trap is `BRK #kBrkImm`: user-space BRK gives SIGTRAP with si_code
//    TRAP_BRKPT and si_addr at the BRK. The immediate is checked by the
//    handler in the word at si_addr, so a debugger's or the compiler's BRK is
//    told apart and chained. Immediates the kernel owns (0x004-0x006, 0x100,
//    0x400-0x7ff, 0x800, 0x9xx, 0x55xx, 0x8xxx) and the ones the toolchains
//    emit (0: GDB/LLDB software breakpoints, 0x1: LLVM's llvm.trap,
//    0x3e8: GCC's __builtin_trap, 0xf000: the Windows-on-Arm debug break)
//    are avoided; kernel_owned_brk() and the tests hold kBrkImm to that.
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace lp::aarch64 {

inline constexpr uint32_t kNop = 0xd503201f;
inline constexpr uint32_t kIsb = 0xd5033fdf;
inline constexpr uint32_t kRet = 0xd65f03c0;      // ret (x30)
inline constexpr uint32_t kBtiC = 0xd503245f;     // bti c
inline constexpr uint32_t kPaciasp = 0xd503233f;  // paciasp
inline constexpr uint16_t kBrkImm = 0x0c9;        // libpatch's BRK immediate (see above)
inline constexpr int64_t kBRange = int64_t(1) << 27; // B/BL reach [-128 MiB, +128 MiB)
inline constexpr unsigned kX16 = 16, kX17 = 17, kLr = 30, kZr = 31;

void put32(uint8_t *p, uint32_t v);
uint32_t get32(const uint8_t *p);

// ---- encoders (the caller checks ranges and alignment with the predicates) ----
uint32_t enc_brk(uint16_t imm16);
uint32_t enc_b(int64_t offset);   // offset: multiple of 4 within kBRange
uint32_t enc_bl(int64_t offset);
uint32_t enc_br(unsigned rn);
uint32_t enc_blr(unsigned rn);
uint32_t enc_adrp(unsigned rd, int64_t page_delta); // page_delta: target page - pc page, in bytes (4 KiB multiple, +-4 GiB)
uint32_t enc_add_imm(unsigned rd, unsigned rn, uint32_t imm12); // add xd, xn, #imm12
uint32_t enc_mov_reg(unsigned rd, unsigned rm);                 // orr xd, xzr, xm
// The trampolines' frame code (64-bit forms; kSp is register 31 where the
// instruction takes SP, the immediates are byte offsets the caller keeps in range).
inline constexpr unsigned kSp = 31;
uint32_t enc_sub_imm(unsigned rd, unsigned rn, uint32_t imm12);       // sub xd, xn, #imm12
uint32_t enc_add_reg(unsigned rd, unsigned rn, unsigned rm);          // add xd, xn, xm
uint32_t enc_stp(unsigned rt, unsigned rt2, unsigned rn, int32_t off); // stp xt, xt2, [xn, #off] (off/8 in imm7)
uint32_t enc_ldp(unsigned rt, unsigned rt2, unsigned rn, int32_t off); // ldp xt, xt2, [xn, #off]
uint32_t enc_stp_q(unsigned qt, unsigned qt2, unsigned rn, int32_t off); // stp qt, qt2, [xn, #off] (off/16 in imm7)
uint32_t enc_ldp_q(unsigned qt, unsigned qt2, unsigned rn, int32_t off); // ldp qt, qt2, [xn, #off]
uint32_t enc_str(unsigned rt, unsigned rn, uint32_t off);             // str xt, [xn, #off] (off/8 in imm12)
uint32_t enc_ldr(unsigned rt, unsigned rn, uint32_t off);             // ldr xt, [xn, #off]
uint32_t enc_ldr_lit(unsigned rt, int64_t offset);                    // ldr xt, .+offset (+-1 MiB, 4-aligned)
uint32_t enc_adr(unsigned rd, int64_t offset);                        // adr xd, .+offset (+-1 MiB)
uint32_t enc_movz(unsigned rd, uint16_t imm16, unsigned shift);       // movz xd, #imm16, lsl #shift
uint32_t enc_movk(unsigned rd, uint16_t imm16, unsigned shift);       // movk xd, #imm16, lsl #shift
uint32_t enc_ret(unsigned rn);                                        // ret xn
// System registers the trampolines read and write (MRS/MSR operand encodings).
// Values: o0:op1:CRn:CRm:op2 (op0 = 2 + o0), 15 bits.
enum class SysReg : uint32_t { Nzcv = 0x5a10, Fpcr = 0x5a20, Fpsr = 0x5a21, TpidrEl0 = 0x5e82 };
uint32_t enc_mrs(unsigned rt, SysReg r);
uint32_t enc_msr(SysReg r, unsigned rt);
constexpr bool fits_adr(int64_t offset) { return offset >= -(int64_t(1) << 20) && offset < (int64_t(1) << 20); }
constexpr bool fits_ldr_lit(int64_t offset) { return (offset & 3) == 0 && fits_adr(offset); }

constexpr bool fits_b(int64_t offset) { return (offset & 3) == 0 && offset >= -kBRange && offset < kBRange; }
constexpr bool fits_adrp(int64_t page_delta) {
  return (page_delta & 0xfff) == 0 && page_delta >= -(int64_t(1) << 32) && page_delta < (int64_t(1) << 32);
}

// ---- decoders ----
enum class Kind : uint8_t { Other, Nop, B, Bl, Brk, Isb, Hvc, Smc, Svc };
Kind classify(uint32_t insn);
// B or BL: the byte offset. false for anything else.
bool decode_b(uint32_t insn, int64_t *offset, bool *link);
// BRK: the immediate. false for anything else.
bool decode_brk(uint32_t insn, uint16_t *imm16);

// Whether the architecture guarantees a thread executing `old_insn` while it
// is overwritten by `new_insn` executes one or the other: both in the list.
bool concurrent_modification_safe(uint32_t old_insn, uint32_t new_insn);

// Whether a BRK immediate belongs to the kernel (arch/arm64: its ptrace, kgdb,
// uprobes, BUG, KASAN/UBSAN, CFI and fault-injection BRKs).
bool kernel_owned_brk(uint16_t imm16);

// ---- entry sleds ----
// The NOPs an entry sled holds at `p`, reading at most `max_len` bytes (a
// multiple of 4): the number of NOP words, 0 when `p` is not a NOP.
uint32_t sled_nops(const uint8_t *p, uint32_t max_len);

// The enabled form of an entry site at `site` with its trampoline at `target`:
// `B target` (4 bytes). false when the trampoline is out of B's reach or
// either address is misaligned (the caller then needs the two-word far form).
bool encode_entry_jump(uintptr_t site, uintptr_t target, uint8_t out[4]);

// The trap form: BRK #kBrkImm.
inline uint32_t trap_insn() { return 0xd4200000u | (uint32_t(kBrkImm) << 5); }

} // namespace lp::aarch64

// ==== The relocator's encodings (backends/aarch64/relocator.cpp, lp_mc_aarch64) ====
// What an out-of-line copy of a displaced instruction needs beyond the
// trampolines' set above: the conditional branches it retargets (or inverts
// over a B), the loads it turns a literal load into, the pre/post-indexed
// X16 spill of the Q-register literal load, and the FP/SIMD moves of the S/D
// literal load (relocator.hpp says why each). Each is checked word for word
// against aarch64-linux-gnu-as (tests/aarch64/encodings.S, "relocator" section).
namespace lp::aarch64 {

inline constexpr int64_t kImm19Range = int64_t(1) << 20; // b.cond, cbz/cbnz, ldr literal, adr: +-1 MiB
inline constexpr int64_t kImm14Range = int64_t(1) << 15; // tbz/tbnz: +-32 KiB
constexpr bool fits_imm19(int64_t offset) { return (offset & 3) == 0 && offset >= -kImm19Range && offset < kImm19Range; }
constexpr bool fits_imm14(int64_t offset) { return (offset & 3) == 0 && offset >= -kImm14Range && offset < kImm14Range; }

// b.<cond> .+offset (hinted: bc.<cond>, FEAT_HBC). cond 0 (eq) .. 15 (nv).
uint32_t enc_b_cond(unsigned cond, int64_t offset, bool hinted = false);
// cbz / cbnz (nonzero) Rt, .+offset; wide: the X form, else W.
uint32_t enc_cbz(unsigned rt, int64_t offset, bool wide, bool nonzero);
// tbz / tbnz (nonzero) Rt, #bit, .+offset (bit 0..63; >= 32 is the X form).
uint32_t enc_tbz(unsigned rt, unsigned bit, int64_t offset, bool nonzero);
// Loads through a base register, unsigned scaled offset (off: a multiple of
// the access size, < 4096 * size).
uint32_t enc_ldr_w(unsigned rt, unsigned rn, uint32_t off);   // ldr wt, [xn, #off]
uint32_t enc_ldrsw(unsigned rt, unsigned rn, uint32_t off);   // ldrsw xt, [xn, #off]
uint32_t enc_ldr_q(unsigned qt, unsigned rn, uint32_t off);   // ldr qt, [xn, #off]
// str xt, [xn, #imm9]! and ldr xt, [xn], #imm9 (imm9: -256..255 bytes).
uint32_t enc_str_pre(unsigned rt, unsigned rn, int32_t imm9);
uint32_t enc_ldr_post(unsigned rt, unsigned rn, int32_t imm9);
// FP/SIMD <-> general moves.
uint32_t enc_fmov_d_x(unsigned dd, unsigned xn);   // fmov dd, xn
uint32_t enc_fmov_x_d(unsigned xd, unsigned dn);   // fmov xd, dn
uint32_t enc_ins_d1_x(unsigned vd, unsigned xn);   // mov vd.d[1], xn  (INS, general)
uint32_t enc_dup_d_d1(unsigned dd, unsigned vn);   // mov dd, vn.d[1]  (DUP, scalar)
uint32_t enc_dup_s_s2(unsigned sd, unsigned vn);   // mov sd, vn.s[2]  (DUP, scalar)
// Pointer-authenticating indirect branches: braa/brab xn, xm (xm 31 = sp);
// braaz/brabz xn.
uint32_t enc_bra(unsigned rn, unsigned rm, bool key_b);
uint32_t enc_braz(unsigned rn, bool key_b);

} // namespace lp::aarch64
