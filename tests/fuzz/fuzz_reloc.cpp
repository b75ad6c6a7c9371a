// Fuzz target over lp::mc::Decoder and both relocators (random bytes in, checked
// invariants out). Built two ways (tests/fuzz/CMakeLists.txt):
//   * lp_fuzz_reloc_libfuzzer: clang++-16 -fsanitize=fuzzer,address,undefined;
//   * lp_fuzz_reloc: the host compiler + standalone_main.cpp (random inputs and
//     corpus files, no coverage feedback), so a g++ configure still runs it.
//
// Input layout: [0] arch (x86_64 / rv64gc on a C hart / rv64g without C),
// [1] min_len, scratch, whole-function and exit-trap choices, [2..9] destination
// offset, [10..] the code.
// RISC-V inputs also cross-check the built-in RV64GC decoder against LLVM MC
// at every offset, and the liveness scan's invariants.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cstring>
#include <memory>

#include "fuzz_reloc.hpp"
#include "mc/decoder.hpp"
#include "mc/target.hpp"
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
};
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

void check_relocation(const lp::mc::Decoder &d, bool x86, const lp::mc::RelocInput &in, uintptr_t dest) {
  const lp::mc::Relocation plan = x86 ? lp::x86_64::plan_relocation(d, in) : lp::riscv64::plan_relocation(d, in);
  const lp::mc::Relocation r = x86 ? lp::x86_64::relocate(d, in, dest) : lp::riscv64::relocate(d, in, dest);
  CHECK(!r.reason.empty() || r.ok());
  if (plan.ok() && !r.ok())
    CHECK(r.status == lp::mc::RelocStatus::Range || r.status == lp::mc::RelocStatus::Invalid);
  if (!plan.ok()) CHECK(r.status == plan.status);
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
  // RISC-V exit traps are four zero bytes, illegal without C).
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
  // Exit traps: only when asked for, four zero bytes each, inside the copy.
  if (!in.trap_exits) CHECK(r.exits.empty());
  for (const auto &e : r.exits) {
    CHECK(e.pc + 4 <= r.code.size());
    CHECK(r.code[e.pc] == 0 && r.code[e.pc + 1] == 0 && r.code[e.pc + 2] == 0 && r.code[e.pc + 3] == 0);
  }
  if (in.trap_exits) CHECK(r.status != lp::mc::RelocStatus::Range);
  // The site jump fits the displaced range.
  uint8_t jump[64];
  if (x86)
    (void)lp::x86_64::encode_site_jump(in.site, dest, r.displaced_len, jump);
  else
    (void)lp::riscv64::encode_site_jump(in.site, dest & ~uintptr_t(1), r.displaced_len, in.scratch_reg, jump);
}

} // namespace

int lp_fuzz_one(const uint8_t *data, size_t size) {
  if (size < 11) return 0;
  g_input = data;
  g_input_size = size;
  const Decoders &ds = decoders();
  const unsigned which = data[0] % 3;
  const bool x86 = which == 0;
  const lp::mc::Decoder &d = which == 0 ? *ds.x86 : which == 1 ? *ds.rvc : *ds.rvg;
  uint64_t delta = 0;
  std::memcpy(&delta, data + 2, 8);
  const uint8_t *code = data + 10;
  const size_t n = size - 10;
  const uintptr_t site = 0x7f0000100000ull;
  check_decode_all(d, code, n, site);
  if (!x86) check_engines_agree(d, which == 1 ? *ds.rvc_builtin : *ds.rvg_builtin, code, n, site);

  lp::mc::RelocInput in;
  in.site = site;
  in.code = code;
  in.avail = n;
  if (x86) {
    in.min_len = 5;
  } else {
    in.min_len = (data[1] & 1) ? 8 : 4;
    in.scratch_reg = (data[1] & 2) ? 5 + (data[1] >> 3) % 27 : 0;
  }
  if (data[1] & 4) { // the code is a whole function starting a bit before the site
    in.func_start = site;
    in.func_code = code;
    in.func_size = n;
  }
  if (!x86) {
    in.trap_exits = (data[1] & 0x80) != 0;
    // A dead register is a candidate (never x0, sp, gp, tp) and the lowest one.
    const uint32_t dead = lp::riscv64::dead_registers(d, in, in.min_len);
    CHECK((dead & 0x1du) == 0);
    const unsigned r0 = lp::riscv64::dead_register(d, in, in.min_len);
    CHECK(dead ? r0 == unsigned(__builtin_ctz(dead)) : r0 == 0);
  }
  // Destination: near (within +-1 MiB), mid (+-2 GiB) or anywhere, by the top bits.
  int64_t off = int64_t(delta);
  switch ((delta >> 62) & 3) {
  case 0: off = int64_t(delta % (1 << 20)) - (1 << 19); break;
  case 1: off = int64_t(delta % (1ull << 32)) - (1ll << 31); break;
  default: break;
  }
  uintptr_t dest = uintptr_t(int64_t(site) + off);
  if (!x86) dest &= ~uintptr_t(d.has_compressed() ? 1 : 3);
  check_relocation(d, x86, in, dest);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return lp_fuzz_one(data, size); }
