// Arch-neutral entry points to the relocators: dispatch on Decoder::arch() to
// the registered target (mc/target.hpp), so the core can relocate without
// naming the ISA. Implemented in lp_mc (libpatch/src/mc/relocate.cpp). LLVM-free.
#pragma once

#include <stdint.h>

#include "mc/decoder.hpp"
#include "mc/reloc.hpp"

namespace lp::mc {

// Bytes the site jump needs: x86-64 5 (jmp rel32); riscv64 4 (jal x0, +-1 MiB)
// or, with `far`, 8 (auipc scratch; jalr x0, +-2 GiB); aarch64 4 (b, +-128 MiB;
// no far form for instruction sites: `far` gives 4 too).
uint32_t site_jump_len(Arch arch, bool far = false);

// The target's plan_relocation for dec.arch() (Invalid when none is registered).
Relocation plan_relocation(const Decoder &dec, const RelocInput &in);
// The target's relocate for dec.arch().
Relocation relocate(const Decoder &dec, const RelocInput &in, uintptr_t dest);
// The enabled site bytes (displaced_len of them): a jump to `target` and a
// never-executed fill. scratch_reg: riscv64 only (0 = jal only). false if out of reach.
bool encode_site_jump(Arch arch, uintptr_t site, uintptr_t target, uint32_t displaced_len, unsigned scratch_reg,
                      uint8_t *out);
// A register the far site jump and the copy may clobber: dead from in.site to
// the end of the displaced range (riscv64::dead_register), or 0 (x86-64: none
// needed, always 0).
unsigned find_scratch(const Decoder &dec, const RelocInput &in, uint32_t displaced_len);

} // namespace lp::mc
