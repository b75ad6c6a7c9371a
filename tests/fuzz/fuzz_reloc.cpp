// Fuzz target over lp::mc::Decoder and both relocators (random bytes in, checked
// invariants out). Built two ways (tests/fuzz/CMakeLists.txt):
//   * lp_fuzz_reloc_libfuzzer: clang++-16 -fsanitize=fuzzer,address,undefined;
//   * lp_fuzz_reloc: the host compiler + standalone_main.cpp (random inputs and
//     corpus files, no coverage feedback), so a g++ configure still runs it.
//
// Input layout: [0] arch (x86_64 / rv64gc on a C hart / rv64g without C),
// [1] min_len and scratch choice, [2..9] destination offset, [10..] the code.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cstring>
#include <memory>

#include "fuzz_reloc.hpp"
#include "mc/decoder.hpp"
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
  std::unique_ptr<lp::mc::Decoder> x86 = lp::mc::Decoder::create("x86_64");
  std::unique_ptr<lp::mc::Decoder> rvc = lp::mc::Decoder::create("riscv64", "+c");
  std::unique_ptr<lp::mc::Decoder> rvg = lp::mc::Decoder::create("riscv64", "-c");
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
  // The copy decodes completely (x86 absolute jumps carry an 8-byte literal).
  size_t off = 0;
  lp::mc::Insn i;
  size_t lit = 0;
  while (off < r.code.size()) {
    if (lit < r.literals.size() && r.literals[lit] == off) {
      off += 8;
      ++lit;
      continue;
    }
    CHECK(d.decode(r.code.data() + off, r.code.size() - off, dest + off, &i, false));
    off += i.length;
  }
  CHECK(lit == r.literals.size());
  CHECK(off == r.code.size());
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
