// backends/aarch64/encoding.hpp against the assembler: every encoder's word is
// the one Debian's aarch64-linux-gnu-as produced for the same instruction
// (tests/aarch64/encodings.S, linked at 0x10000 and dumped to LP_A64_ENCODINGS_BIN
// at build time), and the concurrent-modification list holds exactly the
// instructions B2.2.5 names.
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "aarch64/encoding.hpp"

using namespace lp::aarch64;

namespace {

std::vector<uint32_t> assembled() {
  std::vector<uint32_t> w;
  FILE *f = std::fopen(LP_A64_ENCODINGS_BIN, "rb");
  if (!f) return w;
  uint8_t b[4];
  while (std::fread(b, 1, 4, f) == 4) w.push_back(get32(b));
  std::fclose(f);
  return w;
}

constexpr uint64_t kBase = 0x10000; // where encodings.S is linked
uint64_t pc_of(size_t i) { return kBase + 4 * i; }

} // namespace

TEST(A64Encoding, MatchesTheAssembler) {
  const std::vector<uint32_t> as = assembled();
  ASSERT_GE(as.size(), 45u) << "read " << LP_A64_ENCODINGS_BIN;
  EXPECT_EQ(as[0], kNop);
  EXPECT_EQ(as[1], kIsb);
  EXPECT_EQ(as[2], kRet);
  EXPECT_EQ(as[3], kBtiC);
  EXPECT_EQ(as[4], kPaciasp);
  EXPECT_EQ(as[5], enc_brk(kBrkImm));
  EXPECT_EQ(as[5], trap_insn());
  EXPECT_EQ(as[6], enc_b(4096));
  EXPECT_EQ(as[7], enc_b(-8));
  EXPECT_EQ(as[8], enc_bl(kBRange - 4));
  EXPECT_EQ(as[9], enc_bl(-kBRange));
  EXPECT_EQ(as[10], enc_br(kX16));
  EXPECT_EQ(as[11], enc_blr(kX17));
  EXPECT_EQ(as[12], enc_adrp(kX16, int64_t((kBase + 0x5000) & ~0xfffull) - int64_t(pc_of(12) & ~0xfffull)));
  EXPECT_EQ(as[13], enc_add_imm(kX16, kX16, 0x123));
  EXPECT_EQ(as[14], enc_mov_reg(9, kLr));
  EXPECT_EQ(as[19], enc_brk(0));
  EXPECT_EQ(as[20], enc_adrp(kX17, -(int64_t(1) << 32)));
}

TEST(A64Encoding, TheTrampolineFrameCodeMatchesTheAssembler) {
  const std::vector<uint32_t> as = assembled();
  ASSERT_GE(as.size(), 45u) << "read " << LP_A64_ENCODINGS_BIN;
  EXPECT_EQ(as[21], enc_sub_imm(kSp, kSp, 800));
  EXPECT_EQ(as[22], enc_add_imm(kX16, kSp, 800));
  EXPECT_EQ(as[23], enc_add_reg(kX16, kX16, kX17));
  EXPECT_EQ(as[24], enc_stp(0, 1, kSp, 0));
  EXPECT_EQ(as[25], enc_stp(28, 29, kSp, 224));
  EXPECT_EQ(as[26], enc_ldp(2, 3, kSp, 16));
  EXPECT_EQ(as[27], enc_stp_q(0, 1, kSp, 288));
  EXPECT_EQ(as[28], enc_ldp_q(30, 31, kSp, 768));
  EXPECT_EQ(as[29], enc_str(kLr, kSp, 240));
  EXPECT_EQ(as[30], enc_ldr(kX16, kX17, 8));
  EXPECT_EQ(as[31], enc_ldr_lit(kX17, -0x100000));
  EXPECT_EQ(as[32], enc_adr(kX16, 0xfffff));
  EXPECT_EQ(as[33], enc_movz(kX17, 0xbeef, 48));
  EXPECT_EQ(as[34], enc_movk(kX17, 0x1234, 16));
  EXPECT_EQ(as[35], enc_ret(kX16));
  EXPECT_EQ(as[36], enc_mrs(kX16, SysReg::Nzcv));
  EXPECT_EQ(as[37], enc_msr(SysReg::Nzcv, kX16));
  EXPECT_EQ(as[38], enc_mrs(kX16, SysReg::Fpcr));
  EXPECT_EQ(as[39], enc_mrs(kX17, SysReg::Fpsr));
  EXPECT_EQ(as[40], enc_msr(SysReg::Fpcr, kX16));
  EXPECT_EQ(as[41], enc_msr(SysReg::Fpsr, kX17));
  EXPECT_EQ(as[42], enc_mrs(kX16, SysReg::TpidrEl0));
  EXPECT_EQ(as[43], enc_stp(kX16, kX17, kSp, -16));
  EXPECT_EQ(as[44], enc_ldr_lit(kX16, 0xffffc));
  EXPECT_TRUE(fits_adr(0xfffff));
  EXPECT_FALSE(fits_adr(0x100000));
  EXPECT_TRUE(fits_ldr_lit(-0x100000));
  EXPECT_FALSE(fits_ldr_lit(0x100000));
  EXPECT_FALSE(fits_ldr_lit(2)) << "literals are word aligned";
}

TEST(A64Encoding, DecodesBranchesBothWays) {
  for (int64_t off : {int64_t(0), int64_t(4), int64_t(-4), int64_t(4096), kBRange - 4, -kBRange}) {
    int64_t got = 1;
    bool link = true;
    ASSERT_TRUE(decode_b(enc_b(off), &got, &link)) << off;
    EXPECT_EQ(got, off);
    EXPECT_FALSE(link);
    ASSERT_TRUE(decode_b(enc_bl(off), &got, &link)) << off;
    EXPECT_EQ(got, off);
    EXPECT_TRUE(link);
  }
  EXPECT_FALSE(decode_b(kNop, nullptr, nullptr));
  uint16_t imm = 0;
  ASSERT_TRUE(decode_brk(trap_insn(), &imm));
  EXPECT_EQ(imm, kBrkImm);
  EXPECT_FALSE(decode_brk(kNop, &imm));
}

TEST(A64Encoding, TheConcurrentModificationListIsExactlyB225) {
  const std::vector<uint32_t> as = assembled();
  ASSERT_GE(as.size(), 45u);
  // In the list: NOP, ISB, BRK, B, BL, SVC, HVC, SMC.
  for (size_t i : {size_t(0), size_t(1), size_t(5), size_t(6), size_t(7), size_t(8), size_t(9), size_t(15), size_t(16),
                   size_t(17), size_t(19)})
    EXPECT_NE(classify(as[i]), Kind::Other) << i;
  // Not in it: RET, BTI, PACIASP (hint space, but not NOP), BR, BLR, ADRP, ADD, MOV, LDR literal.
  for (size_t i : {size_t(2), size_t(3), size_t(4), size_t(10), size_t(11), size_t(12), size_t(13), size_t(14), size_t(18)})
    EXPECT_EQ(classify(as[i]), Kind::Other) << i;
  // Every flip an entry sled makes is in the list; the far form's first word is not.
  const uint32_t b = enc_b(0x1000), brk = trap_insn();
  EXPECT_TRUE(concurrent_modification_safe(kNop, b));
  EXPECT_TRUE(concurrent_modification_safe(b, kNop));
  EXPECT_TRUE(concurrent_modification_safe(kNop, brk));
  EXPECT_TRUE(concurrent_modification_safe(brk, b));
  EXPECT_FALSE(concurrent_modification_safe(kNop, enc_adrp(kX16, 0x5000)));
  EXPECT_FALSE(concurrent_modification_safe(kNop, enc_br(kX16)));
  EXPECT_FALSE(concurrent_modification_safe(kNop, enc_mov_reg(9, kLr))); // Linux's one-time MOV X9, X30
}

TEST(A64Encoding, OurBrkImmediateIsNobodyElses) {
  EXPECT_FALSE(kernel_owned_brk(kBrkImm));
  for (uint16_t taken : {uint16_t(0), uint16_t(1), uint16_t(0x3e8), uint16_t(0xf000)}) EXPECT_NE(kBrkImm, taken);
  // The kernel's ranges (arch/arm64/include/asm/brk-imm.h).
  for (uint16_t k : {uint16_t(0x004), uint16_t(0x005), uint16_t(0x006), uint16_t(0x100), uint16_t(0x400), uint16_t(0x7ff),
                     uint16_t(0x800), uint16_t(0x9ab), uint16_t(0x55cc), uint16_t(0x8123)})
    EXPECT_TRUE(kernel_owned_brk(k)) << std::hex << k;
  for (uint16_t u : {uint16_t(0x000), uint16_t(0x003), uint16_t(0x007), uint16_t(0x3ff), uint16_t(0xa00), uint16_t(0x5600)})
    EXPECT_FALSE(kernel_owned_brk(u)) << std::hex << u;
}

TEST(A64Encoding, EntrySledsAndTheEntryJump) {
  uint8_t sled[16];
  for (int i = 0; i < 3; ++i) put32(sled + 4 * i, kNop);
  put32(sled + 12, kRet);
  EXPECT_EQ(sled_nops(sled, 16), 3u);
  EXPECT_EQ(sled_nops(sled, 8), 2u);
  EXPECT_EQ(sled_nops(sled + 12, 4), 0u);
  uint8_t out[4];
  ASSERT_TRUE(encode_entry_jump(0x400000, 0x400000 + 0x2000, out));
  EXPECT_EQ(get32(out), enc_b(0x2000));
  ASSERT_TRUE(encode_entry_jump(0x8400000, 0x400000, out)); // exactly -128 MiB
  EXPECT_EQ(get32(out), enc_b(-kBRange));
  EXPECT_FALSE(encode_entry_jump(0x400000, 0x400000 + uint64_t(kBRange), out)) << "+128 MiB is out of reach";
  EXPECT_FALSE(encode_entry_jump(0x400002, 0x500000, out)) << "misaligned site";
  EXPECT_FALSE(encode_entry_jump(0x400000, 0x500002, out)) << "misaligned trampoline";
  EXPECT_TRUE(fits_adrp(0x5000));
  EXPECT_FALSE(fits_adrp(0x5004));
  EXPECT_FALSE(fits_adrp(int64_t(1) << 32));
  EXPECT_TRUE(fits_adrp(-(int64_t(1) << 32)));
}

// ==== The relocator's encodings (encoding.hpp section of that name) ====
// Against the words between the two markers of encodings.S's relocator section.
TEST(A64Encoding, RelocatorEncodersMatchTheAssembler) {
  const std::vector<uint32_t> as = assembled();
  size_t m = 0;
  while (m < as.size() && as[m] != 0x4c504131u) ++m;
  ASSERT_LT(m, as.size()) << "no relocator section in " << LP_A64_ENCODINGS_BIN;
  const size_t r0 = m + 1;
  ASSERT_GT(as.size(), r0 + 25);
  ASSERT_EQ(as[r0 + 25], 0x4c504132u) << "the relocator section has 25 words";
  auto r = [&](size_t i) { return as[r0 + i]; };
  EXPECT_EQ(r(0), enc_b_cond(0, 8));
  EXPECT_EQ(r(1), enc_b_cond(15, -kImm19Range));
  EXPECT_EQ(r(2), enc_b_cond(1, kImm19Range - 4, true));
  EXPECT_EQ(r(3), enc_cbz(3, 8, false, false));
  EXPECT_EQ(r(4), enc_cbz(30, -kImm19Range, true, true));
  EXPECT_EQ(r(5), enc_cbz(0, kImm19Range - 4, false, true));
  EXPECT_EQ(r(6), enc_tbz(5, 31, kImm14Range - 4, false));
  EXPECT_EQ(r(7), enc_tbz(6, 63, -kImm14Range, true));
  EXPECT_EQ(r(8), enc_tbz(7, 32, 4, false));
  EXPECT_EQ(r(9), enc_ldr_w(16, 17, 0x3ffc));
  EXPECT_EQ(r(10), enc_ldrsw(1, 2, 4));
  EXPECT_EQ(r(11), enc_ldr_q(7, 16, 0xfff0));
  EXPECT_EQ(r(12), enc_str_pre(kX16, kSp, -16));
  EXPECT_EQ(r(13), enc_ldr_post(kX16, kSp, 16));
  EXPECT_EQ(r(14), enc_fmov_d_x(3, kX16));
  EXPECT_EQ(r(15), enc_fmov_x_d(kX16, 3));
  EXPECT_EQ(r(16), enc_ins_d1_x(3, kX16));
  EXPECT_EQ(r(17), enc_dup_d_d1(3, 3));
  EXPECT_EQ(r(18), enc_dup_s_s2(3, 3));
  EXPECT_EQ(r(19), enc_bra(1, 2, false));
  EXPECT_EQ(r(20), enc_bra(3, kSp, true));
  EXPECT_EQ(r(21), enc_braz(4, false));
  EXPECT_EQ(r(22), enc_braz(kLr, true));
  EXPECT_EQ(r(23), enc_str_pre(kX16, kSp, -256));
  EXPECT_EQ(r(24), enc_ldr_post(kX16, kSp, 255));
  // The reach predicates at their edges.
  EXPECT_TRUE(fits_imm19(-kImm19Range) && fits_imm19(kImm19Range - 4));
  EXPECT_FALSE(fits_imm19(kImm19Range) || fits_imm19(-kImm19Range - 4) || fits_imm19(2));
  EXPECT_TRUE(fits_imm14(-kImm14Range) && fits_imm14(kImm14Range - 4));
  EXPECT_FALSE(fits_imm14(kImm14Range) || fits_imm14(-kImm14Range - 4) || fits_imm14(6));
}
