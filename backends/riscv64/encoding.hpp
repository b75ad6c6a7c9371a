// RISC-V 64 encodings and site transitions. Freestanding (no libc, no heap):
// compiled into the hosted library and into the bare-metal image unchanged.
//
// Two different ILEN facts matter, and they are independent:
//  * the *code's* unit: rv64gc code has c.nop (0x0001, 2 bytes) sleds, rv64g code
//    has nop (addi x0,x0,0 = 0x00000013, 4 bytes) sleds (Ilen, from the sled bytes);
//  * the *hart's* fetch: a hart with C decodes the first halfword at the pc on its
//    own. The trap must be illegal for that decoder whatever follows, so on a C
//    hart it is the all-zero halfword c.unimp, one aligned 2-byte store (granule 2);
//    rv64g code is 4-byte aligned, so that store is aligned there too. A hart
//    without C only runs rv64g code and rejects any first byte with low bits 00,
//    so a 1-byte store of 0x00 over the low byte is a trap (granule 1).
// A 1-byte trap is NOT enough on a C hart: 0x00 over the low byte of, say, a jal
// leaves a 16-bit quadrant-0 instruction whose high byte is the jal's, which can be
// a legal c.addi4spn. hart_has_c must therefore come from the run-time probe
// (riscv_hwprobe / AT_HWCAP), never from how the code was compiled.
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "engine/protocol.hpp"

namespace lp::riscv64 {

enum class Ilen : uint8_t { C16 = 2, G32 = 4 }; // size of one sled nop / trap unit

inline constexpr uint16_t kCNop = 0x0001;
inline constexpr uint16_t kCUnimp = 0x0000;
inline constexpr uint32_t kNop = 0x00000013;
inline constexpr unsigned kT0 = 5; // link register of the entry call sequence
inline constexpr int64_t kJalRange = 1 << 20;      // jal reaches [-1 MiB, +1 MiB)
inline constexpr int64_t kAuipcRange = 1LL << 31;  // auipc+jalr reaches +-2 GiB

// Store granule and trap length the protocol uses on a hart with / without C.
constexpr uint32_t granule(bool hart_has_c) { return hart_has_c ? 2u : 1u; }
constexpr uint32_t trap_len(bool hart_has_c) { return hart_has_c ? 2u : 1u; }

// Length of the instruction whose first halfword is `lo` (2 or 4; 0 for the
// longer, unsupported encodings).
constexpr uint32_t insn_length(uint16_t lo) {
  if ((lo & 0x3) != 0x3) return 2;
  if ((lo & 0x1f) != 0x1f) return 4;
  return 0;
}

uint32_t enc_auipc(unsigned rd, int32_t imm_hi20);
uint32_t enc_jalr(unsigned rd, unsigned rs1, int32_t imm12);
uint32_t enc_jal(unsigned rd, int32_t offset);
void put32(uint8_t *p, uint32_t v);
void put16(uint8_t *p, uint16_t v);
uint32_t get32(const uint8_t *p);
uint16_t get16(const uint8_t *p);

// Which sled the bytes hold: the number of nop units (of the returned ILEN) that
// start at `p`, scanning at most `max_len` bytes. Returns 0 when `p` does not
// start with a nop. Prefers the encoding of the first unit.
uint32_t sled_units(const uint8_t *p, uint32_t max_len, Ilen *ilen_out);

// Fills `len` bytes with nops of the given ILEN (the disabled sled).
void fill_nops(uint8_t *out, uint32_t len, Ilen ilen);

// Encodes the entry call `site -> target` with t0 as the link register into
// `len` bytes (the rest stays nops): `jal t0, target` when it is within +-1 MiB
// (4 bytes), else `auipc t0, hi; jalr t0, lo(t0)` (8 bytes). The callee returns
// with `jr t0` to the instruction after the jal/jalr; the remaining nops run.
// t0 rather than ra (DESIGN.md's classic `sd ra` sequence): t0 is a temporary that
// is dead at function entry, so no save/restore around the call and no store
// below sp (RISC-V has no red zone, a signal frame could land there). Linux's
// RISC-V ftrace made the same move.
enum class CallError : uint8_t { Ok, TooShort, Range, Misaligned };
CallError encode_entry_call(uintptr_t site, uintptr_t target, uint32_t len, Ilen ilen, uint8_t *out);

// The trap bytes (trap_len(hart_has_c) of them: all zero).
void trap_bytes(bool hart_has_c, uint8_t *out);

// Builds the protocol transition of an entry sled of `len` bytes (units of `ilen`)
// from `old_bytes` to `new_bytes` (both `len` bytes), for harts with/without C.
void make_transition(uintptr_t site, uint32_t len, Ilen ilen, bool hart_has_c,
                     const uint8_t *old_bytes, const uint8_t *new_bytes, engine::Transition *out);


// ---- Additions for the hosted backend (trampolines, normalised sites). ----
// Freestanding like the rest; existing functions above keep their behaviour.

// Register numbers used by the generated code.
inline constexpr unsigned kZero = 0, kRa = 1, kSp = 2, kGp = 3, kTp = 4, kT1 = 6, kT2 = 7, kS1 = 9,
                          kA0 = 10, kA1 = 11, kT3 = 28;
inline constexpr unsigned kCsrFcsr = 0x003;

// More RV64 base/D encoders (12-bit immediates are taken modulo 2^12: the
// caller checks the range, e.g. with split_pcrel / fits12).
uint32_t enc_lui(unsigned rd, int32_t imm_hi20);
uint32_t enc_addi(unsigned rd, unsigned rs1, int32_t imm12);
uint32_t enc_andi(unsigned rd, unsigned rs1, int32_t imm12);
uint32_t enc_add(unsigned rd, unsigned rs1, unsigned rs2);
uint32_t enc_ld(unsigned rd, unsigned rs1, int32_t imm12);
uint32_t enc_sd(unsigned rs2, unsigned rs1, int32_t imm12);
uint32_t enc_fld(unsigned rd, unsigned rs1, int32_t imm12);
uint32_t enc_fsd(unsigned rs2, unsigned rs1, int32_t imm12);
uint32_t enc_csrrs(unsigned rd, unsigned csr, unsigned rs1); // csrr rd, csr  when rs1 = x0
uint32_t enc_csrrw(unsigned rd, unsigned csr, unsigned rs1); // csrw csr, rs1 when rd = x0
constexpr bool fits12(int64_t v) { return v >= -2048 && v < 2048; }

// Splits a pc-relative (or tp-relative) offset into the hi20 of auipc/lui and
// the sign-extended lo12 of the instruction that follows. false when `delta` is
// out of the +-2 GiB (exactly [-2^31 - 2^11, 2^31 - 2^11)) range.
bool split_pcrel(int64_t delta, int32_t *hi20, int32_t *lo12);

// Decodes `jal rd, off`. false for any other instruction.
bool decode_jal(uint32_t insn, unsigned *rd, int32_t *off);
// Whether `insn` is `auipc rd, *`.
constexpr bool is_auipc(uint32_t insn, unsigned rd) { return (insn & 0xfff) == ((rd << 7) | 0x17); }

// The normalised disabled form of a sled of `len` bytes (len >= 8, or len == 4
// with C16 units): `j .+len` (jal x0, len: 4 bytes, legal on every hart) then the
// original nops. Entering it runs one instruction and lands at the sled's end,
// exactly where running the nops would; its tail is dead code, so no thread can
// ever be parked inside the site once it is in this form (see docs/riscv64.md).
void encode_skip(uint32_t len, Ilen ilen, uint8_t *out);
// Recognises a normalised sled at `p` (reading at most `max_len` bytes): `j .+L`
// (4 <= L <= max_len, L <= kMaxSiteBytes) then nops up to L. Returns L or 0;
// *ilen_out gets the unit of the tail nops (G32 when the tail is empty).
uint32_t skip_len(const uint8_t *p, uint32_t max_len, Ilen *ilen_out);


// Whether a thread can be parked at an instruction boundary strictly inside a
// site of `len` bytes holding `b`, i.e. whether a transition from or to `b` must
// evacuate in phase 1: true for the compiler's nop sled of more than one unit
// and for `auipc t0; jalr t0` (a thread between the two); false for the
// normalised `j .+len` form, `jal t0` (given a trampoline that returns to the
// site's end, as the hosted one does) and the trap form (resumes at the end).
bool inner_entry(const uint8_t *b, uint32_t len);

// make_transition() with `evacuate` from inner_entry(old) || inner_entry(new)
// instead of "always": the hosted backend's transitions.
void make_site_transition(uintptr_t site, uint32_t len, Ilen ilen, bool hart_has_c,
                          const uint8_t *old_bytes, const uint8_t *new_bytes, engine::Transition *out);

} // namespace lp::riscv64
