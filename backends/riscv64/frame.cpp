#include "frame.hpp"

#include <cstddef>

#include "libpatch/patch.h"
#include "libpatch/regs.h"

namespace lp::riscv64 {
namespace {
static_assert(offsetof(lp_regs, x) == 0 && offsetof(lp_regs, f) == 256 && offsetof(lp_regs, fcsr) == 512 &&
              offsetof(lp_regs, pc) == 520 && sizeof(lp_regs) == kFrame && kFrame % 16 == 0);
static_assert(sizeof(TrampolineData) == 16 && offsetof(TrampolineData, user) == 8);

constexpr int32_t kXOff = 0, kFOff = 256, kFcsrOff = 512, kPcOff = 520;
} // namespace

int emit_save_frame(Asm &a, uintptr_t site) {
  // The psABI has no red zone: nothing live sits below the site's sp.
  a.w(enc_addi(kSp, kSp, -int32_t(kFrame)));
  for (unsigned r = 1; r < 32; ++r)
    if (r != kSp) a.w(enc_sd(r, kSp, kXOff + int32_t(8 * r)));
  a.w(enc_addi(kT1, kSp, int32_t(kFrame))); // sp at the site
  a.w(enc_sd(kT1, kSp, kXOff + 8 * int32_t(kSp)));
  for (unsigned r = 0; r < 32; ++r) a.w(enc_fsd(r, kSp, kFOff + int32_t(8 * r)));
  a.w(enc_csrrs(kT1, kCsrFcsr, kZero));
  a.w(enc_sd(kT1, kSp, kFcsrOff));
  if (site == 0) { // the return trampoline: the call runtime reports the pc
    a.w(enc_sd(kZero, kSp, kPcOff));
    a.w(enc_sd(kZero, kSp, kXOff));
    return 0;
  }
  if (!a.la(kT1, site)) return LP_ERANGE;
  a.w(enc_sd(kT1, kSp, kPcOff));
  a.w(enc_sd(kT1, kSp, kXOff)); // x[0] reads as the probed pc
  return 0;
}

int emit_call_handler(Asm &a, const TrampolineSpec &spec) {
  int32_t tls_hi, tls_lo;
  if (!split_pcrel(int64_t(spec.tls_depth), &tls_hi, &tls_lo)) return LP_EINVAL;
  a.tls_add(tls_hi, tls_lo, 1);
  if (!a.la(kT1, spec.data)) return LP_ERANGE;
  a.w(enc_ld(kT3, kT1, 0));          // handler
  a.w(enc_ld(kA1, kT1, 8));          // user
  a.w(enc_addi(kA0, kSp, 0));        // regs
  a.w(enc_addi(kS1, kSp, 0));        // s1 (saved above) keeps the frame across the call
  a.w(enc_andi(kSp, kSp, -16));      // the psABI's 16-byte alignment, whatever the site had
  a.w(enc_jalr(kRa, kT3, 0));
  a.w(enc_addi(kSp, kS1, 0));
  a.tls_add(tls_hi, tls_lo, -1);
  return 0;
}

void emit_restore_frame(Asm &a, bool restore_t0) {
  a.w(enc_ld(kT1, kSp, kFcsrOff));
  a.w(enc_csrrw(kZero, kCsrFcsr, kT1));
  for (unsigned r = 0; r < 32; ++r) a.w(enc_fld(r, kSp, kFOff + int32_t(8 * r)));
  for (unsigned r = 1; r < 32; ++r) {
    if (r == kSp || r == kGp || r == kTp || (r == kT0 && !restore_t0)) continue;
    a.w(enc_ld(r, kSp, kXOff + int32_t(8 * r)));
  }
  a.w(enc_addi(kSp, kSp, int32_t(kFrame)));
}

} // namespace lp::riscv64
