// riscv64 relocator: every relocated segment is checked against the original
// instruction's semantics with a small interpreter of the instructions the
// relocator emits (lui/auipc/addi/addiw/slli/jal/jalr/branches); copied
// instructions must be byte-identical. Runs for every boundary of the rv64gc and
// rv64g sample functions, near and far copies, with and without a scratch register.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "mc/decoder.hpp"
#include "mc/relocate.hpp"
#include "riscv64/relocator.hpp"
#include "samples.hpp"

using namespace lp;
using mc::Flow;
using mc::RelocStatus;

namespace {

uint32_t get32(const uint8_t *p) { return uint32_t(p[0]) | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24; }
int64_t sx(uint64_t v, int bits) { return int64_t(v << (64 - bits)) >> (64 - bits); }

struct Regs {
  uint64_t x[32] = {};
  void set(int r, uint64_t v) {
    if (r > 0) x[r] = v;
  }
};

// Executes emitted 32-bit code from `pc` while it stays inside [lo, hi).
// Returns false on an instruction it does not model.
bool interp(const uint8_t *code, uint64_t base, uint64_t lo, uint64_t hi, uint64_t &pc, Regs &r, std::string &err) {
  for (int steps = 0; pc >= lo && pc < hi; ++steps) {
    if (steps > 64) {
      err = "runaway";
      return false;
    }
    const uint32_t w = get32(code + (pc - base));
    const unsigned opc = w & 0x7f, rd = (w >> 7) & 31, f3 = (w >> 12) & 7, rs1 = (w >> 15) & 31, rs2 = (w >> 20) & 31;
    const int64_t immi = sx(w >> 20, 12);
    switch (opc) {
    case 0x37: r.set(rd, uint64_t(sx(w & 0xfffff000, 32))); pc += 4; break;
    case 0x17: r.set(rd, pc + uint64_t(sx(w & 0xfffff000, 32))); pc += 4; break;
    case 0x13:
      if (f3 == 0) r.set(rd, r.x[rs1] + uint64_t(immi));
      else if (f3 == 1) r.set(rd, r.x[rs1] << ((w >> 20) & 63));
      else { err = "op-imm f3"; return false; }
      pc += 4;
      break;
    case 0x1b:
      if (f3 != 0) { err = "op-imm-32"; return false; }
      r.set(rd, uint64_t(sx(uint32_t(r.x[rs1] + uint64_t(immi)), 32)));
      pc += 4;
      break;
    case 0x6f: {
      const uint64_t off = ((w >> 31) & 1) << 20 | ((w >> 12) & 0xff) << 12 | ((w >> 20) & 1) << 11 | ((w >> 21) & 0x3ff) << 1;
      r.set(rd, pc + 4);
      pc += uint64_t(sx(off, 21));
      break;
    }
    case 0x67: {
      const uint64_t t = (r.x[rs1] + uint64_t(immi)) & ~uint64_t(1);
      r.set(rd, pc + 4);
      pc = t;
      break;
    }
    case 0x63: {
      const uint64_t off = ((w >> 31) & 1) << 12 | ((w >> 7) & 1) << 11 | ((w >> 25) & 0x3f) << 5 | ((w >> 8) & 0xf) << 1;
      const uint64_t a = r.x[rs1], b = r.x[rs2];
      bool t = false;
      switch (f3) {
      case 0: t = a == b; break;
      case 1: t = a != b; break;
      case 4: t = int64_t(a) < int64_t(b); break;
      case 5: t = int64_t(a) >= int64_t(b); break;
      case 6: t = a < b; break;
      case 7: t = a >= b; break;
      default: err = "branch f3"; return false;
      }
      pc = t ? pc + uint64_t(sx(off, 13)) : pc + 4;
      break;
    }
    default: err = "unmodelled opcode"; return false;
    }
  }
  return true;
}

// The original instruction's effect: register writes and the next pc.
void original(const mc::Insn &i, uint64_t pc, Regs &r, uint64_t &next) {
  next = pc + i.length;
  const std::string &n = i.name;
  if (n == "AUIPC") {
    r.set(i.rd, pc + uint64_t(sx(uint64_t(i.imm) << 12, 32)));
  } else if (i.flow == Flow::Jump || i.flow == Flow::Call) {
    r.set(i.rd, pc + i.length);
    next = i.target;
  } else if (n == "JALR" || n == "C_JALR") {
    const uint64_t t = (r.x[i.rs1] + uint64_t(n == "C_JALR" ? 0 : i.imm)) & ~uint64_t(1);
    r.set(i.rd, pc + i.length);
    next = t;
  } else if (i.flow == Flow::CondBranch) {
    const uint64_t a = r.x[i.rs1], b = r.x[i.rs2 < 0 ? 0 : i.rs2];
    bool t = false;
    if (n == "BEQ" || n == "C_BEQZ") t = a == b;
    else if (n == "BNE" || n == "C_BNEZ") t = a != b;
    else if (n == "BLT") t = int64_t(a) < int64_t(b);
    else if (n == "BGE") t = int64_t(a) >= int64_t(b);
    else if (n == "BLTU") t = a < b;
    else if (n == "BGEU") t = a >= b;
    if (t) next = i.target;
  }
}

// Checks relocation `r` of `in` against the originals, for several register files.
void check(const mc::Decoder &dec, const mc::RelocInput &in, const mc::Relocation &r, const std::string &what) {
  ASSERT_EQ(r.pc_map.size(), r.boundaries.size()) << what;
  std::mt19937_64 rng(42);
  for (size_t k = 0; k < r.boundaries.size(); ++k) {
    const uint32_t o = r.boundaries[k];
    const mc::Insn i = dec.decode(in.code + o, in.avail - o, in.site + o);
    ASSERT_TRUE(i.valid) << what;
    const uint32_t seg_lo = r.pc_map[k].ool_off;
    const uint32_t seg_hi = k + 1 < r.pc_map.size() ? r.pc_map[k + 1].ool_off : r.jump_back_off;
    const bool pcrel = i.reads_pc || i.has_target;
    if (!pcrel) {
      ASSERT_EQ(seg_hi - seg_lo, i.length) << what << " +" << o;
      EXPECT_EQ(std::memcmp(r.code.data() + seg_lo, in.code + o, i.length), 0) << what << " +" << o << " not a copy";
      continue;
    }
    // A jalr right after a displaced auipc of its base register (the `call`
    // idiom) runs with that register holding the auipc's value.
    int pre_reg = -1;
    uint64_t pre_val = 0;
    if (k > 0 && (i.name == "JALR" || i.name == "C_JALR")) {
      const uint32_t po = r.boundaries[k - 1];
      const mc::Insn p = dec.decode(in.code + po, in.avail - po, in.site + po);
      if (p.name == "AUIPC" && p.rd == i.rs1) {
        pre_reg = p.rd;
        pre_val = in.site + po + uint64_t(sx(uint64_t(p.imm) << 12, 32));
      }
    }
    for (int trial = 0; trial < 6; ++trial) {
      Regs a;
      for (int x = 1; x < 32; ++x) a.x[x] = rng() & 0xffffffffffull;
      if (pre_reg > 0) a.x[pre_reg] = pre_val;
      if (trial & 1 && i.rs2 >= 0 && i.rs1 >= 0) a.x[i.rs1] = a.x[i.rs2 < 0 ? 0 : i.rs2]; // equal operands
      if (trial == 2 && i.rs1 > 0 && i.rs1 != pre_reg) a.x[i.rs1] = 0;
      if (in.scratch_reg) a.x[in.scratch_reg] = 0xdead; // may be clobbered
      Regs b = a;
      uint64_t want_next;
      original(i, in.site + o, a, want_next);
      uint64_t pc = r.dest + seg_lo;
      std::string err;
      ASSERT_TRUE(interp(r.code.data(), r.dest, r.dest + seg_lo, r.dest + seg_hi, pc, b, err))
          << what << " +" << o << " '" << i.text << "': " << err;
      // Falling off the segment's end == the original's fall-through.
      uint64_t got_next = pc == r.dest + seg_hi ? in.site + o + i.length : pc;
      // A jump into the copy stands for the original boundary it maps.
      for (const auto &e : r.pc_map)
        if (pc == r.dest + e.ool_off && pc != r.dest + seg_hi) got_next = in.site + e.orig_off;
      EXPECT_EQ(got_next, want_next) << what << " +" << o << " '" << i.text << "' trial " << trial;
      for (int x = 1; x < 32; ++x) {
        if (unsigned(x) == in.scratch_reg) continue;
        EXPECT_EQ(b.x[x], a.x[x]) << what << " +" << o << " '" << i.text << "' x" << x;
      }
    }
  }
  // The jump back.
  if (!r.ends_in_control_transfer) {
    Regs z;
    uint64_t pc = r.dest + r.jump_back_off;
    std::string err;
    ASSERT_TRUE(interp(r.code.data(), r.dest, pc, r.dest + r.code.size(), pc, z, err)) << what << err;
    EXPECT_EQ(pc, in.site + r.displaced_len) << what;
  }
}

struct Flavour {
  const char *blob;
  const char *features;
};

} // namespace

class RiscvReloc : public ::testing::TestWithParam<Flavour> {};

TEST_P(RiscvReloc, EveryBoundaryNearFarScratch) {
  const Flavour fl = GetParam();
  auto dec = mc::Decoder::create("riscv64", fl.features);
  ASSERT_NE(dec, nullptr);
  const samples::Blob &b = *samples::blob(fl.blob);
  const uintptr_t base = 0x20000;
  int ok = 0, range = 0, other = 0;
  for (size_t f = 0; f < b.nfns; ++f) {
    const samples::SampleFn &s = b.fns[f];
    if (samples::is_data(s)) continue;
    std::vector<uint64_t> bounds;
    ASSERT_TRUE(dec->boundaries(b.code + s.offset, s.size, base + s.offset, &bounds));
    for (uint64_t site : bounds) {
      for (uint32_t min_len : {riscv64::kSiteJalLen, riscv64::kSiteFarLen}) {
        for (uint64_t dist : {0x80000ull, 0x1000000ull, 0x200000000ull}) {
          for (unsigned scratch : {0u, 31u}) {
            const uint32_t off = uint32_t(site - base);
            mc::RelocInput in;
            in.site = site;
            in.code = b.code + off;
            in.avail = s.offset + s.size - off;
            in.min_len = min_len;
            in.func_start = base + s.offset;
            in.func_code = b.code + s.offset;
            in.func_size = s.size;
            in.scratch_reg = scratch;
            const uintptr_t dest = site + dist;
            auto r = riscv64::relocate(*dec, in, dest);
            const std::string what = std::string(fl.blob) + " " + s.name + "+" + std::to_string(off - s.offset) +
                                     " min " + std::to_string(min_len) + " dist " + std::to_string(dist) +
                                     " scratch " + std::to_string(scratch);
            auto plan = riscv64::plan_relocation(*dec, in);
            if (!r.ok()) {
              if (r.status == RelocStatus::Range) {
                ++range;
                EXPECT_TRUE(plan.ok()) << what; // range depends on dest only
                EXPECT_TRUE(dist > 0x80000 && (scratch == 0 || dist > 0x7fffffff)) << what << ": " << r.reason;
              } else {
                ++other;
                if (getenv("LP_VERBOSE")) std::printf("%s: %s\n", what.c_str(), r.reason.c_str());
                EXPECT_EQ(plan.status, r.status) << what;
              }
              continue;
            }
            ++ok;
            EXPECT_GE(r.displaced_len, min_len);
            EXPECT_LE(r.code.size(), plan.max_code_size) << what;
            check(*dec, in, r, what);
          }
        }
      }
    }
  }
  std::printf("%s: %d relocated, %d out of range, %d refused\n", fl.blob, ok, range, other);
  EXPECT_GT(ok, 20);
  EXPECT_GT(range, 0);
  EXPECT_GT(other, 0);
}

INSTANTIATE_TEST_SUITE_P(Samples, RiscvReloc,
                         ::testing::Values(Flavour{"riscv64gc", "+c"}, Flavour{"riscv64g", "-c"},
                                           Flavour{"riscv64g", "+c"}),
                         [](const auto &info) {
                           return std::string(info.param.blob) + (info.param.features[0] == '+' ? "_Chart" : "_noC");
                         });

namespace {
std::unique_ptr<mc::Decoder> rv() { return mc::Decoder::create("riscv64", "+c"); }
mc::RelocInput raw(const std::vector<uint8_t> &code, uint32_t min_len, uintptr_t site = 0x10000) {
  mc::RelocInput in;
  in.site = site;
  in.code = code.data();
  in.avail = code.size();
  in.min_len = min_len;
  return in;
}
std::vector<mc::Insn> decode_all(const mc::Decoder &d, const mc::Relocation &r) {
  std::vector<mc::Insn> v;
  for (size_t o = 0; o < r.code.size();) {
    mc::Insn i = d.decode(r.code.data() + o, r.code.size() - o, r.dest + o);
    EXPECT_TRUE(i.valid);
    if (!i.valid) break;
    v.push_back(i);
    o += i.length;
  }
  return v;
}
} // namespace

TEST(RiscvRelocUnit, CompressedBranchExpanded) {
  auto d = rv();
  // c.beqz a0, +12 ; c.nop  at 0x10000 -> beq a0, zero, 0x1000c
  std::vector<uint8_t> code = {0x11, 0xc5, 0x01, 0x00, 0x01, 0x00};
  auto in = raw(code, 4);
  auto r = riscv64::relocate(*d, in, 0x10800);
  ASSERT_TRUE(r.ok()) << r.reason;
  auto v = decode_all(*d, r);
  ASSERT_EQ(v.size(), 3u); // beq (32-bit), c.nop, jal x0 back
  EXPECT_EQ(v[0].name, "BEQ");
  EXPECT_FALSE(v[0].compressed);
  EXPECT_EQ(v[0].target, 0x1000cu);
  EXPECT_EQ(r.displaced_len, 4u);
  EXPECT_EQ(v.back().name, "JAL");
  EXPECT_EQ(v.back().target, 0x10004u);
}

TEST(RiscvRelocUnit, BranchOutOfReachIsInverted) {
  auto d = rv();
  std::vector<uint8_t> code = {0x11, 0xc5, 0x01, 0x00}; // c.beqz a0, +12; c.nop
  auto r = riscv64::relocate(*d, raw(code, 4), 0x30000);
  ASSERT_TRUE(r.ok()) << r.reason;
  auto v = decode_all(*d, r);
  EXPECT_EQ(v[0].name, "BNE"); // inverted, skipping the jal
  EXPECT_EQ(v[0].target, 0x30008u);
  EXPECT_EQ(v[1].name, "JAL");
  EXPECT_EQ(v[1].rd, 0);
  EXPECT_EQ(v[1].target, 0x1000cu);
}

TEST(RiscvRelocUnit, CJExpandedToJal) {
  auto d = rv();
  std::vector<uint8_t> code = {0x01, 0x00, 0x19, 0xa0}; // c.nop; c.j +6
  auto r = riscv64::relocate(*d, raw(code, 4), 0x12000);
  ASSERT_TRUE(r.ok()) << r.reason;
  EXPECT_TRUE(r.ends_in_control_transfer);
  auto v = decode_all(*d, r);
  ASSERT_EQ(v.size(), 2u); // c.nop; jal x0 (no jump back after an unconditional jump)
  EXPECT_EQ(v[1].name, "JAL");
  EXPECT_EQ(v[1].target, 0x10008u);
}

TEST(RiscvRelocUnit, AuipcFarUsesLi) {
  auto d = rv();
  // auipc t1, 0x12345 ; jalr x0, 16(t1): ends in a jump, so a copy 8 GiB away works.
  std::vector<uint8_t> code = {0x17, 0x53, 0x34, 0x12, 0x67, 0x00, 0x03, 0x01};
  auto in = raw(code, 8);
  auto r = riscv64::relocate(*d, in, 0x200010000ull);
  ASSERT_TRUE(r.ok()) << r.reason;
  check(*d, in, r, "auipc-far");
  auto v = decode_all(*d, r);
  EXPECT_EQ(v.back().name, "JALR");
  EXPECT_EQ(v[0].name, "LUI"); // t1 = 0x12355000, materialised absolutely
}

TEST(RiscvRelocUnit, JalrSameRegNeedsScratch) {
  auto d = rv();
  std::vector<uint8_t> code = {0xe7, 0x80, 0xe0, 0x03}; // jalr ra, 62(ra)
  auto r = riscv64::relocate(*d, raw(code, 4), 0x10800);
  EXPECT_EQ(r.status, RelocStatus::Unsupported);
  EXPECT_EQ(r.lp_error(), -7); // LP_ERELOC
  auto in = raw(code, 4);
  in.scratch_reg = 31;
  auto r2 = riscv64::relocate(*d, in, 0x10800);
  ASSERT_TRUE(r2.ok()) << r2.reason;
  check(*d, in, r2, "jalr-scratch");
}

TEST(RiscvRelocUnit, CallPairFused) {
  auto d = rv();
  // call r_twice: auipc ra, 0; jalr ra, 62(ra) -> ra = original return, jal x0 target
  std::vector<uint8_t> code = {0x97, 0x00, 0x00, 0x00, 0xe7, 0x80, 0xe0, 0x03};
  auto in = raw(code, 8, 0x100e);
  auto r = riscv64::relocate(*d, in, 0x80000);
  ASSERT_TRUE(r.ok()) << r.reason;
  check(*d, in, r, "call-pair");
  auto v = decode_all(*d, r);
  ASSERT_GE(v.size(), 2u);
  const auto &j = v[v.size() - 2];
  EXPECT_EQ(j.name, "JAL");
  EXPECT_EQ(j.target, 0x100eu + 62);
}

TEST(RiscvRelocUnit, CallInsideRange) {
  auto d = rv();
  std::vector<uint8_t> code = {0x82, 0x97, 0x01, 0x00, 0x01, 0x00}; // c.jalr a5; c.nop; c.nop
  auto r = riscv64::relocate(*d, raw(code, 4), 0x10800);
  EXPECT_EQ(r.status, RelocStatus::CallInside) << r.reason;
  EXPECT_EQ(r.lp_error(), -5);
}

TEST(RiscvRelocUnit, MisalignedDest) {
  auto g = mc::Decoder::create("riscv64", "-c");
  std::vector<uint8_t> code = {0x13, 0, 0, 0};
  EXPECT_EQ(riscv64::relocate(*g, raw(code, 4), 0x10802).status, RelocStatus::Invalid);
}

TEST(RiscvRelocUnit, SiteJump) {
  uint8_t out[8];
  ASSERT_TRUE(riscv64::encode_site_jump(0x10000, 0x90000, 6, 0, out));
  auto d = rv();
  auto j = d->decode(out, 4, 0x10000);
  EXPECT_EQ(j.name, "JAL");
  EXPECT_EQ(j.rd, 0);
  EXPECT_EQ(j.target, 0x90000u);
  EXPECT_EQ(out[4], 0);
  EXPECT_FALSE(riscv64::encode_site_jump(0x10000, 0x10000000, 8, 0, out)); // beyond jal
  ASSERT_TRUE(riscv64::encode_site_jump(0x10000, 0x10000000, 8, 5, out));  // auipc t0 + jalr x0
  EXPECT_EQ(d->decode(out, 4, 0x10000).name, "AUIPC");
}

TEST(RelocDispatch, ArchNeutralEntryPoints) {
  auto d = rv();
  std::vector<uint8_t> code = {0x11, 0xc5, 0x01, 0x00}; // c.beqz a0, +12; c.nop
  auto in = raw(code, mc::site_jump_len(mc::Arch::RISCV64));
  auto a = mc::relocate(*d, in, 0x30000);
  auto b = riscv64::relocate(*d, in, 0x30000);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a.code, b.code);
  EXPECT_EQ(mc::plan_relocation(*d, in).max_code_size, riscv64::plan_relocation(*d, in).max_code_size);
  uint8_t j1[8], j2[8];
  ASSERT_TRUE(mc::encode_site_jump(mc::Arch::RISCV64, 0x10000, 0x30000, 4, 0, j1));
  ASSERT_TRUE(riscv64::encode_site_jump(0x10000, 0x30000, 4, 0, j2));
  EXPECT_EQ(std::memcmp(j1, j2, 4), 0);
  EXPECT_EQ(mc::site_jump_len(mc::Arch::X86_64), 5u);
  EXPECT_EQ(mc::site_jump_len(mc::Arch::RISCV64, true), 8u);
}
