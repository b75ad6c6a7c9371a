// x86-64 trampoline for instruction sites. The site holds `jmp rel32` to it (no
// return address is pushed: the site may be anywhere in a function). It skips
// the 128-byte red zone, saves xmm0-15, rflags and every GPR as an lp_regs
// (rip = the site, rsp = the site's rsp), calls the handler, restores all of
// it (flags included) and falls through into the out-of-line copy of the
// displaced instructions, which ends with a jump back behind the site.
// Legacy-SSE handlers leave ymm upper halves intact; a handler compiled for AVX
// must not be used at instruction sites in AVX code (use a trap probe there).
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend.hpp"

namespace lp::x86_64 {

inline constexpr size_t kInsnTrampolineMax = 512;

int emit_insn_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, size_t *code_size);

} // namespace lp::x86_64
