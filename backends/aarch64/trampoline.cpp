#include "trampoline.hpp"

#include "asm.hpp"
#include "encoding.hpp"
#include "frame.hpp"
#include "libpatch/patch.h"

namespace lp::aarch64 {
namespace {

int generate(Asm &a, const TrampolineSpec &spec) {
  emit_save_frame(a, spec.site, spec.save_vector);
  emit_call_handler(a, spec);
  if (spec.call_runtime) {
    a.w(enc_str(0, kSp, kFrameX16)); // where the call runtime says to continue
    emit_restore_frame(a, spec.save_vector);
    a.la(kX17, spec.site + spec.site_len); // the body, for the run stub's BLR X17
    a.w(enc_br(kX16));
    return 0;
  }
  emit_restore_frame(a, spec.save_vector);
  return a.b(spec.site + spec.site_len) ? 0 : LP_ERANGE;
}

} // namespace

int emit_entry_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec) {
  if ((at & 3) != 0 || (spec.data & 7) != 0 || (spec.site & 3) != 0) return LP_EINVAL;
  return emit_bounded(buf, at, kDataOffset, LP_EINVAL, nullptr, [&](Asm &a) { return generate(a, spec); });
}

int emit_return_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, ReturnTrampoline *out) {
  if ((at & 3) != 0 || (spec.data & 7) != 0) return LP_EINVAL;
  ReturnTrampoline r;
  const int rc = emit_bounded(buf, at, kReturnTrampolineMax, LP_EINVAL, &r.code_size, [&](Asm &a) {
    // The run stub: x30 = the return trampoline proper (the swap), x17 = the body.
    r.run_off = a.size();
    a.w(enc_blr(kX17));
    r.ret_off = a.size();
    emit_save_frame(a, 0, spec.save_vector);
    emit_call_handler(a, spec);
    a.w(enc_str(0, kSp, kFrameX16)); // the real return address
    emit_restore_frame(a, spec.save_vector);
    a.w(enc_ret(kX16));
    return 0;
  });
  r.skip_off = 0; // a skipped call returns through x30 itself (the entry trampoline's BR X16)
  if (rc == 0) *out = r;
  return rc;
}

int emit_redirect_stub(uint8_t *buf, uintptr_t at, uintptr_t data, size_t *size) {
  if ((at & 3) != 0 || (data & 7) != 0) return LP_EINVAL;
  return emit_bounded(buf, at, kRedirectStubMax, LP_EINVAL, size, [&](Asm &a) -> int {
    const int64_t off = int64_t(data) - int64_t(a.pc());
    if (!fits_ldr_lit(off)) return LP_ERANGE;
    a.w(enc_ldr_lit(kX16, off));
    a.w(enc_br(kX16));
    return 0;
  });
}

size_t entry_trampoline_size(uintptr_t at, const TrampolineSpec &spec) {
  Asm a(nullptr, at, SIZE_MAX);
  return generate(a, spec) == 0 ? a.size() : 0;
}

} // namespace lp::aarch64
