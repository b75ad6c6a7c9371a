#include "mc_target.hpp"

#include "decoder.hpp"
#include "relocator.hpp"

namespace lp::aarch64 {
namespace {

bool site_jump(uintptr_t site, uintptr_t target, uint32_t displaced_len, unsigned, uint8_t *out) {
  return encode_site_jump(site, target, displaced_len, out);
}
// `b` clobbers nothing, and no A64 copy needs a register: never a scratch.
unsigned no_scratch(const mc::Decoder &, const mc::RelocInput &, uint32_t) { return 0; }

// No far form for instruction sites (relocator.hpp): site_far_len = site_jump_len.
constinit const mc::Target kTarget = {
    mc::Arch::AARCH64, "aarch64", {"arm64", nullptr, nullptr}, kSiteJumpLen, kSiteJumpLen,
    &make_builtin_decoder, &plan_relocation, &relocate, &site_jump, &no_scratch,
};

} // namespace

const mc::Target &mc_target() { return kTarget; }

} // namespace lp::aarch64
