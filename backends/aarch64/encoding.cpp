// AArch64 encodings. Freestanding: see encoding.hpp.
#include "encoding.hpp"

namespace lp::aarch64 {

void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
uint32_t get32(const uint8_t *p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}

uint32_t enc_brk(uint16_t imm16) { return 0xd4200000u | (uint32_t(imm16) << 5); }

// B: 000101 imm26; BL: 100101 imm26 (imm26 = offset / 4, two's complement).
uint32_t enc_b(int64_t offset) { return 0x14000000u | (uint32_t(offset >> 2) & 0x03ffffffu); }
uint32_t enc_bl(int64_t offset) { return 0x94000000u | (uint32_t(offset >> 2) & 0x03ffffffu); }

uint32_t enc_br(unsigned rn) { return 0xd61f0000u | (uint32_t(rn & 31) << 5); }
uint32_t enc_blr(unsigned rn) { return 0xd63f0000u | (uint32_t(rn & 31) << 5); }

// ADRP: 1 immlo(2) 10000 immhi(19) Rd, imm = page_delta >> 12 (21 bits).
uint32_t enc_adrp(unsigned rd, int64_t page_delta) {
  const uint32_t imm = uint32_t(page_delta >> 12) & 0x1fffffu;
  return 0x90000000u | ((imm & 3u) << 29) | ((imm >> 2) << 5) | (rd & 31);
}

// ADD (immediate, 64-bit, no shift): 1 0 0 100010 0 imm12 Rn Rd.
uint32_t enc_add_imm(unsigned rd, unsigned rn, uint32_t imm12) {
  return 0x91000000u | ((imm12 & 0xfffu) << 10) | ((rn & 31) << 5) | (rd & 31);
}

// MOV (register) = ORR Xd, XZR, Xm: 1 01 01010 00 0 Rm 000000 11111 Rd.
uint32_t enc_mov_reg(unsigned rd, unsigned rm) { return 0xaa0003e0u | ((rm & 31) << 16) | (rd & 31); }

// SUB (immediate, 64-bit, no shift): 1 1 0 100010 0 imm12 Rn Rd.
uint32_t enc_sub_imm(unsigned rd, unsigned rn, uint32_t imm12) {
  return 0xd1000000u | ((imm12 & 0xfffu) << 10) | ((rn & 31) << 5) | (rd & 31);
}
// ADD (shifted register, LSL #0): 1 0 0 01011 00 0 Rm 000000 Rn Rd (31 = XZR here, not SP).
uint32_t enc_add_reg(unsigned rd, unsigned rn, unsigned rm) {
  return 0x8b000000u | ((rm & 31) << 16) | ((rn & 31) << 5) | (rd & 31);
}

namespace {
// Load/store pair, signed offset: opc 101 V 010 L imm7 Rt2 Rn Rt.
uint32_t pair(uint32_t base, unsigned rt, unsigned rt2, unsigned rn, int32_t off, int scale) {
  const uint32_t imm7 = uint32_t(off / scale) & 0x7fu;
  return base | (imm7 << 15) | ((rt2 & 31) << 10) | ((rn & 31) << 5) | (rt & 31);
}
// MOVZ/MOVK: sf opc 100101 hw imm16 Rd.
uint32_t wide(uint32_t base, unsigned rd, uint16_t imm16, unsigned shift) {
  return base | (uint32_t((shift / 16) & 3) << 21) | (uint32_t(imm16) << 5) | (rd & 31);
}
} // namespace

uint32_t enc_stp(unsigned rt, unsigned rt2, unsigned rn, int32_t off) { return pair(0xa9000000u, rt, rt2, rn, off, 8); }
uint32_t enc_ldp(unsigned rt, unsigned rt2, unsigned rn, int32_t off) { return pair(0xa9400000u, rt, rt2, rn, off, 8); }
uint32_t enc_stp_q(unsigned qt, unsigned qt2, unsigned rn, int32_t off) { return pair(0xad000000u, qt, qt2, rn, off, 16); }
uint32_t enc_ldp_q(unsigned qt, unsigned qt2, unsigned rn, int32_t off) { return pair(0xad400000u, qt, qt2, rn, off, 16); }

// STR/LDR (immediate, unsigned offset, 64-bit): 11 111 0 01 opc imm12 Rn Rt.
uint32_t enc_str(unsigned rt, unsigned rn, uint32_t off) {
  return 0xf9000000u | (((off / 8) & 0xfffu) << 10) | ((rn & 31) << 5) | (rt & 31);
}
uint32_t enc_ldr(unsigned rt, unsigned rn, uint32_t off) {
  return 0xf9400000u | (((off / 8) & 0xfffu) << 10) | ((rn & 31) << 5) | (rt & 31);
}
// LDR (literal, 64-bit): 01 011 0 00 imm19 Rt.
uint32_t enc_ldr_lit(unsigned rt, int64_t offset) {
  return 0x58000000u | ((uint32_t(offset >> 2) & 0x7ffffu) << 5) | (rt & 31);
}
// ADR: 0 immlo(2) 10000 immhi(19) Rd.
uint32_t enc_adr(unsigned rd, int64_t offset) {
  const uint32_t imm = uint32_t(offset) & 0x1fffffu;
  return 0x10000000u | ((imm & 3u) << 29) | ((imm >> 2) << 5) | (rd & 31);
}
uint32_t enc_movz(unsigned rd, uint16_t imm16, unsigned shift) { return wide(0xd2800000u, rd, imm16, shift); }
uint32_t enc_movk(unsigned rd, uint16_t imm16, unsigned shift) { return wide(0xf2800000u, rd, imm16, shift); }
uint32_t enc_ret(unsigned rn) { return 0xd65f0000u | ((rn & 31) << 5); }
// MRS: 1101010100 1 1 o0 op1 CRn CRm op2 Rt; MSR (register): the same with L = 0.
// SysReg holds o0:op1:CRn:CRm:op2 (bits 19..5; bit 20 is op0 high, always 1 here).
uint32_t enc_mrs(unsigned rt, SysReg r) { return 0xd5300000u | ((uint32_t(r) & 0x7fffu) << 5) | (rt & 31); }
uint32_t enc_msr(SysReg r, unsigned rt) { return 0xd5100000u | ((uint32_t(r) & 0x7fffu) << 5) | (rt & 31); }

Kind classify(uint32_t insn) {
  if (insn == kNop) return Kind::Nop;
  if (insn == kIsb) return Kind::Isb; // ISB SY (the only option the list's "ISB" is used with here)
  if ((insn & 0xfc000000u) == 0x14000000u) return Kind::B;
  if ((insn & 0xfc000000u) == 0x94000000u) return Kind::Bl;
  // Exception generation: 11010100 opc(3) imm16 op2(3) LL(2).
  if ((insn & 0xffe0001fu) == 0xd4200000u) return Kind::Brk;
  if ((insn & 0xffe0001fu) == 0xd4000001u) return Kind::Svc;
  if ((insn & 0xffe0001fu) == 0xd4000002u) return Kind::Hvc;
  if ((insn & 0xffe0001fu) == 0xd4000003u) return Kind::Smc;
  return Kind::Other;
}

bool decode_b(uint32_t insn, int64_t *offset, bool *link) {
  const Kind k = classify(insn);
  if (k != Kind::B && k != Kind::Bl) return false;
  int64_t imm = int64_t(insn & 0x03ffffffu);
  if (imm & 0x02000000) imm -= 0x04000000;
  if (offset) *offset = imm * 4;
  if (link) *link = k == Kind::Bl;
  return true;
}

bool decode_brk(uint32_t insn, uint16_t *imm16) {
  if (classify(insn) != Kind::Brk) return false;
  if (imm16) *imm16 = uint16_t((insn >> 5) & 0xffffu);
  return true;
}

bool concurrent_modification_safe(uint32_t old_insn, uint32_t new_insn) {
  return classify(old_insn) != Kind::Other && classify(new_insn) != Kind::Other;
}

bool kernel_owned_brk(uint16_t i) {
  // arch/arm64/include/asm/brk-imm.h (Linux 6.1).
  return (i >= 0x004 && i <= 0x006) || i == 0x100 || (i >= 0x400 && i <= 0x7ff) || i == 0x800 ||
         (i & 0xff00) == 0x0900 || (i & 0xff00) == 0x5500 || (i & 0xf000) == 0x8000;
}

uint32_t sled_nops(const uint8_t *p, uint32_t max_len) {
  uint32_t n = 0;
  for (uint32_t off = 0; off + 4 <= max_len && get32(p + off) == kNop; off += 4) ++n;
  return n;
}

bool encode_entry_jump(uintptr_t site, uintptr_t target, uint8_t out[4]) {
  if ((site & 3) || (target & 3)) return false;
  const int64_t off = int64_t(target) - int64_t(site);
  if (!fits_b(off)) return false;
  put32(out, enc_b(off));
  return true;
}

} // namespace lp::aarch64

// ==== The relocator's encodings (see the section of that name in encoding.hpp) ====
namespace lp::aarch64 {

// B.cond: 0101010 0 imm19 o0 cond (o0 = 1: BC.cond).
uint32_t enc_b_cond(unsigned cond, int64_t offset, bool hinted) {
  return 0x54000000u | ((uint32_t(offset >> 2) & 0x7ffffu) << 5) | (hinted ? 0x10u : 0u) | (cond & 15);
}
// CBZ/CBNZ: sf 011010 op imm19 Rt.
uint32_t enc_cbz(unsigned rt, int64_t offset, bool wide, bool nonzero) {
  return (wide ? 0x80000000u : 0u) | 0x34000000u | (nonzero ? 0x01000000u : 0u) |
         ((uint32_t(offset >> 2) & 0x7ffffu) << 5) | (rt & 31);
}
// TBZ/TBNZ: b5 011011 op b40 imm14 Rt.
uint32_t enc_tbz(unsigned rt, unsigned bit, int64_t offset, bool nonzero) {
  return ((bit & 32u) << 26) | 0x36000000u | (nonzero ? 0x01000000u : 0u) | ((bit & 31u) << 19) |
         ((uint32_t(offset >> 2) & 0x3fffu) << 5) | (rt & 31);
}
// LDR (immediate, unsigned offset): size 111 V 01 opc imm12 Rn Rt.
uint32_t enc_ldr_w(unsigned rt, unsigned rn, uint32_t off) {
  return 0xb9400000u | (((off / 4) & 0xfffu) << 10) | ((rn & 31) << 5) | (rt & 31);
}
uint32_t enc_ldrsw(unsigned rt, unsigned rn, uint32_t off) {
  return 0xb9800000u | (((off / 4) & 0xfffu) << 10) | ((rn & 31) << 5) | (rt & 31);
}
uint32_t enc_ldr_q(unsigned qt, unsigned rn, uint32_t off) {
  return 0x3dc00000u | (((off / 16) & 0xfffu) << 10) | ((rn & 31) << 5) | (qt & 31);
}
// STR/LDR (immediate, pre-/post-indexed), 64-bit: 11 111 0 00 opc 0 imm9 11/01 Rn Rt.
uint32_t enc_str_pre(unsigned rt, unsigned rn, int32_t imm9) {
  return 0xf8000c00u | ((uint32_t(imm9) & 0x1ffu) << 12) | ((rn & 31) << 5) | (rt & 31);
}
uint32_t enc_ldr_post(unsigned rt, unsigned rn, int32_t imm9) {
  return 0xf8400400u | ((uint32_t(imm9) & 0x1ffu) << 12) | ((rn & 31) << 5) | (rt & 31);
}
// FMOV (general): sf 0 0 11110 ftype 1 rmode opcode 000000 Rn Rd; D <-> X is
// ftype 01, rmode 00, opcode 111 (to D) / 110 (to X).
uint32_t enc_fmov_d_x(unsigned dd, unsigned xn) { return 0x9e670000u | ((xn & 31) << 5) | (dd & 31); }
uint32_t enc_fmov_x_d(unsigned xd, unsigned dn) { return 0x9e660000u | ((dn & 31) << 5) | (xd & 31); }
// INS (general): 0 1 0 01110000 imm5 0 0011 1 Rn Rd; imm5 = 11000 is D[1].
uint32_t enc_ins_d1_x(unsigned vd, unsigned xn) { return 0x4e181c00u | ((xn & 31) << 5) | (vd & 31); }
// DUP (element, scalar): 01 0 11110000 imm5 0 0000 1 Rn Rd; imm5 11000 = D[1],
// 10100 = S[2].
uint32_t enc_dup_d_d1(unsigned dd, unsigned vn) { return 0x5e180400u | ((vn & 31) << 5) | (dd & 31); }
uint32_t enc_dup_s_s2(unsigned sd, unsigned vn) { return 0x5e140400u | ((vn & 31) << 5) | (sd & 31); }
// BRAA/BRAB: 1101011 1000 11111 00001 M Rn Rm; BRAAZ/BRABZ: 1101011 0000 11111 00001 M Rn 11111.
uint32_t enc_bra(unsigned rn, unsigned rm, bool key_b) {
  return 0xd71f0800u | (key_b ? 0x400u : 0u) | ((rn & 31) << 5) | (rm & 31);
}
uint32_t enc_braz(unsigned rn, bool key_b) { return 0xd61f081fu | (key_b ? 0x400u : 0u) | ((rn & 31) << 5); }

} // namespace lp::aarch64
