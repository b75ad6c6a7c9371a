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
    a.w(enc_jalr(kZero, kT0, 0));
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
  if (int rc = emit_save_frame(a, 0); rc != 0) return rc;
  if (int rc = emit_call_handler(a, spec); rc != 0) return rc;
  // The real return address, through t1: `jalr x0, 0(t0)` would be a return
  // hint (t0 is a link register) and pop the return-address stack a second
  // time -- the function's own `ret` already popped this call's entry.
  a.w(enc_sd(kA0, kSp, kFrameT1));
  emit_restore_frame(a, /*restore_t0=*/true);
  a.w(enc_jalr(kZero, kT1, 0));
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
