// A register that is dead at a RISC-V instruction site, for the 8-byte far site
// jump `auipc rX; jalr x0, lo(rX)` and the out-of-line copy's far jump back
// (hosted only; decodes with lp::mc).
//
// At an arbitrary boundary every register may be live, so rX must be proven
// dead at both places it is clobbered: at the site (by the site jump) and at
// the end of the displaced range (by the copy's jump back; in between, the copy
// recomputes whatever the displaced instructions write). "Dead at p" comes from
// a forward scan of the straight-line code from p:
//  * the first access to the register is a write that does not also read it; or
//  * the scan reaches a `ret` first, the register is caller-saved and not a
//    return-value register (t0-t6, a2-a7), and the function writes it
//    somewhere: the caller cannot expect it preserved -- not even a caller
//    compiled with -fipa-ra, which keeps values only in caller-saved registers
//    the callee never clobbers.
// The scan gives up (no answer for registers still undecided) at any other
// control transfer (a branch, a jump, a trap: both paths would need proof), at
// a call (-fipa-ra again: a caller may keep values in caller-saved registers
// across a call to a callee it knows leaves them alone; only the call's own
// link register counts as written), at an ecall (its operands are implicit),
// or at the end of the function. A displaced range that contains a control
// transfer gets no register. Never sp, gp, tp.
#pragma once

#include <stdint.h>

#include "mc/decoder.hpp"
#include "mc/reloc.hpp"

namespace lp::riscv64 {

// Registers (bit i = x_i) dead both at in.site and at in.site + displaced_len.
// Reads in.code / in.avail, bounded by the function (in.func_*) when known;
// the `ret` rule needs the function.
uint32_t dead_registers(const mc::Decoder &dec, const mc::RelocInput &in, uint32_t displaced_len);

// The lowest of dead_registers(), or 0 when there is none.
unsigned dead_register(const mc::Decoder &dec, const mc::RelocInput &in, uint32_t displaced_len);

} // namespace lp::riscv64
