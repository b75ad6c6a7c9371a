// AArch64 relocator. See relocator.hpp.
#include "relocator.hpp"

#include <cstdint>

#include "asm.hpp"
#include "encoding.hpp"
#include "mc/displace.hpp"

namespace lp::aarch64 {
namespace {

using mc::Flow;
using mc::Insn;
using mc::RelocStatus;

// What the one displaced instruction becomes (relocator.hpp).
enum class Kind : uint8_t {
  Copy,     // unchanged
  Nop,      // prfm literal, ldr xzr literal
  Adr,      // adr / adrp: materialise the value
  LdrGpr,   // ldr w/x, ldrsw literal: address into Rt, load through it
  LdrFpSD,  // ldr s/d literal: through x16, parked in the dead destination
  LdrQ,     // ldr q literal: through x16, spilled below sp
  B,        // b
  Bl,       // bl: x30 = site + 4, b
  Cond,     // b.cond, bc.cond, cb(n)z, tb(n)z
  Blr,      // blr, blraa(z), blrab(z): x30 = site + 4, br / bra*
};

// The most words each form takes (Asm::la: at most MOVZ + 3 MOVK).
constexpr uint32_t kLaMax = 4;
uint32_t max_words(Kind k) {
  switch (k) {
  case Kind::Copy:
  case Kind::Nop:
  case Kind::B: return 1;
  case Kind::Adr: return kLaMax;
  case Kind::LdrGpr: return kLaMax + 1;
  case Kind::LdrFpSD: return 1 + kLaMax + 4;
  case Kind::LdrQ: return 1 + kLaMax + 2;
  case Kind::Bl:
  case Kind::Blr: return kLaMax + 1;
  case Kind::Cond: return 2;
  }
  return 1;
}
// Whether the copy falls through to a jump back.
bool falls_through(Kind k, const mc::Displaced &d) {
  return !d.ends_in_transfer && k != Kind::Bl && k != Kind::Blr;
}

struct Item {
  Kind kind = Kind::Copy;
  const Insn *insn = nullptr;
  uint32_t word = 0;
  uint64_t value = 0;  // Adr: the value; Ldr*: the literal's address
  uint64_t target = 0; // B, Bl, Cond: the original target
  // Cond: which branch and its operands.
  enum class C : uint8_t { BCond, Cbz, Tbz } c = C::BCond;
  bool hinted = false, wide = false, nonzero = false;
  unsigned cond = 0, rt = 0, bit = 0;
  // Blr: base and modifier; pac: 0 none (blr), 1 braa/brab xn, xm, 2 braaz/brabz.
  unsigned rn = 0, rm = 0, pac = 0;
  bool key_b = false;
};

bool one_of(const std::string &n, std::initializer_list<const char *> names) {
  for (const char *x : names)
    if (n == x) return true;
  return false;
}

std::string at(const Insn &i) { return "'" + i.text + "' at " + mc::hex_addr(i.address); }

bool is_bti_landing_pad(uint32_t w) {
  return (w & 0xffffff3fu) == 0xd503241fu /* bti, bti c/j/jc */ || w == kPaciasp || w == 0xd503237fu /* pacibsp */;
}

// The exclusive sequence check over the containing function (relocator.hpp).
RelocStatus check_exclusive(const mc::Decoder &dec, const mc::RelocInput &in, const Insn &site, std::string &why) {
  if (site.exclusive) {
    why = "exclusive sequence: " + at(site) + " is a load/store exclusive (the patch would clear the exclusive "
          "monitor its sequence needs)";
    return RelocStatus::Unsupported;
  }
  if (!in.func_code || in.func_start % 4 != 0) return RelocStatus::Ok;
  uint64_t prev_addr = 0, next_addr = 0;
  int prev = 0, next = 0; // Insn::exclusive of the nearest before / after, 0 none
  Insn i;
  for (size_t off = 0; off + 4 <= in.func_size; off += 4) {
    const uint64_t a = in.func_start + off;
    if (a == in.site) continue;
    if (!dec.decode(in.func_code + off, 4, a, &i, false) || !i.exclusive) continue;
    if (a < in.site) {
      prev = i.exclusive;
      prev_addr = a;
    } else if (!next) {
      next = i.exclusive;
      next_addr = a;
      break;
    }
  }
  auto named = [&](uint64_t a) {
    Insn t;
    dec.decode(in.func_code + (a - in.func_start), 4, a, &t, true);
    return at(t);
  };
  if (prev == 1) {
    why = "exclusive sequence: the site " + mc::hex_addr(in.site) + " follows the load-exclusive " + named(prev_addr) +
          (next == 2 ? " and precedes the store-exclusive " + named(next_addr) : std::string()) +
          " (the patch would clear the exclusive monitor: the store-exclusive would never succeed)";
    return RelocStatus::Unsupported;
  }
  if (next == 2) {
    why = "exclusive sequence: the site " + mc::hex_addr(in.site) + " precedes the store-exclusive " +
          named(next_addr) + " (the patch would clear the exclusive monitor: it would never succeed)";
    return RelocStatus::Unsupported;
  }
  return RelocStatus::Ok;
}

RelocStatus classify(const mc::Decoder &dec, const mc::Displaced &d, const mc::RelocInput &in, Item &it,
                     std::string &why) {
  const Insn &insn = d.insns.front();
  it.insn = &insn;
  it.word = get32(in.code);
  const std::string &n = insn.name;
  auto unsupported = [&](const std::string &what) {
    why = what + ": " + at(insn);
    return RelocStatus::Unsupported;
  };
  if (RelocStatus s = check_exclusive(dec, in, insn, why); s != RelocStatus::Ok) return s;
  if (is_bti_landing_pad(it.word))
    return unsupported("BTI landing pad (an indirect branch to it would fault on a BTI-guarded page once patched)");
  if (n == "ADR" || n == "ADRP") {
    it.kind = insn.rd == 31 ? Kind::Copy : Kind::Adr; // adr xzr writes nothing
    it.value = insn.mem_target;
  } else if (one_of(n, {"LDRWl", "LDRXl", "LDRSWl"})) {
    it.kind = insn.rd == 31 ? Kind::Nop : Kind::LdrGpr;
    it.rt = unsigned(insn.rd);
    it.value = insn.mem_target;
  } else if (n == "LDRSl" || n == "LDRDl") {
    it.kind = Kind::LdrFpSD;
    it.rt = unsigned(insn.rd);
    it.value = insn.mem_target;
  } else if (n == "LDRQl") {
    it.kind = Kind::LdrQ;
    it.rt = unsigned(insn.rd);
    it.value = insn.mem_target;
  } else if (n == "PRFMl") {
    it.kind = Kind::Nop;
  } else if (n == "B") {
    it.kind = Kind::B;
    it.target = insn.target;
  } else if (n == "BL") {
    it.kind = Kind::Bl;
    it.target = insn.target;
  } else if (n == "Bcc" || n == "BCcc") {
    it.kind = Kind::Cond;
    it.c = Item::C::BCond;
    it.hinted = n == "BCcc";
    it.cond = insn.cond;
    it.target = insn.target;
  } else if (one_of(n, {"CBZW", "CBZX", "CBNZW", "CBNZX"})) {
    it.kind = Kind::Cond;
    it.c = Item::C::Cbz;
    it.wide = n.back() == 'X';
    it.nonzero = n[2] == 'N';
    it.rt = unsigned(insn.rs1);
    it.target = insn.target;
  } else if (one_of(n, {"TBZW", "TBZX", "TBNZW", "TBNZX"})) {
    it.kind = Kind::Cond;
    it.c = Item::C::Tbz;
    it.nonzero = n[2] == 'N';
    it.rt = unsigned(insn.rs1);
    it.bit = insn.test_bit;
    it.target = insn.target;
  } else if (one_of(n, {"BLR", "BLRAA", "BLRAB", "BLRAAZ", "BLRABZ"})) {
    it.kind = Kind::Blr;
    it.rn = unsigned(insn.rs1);
    it.pac = n == "BLR" ? 0 : (n.back() == 'Z' ? 2 : 1);
    it.key_b = n.size() >= 5 && n[4] == 'B'; // BLRA[AB], BLRA[AB]Z
    if (it.pac == 1) it.rm = unsigned(insn.rs2);
    if (it.rn == kLr || (it.pac == 1 && it.rm == kLr))
      return unsupported(std::string("a call through x30 cannot move: its link (x30 = the return address) ") +
                         (it.rn == kLr ? "is also its target" : "is also its modifier"));
  } else if (insn.reads_pc || insn.has_target) {
    return unsupported("reads the pc in a way the relocator does not know");
  }
  if (it.kind == Kind::Cond || it.kind == Kind::B || it.kind == Kind::Bl) {
    if (!insn.has_target) return unsupported("no target");
  }
  return RelocStatus::Ok;
}

// Emits the copy for `it` at a.pc(). false (and why) when a jump does not reach.
struct Emitter {
  const mc::RelocInput &in;
  uintptr_t dest;
  std::vector<mc::ExitTrap> *exits; // trap_exits: where exit traps went (offsets from dest)

  // B to `t` from the current pc; an exit trap when out of reach and allowed.
  bool jump(Asm &a, uint64_t t, std::string &why, const char *what) const {
    if (a.b(t)) return true;
    if (exits) {
      exits->push_back({uint64_t(a.pc() - dest), t});
      a.w(trap_insn());
      return true;
    }
    why = std::string(what) + " " + mc::hex_addr(t) + " is beyond b's +-128 MiB from the copy at " +
          mc::hex_addr(a.pc());
    return false;
  }

  bool item(Asm &a, const Item &it, std::string &why) const {
    const uint64_t ret = in.site + 4; // the original return address / next instruction
    switch (it.kind) {
    case Kind::Copy: a.w(it.word); return true;
    case Kind::Nop: a.w(kNop); return true;
    case Kind::Adr: a.la(unsigned(it.insn->rd), it.value); return true;
    case Kind::LdrGpr: {
      a.la(it.rt, it.value);
      const std::string &n = it.insn->name;
      a.w(n == "LDRWl" ? enc_ldr_w(it.rt, it.rt, 0) : n == "LDRSWl" ? enc_ldrsw(it.rt, it.rt, 0) : enc_ldr(it.rt, it.rt, 0));
      return true;
    }
    case Kind::LdrFpSD: {
      const bool s = it.insn->name == "LDRSl";
      a.w(enc_fmov_d_x(it.rt, kX16));
      a.la(kX16, it.value);
      a.w(s ? enc_ldr_w(kX16, kX16, 0) : enc_ldr(kX16, kX16, 0));
      a.w(enc_ins_d1_x(it.rt, kX16));
      a.w(enc_fmov_x_d(kX16, it.rt));
      a.w(s ? enc_dup_s_s2(it.rt, it.rt) : enc_dup_d_d1(it.rt, it.rt));
      return true;
    }
    case Kind::LdrQ:
      a.w(enc_str_pre(kX16, kSp, -16));
      a.la(kX16, it.value);
      a.w(enc_ldr_q(it.rt, kX16, 0));
      a.w(enc_ldr_post(kX16, kSp, 16));
      return true;
    case Kind::B: return jump(a, it.target, why, ("target of " + at(*it.insn) + ":").c_str());
    case Kind::Bl:
      a.la(kLr, ret);
      return jump(a, it.target, why, ("target of " + at(*it.insn) + ":").c_str());
    case Kind::Blr:
      a.la(kLr, ret);
      a.w(it.pac == 0 ? enc_br(it.rn) : it.pac == 1 ? enc_bra(it.rn, it.rm, it.key_b) : enc_braz(it.rn, it.key_b));
      return true;
    case Kind::Cond: {
      const int64_t off = int64_t(it.target - a.pc());
      const bool always = it.c == Item::C::BCond && it.cond >= 14; // al, nv
      auto enc = [&](int64_t o, bool invert) -> uint32_t {
        switch (it.c) {
        case Item::C::BCond: return enc_b_cond(invert ? it.cond ^ 1 : it.cond, o, it.hinted);
        case Item::C::Cbz: return enc_cbz(it.rt, o, it.wide, it.nonzero != invert);
        case Item::C::Tbz: return enc_tbz(it.rt, it.bit, o, it.nonzero != invert);
        }
        return 0;
      };
      const bool near = it.c == Item::C::Tbz ? fits_imm14(off) : fits_imm19(off);
      if (near) {
        a.w(enc(off, false));
        return true;
      }
      const std::string what = "target of " + at(*it.insn) + ":";
      if (always) return jump(a, it.target, why, what.c_str());
      // The inverted condition skips the B: not taken falls through past it.
      a.w(enc(8, true));
      return jump(a, it.target, why, what.c_str());
    }
    }
    return true;
  }

  // The whole copy: the item, then the jump back when it falls through.
  bool copy(Asm &a, const Item &it, bool back, std::string &why) const {
    if (!item(a, it, why)) return false;
    if (back && !jump(a, in.site + 4, why, "the jump back to")) return false;
    return true;
  }
};

mc::Relocation run(const mc::Decoder &dec, const mc::RelocInput &in, uintptr_t dest, bool emit) {
  mc::Relocation r;
  r.site = in.site;
  r.dest = dest;
  if (dec.arch() != mc::Arch::AARCH64) {
    r.reason = "decoder is not aarch64";
    return r;
  }
  mc::Displaced d = mc::select_displaced(dec, in);
  r = mc::base_relocation(d, in);
  r.dest = dest;
  r.status = d.status;
  r.reason = d.reason;
  if (!r.ok()) return r;
  if (d.insns.size() != 1 || d.len != 4) { // min_len <= 4: one word
    r.status = RelocStatus::Invalid;
    r.reason = "an A64 site jump displaces exactly one instruction (min_len " + std::to_string(in.min_len) +
               " needs " + std::to_string(d.insns.size()) + ")";
    return r;
  }
  Item it;
  r.status = classify(dec, d, in, it, r.reason);
  if (!r.ok()) return r;
  const bool back = falls_through(it.kind, d);
  r.ends_in_control_transfer = !back;
  r.max_code_size = 4 * (max_words(it.kind) + (back ? 1 : 0));
  if (!emit) return r;
  if (dest % 4 != 0) {
    r.status = RelocStatus::Invalid;
    r.reason = "dest " + mc::hex_addr(dest) + " is misaligned";
    return r;
  }
  // Measure (dry run), then write exactly that many bytes.
  Emitter em{in, dest, nullptr};
  std::vector<mc::ExitTrap> exits;
  if (in.trap_exits) em.exits = &exits;
  Asm dry(nullptr, dest, SIZE_MAX);
  if (!em.copy(dry, it, back, r.reason)) {
    r.status = RelocStatus::Range;
    return r;
  }
  if (dry.size() > r.max_code_size) { // the plan's bound is the contract with the trampoline pool
    r.status = RelocStatus::Invalid;
    r.reason = "internal: the copy of " + at(*it.insn) + " needs " + std::to_string(dry.size()) +
               " bytes, more than the planned " + std::to_string(r.max_code_size);
    return r;
  }
  exits.clear();
  r.code.assign(dry.size(), 0);
  Asm a(r.code.data(), dest, r.code.size());
  std::string why;
  em.copy(a, it, back, why); // the same code as the dry run: it succeeds and fits
  r.jump_back_off = back ? uint32_t(r.code.size() - 4) : uint32_t(r.code.size());
  r.pc_map.push_back({0, 0});
  r.exits = exits;
  r.status = RelocStatus::Ok;
  return r;
}

} // namespace

mc::Relocation plan_relocation(const mc::Decoder &dec, const mc::RelocInput &in) { return run(dec, in, 0, false); }

mc::Relocation relocate(const mc::Decoder &dec, const mc::RelocInput &in, uintptr_t dest) {
  return run(dec, in, dest, true);
}

bool encode_site_jump(uintptr_t site, uintptr_t target, uint32_t displaced_len, uint8_t *out) {
  if (displaced_len != kSiteJumpLen) return false;
  return encode_entry_jump(site, target, out);
}

} // namespace lp::aarch64
