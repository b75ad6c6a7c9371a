#include "trampoline.hpp"

#include "asm.hpp"
#include "encoding.hpp"
#include "libpatch/patch.h"

namespace lp::riscv64 {
namespace {

int generate(Asm &a, const TrampolineSpec &spec) {
  if (int rc = emit_save_frame(a, spec.site); rc != 0) return rc;
  if (int rc = emit_call_handler(a, spec); rc != 0) return rc;
  if (spec.call_runtime) {
    a.w(enc_sd(kA0, kSp, kFrameT0)); // where the call runtime says to continue
    emit_restore_frame(a, /*restore_t0=*/true);
    // t1 = the body (after the sled), for the run stub's `jalr ra, t1`; t1 is
    // a temporary, dead at an entry.
    if (!a.la(kT1, spec.site + spec.site_len)) return LP_ERANGE;
    a.w(enc_jalr(kZero, kT0, 0)); // a return hint: pops the sled's jal t0
    return 0;
  }
  emit_restore_frame(a, /*restore_t0=*/false); // t0 holds the link: the site's t0 is dead at entry
  // ---- back to the end of the sled ----
  int32_t hi, lo;
  if (!split_pcrel(int64_t(spec.site + spec.site_len) - int64_t(a.pc()), &hi, &lo)) return LP_ERANGE;
  a.w(enc_auipc(kT0, hi));
  a.w(enc_jalr(kZero, kT0, lo));
  return 0;
}

} // namespace

int emit_entry_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec) {
  if ((at & 3) != 0 || (spec.data & 7) != 0) return LP_EINVAL;
  Asm a(buf, at, kDataOffset);
  if (int rc = generate(a, spec); rc != 0) return rc;
  return a.size() <= kDataOffset ? 0 : LP_EINVAL;
}

int emit_return_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, ReturnTrampoline *out) {
  if ((at & 3) != 0 || (spec.data & 7) != 0) return LP_EINVAL;
  Asm a(buf, at, kReturnTrampolineMax);
  // The run stub: a call with a shadow entry enters its body through it (t1 =
  // the body). `jalr ra, t1` sets ra to the return trampoline -- the swap --
  // and pushes it on the return-address stack, so the body's `ret` is
  // predicted and the stack stays aligned for the returns above.
  out->run_off = a.size();
  a.w(enc_jalr(kRa, kT1, 0));
  out->ret_off = a.size();
  if (int rc = emit_save_frame(a, 0); rc != 0) return rc;
  if (int rc = emit_call_handler(a, spec); rc != 0) return rc;
  // The real return address, through t0: `jalr x0, 0(t0)` is a return hint
  // and pops the caller's own entry of the return-address stack, predicted
  // (the body's `ret` popped the run stub's). A trap-flavour call, swapped in
  // place without the run stub, mispredicts here: it took a signal anyway.
  a.w(enc_sd(kA0, kSp, kFrameT0));
  emit_restore_frame(a, /*restore_t0=*/true);
  a.w(enc_jalr(kZero, kT0, 0));
  out->code_size = a.size();
  out->skip_off = 0; // a skipped call returns through ra itself
  return a.size() <= kReturnTrampolineMax ? 0 : LP_EINVAL;
}

int emit_redirect_stub(uint8_t *buf, uintptr_t at, uintptr_t data, size_t *size) {
  if ((at & 3) != 0 || (data & 7) != 0) return LP_EINVAL;
  Asm a(buf, at, kRedirectStubMax);
  int32_t hi, lo;
  if (!split_pcrel(int64_t(data) - int64_t(a.pc()), &hi, &lo)) return LP_ERANGE;
  a.w(enc_auipc(kT1, hi));
  a.w(enc_ld(kT1, kT1, lo));
  a.w(enc_jalr(kZero, kT1, 0));
  *size = a.size();
  return a.size() <= kRedirectStubMax ? 0 : LP_EINVAL;
}

size_t entry_trampoline_size(uintptr_t at, const TrampolineSpec &spec) {
  Asm a(nullptr, at, 0);
  return generate(a, spec) == 0 ? a.size() : 0;
}

} // namespace lp::riscv64
