// Arch-neutral relocation entry points: dispatch to the registered target
// (mc/target.hpp). No backend header is included here.
#include "mc/relocate.hpp"

#include "mc/target.hpp"

namespace lp::mc {

namespace {
Relocation no_target(const RelocInput &in) {
  Relocation r;
  r.status = RelocStatus::Invalid;
  r.site = in.site;
  r.reason = "no lp::mc target registered for this decoder's arch";
  return r;
}
} // namespace

uint32_t site_jump_len(Arch arch, bool far) {
  const Target *t = find_target(arch);
  if (!t) return 0;
  return far ? t->site_far_len : t->site_jump_len;
}

Relocation plan_relocation(const Decoder &dec, const RelocInput &in) {
  const Target *t = find_target(dec.arch());
  return t ? t->plan_relocation(dec, in) : no_target(in);
}

Relocation relocate(const Decoder &dec, const RelocInput &in, uintptr_t dest) {
  const Target *t = find_target(dec.arch());
  return t ? t->relocate(dec, in, dest) : no_target(in);
}

bool encode_site_jump(Arch arch, uintptr_t site, uintptr_t target, uint32_t displaced_len, unsigned scratch_reg,
                      uint8_t *out) {
  const Target *t = find_target(arch);
  return t && t->encode_site_jump(site, target, displaced_len, scratch_reg, out);
}

unsigned find_scratch(const Decoder &dec, const RelocInput &in, uint32_t displaced_len) {
  const Target *t = find_target(dec.arch());
  return t ? t->find_scratch(dec, in, displaced_len) : 0;
}

} // namespace lp::mc
