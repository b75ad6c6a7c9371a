#include "trampoline.hpp"

#include <cstddef>
#include <cstring>
#include <initializer_list>

#include "libpatch/patch.h"
#include "asm.hpp"
#include "libpatch/regs.h"

namespace lp::x86_64 {
namespace {

static_assert(offsetof(lp_regs, rflags) == 120 && offsetof(lp_regs, rip) == 128 && offsetof(lp_regs, rsp) == 136);

constexpr uint32_t kXmmArea = 128;
constexpr uint32_t kFrame = 15 * 8 + 8 + 16; // GPRs + rflags + rip/rsp slots = 144

void push_gprs(Asm &a) {
  a.bytes({0x50, 0x51, 0x52, 0x53, 0x55, 0x56, 0x57});          // push rax rcx rdx rbx rbp rsi rdi
  a.bytes({0x41, 0x50, 0x41, 0x51, 0x41, 0x52, 0x41, 0x53,      // push r8..r15
           0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57});
}

// Pops what push_gprs pushed but r15..r12: callee-saved, the handler kept them.
void pop_gprs(Asm &a) {
  a.bytes({0x48, 0x83, 0xc4, 0x20});                            // add rsp, 32 (skip r15..r12)
  a.bytes({0x41, 0x5b, 0x41, 0x5a, 0x41, 0x59, 0x41, 0x58});    // pop r11..r8
  a.bytes({0x5f, 0x5e, 0x5d, 0x5b, 0x5a, 0x59, 0x58});          // pop rdi rsi rbp rbx rdx rcx rax
}

// handler(rsp = lp_regs, user) on a 16-byte aligned stack, inside the
// per-thread trampoline depth; rbx keeps the frame. The handler's return value
// is left in rax.
void call_handler(Asm &a, const TrampolineSpec &spec, uint32_t tls) {
  a.bytes({0x64, 0x48, 0xff, 0x04, 0x25}); a.u32(tls);          // inc qword fs:[depth]
  a.bytes({0x48, 0x89, 0xe7});                                  // mov rdi, rsp
  a.bytes({0x48, 0x8b, 0x35}); a.rel32_to(spec.data + 8);       // mov rsi, [rip+user]
  a.bytes({0x48, 0x89, 0xe3});                                  // mov rbx, rsp
  a.bytes({0x48, 0x83, 0xe4, 0xf0});                            // and rsp, -16
  a.bytes({0xff, 0x15}); a.rel32_to(spec.data);                 // call [rip+handler]
  a.bytes({0x48, 0x89, 0xdc});                                  // mov rsp, rbx
}

void dec_depth(Asm &a, uint32_t tls) {
  a.bytes({0x64, 0x48, 0xff, 0x0c, 0x25}); a.u32(tls);          // dec qword fs:[depth]
}

bool tls_ok(const TrampolineSpec &spec) { return spec.tls_depth >= INT32_MIN && spec.tls_depth <= INT32_MAX; }

} // namespace

int emit_entry_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec) {
  if (spec.call_runtime) return emit_call_trampoline(buf, at, spec);
  if (!tls_ok(spec) || spec.site_len > 127) return LP_EINVAL;
  Asm a(buf, at, kDataOffset);
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
  push_gprs(a);
  const uint32_t ret_at = kFrame + kXmmArea;                    // 272
  a.bytes({0x48, 0x8b, 0x84, 0x24}); a.u32(ret_at);             // mov rax, [rsp+272]
  a.bytes({0x48, 0x83, 0xe8, uint8_t(spec.site_len)});          // sub rax, len  -> probed rip
  a.bytes({0x48, 0x89, 0x84, 0x24}); a.u32(128);                // mov [rsp+128], rax
  a.bytes({0x48, 0x8d, 0x84, 0x24}); a.u32(ret_at + 8);         // lea rax, [rsp+280] -> rsp at the site
  a.bytes({0x48, 0x89, 0x84, 0x24}); a.u32(136);                // mov [rsp+136], rax
  call_handler(a, spec, tls);
  dec_depth(a, tls);
  pop_gprs(a);
  a.bytes({0x48, 0x83, 0xc4, 0x18});                            // add rsp, 24 (rflags: flags are dead at entry)
  for (uint8_t i = 0; i < nvec; ++i) a.bytes({0x0f, 0x10, uint8_t(0x44 | i << 3), 0x24, uint8_t(16 * i)}); // movups xmmi, [rsp+16i]
  a.bytes({0x48, 0x81, 0xc4}); a.u32(kXmmArea);                 // add rsp, 128
  a.bytes({0xc3});                                              // ret -> site + len (or the runtime's choice)
  return a.fits() ? 0 : LP_EINVAL;
}

int emit_call_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec) {
  if (!tls_ok(spec)) return LP_EINVAL;
  Asm a(buf, at, kDataOffset);
  const uint32_t tls = uint32_t(int32_t(spec.tls_depth));
  // Entered by `jmp` from the sled: rsp = the function's entry rsp, [rsp] = the
  // caller's return address, exactly as at the function's first instruction.
  a.bytes({0x48, 0x83, 0xec, 0x08});                            // sub rsp, 8: where to continue (C)
  a.bytes({0x48, 0x81, 0xec}); a.u32(kXmmArea);                 // sub rsp, 128
  const uint8_t nvec = spec.save_vector ? 8 : 0;
  for (uint8_t i = 0; i < nvec; ++i) a.bytes({0x0f, 0x11, uint8_t(0x44 | i << 3), 0x24, uint8_t(16 * i)}); // movups [rsp+16i], xmmi
  a.bytes({0x48, 0x83, 0xec, 0x18});                            // sub rsp, 24
  a.bytes({0x48, 0xc7, 0x04, 0x24, 0, 0, 0, 0});                // mov qword [rsp], 0 (rflags: dead at entry)
  push_gprs(a);
  const uint32_t c_at = kFrame + kXmmArea;                      // 272: C, just below the entry rsp
  a.bytes({0x48, 0xb8}); a.u64(spec.site);                      // mov rax, site
  a.bytes({0x48, 0x89, 0x84, 0x24}); a.u32(128);                // mov [rsp+128], rax (lp_regs.rip)
  a.bytes({0x48, 0x8d, 0x84, 0x24}); a.u32(c_at + 8);           // lea rax, [rsp+280]: the entry rsp
  a.bytes({0x48, 0x89, 0x84, 0x24}); a.u32(136);                // mov [rsp+136], rax (lp_regs.rsp)
  call_handler(a, spec, tls);
  a.bytes({0x48, 0x89, 0x84, 0x24}); a.u32(c_at);               // mov [rsp+272], rax: the runtime's C
  dec_depth(a, tls);
  pop_gprs(a);
  a.bytes({0x48, 0x83, 0xc4, 0x18});                            // add rsp, 24
  for (uint8_t i = 0; i < nvec; ++i) a.bytes({0x0f, 0x10, uint8_t(0x44 | i << 3), 0x24, uint8_t(16 * i)}); // movups xmmi, [rsp+16i]
  a.bytes({0x48, 0x81, 0xc4}); a.u32(kXmmArea);                 // add rsp, 128
  a.bytes({0x48, 0x8d, 0x64, 0x24, 0x08});                      // lea rsp, [rsp+8]: the entry rsp again
  // r11 = the function's body (after the sled), for the run stub's `call r11`:
  // r11 is a scratch register, dead at an entry (no argument, no static chain).
  a.bytes({0x4c, 0x8d, 0x1d}); a.rel32_to(spec.site + spec.site_len); // lea r11, [rip+body]
  // C is in the red zone now, which signal delivery skips.
  a.bytes({0xff, 0x64, 0x24, 0xf8});                            // jmp [rsp-8] -> C
  return a.fits() ? 0 : LP_EINVAL;
}

int emit_return_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, ReturnTrampoline *out) {
  if (!tls_ok(spec)) return LP_EINVAL;
  Asm a(buf, at, kReturnTrampolineMax);
  const uint32_t tls = uint32_t(int32_t(spec.tls_depth));
  constexpr uint32_t kVec = 32;                                 // xmm0, xmm1: vector return registers
  // The run stub: a call with a shadow entry enters its body here, with r11 =
  // the body and [rsp] = the real return address, already saved. Dropping it
  // and `call`ing the body puts the return trampoline's address in the very
  // slot, and on top of the return-stack buffer: the body's `ret` is then
  // predicted, and the buffer stays aligned for every return above.
  out->run_off = a.size();
  a.bytes({0x48, 0x8d, 0x64, 0x24, 0x08});                      // lea rsp, [rsp+8]
  a.bytes({0x41, 0xff, 0xd3});                                  // call r11
  // The return trampoline proper: the body returned here, rsp = entry rsp + 8.
  out->ret_off = a.size();
  a.bytes({0x50});                                              // push rax: placeholder for the real return address
  a.bytes({0x48, 0x83, 0xec, uint8_t(kVec)});                   // sub rsp, 32
  if (spec.save_vector) {
    a.bytes({0x0f, 0x11, 0x04, 0x24});                          // movups [rsp], xmm0
    a.bytes({0x0f, 0x11, 0x4c, 0x24, 0x10});                    // movups [rsp+16], xmm1
  }
  a.bytes({0x48, 0x83, 0xec, 0x18});                            // sub rsp, 24 (rflags, rip, rsp)
  a.bytes({0x48, 0xc7, 0x04, 0x24, 0, 0, 0, 0});                // mov qword [rsp], 0 (rflags: dead at a return)
  push_gprs(a);
  a.bytes({0x48, 0xc7, 0x84, 0x24}); a.u32(128); a.u32(0);      // mov qword [rsp+128], 0 (rip: the runtime's)
  const uint32_t slot_at = kFrame + kVec;                       // 176: the placeholder
  a.bytes({0x48, 0x8d, 0x84, 0x24}); a.u32(slot_at + 8);        // lea rax, [rsp+184] -> the caller's rsp
  a.bytes({0x48, 0x89, 0x84, 0x24}); a.u32(136);                // mov [rsp+136], rax
  call_handler(a, spec, tls);
  a.bytes({0x48, 0x89, 0x84, 0x24}); a.u32(slot_at);            // mov [rsp+176], rax (the real return address)
  dec_depth(a, tls);
  pop_gprs(a);                                                  // rax, rdx: the (possibly changed) return value
  a.bytes({0x48, 0x83, 0xc4, 0x18});                            // add rsp, 24
  if (spec.save_vector) {
    a.bytes({0x0f, 0x10, 0x04, 0x24});                          // movups xmm0, [rsp]
    a.bytes({0x0f, 0x10, 0x4c, 0x24, 0x10});                    // movups xmm1, [rsp+16]
  }
  a.bytes({0x48, 0x83, 0xc4, uint8_t(kVec)});                   // add rsp, 32
  // `ret`, predicted: the buffer's top is this call's own entry (see the run stub).
  a.bytes({0xc3});                                              // ret -> the real return address
  out->skip_off = a.size();
  a.bytes({0xc3});                                              // skip stub: ret -> the caller
  out->code_size = a.size();
  return a.fits() ? 0 : LP_EINVAL;
}

int emit_redirect_stub(uint8_t *buf, uintptr_t at, uintptr_t data, size_t *size) {
  Asm a(buf, at, kRedirectStubMax);
  a.bytes({0xff, 0x25});                                        // jmp [rip+data]
  if (!a.rel32_reaches(data)) return LP_EINVAL;
  a.rel32_to(data);
  *size = a.size();
  return a.fits() ? 0 : LP_EINVAL;
}

} // namespace lp::x86_64
