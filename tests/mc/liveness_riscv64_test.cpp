// riscv64::dead_registers: the register the far instruction-site jump may
// clobber must be provably dead at the site and at the end of the displaced range.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "mc/decoder.hpp"
#include "riscv64/liveness.hpp"

namespace {

using lp::mc::Decoder;

constexpr uint32_t kAddiA5A0_1 = 0x00150793;  // addi a5, a0, 1
constexpr uint32_t kAddA6A5A5 = 0x00f78833;   // add a6, a5, a5
constexpr uint32_t kLdA4A1 = 0x0005b703;      // ld a4, 0(a1)
constexpr uint32_t kMvA0A4 = 0x00070513;      // mv a0, a4
constexpr uint32_t kMvA4A4 = 0x00070713;      // mv a4, a4 (reads a4)
constexpr uint32_t kRet = 0x00008067;         // ret
constexpr uint32_t kJalRa16 = 0x010000ef;     // jal ra, .+16
constexpr uint32_t kBeqzA0 = 0x00050463;      // beqz a0, .+8
constexpr uint32_t kEcall = 0x00000073;       // ecall
constexpr uint32_t kLiA0 = 0x00100513;        // li a0, 1 (writes a0 only)
constexpr uint32_t kMvSpA0 = 0x00050113;      // mv sp, a0

struct Engine {
  const char *name;
  std::unique_ptr<Decoder> (*make)();
};

std::vector<uint8_t> bytes(std::initializer_list<uint32_t> words) {
  std::vector<uint8_t> b;
  for (uint32_t w : words)
    for (int i = 0; i < 4; ++i) b.push_back(uint8_t(w >> (8 * i)));
  return b;
}

class Liveness : public ::testing::TestWithParam<Engine> {
protected:
  // Dead registers for a site at the start of `words` (the whole function).
  uint32_t dead(std::initializer_list<uint32_t> words, uint32_t displaced = 8) {
    auto dec = GetParam().make();
    EXPECT_TRUE(dec);
    if (!dec) return ~0u;
    code_ = bytes(words);
    lp::mc::RelocInput in;
    in.site = 0x10000;
    in.code = code_.data();
    in.avail = code_.size();
    in.func_start = in.site;
    in.func_code = code_.data();
    in.func_size = code_.size();
    const uint32_t m = lp::riscv64::dead_registers(*dec, in, displaced);
    EXPECT_EQ(lp::riscv64::dead_register(*dec, in, displaced), m ? unsigned(__builtin_ctz(m)) : 0u);
    return m;
  }
  std::vector<uint8_t> code_;
};

constexpr uint32_t x(unsigned r) { return 1u << r; }
constexpr unsigned kA0 = 10, kA4 = 14, kA5 = 15, kA6 = 16, kRa = 1;

TEST_P(Liveness, FirstAccessIsAWriteAtBothEnds) {
  // At the site a5, a6 (written first) and a4 (loaded) are dead; a0 and a1 are
  // read. At the end (the ld) a4 is loaded, a0 overwritten by the mv, and a5 /
  // a6 die at the `ret` (caller-saved, written by the function).
  EXPECT_EQ(dead({kAddiA5A0_1, kAddA6A5A5, kLdA4A1, kMvA0A4, kRet}), x(kA4) | x(kA5) | x(kA6));
}

TEST_P(Liveness, ARegisterRecomputedInsideTheRangeIsDeadAtBothEnds) {
  // a5 is written by the first displaced instruction and never read after the
  // range: the copy recomputes it between the two clobbers.
  EXPECT_EQ(dead({kAddiA5A0_1, kAddA6A5A5, kLiA0, kRet}), x(kA5) | x(kA6));
}

TEST_P(Liveness, AReadBeforeTheWriteKeepsItLive) {
  // a4 is read by `mv a4, a4` before the load writes it.
  EXPECT_EQ(dead({kAddiA5A0_1, kAddA6A5A5, kMvA4A4, kLdA4A1, kRet}) & x(kA4), 0u);
}

TEST_P(Liveness, AtReturnOnlyCallerSavedNonResultRegistersTheFunctionWrites) {
  // a0 is the result (never dead at the ret); a4 is never written by this
  // function, so a caller built with -fipa-ra may keep a value in it.
  const uint32_t m = dead({kAddiA5A0_1, kAddA6A5A5, kRet});
  EXPECT_EQ(m, x(kA5) | x(kA6));
  EXPECT_EQ(m & (x(kA0) | x(kA4) | x(kRa)), 0u);
}

TEST_P(Liveness, ACallWritesOnlyItsLinkRegister) {
  EXPECT_EQ(dead({kAddiA5A0_1, kAddA6A5A5, kJalRa16, kLdA4A1, kRet}), x(kRa));
}

TEST_P(Liveness, TheScanStopsAtBranchesAndEcall) {
  EXPECT_EQ(dead({kAddiA5A0_1, kAddA6A5A5, kBeqzA0, kLdA4A1, kRet}), 0u);
  EXPECT_EQ(dead({kAddiA5A0_1, kAddA6A5A5, kEcall, kLdA4A1, kRet}), 0u);
}

TEST_P(Liveness, NoRegisterWhenTheRangeHoldsATransfer) {
  EXPECT_EQ(dead({kBeqzA0, kAddiA5A0_1, kLdA4A1, kRet}), 0u);
}

TEST_P(Liveness, NeverSpGpTp) {
  const uint32_t m = dead({kAddiA5A0_1, kAddA6A5A5, kMvSpA0, kRet});
  EXPECT_EQ(m & 0x1cu, 0u);
  EXPECT_EQ(m, x(kA5) | x(kA6));
}

TEST_P(Liveness, TheFunctionEndStopsTheScan) {
  EXPECT_EQ(dead({kAddiA5A0_1, kAddA6A5A5}), 0u);
}

const Engine kEngines[] = {
    {"default", [] { return Decoder::create("riscv64", "+c"); }},
    {"builtin", [] { return Decoder::create_builtin("riscv64", "+c"); }},
};

INSTANTIATE_TEST_SUITE_P(Engines, Liveness, ::testing::ValuesIn(kEngines),
                         [](const auto &i) { return std::string(i.param.name); });

} // namespace
