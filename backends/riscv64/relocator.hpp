// RISC-V 64 displaced-instruction relocator (hosted only; decodes with lp::mc).
//
// Given the bytes at an instruction site and the length the site jump needs
// (4 for `jal x0`, 8 for `auipc+jalr`), picks the whole instructions covering it
// and emits an out-of-line copy at `dest` (only 32-bit instructions are emitted;
// non-pc-relative compressed instructions are copied as they are) that behaves like
// them and jumps back to site + displaced_len:
//   * auipc rd, imm   -> rd gets the exact original value pc+imm<<12: `auipc rd;
//                        addi rd` relative to the copy, or a lui/addiw/slli/addi
//                        sequence when farther than +-2 GiB. The paired use
//                        (addi/ld/jalr off rd), displaced or not, then sees the
//                        same rd and is copied unchanged;
//   * jal rd / c.j    -> rd (if not x0) gets the ORIGINAL return address, then
//                        `jal x0, target` (callee returns to the original code);
//   * jalr rd!=x0 / c.jalr -> the same link materialisation, then `jalr x0`;
//   * beq..bgeu, c.beqz, c.bnez -> a 32-bit branch when the target is within
//                        +-4 KiB of the copy, else the inverted branch over a
//                        `jal x0, target` (+-1 MiB);
//   * targets inside the displaced range are redirected into the copy.
// Farther than jal's +-1 MiB needs a register to clobber (auipc+jalr): give
// RelocInput::scratch_reg, else LP_ERANGE. No stack is touched.
#pragma once

#include <stdint.h>

#include "mc/decoder.hpp"
#include "mc/reloc.hpp"

namespace lp::riscv64 {

inline constexpr uint32_t kSiteJalLen = 4;   // jal x0, trampoline (+-1 MiB)
inline constexpr uint32_t kSiteFarLen = 8;   // auipc rX; jalr x0 (+-2 GiB, needs rX dead)

// See x86_64::plan_relocation: every dest-independent check, displaced_len,
// boundaries and max_code_size.
mc::Relocation plan_relocation(const mc::Decoder &dec, const mc::RelocInput &in);

// The OOL copy for `dest` (2-aligned; 4-aligned when the decoder has no C).
mc::Relocation relocate(const mc::Decoder &dec, const mc::RelocInput &in, uintptr_t dest);

// The bytes the site gets when the probe is on: `jal x0, target` (or, with a
// scratch register and displaced_len >= 8, `auipc scratch; jalr x0`), the rest of
// the range zero-filled (c.unimp / illegal: never executed). false if out of reach.
bool encode_site_jump(uintptr_t site, uintptr_t target, uint32_t displaced_len, unsigned scratch_reg,
                      uint8_t *out);

} // namespace lp::riscv64
