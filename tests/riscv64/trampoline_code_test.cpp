// The trampoline's machine code, checked word by word where it matters.
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "encoding.hpp"
#include "libpatch/patch.h"
#include "insn_trampoline.hpp"
#include "trampoline.hpp"

namespace rv = lp::riscv64;

namespace {

std::vector<uint32_t> emit(uintptr_t at, const lp::TrampolineSpec &spec, int *rc) {
  std::vector<uint8_t> buf(rv::kSlotSize, 0);
  *rc = rv::emit_entry_trampoline(buf.data(), at, spec);
  std::vector<uint32_t> w;
  const size_t n = rv::entry_trampoline_size(at, spec);
  for (size_t i = 0; i < n; i += 4) w.push_back(rv::get32(buf.data() + i));
  return w;
}

lp::TrampolineSpec spec_for(uintptr_t at, uintptr_t site, uint32_t len, intptr_t tls) {
  lp::TrampolineSpec s;
  s.site = site;
  s.site_len = len;
  s.data = at + rv::kDataOffset;
  s.tls_depth = tls;
  return s;
}

size_t count(const std::vector<uint32_t> &w, uint32_t insn) {
  size_t n = 0;
  for (uint32_t x : w) n += x == insn;
  return n;
}

} // namespace

TEST(Rv64Trampoline, LayoutAndReturn) {
  const uintptr_t at = 0x40000000, site = 0x10234;
  int rc;
  auto w = emit(at, spec_for(at, site, 8, 16), &rc);
  ASSERT_EQ(rc, 0);
  ASSERT_GT(w.size(), 100u);
  EXPECT_LE(w.size() * 4, rv::kDataOffset);
  EXPECT_EQ(w.front(), rv::enc_addi(rv::kSp, rv::kSp, -int32_t(rv::kFrame)));
  // Saves every x but x0/sp, every f, restores all but x0, sp, gp, tp, t0.
  for (unsigned r = 1; r < 32; ++r) {
    if (r == rv::kSp) continue;
    EXPECT_EQ(count(w, rv::enc_sd(r, rv::kSp, int32_t(8 * r))), 1u) << r;
    const bool restored = r != rv::kGp && r != rv::kTp && r != rv::kT0;
    EXPECT_EQ(count(w, rv::enc_ld(r, rv::kSp, int32_t(8 * r))), restored ? 1u : 0u) << r;
  }
  for (unsigned r = 0; r < 32; ++r) {
    EXPECT_EQ(count(w, rv::enc_fsd(r, rv::kSp, int32_t(256 + 8 * r))), 1u);
    EXPECT_EQ(count(w, rv::enc_fld(r, rv::kSp, int32_t(256 + 8 * r))), 1u);
  }
  EXPECT_EQ(count(w, rv::enc_csrrs(rv::kT1, rv::kCsrFcsr, 0)), 1u);
  EXPECT_EQ(count(w, rv::enc_csrrw(0, rv::kCsrFcsr, rv::kT1)), 1u);
  EXPECT_EQ(count(w, rv::enc_andi(rv::kSp, rv::kSp, -16)), 1u);
  EXPECT_EQ(count(w, rv::enc_jalr(rv::kRa, rv::kT3, 0)), 1u);
  // Small TLS offset: ld/sd directly off tp, +1 and -1.
  EXPECT_EQ(count(w, rv::enc_ld(rv::kT2, rv::kTp, 16)), 2u);
  EXPECT_EQ(count(w, rv::enc_sd(rv::kT2, rv::kTp, 16)), 2u);
  EXPECT_EQ(count(w, rv::enc_addi(rv::kT2, rv::kT2, 1)), 1u);
  EXPECT_EQ(count(w, rv::enc_addi(rv::kT2, rv::kT2, -1)), 1u);
  // Ends with auipc t0; jalr x0, lo(t0) to site + len -- not jr t0.
  const size_t n = w.size();
  const uintptr_t pc = at + 4 * (n - 2);
  const uint32_t au = w[n - 2], jr = w[n - 1];
  ASSERT_TRUE(rv::is_auipc(au, rv::kT0));
  ASSERT_EQ(jr & 0xfffff, (rv::kT0 << 15) | 0x67u);
  const int64_t target = int64_t(pc) + int64_t(int32_t(au & 0xfffff000u)) + (int32_t(jr) >> 20);
  EXPECT_EQ(uint64_t(target), site + 8);
  EXPECT_EQ(count(w, rv::enc_jalr(0, rv::kT0, 0)), 0u); // no `jr t0`
}

TEST(Rv64Trampoline, LargeTlsOffsetUsesLuiAdd) {
  const uintptr_t at = 0x40000000;
  int rc;
  const intptr_t off = 0x12345;
  auto w = emit(at, spec_for(at, 0x10000, 8, off), &rc);
  ASSERT_EQ(rc, 0);
  int32_t hi, lo;
  ASSERT_TRUE(rv::split_pcrel(off, &hi, &lo));
  EXPECT_EQ(count(w, rv::enc_lui(rv::kT3, hi)), 2u);
  EXPECT_EQ(count(w, rv::enc_add(rv::kT3, rv::kT3, rv::kTp)), 2u);
  EXPECT_EQ(count(w, rv::enc_ld(rv::kT2, rv::kT3, lo)), 2u);
  // Negative offsets too (TLS below tp).
  emit(at, spec_for(at, 0x10000, 8, -0x5000), &rc);
  EXPECT_EQ(rc, 0);
  emit(at, spec_for(at, 0x10000, 8, intptr_t(1) << 40), &rc);
  EXPECT_EQ(rc, LP_EINVAL);
}

TEST(Rv64Trampoline, Reach) {
  int rc;
  const uintptr_t at = 0x100000000ull;
  emit(at, spec_for(at, at - 0x7ff00000, 8, 16), &rc);
  EXPECT_EQ(rc, 0);
  emit(at, spec_for(at, at + (uintptr_t(3) << 31), 8, 16), &rc);
  EXPECT_EQ(rc, LP_ERANGE);
}

// The instruction-site trampoline: the site may be anywhere in a function, so
// every register the site had comes back -- t0 included -- and the code ends by
// falling through (no jump: the out-of-line copy follows it).
TEST(Rv64InsnTrampoline, RestoresEveryRegisterAndFallsThrough) {
  const uintptr_t at = 0x40000000, site = 0x10234;
  std::vector<uint8_t> buf(rv::kInsnTrampolineMax, 0);
  size_t size = 0;
  lp::TrampolineSpec s = spec_for(at, site, 4, 16);
  s.data = at + 4096;
  ASSERT_EQ(rv::emit_insn_trampoline(buf.data(), at, s, &size), 0);
  ASSERT_GT(size, 400u);
  ASSERT_LE(size, rv::kInsnTrampolineMax);
  ASSERT_EQ(size % 4, 0u);
  std::vector<uint32_t> w;
  for (size_t i = 0; i < size; i += 4) w.push_back(rv::get32(buf.data() + i));
  EXPECT_EQ(w.front(), rv::enc_addi(rv::kSp, rv::kSp, -int32_t(rv::kFrame)));
  for (unsigned r = 1; r < 32; ++r) {
    if (r == rv::kSp) continue;
    EXPECT_EQ(count(w, rv::enc_sd(r, rv::kSp, int32_t(8 * r))), 1u) << r;
    const bool restored = r != rv::kGp && r != rv::kTp;
    EXPECT_EQ(count(w, rv::enc_ld(r, rv::kSp, int32_t(8 * r))), restored ? 1u : 0u) << r;
  }
  EXPECT_EQ(w.back(), rv::enc_addi(rv::kSp, rv::kSp, int32_t(rv::kFrame)));
  // No jump back of its own: only the handler call transfers control.
  size_t jumps = 0;
  for (uint32_t x : w) jumps += (x & 0x7f) == 0x67 || (x & 0x7f) == 0x6f;
  EXPECT_EQ(jumps, 1u);
  // Misaligned code or data words are refused.
  EXPECT_EQ(rv::emit_insn_trampoline(buf.data(), at + 2, s, &size), LP_EINVAL);
}
