// RISC-V 64 encodings. Freestanding: see encoding.hpp.
#include "encoding.hpp"

namespace lp::riscv64 {

void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
void put16(uint8_t *p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}
uint32_t get32(const uint8_t *p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint16_t get16(const uint8_t *p) { return uint16_t(p[0] | p[1] << 8); }

uint32_t enc_auipc(unsigned rd, int32_t imm_hi20) {
  return (uint32_t(imm_hi20) << 12) | (rd << 7) | 0x17;
}

uint32_t enc_jalr(unsigned rd, unsigned rs1, int32_t imm12) {
  return (uint32_t(imm12 & 0xfff) << 20) | (rs1 << 15) | (0u << 12) | (rd << 7) | 0x67;
}

uint32_t enc_jal(unsigned rd, int32_t off) {
  const uint32_t u = uint32_t(off);
  const uint32_t imm = ((u >> 20) & 1) << 31 | ((u >> 1) & 0x3ff) << 21 | ((u >> 11) & 1) << 20 |
                       ((u >> 12) & 0xff) << 12;
  return imm | (rd << 7) | 0x6f;
}

uint32_t sled_units(const uint8_t *p, uint32_t max_len, Ilen *ilen_out) {
  Ilen ilen;
  if (max_len >= 4 && get32(p) == kNop)
    ilen = Ilen::G32;
  else if (max_len >= 2 && get16(p) == kCNop)
    ilen = Ilen::C16;
  else
    return 0;
  const uint32_t unit = uint32_t(ilen);
  uint32_t n = 0;
  for (uint32_t off = 0; off + unit <= max_len; off += unit, ++n) {
    const bool nop = ilen == Ilen::G32 ? get32(p + off) == kNop : get16(p + off) == kCNop;
    if (!nop) break;
  }
  if (ilen_out) *ilen_out = ilen;
  return n;
}

void fill_nops(uint8_t *out, uint32_t len, Ilen ilen) {
  for (uint32_t off = 0; off < len; off += uint32_t(ilen)) {
    if (ilen == Ilen::G32)
      put32(out + off, kNop);
    else
      put16(out + off, kCNop);
  }
}

CallError encode_entry_call(uintptr_t site, uintptr_t target, uint32_t len, Ilen ilen, uint8_t *out) {
  if ((target & 1) != 0 || (site & 1) != 0) return CallError::Misaligned;
  if (len < 4) return CallError::TooShort;
  const int64_t delta = int64_t(target) - int64_t(site);
  fill_nops(out, len, ilen);
  if (delta >= -kJalRange && delta < kJalRange) {
    put32(out, enc_jal(kT0, int32_t(delta)));
    return CallError::Ok;
  }
  if (len < 8) return CallError::TooShort;
  // auipc adds hi << 12 to its own pc; jalr adds the sign-extended lo12, so hi is
  // rounded to compensate a negative lo.
  const int64_t hi = (delta + 0x800) >> 12;
  const int64_t lo = delta - (hi << 12);
  if (hi < -(1LL << 19) || hi >= (1LL << 19)) return CallError::Range;
  put32(out, enc_auipc(kT0, int32_t(hi)));
  put32(out + 4, enc_jalr(kT0, kT0, int32_t(lo)));
  return CallError::Ok;
}

void trap_bytes(bool hart_has_c, uint8_t *out) {
  for (uint32_t i = 0; i < trap_len(hart_has_c); ++i) out[i] = 0;
}

void make_transition(uintptr_t site, uint32_t len, Ilen ilen, bool hart_has_c,
                     const uint8_t *old_bytes, const uint8_t *new_bytes, engine::Transition *t) {
  t->addr = site;
  t->len = len;
  t->trap_len = trap_len(hart_has_c);
  for (uint32_t i = 0; i < len; ++i) {
    t->old_bytes[i] = old_bytes[i];
    t->new_bytes[i] = new_bytes[i];
  }
  trap_bytes(hart_has_c, t->trap_bytes);
  // A sled is several instructions (old: N nops; new: jal/auipc+jalr then nops), so a
  // thread may be parked at a boundary inside it when phase 1 starts.
  t->evacuate = len > uint32_t(ilen);
}


// ---- Additions for the hosted backend. ----

namespace {
constexpr uint32_t i_type(unsigned rd, unsigned f3, unsigned rs1, int32_t imm, uint32_t op) {
  return (uint32_t(imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}
constexpr uint32_t s_type(unsigned rs2, unsigned f3, unsigned rs1, int32_t imm, uint32_t op) {
  const uint32_t u = uint32_t(imm & 0xfff);
  return ((u >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((u & 0x1f) << 7) | op;
}
} // namespace

uint32_t enc_lui(unsigned rd, int32_t imm_hi20) { return (uint32_t(imm_hi20) << 12) | (rd << 7) | 0x37; }
uint32_t enc_addi(unsigned rd, unsigned rs1, int32_t imm12) { return i_type(rd, 0, rs1, imm12, 0x13); }
uint32_t enc_andi(unsigned rd, unsigned rs1, int32_t imm12) { return i_type(rd, 7, rs1, imm12, 0x13); }
uint32_t enc_add(unsigned rd, unsigned rs1, unsigned rs2) { return (rs2 << 20) | (rs1 << 15) | (rd << 7) | 0x33; }
uint32_t enc_ld(unsigned rd, unsigned rs1, int32_t imm12) { return i_type(rd, 3, rs1, imm12, 0x03); }
uint32_t enc_sd(unsigned rs2, unsigned rs1, int32_t imm12) { return s_type(rs2, 3, rs1, imm12, 0x23); }
uint32_t enc_fld(unsigned rd, unsigned rs1, int32_t imm12) { return i_type(rd, 3, rs1, imm12, 0x07); }
uint32_t enc_fsd(unsigned rs2, unsigned rs1, int32_t imm12) { return s_type(rs2, 3, rs1, imm12, 0x27); }
uint32_t enc_csrrs(unsigned rd, unsigned csr, unsigned rs1) { return (csr << 20) | (rs1 << 15) | (2u << 12) | (rd << 7) | 0x73; }
uint32_t enc_csrrw(unsigned rd, unsigned csr, unsigned rs1) { return (csr << 20) | (rs1 << 15) | (1u << 12) | (rd << 7) | 0x73; }

bool split_pcrel(int64_t delta, int32_t *hi20, int32_t *lo12) {
  const int64_t hi = (delta + 0x800) >> 12;
  const int64_t lo = delta - hi * 4096;
  if (hi < -(1LL << 19) || hi >= (1LL << 19)) return false;
  *hi20 = int32_t(hi);
  *lo12 = int32_t(lo);
  return true;
}

bool decode_jal(uint32_t insn, unsigned *rd, int32_t *off) {
  if ((insn & 0x7f) != 0x6f) return false;
  uint32_t imm = ((insn >> 31) & 1) << 20 | ((insn >> 21) & 0x3ff) << 1 | ((insn >> 20) & 1) << 11 |
                 ((insn >> 12) & 0xff) << 12;
  if (imm & (1u << 20)) imm |= 0xfff00000u; // sign-extend from bit 20
  *rd = (insn >> 7) & 0x1f;
  *off = int32_t(imm);
  return true;
}

void encode_skip(uint32_t len, Ilen ilen, uint8_t *out) {
  fill_nops(out, len, ilen);
  put32(out, enc_jal(kZero, int32_t(len)));
}

uint32_t skip_len(const uint8_t *p, uint32_t max_len, Ilen *ilen_out) {
  if (max_len < 4) return 0;
  unsigned rd = 0;
  int32_t off = 0;
  if (!decode_jal(get32(p), &rd, &off) || rd != kZero) return 0;
  if (off < 4 || uint32_t(off) > max_len || uint32_t(off) > engine::kMaxSiteBytes) return 0;
  const uint32_t len = uint32_t(off);
  Ilen ilen = Ilen::G32;
  if (len > 4) {
    Ilen tail;
    const uint32_t n = sled_units(p + 4, len - 4, &tail);
    if (n == 0 || 4 + n * uint32_t(tail) != len) return 0;
    ilen = tail;
  }
  if (ilen_out) *ilen_out = ilen;
  return len;
}


bool inner_entry(const uint8_t *b, uint32_t len) {
  Ilen ilen;
  const uint32_t n = sled_units(b, len, &ilen);
  if (n > 1 && n * uint32_t(ilen) == len) return true;
  return len >= 8 && is_auipc(get32(b), kT0);
}

void make_site_transition(uintptr_t site, uint32_t len, Ilen ilen, bool hart_has_c,
                          const uint8_t *old_bytes, const uint8_t *new_bytes, engine::Transition *t) {
  make_transition(site, len, ilen, hart_has_c, old_bytes, new_bytes, t);
  t->evacuate = inner_entry(old_bytes, len) || inner_entry(new_bytes, len);
}

} // namespace lp::riscv64
