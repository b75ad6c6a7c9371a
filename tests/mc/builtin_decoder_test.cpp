// The built-in RV64GC decoder (backends/riscv64/decoder.cpp, used by the riscv64 cross
// builds) against LLVM MC (Decoder::create on the host), encoding by encoding:
// every 16-bit pattern, and every 32-bit pattern class (major opcode x funct3 x
// funct7 x rs2, which covers fmt, rs3, rm and the fixed rs2 sub-opcodes) with
// randomised rd / rs1, for rv64gc and rv64g. Plus feature parsing and text.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "mc/decoder.hpp"

using namespace lp::mc;

namespace {

std::unique_ptr<Decoder> builtin(const char *feat) {
  std::string err;
  auto d = Decoder::create_builtin("riscv64", feat, &err);
  EXPECT_NE(d, nullptr) << err;
  return d;
}

std::string show(const Insn &i) {
  char b[400];
  std::snprintf(b, sizeof b,
                "valid=%d len=%u name=%s flow=%s target=%d:0x%llx reads_pc=%d load=%d store=%d compressed=%d "
                "rd=%d rs1=%d rs2=%d imm=%lld gpr_read=%08x gpr_written=%08x",
                i.valid, i.length, i.name.c_str(), flow_name(i.flow), i.has_target,
                static_cast<unsigned long long>(i.target), i.reads_pc, i.may_load, i.may_store, i.compressed, i.rd,
                i.rs1, i.rs2, static_cast<long long>(i.imm), unsigned(i.gpr_read), unsigned(i.gpr_written));
  return b;
}

// Everything but opcode (engine-private) and text (ours is GNU-style, LLVM's
// prints aliases). rd/rs1/rs2/imm are compared for every instruction: both
// engines fill them only for the control-flow / pc-relative ones.
bool same(const Insn &a, const Insn &b) {
  return a.valid == b.valid && a.length == b.length && a.name == b.name && a.flow == b.flow &&
         a.has_target == b.has_target && a.target == b.target && a.reads_pc == b.reads_pc &&
         a.may_load == b.may_load && a.may_store == b.may_store && a.compressed == b.compressed && a.rd == b.rd &&
         a.rs1 == b.rs1 && a.rs2 == b.rs2 && a.imm == b.imm && a.gpr_read == b.gpr_read &&
         a.gpr_written == b.gpr_written && a.is_branch == b.is_branch &&
         a.is_call == b.is_call && a.is_return == b.is_return && a.is_indirect == b.is_indirect &&
         a.is_conditional == b.is_conditional;
}

// Both engines for one feature string; counts what it compared.
struct Differ {
  std::string feat;
  std::unique_ptr<Decoder> llvm, ours;
  uint64_t compared = 0, mismatches = 0;

  explicit Differ(const char *f) : feat(f) {
    std::string err;
    llvm = Decoder::create("riscv64", f, &err);
    EXPECT_NE(llvm, nullptr) << err;
    ours = builtin(f);
  }

  // Decodes bytes[0, size) at `address` with both; reports the first few mismatches.
  void check(const uint8_t *bytes, size_t size, uint64_t address) {
    Insn a, b;
    llvm->decode(bytes, size, address, &a, false);
    ours->decode(bytes, size, address, &b, false);
    ++compared;
    if (same(a, b)) return;
    if (++mismatches <= 20) {
      uint32_t w = 0;
      std::memcpy(&w, bytes, size < 4 ? size : 4);
      ours->decode(bytes, size, address, &b, true);
      ADD_FAILURE() << "features '" << feat << "': " << std::hex << "0x" << w << " (size " << std::dec << size
                    << ", address 0x" << std::hex << address << std::dec << ")\n  llvm:     " << show(a)
                    << "\n  built-in: " << show(b) << " | " << b.text;
    }
  }
  void check16(uint32_t h, uint64_t address) {
    const uint8_t b[2] = {uint8_t(h), uint8_t(h >> 8)};
    check(b, 2, address);
  }
  void check32(uint32_t w, uint64_t address) {
    const uint8_t b[4] = {uint8_t(w), uint8_t(w >> 8), uint8_t(w >> 16), uint8_t(w >> 24)};
    check(b, 4, address);
  }
};

// Addresses: mostly random, some near 0 and near 2^64 so targets wrap.
uint64_t pick_address(std::mt19937_64 &rng) {
  const uint64_t r = rng() & ~uint64_t(1);
  switch (r % 3) {
  case 0: return r & 0xffe;
  case 1: return ~uint64_t(0xfff) | (r & 0xffe);
  default: return r;
  }
}

// Every 16-bit pattern, then 32-bit classes: each (opcode with low bits 11,
// funct3, funct7, rs2) with `samples` rd / rs1 choices: random, both zero, one
// zero (fence, ecall, sfence.vma, lr and the fixed system words need zeros).
void sweep(Differ &d, int samples, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (uint32_t h = 0; h < 0x10000; ++h) d.check16(h, pick_address(rng));
  for (uint32_t major = 0; major < 32; ++major)
    for (uint32_t f3 = 0; f3 < 8; ++f3)
      for (uint32_t f7 = 0; f7 < 128; ++f7)
        for (uint32_t rs2 = 0; rs2 < 32; ++rs2)
          for (int s = 0; s < samples; ++s) {
            const uint32_t r = uint32_t(rng());
            uint32_t rd = r & 31, rs1 = (r >> 5) & 31;
            if (s == 1) rd = rs1 = 0;
            if (s == 2) (r & 1024 ? rd : rs1) = 0;
            const uint32_t w = f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | major << 2 | 3;
            d.check32(w, pick_address(rng));
          }
}

struct Timer {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
};

} // namespace

TEST(BuiltinDecoder, MatchesLlvmRv64gcAndRv64g) {
  ASSERT_TRUE(Decoder::uses_llvm("riscv64")) << "this host test needs LLVM MC as the reference";
  Timer t;
  uint64_t total = 0;
  for (const char *feat : {"+c", "-c"}) {
    Differ d(feat);
    ASSERT_TRUE(d.llvm && d.ours);
    EXPECT_EQ(d.llvm->has_compressed(), d.ours->has_compressed());
    sweep(d, 3, 0x5eed0001);
    EXPECT_EQ(d.mismatches, 0u) << "features '" << feat << "'";
    total += d.compared;
  }
  std::printf("[ compared %llu encodings (rv64gc + rv64g) in %.1f s ]\n", static_cast<unsigned long long>(total),
              t.seconds());
}

// Other extension subsets (LLVM applies "-f" to d as well, as we do).
TEST(BuiltinDecoder, MatchesLlvmWithoutExtensions) {
  Timer t;
  uint64_t total = 0;
  for (const char *feat : {"-d", "-f", "-a", "-m", "-c,-d", "-f,+d"}) {
    Differ d(feat);
    ASSERT_TRUE(d.llvm && d.ours);
    sweep(d, 1, 0x5eed0002);
    EXPECT_EQ(d.mismatches, 0u) << "features '" << feat << "'";
    total += d.compared;
  }
  std::printf("[ compared %llu encodings (extension subsets) in %.1f s ]\n",
              static_cast<unsigned long long>(total), t.seconds());
}

// Encodings worth naming: sparse fixed words, reserved fields, extreme
// immediates, truncated buffers and the longer-than-32-bit prefixes.
TEST(BuiltinDecoder, MatchesLlvmOnEdgeCases) {
  const uint32_t words[] = {
      0x00000000, 0xffffffff, 0x00000073, 0x00100073, 0x00200073, 0x10200073, 0x30200073, 0x7b200073,
      0x10500073, 0x12000073, 0x12b50073, 0xc0001073, 0xc0101073, 0xc0002073, 0x8330000f, 0x8330008f,
      0x0100000f, 0x0ff0000f, 0x0000000f, 0x1ff0000f, 0x0000100f, 0x0000200f, 0x0000300f,
      0x0000101b, 0x0200101b, 0x0200501b, 0x4200501b, 0x03f01013, 0x43f05013, 0x80005013, // shifts
      0x02c5f553, 0x02c5d553, 0x02c5e553, 0x02c5c553, 0x02c58553, 0x42058553, 0x42059553, // rm
      0xd2050553, 0xd2051553, 0x5a05f553, 0x5a15f553, 0x0400f553, 0x0600f553, 0x06000043, // fmt H/Q
      0x1005a52f, 0x1015a52f, 0x1605b52f, 0x1e05b52f, 0x0005c52f, 0x0005a52f,             // lr/sc/amo
      0x0000006f, 0x8000006f, 0x7ffff06f, 0x800000ef, 0x00008067, 0x00008567, 0x00100067, // jumps
      0x80000063, 0x7e000fe3, 0x00000017, 0xfffff297, 0x8000001f, 0x0000003f, 0x0000007f,
  };
  for (const char *feat : {"+c", "-c"}) {
    Differ d(feat);
    ASSERT_TRUE(d.llvm && d.ours);
    for (uint32_t w : words)
      for (uint64_t addr : {uint64_t(0), uint64_t(0x1000), ~uint64_t(1), uint64_t(0x8000000000000000)}) {
        const uint8_t b[8] = {uint8_t(w), uint8_t(w >> 8), uint8_t(w >> 16), uint8_t(w >> 24), 0x13, 0, 0, 0};
        for (size_t size = 1; size <= 8; ++size) d.check(b, size, addr);
      }
    EXPECT_EQ(d.mismatches, 0u) << "features '" << feat << "'";
  }
}

TEST(BuiltinDecoder, Features) {
  std::string err;
  EXPECT_EQ(Decoder::create_builtin("x86_64", "", &err), nullptr);
  EXPECT_EQ(err, "lp::mc: no built-in decoder for x86_64 (only LLVM MC)");
  for (const char *bad : {"+zba", "c", "+", "+c,-q", "+C"}) {
    err.clear();
    EXPECT_EQ(Decoder::create_builtin("riscv64", bad, &err), nullptr) << bad;
    const std::string tok = std::string(bad).substr(std::string(bad).rfind(',') + 1);
    EXPECT_NE(err.find("'" + tok + "'"), std::string::npos) << err;
  }

  auto gc = builtin("");
  EXPECT_EQ(gc->arch(), Arch::RISCV64);
  EXPECT_TRUE(gc->has_compressed());
  EXPECT_EQ(gc->min_insn_align(), 2u);
  auto g = builtin("-c");
  EXPECT_EQ(g->features(), "-c");
  EXPECT_FALSE(g->has_compressed());
  EXPECT_EQ(g->min_insn_align(), 4u);
  EXPECT_TRUE(builtin("-c,+c")->has_compressed());
  ASSERT_NE(Decoder::create_builtin("rv64", "+m,+a", &err), nullptr) << err;

  auto valid = [](const Decoder &d, uint32_t w) {
    const uint8_t b[4] = {uint8_t(w), uint8_t(w >> 8), uint8_t(w >> 16), uint8_t(w >> 24)};
    return d.decode(b, 4, 0).valid;
  };
  const uint32_t csrrs = 0x00102573, fence_i = 0x0000100f, fadd_s = 0x00b50553, fadd_d = 0x02b50553;
  EXPECT_TRUE(valid(*gc, csrrs) && valid(*gc, fence_i) && valid(*gc, fadd_d));
  EXPECT_FALSE(valid(*builtin("-zicsr"), csrrs));
  EXPECT_FALSE(valid(*builtin("-zicsr"), fadd_s)); // f needs zicsr
  EXPECT_TRUE(valid(*builtin("-zicsr"), 0xc0001073)); // unimp stays a trap
  EXPECT_FALSE(valid(*builtin("-zifencei"), fence_i));
  EXPECT_FALSE(valid(*builtin("-f"), fadd_d)); // d needs f
  EXPECT_TRUE(valid(*builtin("-f,+d"), fadd_s)); // +d brings f back
}

TEST(BuiltinDecoder, Text) {
  auto d = builtin("");
  auto text = [&](std::initializer_list<uint8_t> b, uint64_t addr = 0x1000) {
    std::vector<uint8_t> v(b);
    Insn i = d->decode(v.data(), v.size(), addr);
    EXPECT_TRUE(i.valid);
    EXPECT_EQ(i.mnemonic, i.text.substr(0, i.text.find(' ')));
    return i.text;
  };
  EXPECT_EQ(text({0x33, 0x05, 0xa5, 0x00}), "add a0, a0, a0");
  EXPECT_EQ(text({0xef, 0x00, 0x80, 0x00}), "jal ra, 0x1008");
  EXPECT_EQ(text({0x6f, 0xf0, 0xdf, 0xff}, 0), "jal zero, 0xfffffffffffffffc"); // wraps
  EXPECT_EQ(text({0x63, 0x08, 0xb5, 0x00}), "beq a0, a1, 0x1010");
  EXPECT_EQ(text({0x83, 0x30, 0x81, 0x00}), "ld ra, 8(sp)");
  EXPECT_EQ(text({0x23, 0x38, 0x81, 0xfe}), "sd s0, -16(sp)");
  EXPECT_EQ(text({0x37, 0x55, 0x34, 0x12}), "lui a0, 0x12345");
  EXPECT_EQ(text({0x67, 0x80, 0x00, 0x00}), "jalr zero, 0(ra)");
  EXPECT_EQ(text({0x53, 0xf5, 0xc5, 0x02}), "fadd.d fa0, fa1, fa2");
  EXPECT_EQ(text({0x53, 0x95, 0xc5, 0x02}), "fadd.d fa0, fa1, fa2, rtz");
  EXPECT_EQ(text({0x43, 0xf0, 0x20, 0x18}), "fmadd.s ft0, ft1, ft2, ft3");
  EXPECT_EQ(text({0x53, 0x15, 0x05, 0xc2}), "fcvt.w.d a0, fa0, rtz");
  EXPECT_EQ(text({0x2f, 0x25, 0xb6, 0x06}), "amoadd.w.aqrl a0, a1, (a2)");
  EXPECT_EQ(text({0x73, 0x25, 0x10, 0x00}), "csrrs a0, fflags, zero");
  EXPECT_EQ(text({0x0f, 0x00, 0xf0, 0x0f}), "fence iorw, iorw");
  EXPECT_EQ(text({0x73, 0x10, 0x00, 0xc0}), "unimp");
  EXPECT_EQ(text({0xa2, 0x60}), "ld ra, 8(sp)"); // c.ldsp
  EXPECT_EQ(text({0x01, 0xa0}), "j 0x1000");     // c.j
  EXPECT_EQ(text({0x01, 0xc5}), "beqz a0, 0x1008");
  EXPECT_EQ(text({0x82, 0x80}), "jr ra");
  EXPECT_EQ(text({0x05, 0x05}), "addi a0, a0, 1");
  EXPECT_EQ(text({0x01, 0x00}), "nop");

  // Every valid 16-bit pattern has a text whose first word is the mnemonic.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint8_t b[2] = {uint8_t(h), uint8_t(h >> 8)};
    Insn i;
    if (!d->decode(b, 2, 0x1000, &i, true)) continue;
    ASSERT_FALSE(i.text.empty()) << std::hex << h;
    ASSERT_EQ(i.mnemonic, i.text.substr(0, i.text.find(' '))) << std::hex << h;
  }

  // with_text=false: the same decode, no text.
  const uint8_t add[4] = {0x33, 0x05, 0xa5, 0x00};
  Insn i;
  ASSERT_TRUE(d->decode(add, 4, 0x1000, &i, false));
  EXPECT_EQ(i.name, "ADD");
  EXPECT_TRUE(i.text.empty());
  EXPECT_TRUE(i.mnemonic.empty());
}
