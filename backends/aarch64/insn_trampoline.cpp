#include "insn_trampoline.hpp"

#include "asm.hpp"
#include "frame.hpp"
#include "libpatch/patch.h"

namespace lp::aarch64 {

int emit_insn_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, size_t *code_size) {
  if ((at & 3) != 0 || (spec.data & 7) != 0 || (spec.site & 3) != 0) return LP_EINVAL;
  return emit_bounded(buf, at, kInsnTrampolineMax, LP_EINVAL, code_size, [&](Asm &a) {
    emit_save_frame(a, spec.site, spec.save_vector);
    emit_call_handler(a, spec);
    emit_restore_frame(a, spec.save_vector);
    return 0; // falls through into the out-of-line copy, placed right after this code
  });
}

} // namespace lp::aarch64
