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
