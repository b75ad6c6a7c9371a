#include "mc_target.hpp"

#include "relocator.hpp"

namespace lp::x86_64 {
namespace {

bool site_jump(uintptr_t site, uintptr_t target, uint32_t displaced_len, unsigned, uint8_t *out) {
  return encode_site_jump(site, target, displaced_len, out);
}
// jmp rel32 clobbers nothing: no scratch register is ever needed.
unsigned no_scratch(const mc::Decoder &, const mc::RelocInput &, uint32_t) { return 0; }

constinit const mc::Target kTarget = {
    mc::Arch::X86_64, "x86_64", {"x86-64", "amd64", nullptr}, kSiteJumpLen, kSiteJumpLen,
    nullptr, &plan_relocation, &relocate, &site_jump, &no_scratch,
};

} // namespace

const mc::Target &mc_target() { return kTarget; }

} // namespace lp::x86_64
