// Built-in A64 decoder (no LLVM): the aarch64 cross build. What it decodes and
// what it promises: decoder.hpp. The field rules are decoder_llvm.cpp's, so
// both engines fill an Insn the same way; the classes below follow the Arm ARM
// (DDI0487) top-level encoding table, and where LLVM is stricter than the
// architecture (ldxr's Rs/Rt2, ldxp's Rt != Rt2, casp's even registers) they
// follow LLVM.
#include "decoder.hpp"

#include <cstdio>

namespace lp::aarch64 {
namespace {

using mc::Flow;
using mc::Insn;

constexpr uint32_t bits(uint32_t w, unsigned hi, unsigned lo) { return (w >> lo) & ((2u << (hi - lo)) - 1); }
constexpr uint32_t bit(uint32_t w, unsigned i) { return (w >> i) & 1; }
// Sign-extends the low n bits of v.
constexpr int64_t sext(uint64_t v, unsigned n) { return int64_t(v << (64 - n)) >> (64 - n); }

const char *const kCond[16] = {"eq", "ne", "hs", "lo", "mi", "pl", "vs", "vc",
                               "hi", "ls", "ge", "lt", "gt", "le", "al", "nv"};

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}
// x/w register names; 31 is the zero register unless `sp`.
std::string xr(unsigned r, bool sp = false) { return r == 31 ? (sp ? "sp" : "xzr") : "x" + std::to_string(r); }
std::string wr(unsigned r) { return r == 31 ? "wzr" : "w" + std::to_string(r); }
std::string gr(unsigned r, bool wide) { return wide ? xr(r) : wr(r); }

// One decode: the word, its address, the output and whether to write text.
struct D {
  uint32_t w;
  uint64_t a;
  Insn *o;
  bool with_text;

  bool ok(const char *name, Flow flow = Flow::None) const {
    o->valid = true;
    o->length = 4;
    o->name = name;
    o->flow = flow;
    return true;
  }
  void text(const std::string &mn, const std::string &ops = "") const {
    if (!with_text) return;
    o->mnemonic = mn;
    o->text = ops.empty() ? mn : mn + " " + ops;
  }
  // A direct branch to address + off.
  void branch_to(int64_t off) const {
    o->has_target = true;
    o->target = a + uint64_t(off);
    o->imm = off;
    o->reads_pc = true;
  }
  bool block(const char *name) const {
    ok(name);
    if (with_text) {
      char b[24];
      std::snprintf(b, sizeof b, "0x%08x", w);
      text(".inst", b);
    }
    return true;
  }
};

// ---- blocks whose validity is exact (decoder.hpp) ----------------------------

// The system block 0xd5000000-0xd57fffff. 0xd5000000-0xd53fffff (hints,
// barriers, PSTATE, sys/sysl, msr/mrs): LLVM rejects 45 words, all with L = 0,
// op0 = 00 and Rt = 31: MSR (immediate) op1 = 0, CRn = 4, CRm != 0, op2 = 1/2,
// and the barrier op1 = 3, CRn = 3, CRm != 0, op2 = 7 (sb takes CRm = 0 only).
// 0xd5400000-0xd57fffff (FEAT_D128 sysp, msrr, mrrs): the register pair starts
// at an even Rt; sysp (L = 0, op0 = 01) also takes xzr (Rt = 31).
bool system_valid(uint32_t w) {
  if (bit(w, 22)) return (w & 1) == 0 || (bits(w, 21, 19) == 1 && bits(w, 4, 0) == 31);
  if (bits(w, 21, 19) != 0 || bits(w, 4, 0) != 31 || bits(w, 11, 8) == 0) return true;
  const uint32_t op1 = bits(w, 18, 16), crn = bits(w, 15, 12), op2 = bits(w, 7, 5);
  if (op1 == 0 && crn == 4 && (op2 == 1 || op2 == 2)) return false;
  if (op1 == 3 && crn == 3 && op2 == 7) return false;
  return true;
}

// Logical-immediate bitmask (DecodeBitMasks): the element size from N:imms,
// and an all-ones element is reserved.
bool bitmask_valid(uint32_t n, uint32_t imms, bool wide) {
  if (!wide && n) return false;
  const uint32_t v = (n << 6) | (~imms & 0x3f);
  if (v == 0) return false;
  unsigned len = 6;
  while (!(v >> len)) --len;
  const uint32_t size = 1u << len;
  return (imms & (size - 1)) != size - 1;
}

// Data processing (immediate), op0 = 100x, except adr/adrp; op1 = bits 25:22.
bool dp_imm_valid(uint32_t w) {
  const bool sf = bit(w, 31);
  switch (bits(w, 25, 22)) {
  case 4: case 5: return true;                                                     // add/sub (immediate)
  case 6: return sf && !bit(w, 29) && bits(w, 15, 14) == 0;                         // addg, subg
  case 7: return !bit(w, 30) && !bit(w, 29) && bits(w, 21, 20) == 0;                // smax/umax/smin/umin (immediate)
  case 8: case 9: return bitmask_valid(bit(w, 22), bits(w, 15, 10), sf);            // logical (immediate)
  case 10: case 11: return bits(w, 30, 29) != 1 && (sf || bits(w, 22, 21) < 2);     // move wide
  case 12: case 13:                                                                 // bitfield
    return bits(w, 30, 29) != 3 && bit(w, 22) == sf && (sf || (bits(w, 21, 16) < 32 && bits(w, 15, 10) < 32));
  case 14: case 15:                                                                 // extract
    return bits(w, 30, 29) == 0 && !bit(w, 21) && bit(w, 22) == sf && (sf || bits(w, 15, 10) < 32);
  default: return false;
  }
}

// Data processing (register), op0 = x101: op0 = bit 30, op1 = bit 28, op2 =
// bits 24:21, op3 = bits 15:10.
bool dp_reg_valid(uint32_t w) {
  const bool sf = bit(w, 31), op0 = bit(w, 30), s = bit(w, 29);
  const uint32_t op2 = bits(w, 24, 21), op3 = bits(w, 15, 10);
  if (!bit(w, 28)) {
    if (!(op2 & 8)) return sf || !bit(w, 15);                             // logical (shifted register)
    if (!(op2 & 1)) return bits(w, 23, 22) != 3 && (sf || !bit(w, 15));   // add/sub (shifted register)
    return bits(w, 23, 22) == 0 && bits(w, 12, 10) <= 4;                  // add/sub (extended register)
  }
  if (op2 & 8) { // 3 source: madd/msub any size; the long and high forms 64-bit only
    if (bits(w, 30, 29) != 0) return false;
    switch (bits(w, 23, 21)) {
    case 0: return true;
    case 1: case 5: return sf;               // smaddl/smsubl, umaddl/umsubl
    case 2: case 6: return sf && !bit(w, 15); // smulh, umulh
    default: return false;
    }
  }
  switch (op2) {
  case 0:
    if (op3 == 0) return true;                                                             // adc, sbc
    if ((op3 & 0x1f) == 1) return sf && !op0 && s && !bit(w, 4);                           // rmif
    if ((op3 & 0xf) == 2) return !sf && !op0 && s && bits(w, 20, 15) == 0 && bits(w, 4, 0) == 0xd; // setf8/16
    return false;
  case 2: return s && !bit(w, 10) && !bit(w, 4); // ccmn, ccmp (register, immediate)
  case 4: return !s && bits(w, 11, 10) < 2;      // csel, csinc, csinv, csneg
  case 6:
    if (!op0) { // 2 source
      if (s) return sf && op3 == 0; // subps
      switch (op3) {
      case 0: case 4: case 5: case 12: return sf;                              // subp, irg, gmi, pacga
      case 2: case 3: case 8: case 9: case 10: case 11: case 24: case 25: case 26: case 27: return true;
      case 16: case 17: case 18: case 20: case 21: case 22: return !sf;         // crc32(c) b/h/w
      case 19: case 23: return sf;                                             // crc32(c) x
      default: return false;
      }
    }
    if (s) return false; // 1 source
    if (bits(w, 20, 16) == 0) return op3 <= 2 || (op3 >= 4 && op3 <= 8) || (op3 == 3 && sf); // rbit .. abs
    if (bits(w, 20, 16) == 1 && sf) return op3 <= 7 || (op3 <= 17 && bits(w, 9, 5) == 31); // pac*/aut*, *z*, xpac*
    return false;
  default: return false;
  }
}

// ---- branches, exception generation, system (op0 = 101x) ------------------

bool exception_gen(const D &d) {
  const uint32_t w = d.w, opc = bits(w, 23, 21), imm16 = bits(w, 20, 5), op2 = bits(w, 4, 2), ll = bits(w, 1, 0);
  if (op2 != 0) return false;
  struct E {
    uint32_t opc, ll;
    const char *name, *mn;
    Flow flow;
  };
  static const E kE[] = {
      {0, 1, "SVC", "svc", Flow::None},   {0, 2, "HVC", "hvc", Flow::Trap},         {0, 3, "SMC", "smc", Flow::Trap},
      {1, 0, "BRK", "brk", Flow::Trap},   {2, 0, "HLT", "hlt", Flow::Trap},         {3, 0, "TCANCEL", "tcancel", Flow::None},
      {5, 1, "DCPS1", "dcps1", Flow::Trap}, {5, 2, "DCPS2", "dcps2", Flow::Trap}, {5, 3, "DCPS3", "dcps3", Flow::Trap},
  };
  for (const E &e : kE) {
    if (e.opc != opc || e.ll != ll) continue;
    d.ok(e.name, e.flow);
    if (e.opc == 3) { // tcancel is a transactional-memory instruction: it may store (LLVM: mayLoad/mayStore)
      d.o->may_load = d.o->may_store = true;
    }
    const bool dcps = e.opc == 5;
    d.text(e.mn, dcps && imm16 == 0 ? "" : "#" + hex(imm16));
    return true;
  }
  return false;
}

bool branch_reg(const D &d) {
  const uint32_t w = d.w, opc = bits(w, 24, 21), op2 = bits(w, 20, 16), op3 = bits(w, 15, 10), rn = bits(w, 9, 5),
                 op4 = bits(w, 4, 0);
  if (op2 != 31) return false;
  Insn &o = *d.o;
  // op3 000000: the plain forms (op4 0); 000010 / 000011: the pointer-
  // authenticating A / B key forms (op4 = Rm for opc 1000/1001, else 11111).
  const bool plain = op3 == 0 && op4 == 0, pac = op3 == 2 || op3 == 3, key_b = op3 == 3;
  switch (opc) {
  case 0: // br / braaz / brabz
  case 1: // blr / blraaz / blrabz
    if (plain) {
      d.ok(opc == 0 ? "BR" : "BLR", opc == 0 ? Flow::IndirectJump : Flow::IndirectCall);
      d.text(opc == 0 ? "br" : "blr", xr(rn));
    } else if (pac && op4 == 31) {
      static const char *const kN[2][2] = {{"BRAAZ", "BRABZ"}, {"BLRAAZ", "BLRABZ"}};
      static const char *const kM[2][2] = {{"braaz", "brabz"}, {"blraaz", "blrabz"}};
      d.ok(kN[opc][key_b], opc == 0 ? Flow::IndirectJump : Flow::IndirectCall);
      d.text(kM[opc][key_b], xr(rn));
    } else {
      return false;
    }
    o.rs1 = int(rn);
    o.reads_pc = opc == 1; // the link
    return true;
  case 2: // ret / retaa / retab
    if (plain) {
      d.ok("RET", Flow::Return);
      d.text("ret", rn == 30 ? "" : xr(rn));
      o.rs1 = int(rn);
      return true;
    }
    if (pac && rn == 31 && op4 == 31) {
      d.ok(key_b ? "RETAB" : "RETAA", Flow::Return);
      d.text(key_b ? "retab" : "retaa");
      o.rs1 = 30;
      return true;
    }
    return false;
  case 4: // eret / eretaa / eretab
    if (plain && rn == 31) {
      d.ok("ERET", Flow::Trap);
      d.text("eret");
      return true;
    }
    if (pac && rn == 31 && op4 == 31) {
      d.ok(key_b ? "ERETAB" : "ERETAA", Flow::Trap);
      d.text(key_b ? "eretab" : "eretaa");
      return true;
    }
    return false;
  case 5: // drps
    if (plain && rn == 31) {
      d.ok("DRPS", Flow::Trap);
      d.text("drps");
      return true;
    }
    return false;
  case 8: // braa / brab
  case 9: // blraa / blrab
    if (!pac) return false;
    {
      const bool link = opc == 9;
      static const char *const kN[2][2] = {{"BRAA", "BRAB"}, {"BLRAA", "BLRAB"}};
      static const char *const kM[2][2] = {{"braa", "brab"}, {"blraa", "blrab"}};
      d.ok(kN[link][key_b], link ? Flow::IndirectCall : Flow::IndirectJump);
      d.text(kM[link][key_b], xr(rn) + ", " + xr(op4, true));
      o.rs1 = int(rn);
      o.rs2 = int(op4);
      o.reads_pc = link;
    }
    return true;
  default: return false;
  }
}

bool branch_sys(const D &d) {
  const uint32_t w = d.w;
  Insn &o = *d.o;
  if ((w & 0x7c000000u) == 0x14000000u) { // b / bl: op 00101 imm26
    const bool link = bit(w, 31);
    d.ok(link ? "BL" : "B", link ? Flow::Call : Flow::Jump);
    d.branch_to(sext(bits(w, 25, 0), 26) * 4);
    d.text(link ? "bl" : "b", hex(o.target));
    return true;
  }
  if ((w & 0x7e000000u) == 0x34000000u) { // cbz / cbnz: sf 011010 op imm19 Rt
    const bool wide = bit(w, 31), nz = bit(w, 24);
    static const char *const kN[2][2] = {{"CBZW", "CBZX"}, {"CBNZW", "CBNZX"}};
    d.ok(kN[nz][wide], Flow::CondBranch);
    d.branch_to(sext(bits(w, 23, 5), 19) * 4);
    o.rs1 = int(bits(w, 4, 0));
    d.text(nz ? "cbnz" : "cbz", gr(bits(w, 4, 0), wide) + ", " + hex(o.target));
    return true;
  }
  if ((w & 0x7e000000u) == 0x36000000u) { // tbz / tbnz: b5 011011 op b40 imm14 Rt
    const bool wide = bit(w, 31), nz = bit(w, 24);
    static const char *const kN[2][2] = {{"TBZW", "TBZX"}, {"TBNZW", "TBNZX"}};
    d.ok(kN[nz][wide], Flow::CondBranch);
    d.branch_to(sext(bits(w, 18, 5), 14) * 4);
    o.rs1 = int(bits(w, 4, 0));
    o.test_bit = uint8_t(bit(w, 31) << 5 | bits(w, 23, 19));
    d.text(nz ? "tbnz" : "tbz", gr(bits(w, 4, 0), wide) + ", #" + std::to_string(o.test_bit) + ", " + hex(o.target));
    return true;
  }
  if ((w & 0xff000000u) == 0x54000000u) { // b.cond / bc.cond: 01010100 imm19 o0 cond
    const bool hinted = bit(w, 4);
    d.ok(hinted ? "BCcc" : "Bcc", Flow::CondBranch);
    d.branch_to(sext(bits(w, 23, 5), 19) * 4);
    o.cond = uint8_t(bits(w, 3, 0));
    d.text(std::string(hinted ? "bc." : "b.") + kCond[o.cond], hex(o.target));
    return true;
  }
  if ((w & 0xff000000u) == 0xd4000000u) return exception_gen(d);
  if ((w & 0xff800000u) == 0xd5000000u) return system_valid(w) && d.block("A64_SYSTEM"); // 0xd5000000-0xd57fffff
  if ((w & 0xfe000000u) == 0xd6000000u) return branch_reg(d);
  // 0x55 (b.cond with o1 = 1), 0x56/0x57, 0xd58-0xd5f, and bits 31:29 = 011 / 111.
  return false;
}

// ---- loads and stores (op0 = x1x0) ------------------------------------------

bool load_literal(const D &d) { // opc 011 V 00 imm19 Rt
  const uint32_t w = d.w, opc = bits(w, 31, 30), v = bit(w, 26), rt = bits(w, 4, 0);
  struct L {
    const char *name, *mn;
    char reg; // 'w' 'x' 's' 'd' 'q', 0: prfm
  };
  static const L kL[4][2] = {{{"LDRWl", "ldr", 'w'}, {"LDRSl", "ldr", 's'}},
                             {{"LDRXl", "ldr", 'x'}, {"LDRDl", "ldr", 'd'}},
                             {{"LDRSWl", "ldrsw", 'x'}, {"LDRQl", "ldr", 'q'}},
                             {{"PRFMl", "prfm", 0}, {nullptr, nullptr, 0}}};
  const L &l = kL[opc][v];
  if (!l.name) return false;
  Insn &o = *d.o;
  d.ok(l.name);
  o.imm = sext(bits(w, 23, 5), 19) * 4;
  o.mem_target = d.a + uint64_t(o.imm);
  o.reads_pc = true;
  o.may_load = l.reg != 0; // LLVM: prfm neither loads nor stores
  if (l.reg) o.rd = int(rt);
  std::string r;
  if (l.reg == 'w' || l.reg == 'x') r = gr(rt, l.reg == 'x');
  else if (l.reg) r = std::string(1, l.reg) + std::to_string(rt);
  else r = "#" + std::to_string(rt);
  d.text(l.mn, r + ", " + hex(o.mem_target));
  return true;
}

// size 001000 o2 L o1 Rs o0 Rt2 Rn Rt: exclusive, ordered, compare-and-swap.
bool exclusive_class(const D &d) {
  const uint32_t w = d.w, size = bits(w, 31, 30), o2 = bit(w, 23), l = bit(w, 22), o1 = bit(w, 21),
                 rs = bits(w, 20, 16), o0 = bit(w, 15), rt2 = bits(w, 14, 10), rn = bits(w, 9, 5), rt = bits(w, 4, 0);
  static const char kSize[4] = {'B', 'H', 'W', 'X'};
  Insn &o = *d.o;
  std::string name, mn;
  const bool x = size == 3;
  const std::string bh = size == 0 ? "b" : size == 1 ? "h" : "";
  const std::string mem = "[" + xr(rn, true) + "]";
  std::string ops;
  if (o2 == 0 && o1 == 0) { // exclusive register
    if (l == 0) {
      name = std::string(o0 ? "STLXR" : "STXR") + kSize[size];
      mn = std::string(o0 ? "stlxr" : "stxr") + bh;
      ops = wr(rs) + ", " + gr(rt, x) + ", " + mem;
      o.exclusive = 2;
    } else {
      if (rs != 31 || rt2 != 31) return false;
      name = std::string(o0 ? "LDAXR" : "LDXR") + kSize[size];
      mn = std::string(o0 ? "ldaxr" : "ldxr") + bh;
      ops = gr(rt, x) + ", " + mem;
      o.exclusive = 1;
    }
  } else if (o2 == 0 && size >= 2) { // exclusive pair
    const char *sz = x ? "X" : "W";
    if (l == 0) {
      name = std::string(o0 ? "STLXP" : "STXP") + sz;
      mn = o0 ? "stlxp" : "stxp";
      ops = wr(rs) + ", " + gr(rt, x) + ", " + gr(rt2, x) + ", " + mem;
      o.exclusive = 2;
    } else {
      if (rt == rt2) return false; // CONSTRAINED UNPREDICTABLE: LLVM soft-fails it
      name = std::string(o0 ? "LDAXP" : "LDXP") + sz;
      mn = o0 ? "ldaxp" : "ldxp";
      ops = gr(rt, x) + ", " + gr(rt2, x) + ", " + mem;
      o.exclusive = 1;
    }
  } else if (o2 == 0) { // casp (size 0: W, 1: X), A = L, L = o0
    if (rt2 != 31 || (rs & 1) || (rt & 1)) return false;
    const bool px = size == 1;
    name = std::string("CASP") + (l ? "A" : "") + (o0 ? "L" : "") + (px ? "X" : "W");
    mn = std::string("casp") + (l ? "a" : "") + (o0 ? "l" : "");
    ops = gr(rs, px) + ", " + gr(rs + 1, px) + ", " + gr(rt, px) + ", " + gr(rt + 1, px) + ", " + mem;
  } else if (o1 == 0) { // ordered: stllr / stlr / ldlar / ldar
    if (rs != 31 || rt2 != 31) return false;
    static const char *const kN[2][2] = {{"STLLR", "STLR"}, {"LDLAR", "LDAR"}};
    static const char *const kM[2][2] = {{"stllr", "stlr"}, {"ldlar", "ldar"}};
    name = std::string(kN[l][o0]) + kSize[size];
    mn = kM[l][o0] + bh;
    ops = gr(rt, x) + ", " + mem;
  } else { // cas
    if (rt2 != 31) return false;
    name = std::string("CAS") + (l ? "A" : "") + (o0 ? "L" : "") + kSize[size];
    mn = std::string("cas") + (l ? "a" : "") + (o0 ? "l" : "") + bh;
    ops = gr(rs, x) + ", " + gr(rt, x) + ", " + mem;
  }
  o.valid = true;
  o.length = 4;
  o.name = name;
  // LLVM: exclusives and cas both load and store; ldar/ldlar load; stlr/stllr store.
  const bool ordered = o2 == 1 && o1 == 0;
  o.may_load = !ordered || l;
  o.may_store = !ordered || !l;
  d.text(mn, ops);
  return true;
}

bool decode_word(const D &d) {
  const uint32_t w = d.w, op0 = bits(w, 28, 25);
  switch (op0) {
  case 0x0:
    if (bit(w, 31)) return d.block("A64_SME");
    if ((w >> 16) == 0) { // udf #imm16: permanently undefined
      d.ok("UDF", Flow::Trap);
      d.text("udf", "#" + std::to_string(w & 0xffff));
      return true;
    }
    return false;
  case 0x1:
  case 0x3: return false;
  case 0x2: return d.block("A64_SVE");
  case 0x8:
  case 0x9:
    if ((w & 0x1f000000u) == 0x10000000u) { // adr / adrp: op immlo 10000 immhi Rd
      Insn &o = *d.o;
      const bool page = bit(w, 31);
      const int64_t imm = sext(bits(w, 23, 5) << 2 | bits(w, 30, 29), 21);
      d.ok(page ? "ADRP" : "ADR");
      o.rd = int(bits(w, 4, 0));
      o.imm = page ? imm * 4096 : imm;
      o.mem_target = page ? (d.a & ~uint64_t(0xfff)) + uint64_t(o.imm) : d.a + uint64_t(o.imm);
      o.reads_pc = true;
      d.text(page ? "adrp" : "adr", xr(bits(w, 4, 0)) + ", " + hex(o.mem_target));
      return true;
    }
    return dp_imm_valid(w) && d.block("A64_DP_IMM");
  case 0xa:
  case 0xb: return branch_sys(d);
  case 0x4:
  case 0x6:
  case 0xc:
  case 0xe:
    if ((w & 0x3b000000u) == 0x18000000u) return load_literal(d);
    if ((w & 0x3f000000u) == 0x08000000u) return exclusive_class(d);
    return d.block("A64_LOAD_STORE");
  case 0x5:
  case 0xd: return dp_reg_valid(w) && d.block("A64_DP_REG");
  default: return d.block("A64_SIMD_FP"); // 0x7, 0xf
  }
}

struct BuiltinImpl final : mc::Decoder::Impl {
  bool decode(const uint8_t *bytes, size_t size, uint64_t address, Insn *out, bool with_text) const override {
    if (size < 4) return false;
    const uint32_t w = uint32_t(bytes[0]) | uint32_t(bytes[1]) << 8 | uint32_t(bytes[2]) << 16 |
                       uint32_t(bytes[3]) << 24;
    const D d{w, address, out, with_text};
    out->opcode = w; // the engine's opcode number: the word itself (opaque)
    return decode_word(d);
  }
};

} // namespace

std::unique_ptr<mc::Decoder::Impl> make_builtin_decoder(std::string_view features, std::string *error) {
  if (!features.empty() && features != "+all") {
    if (error)
      *error = "lp::mc: the built-in A64 decoder takes no features ('" + std::string(features) +
               "'): it decodes every extension's encodings (\"\" or \"+all\")";
    return nullptr;
  }
  auto im = std::make_unique<BuiltinImpl>();
  im->arch = mc::Arch::AARCH64;
  im->features = std::string(features);
  im->fixed_len = 4;
  return im;
}

} // namespace lp::aarch64
