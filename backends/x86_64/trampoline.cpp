#include "trampoline.hpp"

#include <cstddef>
#include <cstring>
#include <initializer_list>

#include "libpatch/patch.h"
#include "asm.hpp"
#include "libpatch/regs.h"

namespace lp::x86_64 {
namespace {


constexpr uint32_t kXmmArea = 128;
constexpr uint32_t kFrame = 15 * 8 + 8 + 16; // GPRs + rflags + rip/rsp slots = 144

} // namespace

int emit_entry_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec) {
  static_assert(offsetof(lp_regs, rflags) == 120 && offsetof(lp_regs, rip) == 128 && offsetof(lp_regs, rsp) == 136);
  if (spec.tls_depth < INT32_MIN || spec.tls_depth > INT32_MAX || spec.site_len > 127) return LP_EINVAL;
  Asm a(buf, at);
  const uint32_t tls = uint32_t(int32_t(spec.tls_depth));
  // [rsp] = site + len (return address pushed by the site's call).
  a.bytes({0x48, 0x81, 0xec}); a.u32(kXmmArea);                 // sub rsp, 128
  const uint8_t nvec = spec.save_vector ? 8 : 0; // xmm0-7: the vector argument registers
  for (uint8_t i = 0; i < nvec; ++i) a.bytes({0x0f, 0x11, uint8_t(0x44 | i << 3), 0x24, uint8_t(16 * i)}); // movups [rsp+16i], xmmi
  // rip, rsp and rflags slots. Flags are dead at a function's entry (the ABI
  // preserves none across a call), so they are neither saved nor restored:
  // lp_regs.rflags reads 0 for entry jump probes.
  a.bytes({0x48, 0x83, 0xec, 0x18});                            // sub rsp, 24
  a.bytes({0x48, 0xc7, 0x04, 0x24, 0, 0, 0, 0});                // mov qword [rsp], 0 (rflags)
  a.bytes({0x50, 0x51, 0x52, 0x53, 0x55, 0x56, 0x57});          // push rax rcx rdx rbx rbp rsi rdi
  a.bytes({0x41, 0x50, 0x41, 0x51, 0x41, 0x52, 0x41, 0x53,      // push r8..r15
           0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57});
  const uint32_t ret_at = kFrame + kXmmArea;                    // 272
  a.bytes({0x48, 0x8b, 0x84, 0x24}); a.u32(ret_at);             // mov rax, [rsp+272]
  a.bytes({0x48, 0x83, 0xe8, uint8_t(spec.site_len)});          // sub rax, len  -> probed rip
  a.bytes({0x48, 0x89, 0x84, 0x24}); a.u32(128);                // mov [rsp+128], rax
  a.bytes({0x48, 0x8d, 0x84, 0x24}); a.u32(ret_at + 8);         // lea rax, [rsp+280] -> rsp at the site
  a.bytes({0x48, 0x89, 0x84, 0x24}); a.u32(136);                // mov [rsp+136], rax
  a.bytes({0x64, 0x48, 0xff, 0x04, 0x25}); a.u32(tls);          // inc qword fs:[depth]
  a.bytes({0x48, 0x89, 0xe7});                                  // mov rdi, rsp
  a.bytes({0x48, 0x8b, 0x35}); a.rel32_to(spec.data + 8);       // mov rsi, [rip+user]
  a.bytes({0x48, 0x89, 0xe3});                                  // mov rbx, rsp
  a.bytes({0x48, 0x83, 0xe4, 0xf0});                            // and rsp, -16
  a.bytes({0xff, 0x15}); a.rel32_to(spec.data);                 // call [rip+handler]
  a.bytes({0x48, 0x89, 0xdc});                                  // mov rsp, rbx
  a.bytes({0x64, 0x48, 0xff, 0x0c, 0x25}); a.u32(tls);          // dec qword fs:[depth]
  // r15..r12 are callee-saved: the handler kept them, nothing to reload.
  a.bytes({0x48, 0x83, 0xc4, 0x20});                            // add rsp, 32 (skip r15..r12)
  a.bytes({0x41, 0x5b, 0x41, 0x5a, 0x41, 0x59, 0x41, 0x58});    // pop r11..r8
  a.bytes({0x5f, 0x5e, 0x5d, 0x5b, 0x5a, 0x59, 0x58});          // pop rdi rsi rbp rbx rdx rcx rax
  a.bytes({0x48, 0x83, 0xc4, 0x18});                            // add rsp, 24 (rflags: flags are dead at entry)
  for (uint8_t i = 0; i < nvec; ++i) a.bytes({0x0f, 0x10, uint8_t(0x44 | i << 3), 0x24, uint8_t(16 * i)}); // movups xmmi, [rsp+16i]
  a.bytes({0x48, 0x81, 0xc4}); a.u32(kXmmArea);                 // add rsp, 128
  a.bytes({0xc3});                                              // ret -> site + len
  return a.size() <= kDataOffset ? 0 : LP_EINVAL;
}

} // namespace lp::x86_64
