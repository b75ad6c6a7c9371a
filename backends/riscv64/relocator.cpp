// RISC-V 64 relocator. See relocator.hpp.
#include "relocator.hpp"

#include "mc/displace.hpp"

namespace lp::riscv64 {
namespace {

using mc::Flow;
using mc::Insn;
using mc::RelocStatus;

// --- encoders (own copies: this file must not depend on the backend's objects) --
uint32_t r_auipc(unsigned rd, int32_t hi20) { return (uint32_t(hi20) << 12) | (rd << 7) | 0x17; }
uint32_t r_lui(unsigned rd, int32_t hi20) { return (uint32_t(hi20) << 12) | (rd << 7) | 0x37; }
uint32_t r_itype(uint32_t opc, unsigned f3, unsigned rd, unsigned rs1, int32_t imm) {
  return (uint32_t(imm & 0xfff) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | opc;
}
uint32_t r_addi(unsigned rd, unsigned rs1, int32_t imm) { return r_itype(0x13, 0, rd, rs1, imm); }
uint32_t r_addiw(unsigned rd, unsigned rs1, int32_t imm) { return r_itype(0x1b, 0, rd, rs1, imm); }
uint32_t r_slli(unsigned rd, unsigned rs1, unsigned sh) { return r_itype(0x13, 1, rd, rs1, int32_t(sh & 63)); }
uint32_t r_jalr(unsigned rd, unsigned rs1, int32_t imm) { return r_itype(0x67, 0, rd, rs1, imm); }
uint32_t r_jal(unsigned rd, int32_t off) {
  const uint32_t u = uint32_t(off);
  return ((u >> 20) & 1) << 31 | ((u >> 1) & 0x3ff) << 21 | ((u >> 11) & 1) << 20 | ((u >> 12) & 0xff) << 12 |
         (rd << 7) | 0x6f;
}
uint32_t r_branch(unsigned f3, unsigned rs1, unsigned rs2, int32_t off) {
  const uint32_t u = uint32_t(off);
  return ((u >> 12) & 1) << 31 | ((u >> 5) & 0x3f) << 25 | (rs2 << 20) | (rs1 << 15) | (f3 << 12) |
         ((u >> 1) & 0xf) << 8 | ((u >> 11) & 1) << 7 | 0x63;
}

bool in_jal(int64_t d) { return d >= -(1 << 20) && d < (1 << 20) && (d & 1) == 0; }
bool in_branch(int64_t d) { return d >= -(1 << 12) && d < (1 << 12) && (d & 1) == 0; }
bool in_auipc(int64_t d) {
  if (d < -(int64_t(1) << 40) || d > (int64_t(1) << 40)) return false; // (no overflow below)
  const int64_t hi = (d + 0x800) >> 12;
  return hi >= -(1LL << 19) && hi < (1LL << 19);
}
int64_t sext12(int64_t v) { return int64_t(uint64_t(v) << 52) >> 52; }

// li rd, v: lui/addiw for 32-bit values, else the recursive shift form.
void li(std::vector<uint32_t> &o, unsigned rd, int64_t v) {
  if (v >= INT32_MIN && v <= INT32_MAX) {
    const int64_t hi = (v + 0x800) >> 12;
    const int64_t lo = v - (hi << 12);
    if (hi != 0) {
      o.push_back(r_lui(rd, int32_t(hi & 0xfffff)));
      if (lo != 0) o.push_back(r_addiw(rd, rd, int32_t(lo)));
    } else {
      o.push_back(r_addi(rd, 0, int32_t(lo)));
    }
    return;
  }
  const int64_t lo = sext12(v);
  // Modular arithmetic: (hi << 12) + lo == v mod 2^64 even when v - lo wraps.
  int64_t hi = int64_t(uint64_t(v) - uint64_t(lo)) >> 12;
  unsigned shift = 12;
  while ((hi & 1) == 0) {
    hi >>= 1;
    ++shift;
  }
  li(o, rd, hi);
  o.push_back(r_slli(rd, rd, shift));
  if (lo != 0) o.push_back(r_addi(rd, rd, int32_t(lo)));
}

// --- items ------------------------------------------------------------------
enum class Kind : uint8_t { Copy, Auipc, Jal, Jalr, Branch };

struct Item {
  Kind kind = Kind::Copy;
  const Insn *insn = nullptr;
  const uint8_t *bytes = nullptr;
  uint32_t orig_off = 0;
  unsigned f3 = 0;           // Branch: funct3 (beq 0, bne 1, blt 4, bge 5, bltu 6, bgeu 7)
  int rd = 0, rs1 = 0, rs2 = 0;
  int64_t imm = 0;
  uint64_t value = 0;        // Auipc: the value rd gets
  uint64_t target = 0;       // Jal/Branch: original target
  bool internal = false;
  uint32_t internal_off = 0;
  int form = 0;              // 0 near; 1 farther; 2 farthest (needs scratch)
};

struct Ctx {
  const mc::RelocInput &in;
  uintptr_t dest;
  unsigned scratch;
  uint64_t back;
  // RelocInput::trap_exits: where far jumps became exit traps (pc, target), this
  // layout iteration.
  std::vector<mc::ExitTrap> *exits;
};

// Materialise `v` into rd at pc `p` (form 0: auipc+addi; 1: li).
void materialise(std::vector<uint32_t> &o, unsigned rd, uint64_t v, uint64_t p, int form) {
  const int64_t d = int64_t(v - p);
  if (form == 0 && in_auipc(d)) {
    const int64_t hi = (d + 0x800) >> 12;
    const int64_t lo = d - (hi << 12);
    o.push_back(r_auipc(rd, int32_t(hi & 0xfffff)));
    o.push_back(r_addi(rd, rd, int32_t(lo)));
  } else {
    li(o, rd, int64_t(v));
  }
}

// Jump to t from pc p: form 0 jal x0; form 1/2 auipc scratch + jalr x0; with
// `exits` and neither in reach, an exit trap (four zero bytes: c.unimp twice on
// a C hart, an illegal word without C) whose handler continues at t.
// Returns false if unreachable.
bool jump_to(std::vector<uint32_t> &o, uint64_t t, uint64_t p, unsigned scratch,
             std::vector<mc::ExitTrap> *exits = nullptr) {
  const int64_t d = int64_t(t - p);
  if (in_jal(d)) {
    o.push_back(r_jal(0, int32_t(d)));
    return true;
  }
  if (exits && (!scratch || !in_auipc(d))) {
    exits->push_back({p, t});
    o.push_back(0);
    return true;
  }
  if (!scratch || !in_auipc(d)) return false;
  const int64_t hi = (d + 0x800) >> 12;
  const int64_t lo = d - (hi << 12);
  o.push_back(r_auipc(scratch, int32_t(hi & 0xfffff)));
  o.push_back(r_jalr(0, scratch, int32_t(lo)));
  return true;
}

// Emits item `it` at pc `p` into `o` (32-bit words), or the raw compressed copy
// into `raw`. Returns false with `why` when unreachable (Range).
bool emit_item(Item &it, uint64_t p, uint64_t tgt, const Ctx &cx, std::vector<uint32_t> &o, std::string &why) {
  const uint64_t orig_next = cx.in.site + it.orig_off + it.insn->length;
  switch (it.kind) {
  case Kind::Copy: return true; // handled by the caller (raw bytes)
  case Kind::Auipc:
    if (!in_auipc(int64_t(it.value - p))) it.form = 1; // sticky: keeps the layout monotone
    materialise(o, unsigned(it.rd), it.value, p, it.form);
    return true;
  case Kind::Jal: {
    if (it.rd != 0) materialise(o, unsigned(it.rd), orig_next, p, 0);
    const uint64_t pj = p + 4 * o.size();
    if (!jump_to(o, tgt, pj, cx.scratch && unsigned(it.rd) != cx.scratch ? cx.scratch : 0, cx.exits)) {
      why = "target " + mc::hex_addr(tgt) + " of '" + it.insn->text + "' is beyond jal's +-1 MiB from the copy" +
            (cx.scratch ? "" : " (no scratch register)");
      return false;
    }
    return true;
  }
  case Kind::Jalr: {
    unsigned base = unsigned(it.rs1);
    if (it.rd == it.rs1) {
      o.push_back(r_addi(cx.scratch, base, 0)); // mv scratch, rs1 (checked in classify)
      base = cx.scratch;
    }
    materialise(o, unsigned(it.rd), orig_next, p + 4 * o.size(), 0);
    o.push_back(r_jalr(0, base, int32_t(it.imm)));
    return true;
  }
  case Kind::Branch: {
    const int64_t d = int64_t(tgt - p);
    if (it.form == 0 && in_branch(d)) {
      o.push_back(r_branch(it.f3, unsigned(it.rs1), unsigned(it.rs2), int32_t(d)));
      return true;
    }
    // Inverted branch over the long jump (sticky, see above).
    it.form = 1;
    std::vector<uint32_t> j;
    if (!jump_to(j, tgt, p + 4, cx.scratch, cx.exits)) {
      why = "target " + mc::hex_addr(tgt) + " of '" + it.insn->text + "' is beyond jal's +-1 MiB from the copy" +
            (cx.scratch ? "" : " (no scratch register)");
      return false;
    }
    o.push_back(r_branch(it.f3 ^ 1, unsigned(it.rs1), unsigned(it.rs2), int32_t(4 + 4 * j.size())));
    o.insert(o.end(), j.begin(), j.end());
    return true;
  }
  }
  return true;
}

RelocStatus classify(const mc::Displaced &d, const mc::RelocInput &in, std::vector<Item> &items, std::string &why) {
  uint32_t off = 0;
  for (const Insn &insn : d.insns) {
    Item it;
    it.insn = &insn;
    it.bytes = in.code + off;
    it.orig_off = off;
    it.rd = insn.rd < 0 ? 0 : insn.rd;
    it.rs1 = insn.rs1 < 0 ? 0 : insn.rs1;
    it.rs2 = insn.rs2 < 0 ? 0 : insn.rs2;
    it.imm = insn.imm;
    const std::string &n = insn.name;
    auto unsupported = [&](const char *what) {
      why = std::string(what) + ": '" + insn.text + "' at " + mc::hex_addr(insn.address);
      return RelocStatus::Unsupported;
    };
    if (n == "AUIPC") {
      if (it.rd == 0) {
        it.kind = Kind::Copy; // a hint: no effect
      } else {
        it.kind = Kind::Auipc;
        const int64_t add = int64_t(int32_t(uint32_t(insn.imm) << 12));
        it.value = insn.address + uint64_t(add);
      }
    } else if (n == "JAL" || n == "C_J" || n == "C_JAL") {
      it.kind = Kind::Jal;
      it.target = insn.target;
    } else if ((n == "JALR" || n == "C_JALR") && !items.empty() && items.back().kind == Kind::Auipc &&
               items.back().rd == it.rs1 && it.rs1 != 0 && it.rd == it.rs1) {
      // The `call` idiom, both halves displaced: auipc rX; jalr rX, imm(rX). The
      // link overwrites the base, but rX is known statically, so the jalr is a
      // direct call to value + imm. (With rd != rs1 the plain path works at any
      // distance: rX holds the exact value.)
      it.kind = Kind::Jal;
      it.target = (items.back().value + uint64_t(n == "C_JALR" ? 0 : insn.imm)) & ~uint64_t(1);
    } else if (n == "JALR" || n == "C_JALR") {
      if (it.rd == 0) {
        it.kind = Kind::Copy;
      } else {
        it.kind = Kind::Jalr;
        if (n == "C_JALR") it.imm = 0;
        if (it.rd == it.rs1 && (!in.scratch_reg || in.scratch_reg == unsigned(it.rd)))
          return unsupported("jalr with rd == rs1 needs a scratch register");
      }
    } else if (insn.flow == Flow::CondBranch) {
      it.kind = Kind::Branch;
      it.target = insn.target;
      if (n == "BEQ" || n == "C_BEQZ") it.f3 = 0;
      else if (n == "BNE" || n == "C_BNEZ") it.f3 = 1;
      else if (n == "BLT") it.f3 = 4;
      else if (n == "BGE") it.f3 = 5;
      else if (n == "BLTU") it.f3 = 6;
      else if (n == "BGEU") it.f3 = 7;
      else return unsupported("unknown branch");
      if (n == "C_BEQZ" || n == "C_BNEZ") it.rs2 = 0;
    } else if (insn.reads_pc) {
      return unsupported("reads the pc in a way we cannot move");
    }
    if (it.kind == Kind::Jal || it.kind == Kind::Branch) {
      if (!insn.has_target && !(n == "JALR" || n == "C_JALR")) return unsupported("no target");
      if (it.target >= in.site && it.target < in.site + d.len) {
        it.internal = true;
        it.internal_off = uint32_t(it.target - in.site);
        bool boundary = false;
        uint32_t o = 0;
        for (const Insn &j : d.insns) {
          if (o == it.internal_off) boundary = true;
          o += j.length;
        }
        if (!boundary) return unsupported("branch into the middle of a displaced instruction");
      }
    }
    items.push_back(it);
    off += insn.length;
  }
  return RelocStatus::Ok;
}

constexpr uint32_t kMaxItemSize = 4 + 4 + 4 * 8 + 8; // mv + li(8 insns) + auipc/jalr
constexpr uint32_t kMaxBack = 8;

mc::Relocation run(const mc::Decoder &dec, const mc::RelocInput &in, uintptr_t dest, bool emit) {
  mc::Relocation r;
  if (dec.arch() != mc::Arch::RISCV64) {
    r.reason = "decoder is not riscv64";
    return r;
  }
  if (in.scratch_reg != 0 && in.scratch_reg != 1 && (in.scratch_reg < 5 || in.scratch_reg > 31)) {
    r.reason = "scratch register must be ra or x5..x31";
    return r;
  }
  mc::Displaced d = mc::select_displaced(dec, in);
  r = mc::base_relocation(d, in);
  r.dest = dest;
  r.status = d.status;
  r.reason = d.reason;
  if (!r.ok()) return r;
  std::vector<Item> items;
  r.status = classify(d, in, items, r.reason);
  if (!r.ok()) return r;
  r.max_code_size = uint32_t(items.size()) * kMaxItemSize + kMaxBack;
  if (!emit) return r;
  if (dest % dec.min_insn_align() != 0) {
    r.status = RelocStatus::Invalid;
    r.reason = "dest " + mc::hex_addr(dest) + " is misaligned";
    return r;
  }

  std::vector<mc::ExitTrap> exits;
  Ctx cx{in, dest, in.scratch_reg, in.site + d.len, in.trap_exits ? &exits : nullptr};
  const bool need_back = !d.ends_in_transfer;
  // Layout to a fixed point. Sizes depend on pcs (auipc reach, branch reach),
  // forms only grow, so this terminates; internal targets use the previous
  // iteration's offsets and are always near.
  const size_t n_items = items.size();
  if (n_items == 0 || n_items > 32) { // min_len <= 32 bytes: at most 16 instructions
    r.status = RelocStatus::Invalid;
    r.reason = "no instructions to relocate";
    return r;
  }
  std::vector<uint32_t> ool(n_items + 1, 0);
  std::vector<std::vector<uint8_t>> out(n_items);
  std::vector<uint8_t> back_bytes;
  for (int iter = 0; iter < 10; ++iter) {
    uint32_t o = 0;
    bool changed = false;
    std::vector<uint32_t> nool(items.size() + 1, 0);
    exits.clear();
    for (size_t i = 0; i < items.size(); ++i) {
      Item &it = items[i];
      nool[i] = o;
      out[i].clear();
      if (it.kind == Kind::Copy) {
        out[i].assign(it.bytes, it.bytes + it.insn->length);
      } else {
        uint64_t tgt = it.target;
        if (it.internal) {
          for (size_t j = 0; j < items.size(); ++j)
            if (items[j].orig_off == it.internal_off) tgt = dest + ool[j];
        }
        std::vector<uint32_t> w;
        std::string why;
        if (!emit_item(it, dest + o, tgt, cx, w, why)) {
          r.status = RelocStatus::Range;
          r.reason = why;
          return r;
        }
        for (uint32_t x : w)
          for (int k = 0; k < 4; ++k) out[i].push_back(uint8_t(x >> (8 * k)));
      }
      o += uint32_t(out[i].size());
    }
    nool[items.size()] = o;
    if (nool != ool) changed = true;
    ool = nool;
    back_bytes.clear();
    if (need_back) {
      std::vector<uint32_t> w;
      if (!jump_to(w, cx.back, dest + o, cx.scratch, cx.exits)) {
        r.status = RelocStatus::Range;
        r.reason = "the jump back to " + mc::hex_addr(cx.back) + " is beyond jal's +-1 MiB from the copy at " +
                   mc::hex_addr(dest) + (cx.scratch ? "" : " (no scratch register)");
        return r;
      }
      for (uint32_t x : w)
        for (int k = 0; k < 4; ++k) back_bytes.push_back(uint8_t(x >> (8 * k)));
    }
    if (!changed) break;
    if (iter == 9) {
      r.status = RelocStatus::Range;
      r.reason = "layout of the copy did not converge";
      return r;
    }
  }
  for (size_t i = 0; i < items.size(); ++i) {
    r.pc_map.push_back({items[i].orig_off, ool[i]});
    r.code.insert(r.code.end(), out[i].begin(), out[i].end());
  }
  r.jump_back_off = uint32_t(r.code.size());
  r.code.insert(r.code.end(), back_bytes.begin(), back_bytes.end());
  for (const mc::ExitTrap &e : exits) r.exits.push_back({uint32_t(e.pc - dest), e.target});
  r.status = RelocStatus::Ok;
  return r;
}

} // namespace

mc::Relocation plan_relocation(const mc::Decoder &dec, const mc::RelocInput &in) { return run(dec, in, 0, false); }

mc::Relocation relocate(const mc::Decoder &dec, const mc::RelocInput &in, uintptr_t dest) {
  return run(dec, in, dest, true);
}

bool encode_site_jump(uintptr_t site, uintptr_t target, uint32_t displaced_len, unsigned scratch_reg,
                      uint8_t *out) {
  if (displaced_len < kSiteJalLen || (site & 1) || (target & 1)) return false;
  std::vector<uint32_t> w;
  const int64_t d = int64_t(target - site);
  if (in_jal(d)) {
    w.push_back(r_jal(0, int32_t(d)));
  } else if (scratch_reg && displaced_len >= kSiteFarLen && jump_to(w, target, site, scratch_reg)) {
  } else {
    return false;
  }
  uint32_t off = 0;
  for (uint32_t x : w)
    for (int k = 0; k < 4; ++k) out[off++] = uint8_t(x >> (8 * k));
  for (; off < displaced_len; ++off) out[off] = 0;
  return true;
}

} // namespace lp::riscv64
