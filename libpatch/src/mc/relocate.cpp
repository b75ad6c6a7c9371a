#include "mc/relocate.hpp"

#include "riscv64/liveness.hpp"
#include "riscv64/relocator.hpp"
#include "x86_64/relocator.hpp"

namespace lp::mc {

uint32_t site_jump_len(Arch arch, bool far) {
  if (arch == Arch::X86_64) return x86_64::kSiteJumpLen;
  return far ? riscv64::kSiteFarLen : riscv64::kSiteJalLen;
}

Relocation plan_relocation(const Decoder &dec, const RelocInput &in) {
  return dec.arch() == Arch::X86_64 ? x86_64::plan_relocation(dec, in) : riscv64::plan_relocation(dec, in);
}

Relocation relocate(const Decoder &dec, const RelocInput &in, uintptr_t dest) {
  return dec.arch() == Arch::X86_64 ? x86_64::relocate(dec, in, dest) : riscv64::relocate(dec, in, dest);
}

bool encode_site_jump(Arch arch, uintptr_t site, uintptr_t target, uint32_t displaced_len, unsigned scratch_reg,
                      uint8_t *out) {
  if (arch == Arch::X86_64) return x86_64::encode_site_jump(site, target, displaced_len, out);
  return riscv64::encode_site_jump(site, target, displaced_len, scratch_reg, out);
}

unsigned find_scratch(const Decoder &dec, const RelocInput &in, uint32_t displaced_len) {
  return dec.arch() == Arch::RISCV64 ? riscv64::dead_register(dec, in, displaced_len) : 0;
}

} // namespace lp::mc
