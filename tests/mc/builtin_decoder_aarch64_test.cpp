// The built-in A64 decoder (backends/aarch64/decoder.cpp, the aarch64 cross
// build's) against LLVM MC's AArch64 disassembler (Decoder::create on the host,
// features "+all"), held to what backends/aarch64/decoder.hpp promises:
//   * in the exact classes (every pc-relative, control-flow, exclusive and
//     exception-generating class, udf) the two agree on everything: validity,
//     name, flow, target, reads_pc, mem_target, registers, imm, cond, test_bit,
//     exclusive, may_load/may_store and the is_* summary;
//   * the words it rejects LLVM rejects;
//   * every other word is in the block the header's bit patterns name, with
//     flow None, no pc use, no target, not exclusive; in the blocks with exact
//     validity (dp-immediate, dp-register, system) valid exactly when LLVM
//     decodes it; in the others valid, and LLVM either rejects it (counted and
//     printed per block: the documented disagreement) or decodes it as an
//     instruction outside the exact classes.
// Sweeps: every exact class over its immediate fields exhaustively (registers
// cycled through all 32 values alongside) and over its register fields
// exhaustively (with edge and random immediates), the whole branch-register
// and exception-generation opcode spaces, and 8 million random words (fixed
// seed), at addresses near 0, near 2^64 (targets wrap) and random.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>

#include "mc/decoder.hpp"

using namespace lp::mc;

namespace {

// The names of the exact classes (decoder.hpp, promise 1).
bool exact_name(const std::string &n) {
  static const std::set<std::string> k = [] {
    std::set<std::string> s = {"B",      "BL",     "Bcc",    "BCcc",   "CBZW",   "CBZX",   "CBNZW",   "CBNZX",
                               "TBZW",   "TBZX",   "TBNZW",  "TBNZX",  "BR",     "BLR",    "RET",     "BRAA",
                               "BRAAZ",  "BRAB",   "BRABZ",  "BLRAA",  "BLRAAZ", "BLRAB",  "BLRABZ",  "RETAA",
                               "RETAB",  "ERET",   "ERETAA", "ERETAB", "DRPS",   "SVC",    "HVC",     "SMC",
                               "BRK",    "HLT",    "TCANCEL", "DCPS1", "DCPS2",  "DCPS3",  "UDF",     "ADR",
                               "ADRP",   "LDRWl",  "LDRXl",  "LDRSWl", "LDRSl",  "LDRDl",  "LDRQl",   "PRFMl"};
    for (const char *b : {"LDXR", "LDAXR", "STXR", "STLXR", "LDAR", "STLR", "LDLAR", "STLLR", "CAS", "CASA", "CASL",
                          "CASAL"})
      for (const char *z : {"B", "H", "W", "X"}) s.insert(std::string(b) + z);
    for (const char *b : {"LDXP", "LDAXP", "STXP", "STLXP", "CASP", "CASPA", "CASPL", "CASPAL"})
      for (const char *z : {"W", "X"}) s.insert(std::string(b) + z);
    return s;
  }();
  return k.count(n) != 0;
}

// The blocks whose validity is exact (decoder.hpp, promise 3).
bool exact_validity_block(const std::string &b) {
  return b == "A64_DP_IMM" || b == "A64_DP_REG" || b == "A64_SYSTEM";
}

// The block a word belongs to by decoder.hpp's table (promise 3), or "" when
// it is in an exact class or an exactly rejected region.
std::string block_of(uint32_t w) {
  const uint32_t op0 = (w >> 25) & 15;
  if (op0 == 0) return (w >> 31) ? "A64_SME" : "";
  if (op0 == 2) return "A64_SVE";
  if (op0 == 8 || op0 == 9) return (w & 0x1f000000u) == 0x10000000u ? "" : "A64_DP_IMM";
  if (op0 == 0xa || op0 == 0xb) return (w >> 23) == (0xd5000000u >> 23) ? "A64_SYSTEM" : "";
  if (op0 == 4 || op0 == 6 || op0 == 0xc || op0 == 0xe)
    return (w & 0x3b000000u) == 0x18000000u || (w & 0x3f000000u) == 0x08000000u ? "" : "A64_LOAD_STORE";
  if (op0 == 5 || op0 == 0xd) return "A64_DP_REG";
  if (op0 == 7 || op0 == 0xf) return "A64_SIMD_FP";
  return ""; // 0001, 0011
}

std::string show(const Insn &i) {
  char b[400];
  std::snprintf(b, sizeof b,
                "valid=%d len=%u name=%s flow=%s target=%d:0x%llx reads_pc=%d mem_target=0x%llx load=%d store=%d "
                "rd=%d rs1=%d rs2=%d imm=%lld cond=%u bit=%u excl=%u",
                i.valid, i.length, i.name.c_str(), flow_name(i.flow), i.has_target,
                static_cast<unsigned long long>(i.target), i.reads_pc, static_cast<unsigned long long>(i.mem_target),
                i.may_load, i.may_store, i.rd, i.rs1, i.rs2, static_cast<long long>(i.imm), i.cond, i.test_bit,
                i.exclusive);
  return b;
}

bool same(const Insn &a, const Insn &b) {
  return a.valid == b.valid && a.length == b.length && a.name == b.name && a.flow == b.flow &&
         a.has_target == b.has_target && a.target == b.target && a.reads_pc == b.reads_pc &&
         a.mem_target == b.mem_target && a.may_load == b.may_load && a.may_store == b.may_store && a.rd == b.rd &&
         a.rs1 == b.rs1 && a.rs2 == b.rs2 && a.imm == b.imm && a.cond == b.cond && a.test_bit == b.test_bit &&
         a.exclusive == b.exclusive && a.is_branch == b.is_branch && a.is_call == b.is_call &&
         a.is_return == b.is_return && a.is_indirect == b.is_indirect && a.is_conditional == b.is_conditional;
}

// A block word as the header promises it: only these fields are set.
bool plain_block_word(const Insn &b) {
  return b.valid && b.length == 4 && b.flow == Flow::None && !b.has_target && !b.reads_pc && b.mem_target == 0 &&
         !b.may_load && !b.may_store && b.rd == -1 && b.rs1 == -1 && b.rs2 == -1 && b.imm == 0 && b.cond == 0 &&
         b.test_bit == 0 && b.exclusive == 0;
}

struct Differ {
  std::unique_ptr<Decoder> llvm, ours;
  uint64_t compared = 0, mismatches = 0;
  std::map<std::string, uint64_t> block_words, block_llvm_rejects;
  std::map<std::string, uint64_t> rejected; // words both reject, by block ("" outside the blocks)

  Differ() {
    std::string err;
    llvm = Decoder::create("aarch64", "", &err);
    EXPECT_NE(llvm, nullptr) << err;
    ours = Decoder::create_builtin("aarch64", "", &err);
    EXPECT_NE(ours, nullptr) << err;
  }

  void fail(uint32_t w, uint64_t address, const Insn &a, const char *why) {
    if (++mismatches > 20) return;
    Insn b;
    const uint8_t by[4] = {uint8_t(w), uint8_t(w >> 8), uint8_t(w >> 16), uint8_t(w >> 24)};
    ours->decode(by, 4, address, &b, true);
    Insn at;
    llvm->decode(by, 4, address, &at, true);
    ADD_FAILURE() << why << ": 0x" << std::hex << w << " at 0x" << address << std::dec << "\n  llvm:     " << show(a)
                  << " | " << at.text << "\n  built-in: " << show(b) << " | " << b.text;
  }

  void check(uint32_t w, uint64_t address) {
    const uint8_t by[4] = {uint8_t(w), uint8_t(w >> 8), uint8_t(w >> 16), uint8_t(w >> 24)};
    Insn a, b;
    llvm->decode(by, 4, address, &a, false);
    ours->decode(by, 4, address, &b, false);
    ++compared;
    const std::string blk = block_of(w);
    if (b.valid && b.name.compare(0, 4, "A64_") == 0) {
      if (b.name != blk) return fail(w, address, a, "block word in the wrong block");
      if (!plain_block_word(b)) return fail(w, address, a, "block word with fields set");
      ++block_words[b.name];
      if (!a.valid) {
        if (exact_validity_block(b.name)) return fail(w, address, a, "a block with exact validity accepts what LLVM rejects");
        ++block_llvm_rejects[b.name];
        return;
      }
      if (exact_name(a.name) || a.flow != Flow::None || a.reads_pc || a.has_target || a.exclusive)
        return fail(w, address, a, "LLVM decodes an exact-class instruction the built-in calls a block word");
      return;
    }
    if (!blk.empty() && (b.valid || !exact_validity_block(blk)))
      return fail(w, address, a, "a block word not decoded as its block");
    if (!b.valid) ++rejected[blk];
    if (!same(a, b)) return fail(w, address, a, "exact class disagrees");
    if (b.valid && !exact_name(b.name)) return fail(w, address, a, "exact name not in the header's list");
  }

  uint64_t block_rejects() const {
    uint64_t n = 0;
    for (auto &p : block_llvm_rejects) n += p.second;
    return n;
  }
};

// Addresses: mostly random, some near 0 and near 2^64 so targets wrap.
uint64_t pick_address(std::mt19937_64 &rng) {
  const uint64_t r = rng() & ~uint64_t(3);
  switch (r % 3) {
  case 0: return (r >> 8) & 0xffffc;
  case 1: return ~uint64_t(0xfffff) | ((r >> 8) & 0xffffc);
  default: return r;
  }
}

struct Timer {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); }
};

// Immediates worth trying in a field of `n` bits: edges and a few randoms.
std::vector<uint32_t> edge_values(unsigned n, std::mt19937_64 &rng) {
  const uint32_t m = n >= 32 ? ~0u : (1u << n) - 1;
  std::vector<uint32_t> v = {0, 1, 2, m, m - 1, m >> 1, (m >> 1) + 1};
  for (int i = 0; i < 9; ++i) v.push_back(uint32_t(rng()) & m);
  return v;
}

} // namespace

// b, bl, b.cond, bc.cond, cbz/cbnz, tbz/tbnz, adr/adrp, ldr literal: every
// immediate value (registers cycled), then every register (edge immediates).
TEST(BuiltinDecoderA64, PcRelativeClassesMatchLlvmExhaustively) {
  ASSERT_TRUE(Decoder::uses_llvm("aarch64")) << "this host test needs LLVM MC as the reference";
  Differ d;
  ASSERT_TRUE(d.llvm && d.ours);
  std::mt19937_64 rng(0xa64'0001);
  Timer t;
  // b / bl: imm26, every value, once (the opcode is the parity of its two
  // 13-bit halves, so each opcode sees every value of each half).
  for (uint32_t i = 0; i < (1u << 26); ++i)
    d.check(((i ^ (i >> 13)) & 1 ? 0x94000000u : 0x14000000u) | i, pick_address(rng));
  for (uint32_t op : {0x14000000u, 0x94000000u})
    for (uint32_t v : edge_values(26, rng)) d.check(op | v, pick_address(rng));
  // b.cond / bc.cond: imm19 x cond x o0, all; o1 = 1 (rejected) sampled.
  for (uint32_t i = 0; i < (1u << 24); ++i) d.check(0x54000000u | i, pick_address(rng));
  for (uint32_t c = 0; c < 32; ++c)
    for (uint32_t v : edge_values(19, rng)) d.check(0x54000000u | v << 5 | c, pick_address(rng));
  for (int i = 0; i < 100000; ++i) d.check(0x55000000u | (uint32_t(rng()) & 0xffffff), pick_address(rng));
  // cbz/cbnz (sf, op) and tbz/tbnz (b5, op): every immediate with a cycling Rt.
  for (uint32_t base : {0x34000000u, 0x35000000u, 0xb4000000u, 0xb5000000u}) {
    for (uint32_t imm = 0; imm < (1u << 19); ++imm) d.check(base | imm << 5 | ((imm * 7) & 31), pick_address(rng));
    for (uint32_t rt = 0; rt < 32; ++rt)
      for (uint32_t v : edge_values(19, rng)) d.check(base | v << 5 | rt, pick_address(rng));
  }
  for (uint32_t base : {0x36000000u, 0x37000000u, 0xb6000000u, 0xb7000000u})
    for (uint32_t b40 = 0; b40 < 32; ++b40) {
      for (uint32_t imm = 0; imm < (1u << 14); ++imm)
        d.check(base | b40 << 19 | imm << 5 | ((imm * 5 + b40) & 31), pick_address(rng));
      for (uint32_t rt = 0; rt < 32; ++rt)
        for (uint32_t v : edge_values(14, rng)) d.check(base | b40 << 19 | v << 5 | rt, pick_address(rng));
    }
  // adr / adrp: immlo:immhi (21 bits) with a cycling Rd; every Rd.
  for (uint32_t op : {0x10000000u, 0x90000000u}) {
    for (uint32_t imm = 0; imm < (1u << 21); ++imm)
      d.check(op | (imm & 3) << 29 | (imm >> 2) << 5 | ((imm * 11) & 31), pick_address(rng));
    for (uint32_t rd = 0; rd < 32; ++rd)
      for (uint32_t v : edge_values(21, rng)) d.check(op | (v & 3) << 29 | (v >> 2) << 5 | rd, pick_address(rng));
  }
  // ldr literal: opc x V (opc 11 with V = 1 rejected), every imm19, every Rt.
  for (uint32_t opc = 0; opc < 4; ++opc)
    for (uint32_t v = 0; v < 2; ++v) {
      const uint32_t base = opc << 30 | 0x18000000u | v << 26;
      for (uint32_t imm = 0; imm < (1u << 19); imm += (opc == 3 && v == 1 ? 97 : 1))
        d.check(base | imm << 5 | ((imm * 13) & 31), pick_address(rng));
      for (uint32_t rt = 0; rt < 32; ++rt)
        for (uint32_t x : edge_values(19, rng)) d.check(base | x << 5 | rt, pick_address(rng));
    }
  EXPECT_EQ(d.mismatches, 0u);
  EXPECT_EQ(d.block_words.size(), 0u) << "no block word in these classes";
  std::printf("[ pc-relative classes: %llu words compared in %.1f s ]\n", static_cast<unsigned long long>(d.compared),
              t.seconds());
}

// Branch (register), exception generation, udf and the reserved block, the
// exclusive / ordered / compare-and-swap class: their whole opcode spaces.
TEST(BuiltinDecoderA64, BranchRegisterExceptionAndExclusiveClassesMatchLlvm) {
  Differ d;
  ASSERT_TRUE(d.llvm && d.ours);
  std::mt19937_64 rng(0xa64'0002);
  Timer t;
  // 1101011 opc op2 op3 Rn op4: every opc/op2/op3/op4 with a cycling Rn, and
  // every Rn for op2 = 11111 (where the instructions are).
  for (uint32_t i = 0; i < (1u << 20); ++i) {
    const uint32_t opc = i >> 16, op2 = (i >> 11) & 31, op3 = (i >> 5) & 63, op4 = i & 31;
    d.check(0xd6000000u | opc << 21 | op2 << 16 | op3 << 10 | ((i * 7) & 31) << 5 | op4, pick_address(rng));
  }
  for (uint32_t opc = 0; opc < 16; ++opc)
    for (uint32_t op3 = 0; op3 < 64; ++op3)
      for (uint32_t rn = 0; rn < 32; ++rn)
        for (uint32_t op4 = 0; op4 < 32; ++op4)
          d.check(0xd61f0000u | opc << 21 | op3 << 10 | rn << 5 | op4, pick_address(rng));
  // 11010100 opc imm16 op2 LL: every opc/op2/LL with edge immediates; every
  // imm16 for each valid opc/LL.
  for (uint32_t k = 0; k < 256; ++k)
    for (uint32_t imm : edge_values(16, rng)) d.check(0xd4000000u | (k >> 5) << 21 | imm << 5 | (k & 31), pick_address(rng));
  for (uint32_t k : {0x01u, 0x02u, 0x03u, 0x20u, 0x40u, 0x60u, 0xa1u, 0xa2u, 0xa3u})
    for (uint32_t imm = 0; imm < 0x10000; ++imm) d.check(0xd4000000u | (k >> 5) << 21 | imm << 5 | (k & 31), 0x1000);
  // udf (0x0000xxxx) and the rest of the reserved block (bit 31 = 0, op0 = 0000).
  for (uint32_t imm = 0; imm < 0x10000; ++imm) d.check(imm, 0x1000);
  for (int i = 0; i < 300000; ++i) d.check(uint32_t(rng()) & 0x61ffffffu, pick_address(rng));
  // size 001000 o2 L o1 Rs o0 Rt2 Rn Rt: every size/o2/L/o1/o0 x Rs x Rt2 x Rt, Rn cycling.
  for (uint32_t k = 0; k < 64; ++k) {
    const uint32_t size = k >> 4, o2 = (k >> 3) & 1, l = (k >> 2) & 1, o1 = (k >> 1) & 1, o0 = k & 1;
    for (uint32_t rs = 0; rs < 32; ++rs)
      for (uint32_t rt2 = 0; rt2 < 32; ++rt2)
        for (uint32_t rt = 0; rt < 32; ++rt) {
          const uint32_t rn = (rs + rt2 * 3 + rt * 5) & 31;
          d.check(size << 30 | 0x08000000u | o2 << 23 | l << 22 | o1 << 21 | rs << 16 | o0 << 15 | rt2 << 10 | rn << 5 |
                      rt,
                  pick_address(rng));
        }
  }
  EXPECT_EQ(d.mismatches, 0u);
  std::printf("[ branch-register, exception, reserved and exclusive classes: %llu words in %.1f s ]\n",
              static_cast<unsigned long long>(d.compared), t.seconds());
}

// 8 million random words, and 200 000 in each block, with the documented
// disagreement (block words LLVM rejects) counted per block.
TEST(BuiltinDecoderA64, RandomWordsMatchLlvmWhereThePromiseSays) {
  Differ d;
  ASSERT_TRUE(d.llvm && d.ours);
  std::mt19937_64 rng(0xa64'0003);
  Timer t;
  for (int i = 0; i < 8000000; ++i) d.check(uint32_t(rng()), pick_address(rng));
  // Each block by its bit pattern (block_of), and the system block densely.
  for (uint32_t op0 = 0; op0 < 16; ++op0)
    for (int i = 0; i < 100000; ++i) d.check((uint32_t(rng()) & ~(15u << 25)) | op0 << 25, pick_address(rng));
  // The blocks with exact validity: the system block whole (0xd5000000-
  // 0xd57fffff, 8 M words), dp-immediate and dp-register 1 M each.
  for (uint32_t x = 0; x < (1u << 23); ++x) d.check(0xd5000000u | x, pick_address(rng));
  for (int i = 0; i < 1000000; ++i) {
    d.check((uint32_t(rng()) & ~(7u << 26)) | 4u << 26, pick_address(rng));                 // op0 = 100x
    d.check((uint32_t(rng()) & ~(7u << 25)) | 5u << 25, pick_address(rng));                 // op0 = x101
  }
  EXPECT_EQ(d.mismatches, 0u);
  std::printf("[ %llu random words in %.1f s; block words LLVM rejects (decoder.hpp, promise 3):\n",
              static_cast<unsigned long long>(d.compared), t.seconds());
  for (auto &p : d.block_words)
    std::printf("    %-26s %9llu of %9llu (%.4f%%)\n", p.first.c_str(),
                static_cast<unsigned long long>(d.block_llvm_rejects[p.first]),
                static_cast<unsigned long long>(p.second), 100.0 * double(d.block_llvm_rejects[p.first]) / double(p.second));
  for (auto &p : d.rejected)
    std::printf("    rejected by both, %-15s %9llu\n", p.first.empty() ? "outside blocks" : p.first.c_str(),
                static_cast<unsigned long long>(p.second));
  std::printf("  ]\n");
  for (const char *b : {"A64_SME", "A64_SVE", "A64_DP_IMM", "A64_SYSTEM", "A64_LOAD_STORE", "A64_DP_REG", "A64_SIMD_FP"})
    EXPECT_GT(d.block_words[b], 0u) << b;
  for (const char *b : {"A64_DP_IMM", "A64_SYSTEM", "A64_DP_REG"}) {
    EXPECT_EQ(d.block_llvm_rejects[b], 0u) << b;
    EXPECT_GT(d.rejected[b], 0u) << b << ": words both engines reject";
  }
}

// Words worth naming: the encodings the relocator rewrites, at a fixed pc.
TEST(BuiltinDecoderA64, NamedWords) {
  Differ d;
  ASSERT_TRUE(d.llvm && d.ours);
  const uint32_t words[] = {
      0x10000040, 0x90000001, 0xf0ffffe1, 0x58000042, 0x18000043, 0x98000044, 0x1c000045, 0x5c000046, 0x9c000047,
      0xd8000040, 0xdbffffe0, 0x14000002, 0x94000002, 0x17ffffff, 0x54000040, 0x5400004e, 0x5400004f, 0x54000051,
      0xb4000048, 0x35000049, 0xb608004a, 0x3718004b, 0xd61f0180, 0xd63f01a0, 0xd63f03c0, 0xd65f03c0, 0xd65f01c0,
      0xd71f09f0, 0xd63f0a3f, 0xd73f0bfe, 0xd65f0bff, 0xd65f0fff, 0xd69f03e0, 0xd6bf03e0, 0xd4200020, 0xd4400020,
      0x00000001, 0xd4000001, 0xd4000002, 0xd4000003, 0xd4a00001, 0xc85f7c20, 0xc8208861, 0x085ffc41, 0xc87f0441,
      0xc8dffc20, 0xc8a07c41, 0x48207c82, 0xd503201f, 0xd503245f, 0xd503233f, 0x8b020020, 0x4e208400, 0x04200000,
      0xc0800000, 0xd503305f, 0x00010000, 0x02000000, 0x06000000, 0x74000000, 0xd5800000, 0xffffffff,
  };
  for (uint32_t w : words)
    for (uint64_t addr : {uint64_t(0), uint64_t(0x1000), uint64_t(0x400ffc), ~uint64_t(3), uint64_t(1) << 63})
      d.check(w, addr);
  EXPECT_EQ(d.mismatches, 0u);
}

TEST(BuiltinDecoderA64, FeaturesAndTruncation) {
  std::string err;
  for (const char *bad : {"+sve", "-all", "+c", "x"}) {
    err.clear();
    EXPECT_EQ(Decoder::create_builtin("aarch64", bad, &err), nullptr) << bad;
    EXPECT_NE(err.find(std::string("'") + bad + "'"), std::string::npos) << err;
  }
  for (const char *ok : {"", "+all"}) ASSERT_NE(Decoder::create_builtin("aarch64", ok, &err), nullptr) << err;
  auto d = Decoder::create_builtin("arm64", "", &err);
  ASSERT_NE(d, nullptr) << err;
  EXPECT_EQ(d->arch(), Arch::AARCH64);
  EXPECT_EQ(d->min_insn_align(), 4u);
  EXPECT_EQ(d->fixed_insn_len(), 4u);
  EXPECT_FALSE(d->has_compressed());
  auto l = Decoder::create("aarch64", "", &err);
  ASSERT_NE(l, nullptr) << err;
  EXPECT_EQ(l->fixed_insn_len(), 4u);
  EXPECT_EQ(l->min_insn_align(), 4u);
  const uint8_t nop[4] = {0x1f, 0x20, 0x03, 0xd5};
  for (size_t n = 0; n < 4; ++n) {
    EXPECT_FALSE(d->decode(nop, n, 0x1000).valid) << n;
    EXPECT_FALSE(l->decode(nop, n, 0x1000).valid) << n;
  }
  EXPECT_TRUE(d->decode(nop, 4, 0x1000).valid);
  // Boundaries of a fixed-length ISA are its aligned words: an undecodable
  // word before the address does not matter (Decoder::fixed_insn_len).
  const uint8_t code[12] = {0, 0, 0x80, 0x01 /* 0x01800000: rejected */, 0x1f, 0x20, 0x03, 0xd5, 0xc0, 0x03, 0x5f, 0xd6};
  for (const Decoder *x : {d.get(), l.get()}) {
    EXPECT_EQ(x->boundary(code, 12, 0x1000, 0x1008), BoundaryStatus::Boundary);
    EXPECT_EQ(x->boundary(code, 12, 0x1000, 0x1006), BoundaryStatus::Inside);
    EXPECT_EQ(x->boundary(code, 12, 0x1000, 0x100c), BoundaryStatus::OutOfRange);
    EXPECT_FALSE(x->decode(code, 12, 0x1000).valid);
  }
}

TEST(BuiltinDecoderA64, Text) {
  auto d = Decoder::create_builtin("aarch64");
  ASSERT_NE(d, nullptr);
  auto text = [&](uint32_t w, uint64_t addr = 0x1000) {
    const uint8_t b[4] = {uint8_t(w), uint8_t(w >> 8), uint8_t(w >> 16), uint8_t(w >> 24)};
    Insn i = d->decode(b, 4, addr);
    EXPECT_TRUE(i.valid) << std::hex << w;
    EXPECT_EQ(i.mnemonic, i.text.substr(0, i.text.find(' ')));
    return i.text;
  };
  EXPECT_EQ(text(0x14000002), "b 0x1008");
  EXPECT_EQ(text(0x97ffffff), "bl 0xffc");
  EXPECT_EQ(text(0x54000040), "b.eq 0x1008");
  EXPECT_EQ(text(0x54000051), "bc.ne 0x1008");
  EXPECT_EQ(text(0xb4000048), "cbz x8, 0x1008");
  EXPECT_EQ(text(0x35000049), "cbnz w9, 0x1008");
  EXPECT_EQ(text(0xb608004a), "tbz x10, #33, 0x1008");
  EXPECT_EQ(text(0x10000040), "adr x0, 0x1008");
  EXPECT_EQ(text(0x90000001, 0x1234), "adrp x1, 0x1000");
  EXPECT_EQ(text(0x58000042), "ldr x2, 0x1008");
  EXPECT_EQ(text(0x9c000047), "ldr q7, 0x1008");
  EXPECT_EQ(text(0x98000044), "ldrsw x4, 0x1008");
  EXPECT_EQ(text(0xd8000040), "prfm #0, 0x1008");
  EXPECT_EQ(text(0xd65f03c0), "ret");
  EXPECT_EQ(text(0xd65f01c0), "ret x14");
  EXPECT_EQ(text(0xd63f01a0), "blr x13");
  EXPECT_EQ(text(0xd71f09ff), "braa x15, sp");
  EXPECT_EQ(text(0xd4200020), "brk #0x1");
  EXPECT_EQ(text(0x00000001), "udf #1");
  EXPECT_EQ(text(0xc85f7c20), "ldxr x0, [x1]");
  EXPECT_EQ(text(0x885ffc41), "ldaxr w1, [x2]");
  EXPECT_EQ(text(0xc8208861), "stlxp w0, x1, x2, [x3]");
  EXPECT_EQ(text(0xd503201f), ".inst 0xd503201f");
  EXPECT_EQ(text(0x8b020020), ".inst 0x8b020020");
  const uint8_t b[4] = {0x40, 0x00, 0x00, 0x14};
  Insn i;
  ASSERT_TRUE(d->decode(b, 4, 0x1000, &i, false));
  EXPECT_EQ(i.name, "B");
  EXPECT_TRUE(i.text.empty() && i.mnemonic.empty());
}
