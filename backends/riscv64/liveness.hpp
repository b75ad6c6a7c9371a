// A register that is dead at a RISC-V instruction site, for the 8-byte far site
// jump `auipc rX; jalr x0, lo(rX)` and the out-of-line copy's far jump back
// (hosted only; decodes with lp::mc).
//
// At an arbitrary boundary every register may be live, so rX must be proven
// dead: a forward scan of the straight-line code from the site, in which rX is
// neither read nor written inside the displaced range and its first access
// after it is a write (that does not also read it). The scan stops, with no
// answer for the registers still undecided, at the first control transfer
// (both paths would need proof: a branch, a jump, a return, a trap), at a call
// (with -fipa-ra a caller may keep values in caller-saved registers across a
// call to a callee it knows leaves them alone; only the call's own link
// register counts as written), at an ecall (its operands are implicit), or at
// the end of the function. Never sp, gp, tp.
#pragma once

#include <stdint.h>

#include "mc/decoder.hpp"
#include "mc/reloc.hpp"

namespace lp::riscv64 {

// x1 or x5..x31 dead throughout [in.site, in.site + displaced_len) and at its
// end, or 0. Reads in.code / in.avail (bounded by the function when known).
unsigned dead_register(const mc::Decoder &dec, const mc::RelocInput &in, uint32_t displaced_len);

} // namespace lp::riscv64
