#include "frame.hpp"

#include <cstddef>

#include "libpatch/regs.h"

namespace lp::aarch64 {
namespace {
static_assert(offsetof(lp_regs, x) == 0 && offsetof(lp_regs, sp) == kFrameSp && offsetof(lp_regs, pc) == kFramePc &&
              offsetof(lp_regs, pstate) == kFramePstate && offsetof(lp_regs, fpsr) == kFrameFpsr &&
              offsetof(lp_regs, fpcr) == kFrameFpsr + 8 && offsetof(lp_regs, v) == kFrameV &&
              sizeof(lp_regs) == kFrame && kFrame % 16 == 0);
static_assert(sizeof(TrampolineData) == 16 && offsetof(TrampolineData, user) == 8);

// The 64-bit depth counter at tpidr_el0 + off, plus or minus one (scratch: x16, x17).
void tls_add(Asm &a, intptr_t off, bool inc) {
  a.w(enc_mrs(kX16, SysReg::TpidrEl0));
  a.mov_imm(kX17, uint64_t(off));
  a.w(enc_add_reg(kX17, kX16, kX17));
  a.w(enc_ldr(kX16, kX17, 0));
  a.w(inc ? enc_add_imm(kX16, kX16, 1) : enc_sub_imm(kX16, kX16, 1));
  a.w(enc_str(kX16, kX17, 0));
}
} // namespace

void emit_save_frame(Asm &a, uintptr_t site, bool save_vector) {
  a.w(enc_sub_imm(kSp, kSp, kFrame));
  for (unsigned r = 0; r < 30; r += 2) a.w(enc_stp(r, r + 1, kSp, int32_t(8 * r)));
  a.w(enc_str(kLr, kSp, 8 * kLr));
  a.w(enc_add_imm(kX16, kSp, kFrame)); // sp at the site
  a.w(enc_str(kX16, kSp, kFrameSp));
  a.w(enc_mrs(kX16, SysReg::Nzcv));
  a.w(enc_str(kX16, kSp, kFramePstate));
  if (save_vector) {
    a.w(enc_mrs(kX16, SysReg::Fpsr));
    a.w(enc_mrs(kX17, SysReg::Fpcr));
    a.w(enc_stp(kX16, kX17, kSp, kFrameFpsr));
    for (unsigned q = 0; q < 32; q += 2) a.w(enc_stp_q(q, q + 1, kSp, kFrameV + int32_t(16 * q)));
  }
  if (site == 0) { // the return trampoline: the call runtime reports the pc
    a.w(enc_str(kZr, kSp, kFramePc));
    return;
  }
  a.la(kX16, site);
  a.w(enc_str(kX16, kSp, kFramePc));
}

void emit_call_handler(Asm &a, const TrampolineSpec &spec) {
  tls_add(a, spec.tls_depth, true);
  a.la(kX17, spec.data);
  a.w(enc_ldp(kX16, 1, kX17, 0)); // x16 = handler, x1 = user
  a.w(enc_add_imm(0, kSp, 0));    // x0 = regs (mov x0, sp)
  a.w(enc_blr(kX16));
  tls_add(a, spec.tls_depth, false);
}

void emit_restore_frame(Asm &a, bool save_vector) {
  if (save_vector) {
    for (unsigned q = 0; q < 32; q += 2) a.w(enc_ldp_q(q, q + 1, kSp, kFrameV + int32_t(16 * q)));
    a.w(enc_ldp(kX16, kX17, kSp, kFrameFpsr));
    a.w(enc_msr(SysReg::Fpsr, kX16));
    a.w(enc_msr(SysReg::Fpcr, kX17));
  }
  a.w(enc_ldr(kX16, kSp, kFramePstate));
  a.w(enc_msr(SysReg::Nzcv, kX16));
  for (unsigned r = 0; r < 30; r += 2) a.w(enc_ldp(r, r + 1, kSp, int32_t(8 * r)));
  a.w(enc_ldr(kLr, kSp, 8 * kLr));
  a.w(enc_add_imm(kSp, kSp, kFrame));
}

} // namespace lp::aarch64
