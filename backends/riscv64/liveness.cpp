#include "liveness.hpp"

namespace lp::riscv64 {
namespace {
// ra and x5..x31: everything but x0, sp (x2), gp (x3) and tp (x4).
constexpr uint32_t kCandidates = 0xffffffe2u;
// Caller-saved, not carrying a return value: t0-t2 (x5-x7), a2-a7 (x12-x17), t3-t6 (x28-x31).
constexpr uint32_t kClobberedByCall = (7u << 5) | (0x3fu << 12) | (0xfu << 28);
constexpr unsigned kMaxScan = 64; // instructions: a dead register shows up early or not at all

struct Code {
  const uint8_t *bytes;
  size_t size;     // readable from `bytes`, within the function when known
  uint64_t start;  // address of bytes[0]
};

// Registers the function writes anywhere (0 without the function).
uint32_t written_anywhere(const mc::Decoder &dec, const mc::RelocInput &in) {
  if (!in.func_code) return 0;
  uint32_t w = 0;
  mc::Insn insn;
  for (size_t off = 0; off < in.func_size;) {
    if (!dec.decode(in.func_code + off, in.func_size - off, in.func_start + off, &insn, false)) {
      off += dec.min_insn_align();
      continue;
    }
    w |= insn.gpr_written;
    off += insn.length;
  }
  return w;
}

// Registers dead at c.start (see liveness.hpp).
uint32_t dead_from(const mc::Decoder &dec, const Code &c, uint32_t written_in_function) {
  uint32_t undecided = kCandidates, dead = 0;
  mc::Insn insn;
  size_t off = 0;
  for (unsigned n = 0; n < kMaxScan && off < c.size && undecided; ++n) {
    if (!dec.decode(c.bytes + off, c.size - off, c.start + off, &insn, false)) break;
    if (insn.name == "ECALL") break; // reads a0..a7 behind the decoder's back
    dead |= undecided & insn.gpr_written & ~insn.gpr_read;
    undecided &= ~(insn.gpr_read | insn.gpr_written);
    if (insn.flow == mc::Flow::Return) dead |= undecided & kClobberedByCall & written_in_function;
    if (insn.flow != mc::Flow::None) break;
    off += insn.length;
  }
  return dead;
}

} // namespace

uint32_t dead_registers(const mc::Decoder &dec, const mc::RelocInput &in, uint32_t displaced_len) {
  if (dec.arch() != mc::Arch::RISCV64 || !in.code) return 0;
  size_t avail = in.avail;
  if (in.func_code && in.site >= in.func_start && in.site < in.func_start + in.func_size) {
    const size_t to_end = in.func_start + in.func_size - in.site;
    if (to_end < avail) avail = to_end;
  }
  if (displaced_len > avail) return 0;
  // The copy runs the displaced instructions between the two clobbers: a
  // transfer among them could leave before the jump back with rX clobbered.
  mc::Insn insn;
  for (uint32_t off = 0; off < displaced_len; off += insn.length)
    if (!dec.decode(in.code + off, avail - off, in.site + off, &insn, false) || insn.flow != mc::Flow::None) return 0;
  const uint32_t w = written_anywhere(dec, in);
  const uint32_t at_site = dead_from(dec, {in.code, avail, in.site}, w);
  const uint32_t at_end = dead_from(dec, {in.code + displaced_len, avail - displaced_len, in.site + displaced_len}, w);
  return at_site & at_end & kCandidates;
}

unsigned dead_register(const mc::Decoder &dec, const mc::RelocInput &in, uint32_t displaced_len) {
  const uint32_t m = dead_registers(dec, in, displaced_len);
  return m ? unsigned(__builtin_ctz(m)) : 0;
}

} // namespace lp::riscv64
