#include "trampoline.hpp"

#include <cstddef>

#include "encoding.hpp"
#include "libpatch/patch.h"
#include "libpatch/regs.h"

namespace lp::riscv64 {
namespace {

static_assert(offsetof(lp_regs, x) == 0 && offsetof(lp_regs, f) == 256 && offsetof(lp_regs, fcsr) == 512 &&
              offsetof(lp_regs, pc) == 520 && sizeof(lp_regs) == kFrame && kFrame % 16 == 0);
static_assert(sizeof(TrampolineData) == 16 && offsetof(TrampolineData, user) == 8);

constexpr int32_t kXOff = 0, kFOff = 256, kFcsrOff = 512, kPcOff = 520;

class Asm {
public:
  Asm(uint8_t *buf, uintptr_t at, size_t cap) : buf_(buf), at_(at), cap_(cap) {}
  void w(uint32_t insn) {
    if (n_ + 4 <= cap_ && buf_) put32(buf_ + n_, insn);
    n_ += 4;
  }
  uintptr_t pc() const { return at_ + n_; }
  // rd = target (auipc rd; addi rd, rd). false when out of reach.
  bool la(unsigned rd, uintptr_t target) {
    int32_t hi, lo;
    if (!split_pcrel(int64_t(target) - int64_t(pc()), &hi, &lo)) return false;
    w(enc_auipc(rd, hi));
    w(enc_addi(rd, rd, lo));
    return true;
  }
  // Adds `delta` to the 64-bit counter at tp + off (scratch: t2, t3).
  void tls_add(int32_t hi, int32_t lo, int32_t delta) {
    unsigned base = kTp;
    if (hi != 0) {
      w(enc_lui(kT3, hi));
      w(enc_add(kT3, kT3, kTp));
      base = kT3;
    }
    w(enc_ld(kT2, base, lo));
    w(enc_addi(kT2, kT2, delta));
    w(enc_sd(kT2, base, lo));
  }
  size_t size() const { return n_; }

private:
  uint8_t *buf_;
  uintptr_t at_;
  size_t cap_;
  size_t n_ = 0;
};

int generate(Asm &a, const TrampolineSpec &spec) {
  int32_t tls_hi, tls_lo;
  if (!split_pcrel(int64_t(spec.tls_depth), &tls_hi, &tls_lo)) return LP_EINVAL;

  // ---- save ----
  a.w(enc_addi(kSp, kSp, -int32_t(kFrame)));
  for (unsigned r = 1; r < 32; ++r)
    if (r != kSp) a.w(enc_sd(r, kSp, kXOff + int32_t(8 * r)));
  a.w(enc_addi(kT1, kSp, int32_t(kFrame))); // sp at the site
  a.w(enc_sd(kT1, kSp, kXOff + 8 * int32_t(kSp)));
  for (unsigned r = 0; r < 32; ++r) a.w(enc_fsd(r, kSp, kFOff + int32_t(8 * r)));
  a.w(enc_csrrs(kT1, kCsrFcsr, kZero));
  a.w(enc_sd(kT1, kSp, kFcsrOff));
  if (!a.la(kT1, spec.site)) return LP_ERANGE;
  a.w(enc_sd(kT1, kSp, kPcOff));
  a.w(enc_sd(kT1, kSp, kXOff)); // x[0] reads as the probed pc

  // ---- call handler(regs, user) ----
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

  // ---- restore ----
  a.w(enc_ld(kT1, kSp, kFcsrOff));
  a.w(enc_csrrw(kZero, kCsrFcsr, kT1));
  for (unsigned r = 0; r < 32; ++r) a.w(enc_fld(r, kSp, kFOff + int32_t(8 * r)));
  for (unsigned r = 1; r < 32; ++r) {
    if (r == kSp || r == kGp || r == kTp || r == kT0) continue;
    a.w(enc_ld(r, kSp, kXOff + int32_t(8 * r)));
  }
  a.w(enc_addi(kSp, kSp, int32_t(kFrame)));
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

size_t entry_trampoline_size(uintptr_t at, const TrampolineSpec &spec) {
  Asm a(nullptr, at, 0);
  return generate(a, spec) == 0 ? a.size() : 0;
}

} // namespace lp::riscv64
