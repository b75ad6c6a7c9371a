#include "liveness.hpp"

namespace lp::riscv64 {
namespace {
// ra and x5..x31: everything but x0, sp (x2), gp (x3) and tp (x4).
constexpr uint32_t kCandidates = 0xffffffe2u;
constexpr unsigned kMaxScan = 64; // instructions: a dead register shows up early or not at all
} // namespace

unsigned dead_register(const mc::Decoder &dec, const mc::RelocInput &in, uint32_t displaced_len) {
  if (dec.arch() != mc::Arch::RISCV64 || !in.code) return 0;
  size_t avail = in.avail;
  if (in.func_code && in.site >= in.func_start && in.site < in.func_start + in.func_size) {
    const size_t to_end = in.func_start + in.func_size - in.site;
    if (to_end < avail) avail = to_end;
  }
  uint32_t undecided = kCandidates;
  size_t off = 0;
  mc::Insn insn;
  for (unsigned n = 0; n < kMaxScan && off < avail && undecided; ++n) {
    if (!dec.decode(in.code + off, avail - off, in.site + off, &insn, false)) return 0;
    // ecall reads a0..a7 (and the kernel writes a0) behind the decoder's back.
    if (insn.name == "ECALL") return 0;
    const uint32_t touched = insn.gpr_read | insn.gpr_written;
    if (off < displaced_len) {
      // Inside the displaced range any access disqualifies: the copy runs these
      // instructions between the site jump and the jump back, which both use rX.
      undecided &= ~touched;
    } else {
      const uint32_t dead = undecided & insn.gpr_written & ~insn.gpr_read;
      if (dead) return unsigned(__builtin_ctz(dead));
      undecided &= ~touched;
    }
    if (insn.flow != mc::Flow::None) return 0; // calls, branches, jumps, returns, traps
    off += insn.length;
  }
  return 0;
}

} // namespace lp::riscv64
