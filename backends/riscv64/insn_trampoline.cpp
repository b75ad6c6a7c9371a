#include "insn_trampoline.hpp"

#include "asm.hpp"
#include "frame.hpp"
#include "libpatch/patch.h"

namespace lp::riscv64 {

int emit_insn_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, size_t *code_size) {
  if ((at & 3) != 0 || (spec.data & 7) != 0) return LP_EINVAL;
  Asm a(buf, at, kInsnTrampolineMax);
  if (int rc = emit_save_frame(a, spec.site); rc != 0) return rc;
  if (int rc = emit_call_handler(a, spec); rc != 0) return rc;
  emit_restore_frame(a, /*restore_t0=*/true);
  // Falls through into the out-of-line copy, placed right after this code.
  *code_size = a.size();
  return a.size() <= kInsnTrampolineMax ? 0 : LP_EINVAL;
}

} // namespace lp::riscv64
