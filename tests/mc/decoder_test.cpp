// lp::mc::Decoder on known byte sequences (x86-64, rv64gc, rv64g).
#include <gtest/gtest.h>

#include "mc/decoder.hpp"
#include "samples.hpp"

using namespace lp::mc;

namespace {

std::unique_ptr<Decoder> make(const char *arch, const char *feat = "") {
  std::string err;
  auto d = Decoder::create(arch, feat, &err);
  EXPECT_NE(d, nullptr) << err;
  return d;
}

Insn dec(const Decoder &d, std::initializer_list<uint8_t> b, uint64_t addr = 0x1000) {
  std::vector<uint8_t> v(b);
  return d.decode(v.data(), v.size(), addr);
}

} // namespace

TEST(Decoder, RejectsUnknownArch) {
  std::string err;
  EXPECT_EQ(Decoder::create("mips", "", &err), nullptr);
  EXPECT_NE(err.find("mips"), std::string::npos);
}

TEST(Decoder, X86Lengths) {
  auto d = make("x86_64");
  EXPECT_EQ(dec(*d, {0x0f, 0x1f, 0x44, 0x00, 0x00}).length, 5u); // nop5
  EXPECT_EQ(dec(*d, {0x90}).length, 1u);
  EXPECT_EQ(dec(*d, {0x48, 0x89, 0xe5}).length, 3u);                    // mov rbp, rsp
  EXPECT_EQ(dec(*d, {0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8}).length, 10u); // movabs
  EXPECT_EQ(dec(*d, {0x66, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0}).length, 9u);
  Insn t = dec(*d, {0xcc});
  EXPECT_EQ(t.length, 1u);
  EXPECT_EQ(t.flow, Flow::Trap);
  EXPECT_EQ(t.name, "INT3");
  EXPECT_FALSE(dec(*d, {0x0f, 0x1f}).valid); // truncated
  EXPECT_FALSE(dec(*d, {0x06}).valid);       // push es: invalid in 64-bit mode
}

TEST(Decoder, X86ControlFlow) {
  auto d = make("x86_64");
  Insn c = dec(*d, {0xe8, 0x10, 0, 0, 0}, 0x1000);
  EXPECT_TRUE(c.is_call);
  EXPECT_EQ(c.flow, Flow::Call);
  ASSERT_TRUE(c.has_target);
  EXPECT_EQ(c.target, 0x1015u);
  Insn j = dec(*d, {0xeb, 0xfe}, 0x2000);
  EXPECT_EQ(j.flow, Flow::Jump);
  EXPECT_EQ(j.target, 0x2000u);
  Insn jcc = dec(*d, {0x74, 0x08}, 0x100c);
  EXPECT_EQ(jcc.flow, Flow::CondBranch);
  EXPECT_TRUE(jcc.is_conditional);
  EXPECT_EQ(jcc.target, 0x1016u);
  Insn jcc4 = dec(*d, {0x0f, 0x85, 0x00, 0x01, 0, 0}, 0x1000);
  EXPECT_EQ(jcc4.flow, Flow::CondBranch);
  EXPECT_EQ(jcc4.target, 0x1106u);
  Insn r = dec(*d, {0xc3});
  EXPECT_TRUE(r.is_return);
  Insn ij = dec(*d, {0xff, 0xe0}); // jmp rax
  EXPECT_EQ(ij.flow, Flow::IndirectJump);
  EXPECT_TRUE(ij.is_indirect);
  Insn ic = dec(*d, {0xff, 0xd2}); // call rdx
  EXPECT_EQ(ic.flow, Flow::IndirectCall);
  Insn jr = dec(*d, {0xe3, 0x08}, 0x102d); // jrcxz
  EXPECT_EQ(jr.flow, Flow::CondBranch);
  EXPECT_EQ(jr.target, 0x1037u);
}

TEST(Decoder, X86RipRelative) {
  auto d = make("x86_64");
  Insn m = dec(*d, {0x8b, 0x05, 0x5e, 0, 0, 0}, 0x1004); // mov eax, [rip+0x5e]
  EXPECT_TRUE(m.rip_relative);
  EXPECT_TRUE(m.may_load);
  EXPECT_EQ(m.disp_offset, 2u);
  EXPECT_EQ(m.disp_size, 4u);
  EXPECT_EQ(m.mem_target, 0x1068u);
  // mov dword [rip+0x10], 0x10: the immediate equals the displacement; the
  // disp32 is the one at offset 2, not the imm32 at 6.
  Insn s = dec(*d, {0xc7, 0x05, 0x10, 0, 0, 0, 0x10, 0, 0, 0}, 0x2000);
  EXPECT_TRUE(s.rip_relative);
  EXPECT_EQ(s.length, 10u);
  EXPECT_EQ(s.disp_offset, 2u);
  EXPECT_EQ(s.mem_target, 0x2000u + 10 + 0x10);
  // REX + imm8 after the disp: add qword [rip-4], 1
  Insn a = dec(*d, {0x48, 0x83, 0x05, 0xfc, 0xff, 0xff, 0xff, 0x01}, 0x3000);
  EXPECT_TRUE(a.rip_relative);
  EXPECT_EQ(a.disp_offset, 3u);
  EXPECT_EQ(a.mem_target, 0x3000u + 8 - 4);
  // call [rip+0x30]
  Insn c = dec(*d, {0xff, 0x15, 0x30, 0, 0, 0}, 0x1042);
  EXPECT_EQ(c.flow, Flow::IndirectCall);
  EXPECT_TRUE(c.rip_relative);
  EXPECT_EQ(c.mem_target, 0x1078u);
  // Not rip-relative: mov eax, [rcx+4]
  Insn n = dec(*d, {0x8b, 0x41, 0x04});
  EXPECT_FALSE(n.rip_relative);
  EXPECT_FALSE(n.reads_pc);
}

TEST(Decoder, RiscvCompressedLengths) {
  auto d = make("riscv64", "+c");
  EXPECT_TRUE(d->has_compressed());
  EXPECT_EQ(d->min_insn_align(), 2u);
  Insn cn = dec(*d, {0x01, 0x00});
  EXPECT_EQ(cn.length, 2u);
  EXPECT_TRUE(cn.compressed);
  EXPECT_EQ(dec(*d, {0x13, 0x00, 0x00, 0x00}).length, 4u); // nop
  Insn cu = dec(*d, {0x00, 0x00});                          // c.unimp
  EXPECT_TRUE(cu.valid);
  EXPECT_EQ(cu.flow, Flow::Trap);
  EXPECT_EQ(dec(*d, {0x41, 0x11}).length, 2u); // c.addi sp, -16
}

TEST(Decoder, RiscvNoCompressed) {
  auto d = make("riscv64", "-c");
  EXPECT_FALSE(d->has_compressed());
  EXPECT_EQ(d->min_insn_align(), 4u);
  EXPECT_FALSE(dec(*d, {0x01, 0x00, 0x13, 0x00}).valid); // c.nop is illegal without C
  EXPECT_EQ(dec(*d, {0x13, 0x00, 0x00, 0x00}).length, 4u);
}

TEST(Decoder, RiscvControlFlow) {
  auto d = make("riscv64", "+c");
  const uint8_t jal_t0[4] = {0xef, 0x02, 0x00, 0x00};
  Insn jt = d->decode(jal_t0, 4, 0x10000);
  EXPECT_EQ(jt.name, "JAL");
  EXPECT_EQ(jt.flow, Flow::Call);
  EXPECT_EQ(jt.rd, 5);
  EXPECT_EQ(jt.target, 0x10000u);
  Insn cj = dec(*d, {0x19, 0xa0}, 0x101c); // c.j +6
  EXPECT_EQ(cj.flow, Flow::Jump);
  EXPECT_EQ(cj.target, 0x1022u);
  Insn bz = dec(*d, {0x11, 0xc5}, 0x100c); // c.beqz a0, +12
  EXPECT_EQ(bz.flow, Flow::CondBranch);
  EXPECT_EQ(bz.rs1, 10);
  EXPECT_EQ(bz.target, 0x1018u);
  Insn bnz = dec(*d, {0x6d, 0xfd}, 0x1030); // c.bnez a0, -6
  EXPECT_EQ(bnz.flow, Flow::CondBranch);
  EXPECT_EQ(bnz.target, 0x102au);
  Insn bge = dec(*d, {0x63, 0x53, 0x65, 0x00}, 0x1018); // bge a0, t1, +6
  EXPECT_EQ(bge.flow, Flow::CondBranch);
  EXPECT_EQ(bge.rs1, 10);
  EXPECT_EQ(bge.rs2, 6);
  EXPECT_EQ(bge.target, 0x101eu);
  Insn au = dec(*d, {0x17, 0x03, 0x00, 0x00}, 0x1004); // auipc t1, 0
  EXPECT_EQ(au.name, "AUIPC");
  EXPECT_TRUE(au.reads_pc);
  EXPECT_EQ(au.rd, 6);
  Insn ret = dec(*d, {0x82, 0x80}); // c.jr ra == ret
  EXPECT_EQ(ret.flow, Flow::Return);
  Insn cjalr = dec(*d, {0x82, 0x97}); // c.jalr a5
  EXPECT_EQ(cjalr.flow, Flow::IndirectCall);
  EXPECT_EQ(cjalr.rs1, 15);
  Insn jalr = dec(*d, {0xe7, 0x80, 0xe0, 0x03}); // jalr ra, 62(ra)
  EXPECT_EQ(jalr.flow, Flow::IndirectCall);
  EXPECT_EQ(jalr.rd, 1);
  EXPECT_EQ(jalr.rs1, 1);
  EXPECT_EQ(jalr.imm, 62);
}

TEST(Decoder, Boundaries) {
  auto d = make("x86_64");
  const auto *b = lp::samples::blob("x86_64");
  const auto &f = b->fns[0]; // x_pcrel
  const uint8_t *code = b->code + f.offset;
  std::vector<uint64_t> bs;
  ASSERT_TRUE(d->boundaries(code, f.size, 0x1000, &bs));
  const std::vector<uint64_t> want = {0x1000, 0x1001, 0x1004, 0x100a, 0x100c, 0x100e, 0x1013, 0x1016,
                                      0x101d, 0x1020, 0x1022, 0x1024, 0x1026, 0x1027};
  EXPECT_EQ(bs, want);
  EXPECT_TRUE(d->is_boundary(code, f.size, 0x1000, 0x100e));
  EXPECT_EQ(d->boundary(code, f.size, 0x1000, 0x100f), BoundaryStatus::Inside);
  EXPECT_EQ(d->boundary(code, f.size, 0x1000, 0x1005), BoundaryStatus::Inside);
  EXPECT_EQ(d->boundary(code, f.size, 0x1000, 0x2000), BoundaryStatus::OutOfRange);
  EXPECT_EQ(d->boundary(code, f.size, 0x1000, 0x0fff), BoundaryStatus::OutOfRange);
  std::vector<Decoder::Edge> edges;
  d->direct_edges(code, f.size, 0x1000, &edges);
  ASSERT_EQ(edges.size(), 3u); // je, call, jmp
  EXPECT_EQ(edges[0].to, 0x1016u);
}

TEST(Decoder, RiscvBoundaries) {
  auto d = make("riscv64", "+c");
  const auto *b = lp::samples::blob("riscv64gc");
  const auto &f = b->fns[0]; // r_pcrel
  const uint8_t *code = b->code + f.offset;
  EXPECT_TRUE(d->is_boundary(code, f.size, 0x1000, 0x1002));
  EXPECT_TRUE(d->is_boundary(code, f.size, 0x1000, 0x1004));
  EXPECT_EQ(d->boundary(code, f.size, 0x1000, 0x1006), BoundaryStatus::Inside); // middle of auipc
  EXPECT_TRUE(d->is_boundary(code, f.size, 0x1000, 0x1008));
  auto g = make("riscv64", "-c");
  const auto *bg = lp::samples::blob("riscv64g");
  EXPECT_TRUE(g->is_boundary(bg->code, bg->fns[0].size, 0x1000, 0x1004));
  EXPECT_EQ(g->boundary(bg->code, bg->fns[0].size, 0x1000, 0x1002), BoundaryStatus::Inside);
  // rv64gc code does not decode on a hart without C.
  EXPECT_EQ(g->boundary(code, f.size, 0x1000, 0x1004), BoundaryStatus::Undecodable);
}

TEST(Decoder, InProcessIsBoundary) {
  auto d = make("x86_64");
  static const uint8_t code[] = {0x55, 0x48, 0x89, 0xe5, 0x5d, 0xc3};
  const uintptr_t s = reinterpret_cast<uintptr_t>(code);
  EXPECT_TRUE(d->is_boundary(s, sizeof code, s + 1));
  EXPECT_FALSE(d->is_boundary(s, sizeof code, s + 2));
  EXPECT_TRUE(d->is_boundary(s, sizeof code, s + 4));
}

TEST(Decoder, Text) {
  auto d = make("x86_64");
  Insn i = dec(*d, {0x48, 0x89, 0xe5});
  EXPECT_NE(i.text.find("mov"), std::string::npos) << i.text;
  EXPECT_EQ(i.mnemonic, "movq") << i.text;
  Insn j = dec(*d, {0x74, 0x08}, 0x100c);
  EXPECT_EQ(j.mnemonic, "je");
  auto r = make("riscv64");
  Insn c = dec(*r, {0x01, 0x00});
  EXPECT_EQ(c.text, "nop") << c.text; // c.nop prints as its alias
}
