// x86-64 displaced-instruction relocator (hosted only; decodes with lp::mc).
//
// Given the bytes at an instruction site and the length the site jump needs
// (5 for jmp/call rel32), picks the whole instructions covering it and emits an
// out-of-line copy at `dest` that behaves like them and jumps back to
// site + displaced_len:
//   * RIP-relative memory operands: disp32 rewritten for the new location
//     (LP_ERANGE beyond +-2 GiB; LP_ERELOC if it reads/writes the displaced bytes);
//   * jmp rel8/rel32 -> jmp rel32, or `jmp [rip+0]; .quad target` when far;
//   * jcc rel8/rel32 -> jcc rel32, or the inverted jcc over an absolute jmp;
//   * jrcxz/jecxz/loop/loope/loopne rel8 -> `jCC +2; jmp +N; jmp target`;
//   * call rel32 -> push the ORIGINAL return address (push imm32; mov [rsp+4],hi32
//     — no flags touched) then jmp: the callee returns to the original next
//     instruction, exactly as without the probe;
//   * call reg/mem (ff /2) -> the same push, then jmp reg/mem (ff /4);
//   * targets inside the displaced range are redirected into the copy.
// No scratch register, no flags, no stack below rsp are used.
#pragma once

#include <stdint.h>

#include "mc/decoder.hpp"
#include "mc/reloc.hpp"

namespace lp::x86_64 {

inline constexpr uint32_t kSiteJumpLen = 5; // jmp rel32 / call rel32

// What the site needs, before a destination is chosen: status (every check that
// does not depend on dest), displaced_len, boundaries and max_code_size (the OOL
// size for the worst dest). code/pc_map are empty.
mc::Relocation plan_relocation(const mc::Decoder &dec, const mc::RelocInput &in);

// The OOL copy for `dest`. On success code.size() <= plan.max_code_size.
mc::Relocation relocate(const mc::Decoder &dec, const mc::RelocInput &in, uintptr_t dest);

// The bytes the site gets when the probe is on: `jmp rel32` to `target`, the rest
// of the displaced range filled with int3 (never executed: the range is entered
// only at its start, and threads parked inside are evacuated). false if out of range.
bool encode_site_jump(uintptr_t site, uintptr_t target, uint32_t displaced_len, uint8_t *out);

} // namespace lp::x86_64
