// Fuzz target over lp::mc::Decoder and the three relocators (random bytes in,
// checked invariants out). Built two ways (tests/fuzz/CMakeLists.txt):
//   * lp_fuzz_reloc_libfuzzer: clang++-16 -fsanitize=fuzzer,address,undefined;
//   * lp_fuzz_reloc: the host compiler + standalone_main.cpp (random inputs and
//     corpus files, no coverage feedback), so a g++ configure still runs it.
//
// Input layout: [0] arch (% 4: x86_64 / rv64gc on a C hart / rv64g without C /
// aarch64), [1] min_len, scratch, whole-function and exit-trap choices (A64:
// also the site's word in the function and a misaligned destination), [2..9]
// destination offset, [10..] the code.
// RISC-V inputs also cross-check the built-in RV64GC decoder against LLVM MC
// at every offset, and the liveness scan's invariants; A64 inputs the
// built-in A64 decoder against LLVM MC at every word (and both engines'
// relocations against each other), and what each copy computes.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_reloc.hpp"
#include "mc/decoder.hpp"
#include "mc/target.hpp"
#include "aarch64/encoding.hpp"
#include "aarch64/relocator.hpp"
#include "riscv64/liveness.hpp"
#include "riscv64/relocator.hpp"
#include "x86_64/relocator.hpp"

namespace {

const uint8_t *g_input = nullptr;
size_t g_input_size = 0;

[[noreturn]] void fail(const char *what) {
  fprintf(stderr, "fuzz invariant violated: %s\n", what);
  if (FILE *f = fopen("fuzz-reloc-failure.bin", "wb")) { // for the standalone driver
    fwrite(g_input, 1, g_input_size, f);
    fclose(f);
    fprintf(stderr, "input written to fuzz-reloc-failure.bin\n");
  }
  abort();
}
#define CHECK(c)                                                                                                       \
  do {                                                                                                                 \
    if (!(c)) fail(#c);                                                                                                \
  } while (0)

struct Decoders {
  bool targets = (lp::mc::initialize_all_targets(), true); // first: before any create()
  std::unique_ptr<lp::mc::Decoder> x86 = lp::mc::Decoder::create("x86_64");
  std::unique_ptr<lp::mc::Decoder> rvc = lp::mc::Decoder::create("riscv64", "+c");
  std::unique_ptr<lp::mc::Decoder> rvg = lp::mc::Decoder::create("riscv64", "-c");
  std::unique_ptr<lp::mc::Decoder> rvc_builtin = lp::mc::Decoder::create_builtin("riscv64", "+c");
  std::unique_ptr<lp::mc::Decoder> rvg_builtin = lp::mc::Decoder::create_builtin("riscv64", "-c");
  std::unique_ptr<lp::mc::Decoder> a64 = lp::mc::Decoder::create("aarch64");
  std::unique_ptr<lp::mc::Decoder> a64_builtin = lp::mc::Decoder::create_builtin("aarch64");
};

enum class Isa { X86, Rv, A64 };
const Decoders &decoders() {
  static Decoders d;
  return d;
}

void check_decode_all(const lp::mc::Decoder &d, const uint8_t *code, size_t n, uint64_t base) {
  size_t off = 0;
  lp::mc::Insn in;
  while (off < n) {
    if (!d.decode(code + off, n - off, base + off, &in)) {
      off += d.min_insn_align();
      continue;
    }
    CHECK(in.length > 0 && in.length <= n - off);
    CHECK(in.length <= 15);
    if (in.rip_relative) CHECK(in.disp_offset + 4 <= in.length);
    off += in.length;
  }
  std::vector<uint64_t> bs;
  d.boundaries(code, n, base, &bs);
  for (size_t i = 1; i < bs.size(); ++i) CHECK(bs[i] > bs[i - 1]);
  for (uint64_t b : bs) CHECK(d.is_boundary(code, n, base, b));
}

// Both RISC-V engines see the same instruction at every 2-byte offset.
void check_engines_agree(const lp::mc::Decoder &llvm, const lp::mc::Decoder &ours, const uint8_t *code, size_t n,
                         uint64_t base) {
  lp::mc::Insn a, b;
  for (size_t off = 0; off < n; off += 2) {
    const bool va = llvm.decode(code + off, n - off, base + off, &a, false);
    const bool vb = ours.decode(code + off, n - off, base + off, &b, false);
    CHECK(va == vb);
    if (!va) continue;
    CHECK(a.length == b.length && a.name == b.name && a.flow == b.flow && a.has_target == b.has_target &&
          a.target == b.target && a.reads_pc == b.reads_pc && a.rd == b.rd && a.rs1 == b.rs1 && a.rs2 == b.rs2 &&
          a.imm == b.imm && a.gpr_read == b.gpr_read && a.gpr_written == b.gpr_written &&
          a.may_load == b.may_load && a.may_store == b.may_store && a.compressed == b.compressed);
  }
}

// The built-in A64 decoder against LLVM MC at every word, as
// backends/aarch64/decoder.hpp promises: a word it files in a block ("A64_*")
// carries no pc use, target, exclusivity or memory access, and LLVM finds none
// in it either (or rejects it: the documented disagreement, in the blocks
// whose validity is not checked); every other word decodes exactly as LLVM
// decodes it, or both reject it.
void check_a64_engines_agree(const lp::mc::Decoder &llvm, const lp::mc::Decoder &ours, const uint8_t *code, size_t n,
                             uint64_t base) {
  lp::mc::Insn a, b;
  for (size_t off = 0; off + 4 <= n; off += 4) {
    const bool va = llvm.decode(code + off, 4, base + off, &a, false);
    const bool vb = ours.decode(code + off, 4, base + off, &b, false);
    if (vb && b.name.rfind("A64_", 0) == 0) {
      CHECK(b.flow == lp::mc::Flow::None && !b.reads_pc && !b.has_target && !b.exclusive && !b.may_load &&
            !b.may_store);
      if (va) CHECK(a.flow == lp::mc::Flow::None && !a.reads_pc && !a.has_target && !a.exclusive);
      continue;
    }
    CHECK(va == vb);
    if (!va) continue;
    CHECK(a.name == b.name && a.flow == b.flow && a.has_target == b.has_target && a.target == b.target &&
          a.reads_pc == b.reads_pc && a.mem_target == b.mem_target && a.rd == b.rd && a.rs1 == b.rs1 &&
          a.rs2 == b.rs2 && a.imm == b.imm && a.cond == b.cond && a.test_bit == b.test_bit &&
          a.exclusive == b.exclusive && a.may_load == b.may_load && a.may_store == b.may_store);
  }
}

uint32_t word_at(const std::vector<uint8_t> &c, size_t off) { return lp::aarch64::get32(c.data() + off); }

// An A64 copy (backends/aarch64/relocator.hpp): one word moved; exit traps are
// BRK #kBrkImm; the jump back is `B site+4` (or its exit trap); every direct
// branch that leaves the copy goes to the original's target or back to
// site+4; and the register the original sets from the pc (adr/adrp: its value,
// ldr literal: the literal's address, through Rt or x16; bl/blr: x30 = the
// return address) is what the copy's materialising words (adr, adrp, add,
// movz, movk) compute.
void check_a64_copy(const lp::mc::Decoder &d, const lp::mc::RelocInput &in, uintptr_t dest,
                    const lp::mc::Relocation &r) {
  CHECK(r.displaced_len == 4 && r.boundaries.size() == 1 && r.code.size() % 4 == 0);
  lp::mc::Insn orig, i;
  CHECK(d.decode(in.code, 4, in.site, &orig, false));
  const uint64_t next = in.site + 4;
  auto exit_at = [&](size_t off) -> const lp::mc::ExitTrap * {
    for (const auto &e : r.exits)
      if (e.pc == off) return &e;
    return nullptr;
  };
  for (const auto &e : r.exits) {
    CHECK(e.pc % 4 == 0 && word_at(r.code, e.pc) == lp::aarch64::trap_insn());
    CHECK((orig.has_target && e.target == orig.target) || e.target == next);
  }
  if (r.ends_in_control_transfer) {
    CHECK(r.jump_back_off == r.code.size());
  } else {
    CHECK(r.jump_back_off + 4 == r.code.size());
    const lp::mc::ExitTrap *e = exit_at(r.jump_back_off);
    CHECK(e ? e->target == next
            : d.decode(r.code.data() + r.jump_back_off, 4, dest + r.jump_back_off, &i, false) && i.name == "B" &&
                  i.target == next);
  }
  for (size_t off = 0; off < r.code.size(); off += 4) {
    CHECK(d.decode(r.code.data() + off, 4, dest + off, &i, false));
    if (i.has_target && (i.target < dest || i.target >= dest + r.code.size()))
      CHECK((orig.has_target && i.target == orig.target) || i.target == next);
  }
  // The materialised register: which one, and the value it must get.
  const std::string &n = orig.name;
  int reg = -1;
  uint64_t want = orig.mem_target;
  if (n == "ADR" || n == "ADRP" || n == "LDRWl" || n == "LDRXl" || n == "LDRSWl") reg = orig.rd == 31 ? -1 : orig.rd;
  else if (n == "LDRSl" || n == "LDRDl" || n == "LDRQl") reg = 16;
  else if (n == "BL" || n == "BLR" || n.rfind("BLRA", 0) == 0) reg = 30, want = next;
  if (reg < 0) return;
  uint64_t x[32] = {};
  bool set = false, checked = false; // `reg` written by the current run of materialising words
  for (size_t off = 0; off <= r.code.size(); off += 4) {
    const uint32_t w = off < r.code.size() ? word_at(r.code, off) : 0;
    const unsigned rd = w & 31, sh = 16 * ((w >> 21) & 3);
    bool mat = off < r.code.size() && exit_at(off) == nullptr;
    if (mat && d.decode(r.code.data() + off, 4, dest + off, &i, false) && (i.name == "ADR" || i.name == "ADRP"))
      x[rd] = i.mem_target;
    else if (mat && (w & 0xffc00000u) == 0x91000000u && ((w >> 5) & 31) == rd) // add xd, xd, #imm12
      x[rd] += (w >> 10) & 0xfff;
    else if (mat && (w & 0xff800000u) == 0xd2800000u) // movz xd, #imm16, lsl #sh
      x[rd] = uint64_t((w >> 5) & 0xffff) << sh;
    else if (mat && (w & 0xff800000u) == 0xf2800000u) // movk
      x[rd] = (x[rd] & ~(uint64_t(0xffff) << sh)) | uint64_t((w >> 5) & 0xffff) << sh;
    else
      mat = false;
    if (mat) {
      set |= rd == unsigned(reg);
      continue;
    }
    if (set) CHECK(x[reg] == want);
    checked |= set;
    set = false;
  }
  CHECK(checked);
}

void check_relocation(const lp::mc::Decoder &d, Isa isa, const lp::mc::RelocInput &in, uintptr_t dest) {
  const bool x86 = isa == Isa::X86, a64 = isa == Isa::A64;
  const lp::mc::Relocation plan = x86   ? lp::x86_64::plan_relocation(d, in)
                                  : a64 ? lp::aarch64::plan_relocation(d, in)
                                        : lp::riscv64::plan_relocation(d, in);
  const lp::mc::Relocation r = x86   ? lp::x86_64::relocate(d, in, dest)
                               : a64 ? lp::aarch64::relocate(d, in, dest)
                                     : lp::riscv64::relocate(d, in, dest);
  CHECK(!r.reason.empty() || r.ok());
  if (plan.ok() && !r.ok())
    CHECK(r.status == lp::mc::RelocStatus::Range || r.status == lp::mc::RelocStatus::Invalid);
  if (!plan.ok()) CHECK(r.status == plan.status);
  if (a64 && !r.ok()) {
    // A64 refusals name what they refuse: an instruction ('text'), an address or the misaligned dest.
    if (r.status == lp::mc::RelocStatus::Unsupported) CHECK(r.reason.find('\'') != std::string::npos);
    if (r.status == lp::mc::RelocStatus::Range) CHECK(!in.trap_exits && r.reason.find("0x") != std::string::npos);
    if (plan.ok() && r.status == lp::mc::RelocStatus::Invalid) CHECK(dest % 4 != 0);
  }
  if (!r.ok()) return;
  CHECK(r.displaced_len >= in.min_len);
  CHECK(r.displaced_len <= in.avail);
  CHECK(!r.boundaries.empty() && r.boundaries[0] == 0);
  CHECK(r.boundaries.size() == r.pc_map.size());
  for (size_t i = 0; i < r.boundaries.size(); ++i) {
    CHECK(r.pc_map[i].orig_off == r.boundaries[i]);
    CHECK(r.pc_map[i].ool_off <= r.jump_back_off);
    if (i) CHECK(r.boundaries[i] > r.boundaries[i - 1]);
    CHECK(r.map_pc(in.site + r.boundaries[i]) == dest + r.pc_map[i].ool_off);
  }
  CHECK(r.jump_back_off <= r.code.size());
  CHECK(r.code.size() <= plan.max_code_size);
  CHECK(r.code.size() > 0);
  // The copy decodes completely (x86 absolute jumps carry an 8-byte literal;
  // RISC-V exit traps are four zero bytes, illegal without C; A64 ones are
  // BRK words, checked with the rest of the copy in check_a64_copy).
  size_t off = 0;
  lp::mc::Insn i;
  size_t lit = 0;
  while (off < r.code.size()) {
    if (lit < r.literals.size() && r.literals[lit] == off) {
      off += 8;
      ++lit;
      continue;
    }
    bool exit_trap = false;
    for (const auto &e : r.exits) exit_trap |= e.pc == off;
    if (exit_trap) {
      off += 4;
      continue;
    }
    CHECK(d.decode(r.code.data() + off, r.code.size() - off, dest + off, &i, false));
    off += i.length;
  }
  CHECK(lit == r.literals.size());
  CHECK(off == r.code.size());
  // Exit traps: only when asked for, inside the copy (RISC-V: four zero bytes each).
  if (!in.trap_exits) CHECK(r.exits.empty());
  for (const auto &e : r.exits) {
    CHECK(e.pc + 4 <= r.code.size());
    if (!a64) CHECK(r.code[e.pc] == 0 && r.code[e.pc + 1] == 0 && r.code[e.pc + 2] == 0 && r.code[e.pc + 3] == 0);
  }
  if (in.trap_exits) CHECK(r.status != lp::mc::RelocStatus::Range);
  if (a64) check_a64_copy(d, in, dest, r);
  // The site jump fits the displaced range (A64: `B dest`, exactly when dest is in its reach).
  uint8_t jump[64];
  if (x86) {
    (void)lp::x86_64::encode_site_jump(in.site, dest, r.displaced_len, jump);
  } else if (a64) {
    const uint64_t dist = dest - in.site + (uint64_t(1) << 27);
    CHECK(lp::aarch64::encode_site_jump(in.site, dest, r.displaced_len, jump) == (dist < (uint64_t(1) << 28)));
    if (dist < (uint64_t(1) << 28)) CHECK(d.decode(jump, 4, in.site, &i, false) && i.name == "B" && i.target == dest);
  } else {
    (void)lp::riscv64::encode_site_jump(in.site, dest & ~uintptr_t(1), r.displaced_len, in.scratch_reg, jump);
  }
}

// Both A64 engines relocate alike: the same status, copy, exits and bound,
// except where the built-in decoder accepts a displaced word LLVM rejects (a
// block word: decoder.hpp), which it copies like any other.
void check_a64_engines_relocate_alike(const lp::mc::Decoder &llvm, const lp::mc::Decoder &ours,
                                      const lp::mc::RelocInput &in, uintptr_t dest) {
  const lp::mc::Relocation a = lp::aarch64::relocate(llvm, in, dest), b = lp::aarch64::relocate(ours, in, dest);
  if (a.status == lp::mc::RelocStatus::Undecodable && b.status != a.status) {
    bool block_word = false;
    lp::mc::Insn i, j;
    for (size_t off = 0; off < in.min_len && off + 4 <= in.avail; off += 4)
      block_word |= !llvm.decode(in.code + off, 4, in.site + off, &j, false) &&
                    ours.decode(in.code + off, 4, in.site + off, &i, false) && i.name.rfind("A64_", 0) == 0;
    CHECK(block_word);
    return;
  }
  CHECK(a.status == b.status && a.code == b.code && a.jump_back_off == b.jump_back_off &&
        a.max_code_size == b.max_code_size && a.ends_in_control_transfer == b.ends_in_control_transfer &&
        a.displaced_len == b.displaced_len && a.exits.size() == b.exits.size());
  for (size_t k = 0; k < a.exits.size(); ++k) CHECK(a.exits[k].pc == b.exits[k].pc && a.exits[k].target == b.exits[k].target);
}

} // namespace

int lp_fuzz_one(const uint8_t *data, size_t size) {
  if (size < 11) return 0;
  g_input = data;
  g_input_size = size;
  const Decoders &ds = decoders();
  const unsigned which = data[0] % 4;
  const Isa isa = which == 0 ? Isa::X86 : which == 3 ? Isa::A64 : Isa::Rv;
  const lp::mc::Decoder &d = which == 0 ? *ds.x86 : which == 1 ? *ds.rvc : which == 2 ? *ds.rvg : *ds.a64;
  uint64_t delta = 0;
  std::memcpy(&delta, data + 2, 8);
  const uint8_t *code = data + 10;
  const size_t n = size - 10;
  const uintptr_t base = 0x7f0000100000ull;
  check_decode_all(d, code, n, base);
  if (isa == Isa::Rv) check_engines_agree(d, which == 1 ? *ds.rvc_builtin : *ds.rvg_builtin, code, n, base);
  if (isa == Isa::A64) check_a64_engines_agree(d, *ds.a64_builtin, code, n, base);

  // A64: with the whole function, the site is one of its first 8 words
  // (so exclusive sequences before it are seen too).
  size_t site_off = 0;
  if (isa == Isa::A64 && (data[1] & 4)) site_off = std::min<size_t>(4 * ((data[1] >> 3) & 7), n & ~size_t(3));
  lp::mc::RelocInput in;
  in.site = base + site_off;
  in.code = code + site_off;
  in.avail = n - site_off;
  if (isa == Isa::X86) {
    in.min_len = 5;
  } else if (isa == Isa::A64) {
    in.min_len = (data[1] & 3) == 3 ? 8 : 4; // 8: more than one word, refused (Invalid)
    in.scratch_reg = (data[1] & 2) ? 16 : 0;  // ignored by the A64 relocator
  } else {
    in.min_len = (data[1] & 1) ? 8 : 4;
    in.scratch_reg = (data[1] & 2) ? 5 + (data[1] >> 3) % 27 : 0;
  }
  if (data[1] & 4) { // the code is a whole function starting at (or a bit before) the site
    in.func_start = base;
    in.func_code = code;
    in.func_size = n;
  }
  if (isa != Isa::X86) in.trap_exits = (data[1] & 0x80) != 0;
  if (isa == Isa::Rv) {
    // A dead register is a candidate (never x0, sp, gp, tp) and the lowest one.
    const uint32_t dead = lp::riscv64::dead_registers(d, in, in.min_len);
    CHECK((dead & 0x1du) == 0);
    const unsigned r0 = lp::riscv64::dead_register(d, in, in.min_len);
    CHECK(dead ? r0 == unsigned(__builtin_ctz(dead)) : r0 == 0);
  }
  // Destination: near (within +-512 KiB), mid (+-2 GiB) or anywhere, by the
  // top bits (A64: half of "anywhere" is +-256 MiB instead, around b's +-128 MiB).
  int64_t off = int64_t(delta);
  switch ((delta >> 62) & 3) {
  case 0: off = int64_t(delta % (1 << 20)) - (1 << 19); break;
  case 1: off = int64_t(delta % (1ull << 32)) - (1ll << 31); break;
  case 2:
    if (isa == Isa::A64) off = int64_t(delta % (1ull << 29)) - (1ll << 28);
    break;
  default: break;
  }
  uintptr_t dest = in.site + uintptr_t(off);
  if (isa == Isa::Rv) dest &= ~uintptr_t(d.has_compressed() ? 1 : 3);
  if (isa == Isa::A64 && (data[1] & 0x40) == 0) dest &= ~uintptr_t(3); // else maybe misaligned: Invalid
  check_relocation(d, isa, in, dest);
  if (isa == Isa::A64) {
    check_relocation(*ds.a64_builtin, isa, in, dest);
    check_a64_engines_relocate_alike(d, *ds.a64_builtin, in, dest);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return lp_fuzz_one(data, size); }
