// x86-64 jump-probe trampoline for entry sites, reached by `call rel32` from the
// site. It builds an lp_regs on the stack (all GPRs, rflags, the probed rip and
// rsp) plus xmm0-7 (argument registers), bumps the per-thread trampoline depth,
// calls handler(regs, user) on a 16-byte aligned stack, and restores everything
// the handler may have clobbered (argument writes through lp_regs are applied).
#pragma once

#include <cstddef>
#include <cstdint>

#include "backend.hpp"

namespace lp::x86_64 {

inline constexpr size_t kSlotSize = 256;
inline constexpr size_t kDataOffset = 240; // TrampolineData (handler, user)

// Emits the code into `buf` (which will execute at `at`). 0 or LP_EINVAL.
int emit_entry_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec);

} // namespace lp::x86_64
