#include "insn_trampoline.hpp"

#include <cstddef>
#include <initializer_list>

#include "libpatch/patch.h"
#include "asm.hpp"
#include "libpatch/regs.h"

namespace lp::x86_64 {
namespace {

// lea rsp, [rsp + d] (flags untouched, unlike add/sub)
void lea_rsp(Asm &a, int32_t d) {
  a.bytes({0x48, 0x8d, 0xa4, 0x24});
  a.u32(uint32_t(d));
}
// movups [rsp + 16*i], xmm_i  /  movups xmm_i, [rsp + 16*i]
void movups(Asm &a, bool store, uint8_t i) {
  if (i >= 8) a.bytes({0x44});
  a.bytes({0x0f, uint8_t(store ? 0x11 : 0x10), uint8_t(0x84 | (i & 7) << 3), 0x24});
  a.u32(16u * i);
}

constexpr int32_t kRedZone = 128;
constexpr int32_t kXmm = 16 * 16;
constexpr int32_t kFrame = 15 * 8 + 8 + 16; // GPRs, rflags, rip/rsp slots

} // namespace

int emit_insn_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, size_t *code_size) {
  static_assert(offsetof(lp_regs, rflags) == 120 && offsetof(lp_regs, rip) == 128 && offsetof(lp_regs, rsp) == 136);
  if (spec.tls_depth < INT32_MIN || spec.tls_depth > INT32_MAX) return LP_EINVAL;
  const uint32_t tls = uint32_t(int32_t(spec.tls_depth));
  Asm a(buf, at, kInsnTrampolineMax);
  lea_rsp(a, -kRedZone);                                   // the interrupted code may use its red zone
  lea_rsp(a, -kXmm);
  for (uint8_t i = 0; i < 16; ++i) movups(a, true, i);
  lea_rsp(a, -16);                                         // rip, rsp slots
  a.bytes({0x9c});                                        // pushfq
  a.bytes({0x50, 0x51, 0x52, 0x53, 0x55, 0x56, 0x57});    // push rax rcx rdx rbx rbp rsi rdi
  a.bytes({0x41, 0x50, 0x41, 0x51, 0x41, 0x52, 0x41, 0x53, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57});
  a.bytes({0x48, 0xb8}); a.u64(spec.site);                // mov rax, site
  a.bytes({0x48, 0x89, 0x84, 0x24}); a.u32(128);          // mov [rsp+128], rax   (lp_regs.rip)
  a.bytes({0x48, 0x8d, 0x84, 0x24}); a.u32(uint32_t(kFrame + kXmm + kRedZone)); // lea rax, [rsp+...]: the site's rsp
  a.bytes({0x48, 0x89, 0x84, 0x24}); a.u32(136);          // mov [rsp+136], rax   (lp_regs.rsp)
  a.bytes({0x64, 0x48, 0xff, 0x04, 0x25}); a.u32(tls);    // inc qword fs:[depth]  (flags are saved)
  a.bytes({0x48, 0x89, 0xe7});                            // mov rdi, rsp
  a.bytes({0x48, 0x8b, 0x35}); a.rel32_to(spec.data + 8); // mov rsi, [rip+user]
  a.bytes({0x48, 0x89, 0xe3});                            // mov rbx, rsp
  a.bytes({0x48, 0x83, 0xe4, 0xf0});                      // and rsp, -16
  a.bytes({0xfc});                                        // cld: the ABI's direction flag for the handler
  a.bytes({0xff, 0x15}); a.rel32_to(spec.data);           // call [rip+handler]
  a.bytes({0x48, 0x89, 0xdc});                            // mov rsp, rbx
  a.bytes({0x64, 0x48, 0xff, 0x0c, 0x25}); a.u32(tls);    // dec qword fs:[depth]
  a.bytes({0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x41, 0x5b, 0x41, 0x5a, 0x41, 0x59, 0x41, 0x58});
  a.bytes({0x5f, 0x5e, 0x5d, 0x5b, 0x5a, 0x59, 0x58});    // pop rdi rsi rbp rbx rdx rcx rax
  a.bytes({0x9d});                                        // popfq
  lea_rsp(a, 16);
  for (uint8_t i = 0; i < 16; ++i) movups(a, false, i);
  lea_rsp(a, kXmm + kRedZone);
  // Falls through into the out-of-line copy, placed right after this code.
  *code_size = a.size();
  return a.fits() ? 0 : LP_EINVAL;
}

} // namespace lp::x86_64
