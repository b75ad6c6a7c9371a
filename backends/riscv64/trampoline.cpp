#include "trampoline.hpp"

#include "asm.hpp"
#include "encoding.hpp"
#include "libpatch/patch.h"

namespace lp::riscv64 {
namespace {

int generate(Asm &a, const TrampolineSpec &spec) {
  if (int rc = emit_save_frame(a, spec.site); rc != 0) return rc;
  if (int rc = emit_call_handler(a, spec); rc != 0) return rc;
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

size_t entry_trampoline_size(uintptr_t at, const TrampolineSpec &spec) {
  Asm a(nullptr, at, 0);
  return generate(a, spec) == 0 ? a.size() : 0;
}

} // namespace lp::riscv64
