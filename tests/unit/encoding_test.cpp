#include <gtest/gtest.h>

#include <cstring>

#include "riscv64/encoding.hpp"
#include "x86_64/encoding.hpp"

namespace rv = lp::riscv64;
namespace x86 = lp::x86_64;

TEST(X86Encoding, CallRel32) {
  uint8_t b[5];
  ASSERT_TRUE(x86::encode_call(0x1000, 0x2000, b));
  EXPECT_EQ(b[0], 0xe8);
  int32_t rel;
  std::memcpy(&rel, b + 1, 4);
  EXPECT_EQ(rel, 0x2000 - 0x1005);
  ASSERT_TRUE(x86::encode_call(0x2000, 0x1000, b));
  std::memcpy(&rel, b + 1, 4);
  EXPECT_EQ(rel, 0x1000 - 0x2005);
  EXPECT_FALSE(x86::encode_call(0x1000, 0x1000 + (uintptr_t(1) << 32), b)); // out of rel32 reach
  EXPECT_TRUE(x86::is_nop5(x86::kNop5));
}

namespace {
// Decoders for checking the encoders independently of them.
int32_t jal_offset(uint32_t i) {
  int32_t imm = int32_t(((i >> 31) & 1) << 20 | ((i >> 21) & 0x3ff) << 1 | ((i >> 20) & 1) << 11 | ((i >> 12) & 0xff) << 12);
  return (imm << 11) >> 11;
}
} // namespace

TEST(RiscvEncoding, JalWithinOneMiB) {
  uint8_t b[8];
  for (int64_t d : {int64_t(8), int64_t(-8), int64_t(0xffffe), int64_t(-0x100000)}) {
    ASSERT_EQ(rv::encode_entry_call(0x100000000, uintptr_t(0x100000000 + d), 8, rv::Ilen::C16, b), rv::CallError::Ok);
    const uint32_t i = rv::get32(b);
    EXPECT_EQ(i & 0x7f, 0x6fu);         // jal
    EXPECT_EQ((i >> 7) & 0x1f, rv::kT0); // rd = t0
    EXPECT_EQ(jal_offset(i), d);
    EXPECT_EQ(rv::get16(b + 4), rv::kCNop); // the rest stays nops
  }
}

TEST(RiscvEncoding, AuipcJalrBeyondOneMiB) {
  uint8_t b[8];
  for (int64_t d : {int64_t(0x100000), int64_t(-0x100002), int64_t(0x7ffff7fe), int64_t(-0x80000000LL), int64_t(0x12345ffe)}) {
    const uintptr_t site = 0x200000000;
    ASSERT_EQ(rv::encode_entry_call(site, uintptr_t(site + d), 8, rv::Ilen::G32, b), rv::CallError::Ok) << d;
    const uint32_t au = rv::get32(b), jr = rv::get32(b + 4);
    EXPECT_EQ(au & 0x7f, 0x17u);
    EXPECT_EQ(jr & 0x7f, 0x67u);
    const int64_t hi = int64_t(int32_t(au & 0xfffff000));
    const int64_t lo = int64_t(int32_t(jr) >> 20);
    EXPECT_EQ(hi + lo, d) << d;
  }
  EXPECT_EQ(rv::encode_entry_call(0x200000000, 0x200000000 + 0x200000, 4, rv::Ilen::C16, b), rv::CallError::TooShort);
  EXPECT_EQ(rv::encode_entry_call(0x200000000, 0x200000000 + (int64_t(1) << 33), 8, rv::Ilen::C16, b), rv::CallError::Range);
  EXPECT_EQ(rv::encode_entry_call(0x200000000, 0x200000001, 8, rv::Ilen::C16, b), rv::CallError::Misaligned);
}

TEST(RiscvEncoding, SledsAndTraps) {
  uint8_t s[8];
  rv::fill_nops(s, 8, rv::Ilen::C16);
  rv::Ilen il;
  EXPECT_EQ(rv::sled_units(s, 8, &il), 4u);
  EXPECT_EQ(il, rv::Ilen::C16);
  rv::fill_nops(s, 8, rv::Ilen::G32);
  EXPECT_EQ(rv::sled_units(s, 8, &il), 2u);
  EXPECT_EQ(il, rv::Ilen::G32);
  const uint8_t not_nop[4] = {0x13, 0x05, 0x00, 0x00}; // addi a0, x0, 0
  EXPECT_EQ(rv::sled_units(not_nop, 4, &il), 0u);
  EXPECT_EQ(rv::granule(true), 2u);
  EXPECT_EQ(rv::granule(false), 1u);
  EXPECT_EQ(rv::insn_length(0x0001), 2u);
  EXPECT_EQ(rv::insn_length(0x0013), 4u);
}
