// The x86-64 backend: entry sites, int3 protocol, call-rel32 jump probes.
#include <csignal>
#include <cstring>
#include <ucontext.h>

#include "backend.hpp"
#include "encoding.hpp"
#include "libpatch/patch.h"
#include "libpatch/regs.h"
#include "insn_trampoline.hpp"
#include "trampoline.hpp"

namespace lp::x86_64 {
namespace {

constexpr uint8_t kEndbr64[4] = {0xf3, 0x0f, 0x1e, 0xfa};

bool nop5_any(const uint8_t *p) { return p[0] == 0x0f && p[1] == 0x1f && p[2] == 0x44 && p[3] == 0x00; }
bool nop1x5(const uint8_t *p) {
  for (int i = 0; i < 5; ++i)
    if (p[i] != 0x90) return false;
  return true;
}

class X86Backend final : public Backend {
public:
  const char *arch() const override { return "x86_64"; }
  uint32_t granule() const override { return kGranule; }

  int probe_site(uintptr_t addr, size_t avail, SiteShape *out) const override {
    const auto *p = reinterpret_cast<const uint8_t *>(addr);
    // With -fcf-protection the sled follows the function's endbr64: a probe on
    // the symbol address patches the sled, the landing pad stays.
    if (avail >= 4 + kSiteLen && std::memcmp(p, kEndbr64, 4) == 0) {
      addr += 4;
      p += 4;
      avail -= 4;
    }
    if (avail < kSiteLen) return LP_EBOUNDARY;
    SiteShape s;
    s.addr = addr;
    s.len = kSiteLen;
    s.entry_sled = true;
    if (nop5_any(p)) s.unit = 5;       // clang: one 5-byte nop
    else if (nop1x5(p)) s.unit = 1;    // gcc: five 1-byte nops
    else return LP_EBOUNDARY;
    *out = s;
    return 0;
  }

  uintptr_t site_start(uintptr_t addr, size_t avail) const override {
    return avail >= 4 + kSiteLen && std::memcmp(reinterpret_cast<const void *>(addr), kEndbr64, 4) == 0 ? addr + 4
                                                                                                       : addr;
  }

  void disabled_bytes(const SiteShape &, const uint8_t *, uint8_t *out) const override {
    // Always the single 5-byte nop: after the first commit every toggle of the
    // site is one instruction to one instruction, so no thread can be parked
    // inside it and no evacuation round is needed.
    std::memcpy(out, kNop5, kSiteLen);
  }

  int jump_bytes(const SiteShape &s, uintptr_t tramp, uint8_t *out) const override {
    return encode_call(s.addr, tramp, out) ? 0 : LP_ERANGE;
  }

  int tail_jump_bytes(const SiteShape &s, uintptr_t target, uint8_t *out) const override {
    return encode_jmp(s.addr, target, out) ? 0 : LP_ERANGE;
  }

  void trap_bytes(const SiteShape &s, const uint8_t *disabled, uint8_t *out) const override {
    std::memcpy(out, disabled, s.len);
    out[0] = kInt3; // the trap handler resumes at the site's end
  }

  void make_transition(const SiteShape &s, const uint8_t *cur, const uint8_t *next,
                       engine::Transition *t) const override {
    // Five 1-byte nops have boundaries inside the site: evacuate on that change.
    const bool evac = nop1x5(cur) || nop1x5(next);
    x86_64::make_transition(s.addr, cur, next, s.len, evac, t);
  }

  int64_t reach() const override { return int64_t(INT32_MAX) - 4096; }
  size_t trampoline_slot_size() const override { return kSlotSize; }
  size_t trampoline_data_offset() const override { return kDataOffset; }
  int emit_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec) const override {
    return emit_entry_trampoline(buf, at, spec);
  }

  int emit_insn_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, size_t *size) const override {
    return x86_64::emit_insn_trampoline(buf, at, spec, size);
  }
  size_t insn_trampoline_max() const override { return kInsnTrampolineMax; }

  int emit_return_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec,
                             ReturnTrampoline *out) const override {
    return x86_64::emit_return_trampoline(buf, at, spec, out);
  }
  size_t return_trampoline_max() const override { return kReturnTrampolineMax; }
  int emit_redirect_stub(uint8_t *buf, uintptr_t at, uintptr_t data, size_t *size) const override {
    return x86_64::emit_redirect_stub(buf, at, data, size);
  }
  int trap_signal() const override { return SIGTRAP; }

  bool trap_site(int signo, const void *si_, const void *uc, uintptr_t *site) const override {
    const auto *si = static_cast<const siginfo_t *>(si_);
    // int3 raises SIGTRAP with si_code SI_KERNEL and rip after the int3;
    // raise()/kill() have si_code <= 0 and are never ours.
    if (signo != SIGTRAP || si->si_code != SI_KERNEL) return false;
    *site = context_pc(uc) - 1;
    return true;
  }

  bool is_trap_at(uintptr_t site) const override {
    return *reinterpret_cast<const volatile uint8_t *>(site) == kInt3;
  }

  uintptr_t context_pc(const void *uc) const override {
    return uintptr_t(static_cast<const ucontext_t *>(uc)->uc_mcontext.gregs[REG_RIP]);
  }
  void set_context_pc(void *uc, uintptr_t pc) const override {
    static_cast<ucontext_t *>(uc)->uc_mcontext.gregs[REG_RIP] = greg_t(pc);
  }

  void context_to_regs(const void *uc_, uintptr_t site, lp_regs *r) const override {
    const greg_t *g = static_cast<const ucontext_t *>(uc_)->uc_mcontext.gregs;
    r->r15 = g[REG_R15]; r->r14 = g[REG_R14]; r->r13 = g[REG_R13]; r->r12 = g[REG_R12];
    r->r11 = g[REG_R11]; r->r10 = g[REG_R10]; r->r9 = g[REG_R9]; r->r8 = g[REG_R8];
    r->rdi = g[REG_RDI]; r->rsi = g[REG_RSI]; r->rbp = g[REG_RBP]; r->rbx = g[REG_RBX];
    r->rdx = g[REG_RDX]; r->rcx = g[REG_RCX]; r->rax = g[REG_RAX];
    r->rflags = g[REG_EFL];
    r->rip = site;
    r->rsp = g[REG_RSP];
  }

  void regs_to_context(const lp_regs *r, void *uc_) const override {
    greg_t *g = static_cast<ucontext_t *>(uc_)->uc_mcontext.gregs;
    g[REG_R15] = greg_t(r->r15); g[REG_R14] = greg_t(r->r14); g[REG_R13] = greg_t(r->r13);
    g[REG_R12] = greg_t(r->r12); g[REG_R11] = greg_t(r->r11); g[REG_R10] = greg_t(r->r10);
    g[REG_R9] = greg_t(r->r9); g[REG_R8] = greg_t(r->r8); g[REG_RDI] = greg_t(r->rdi);
    g[REG_RSI] = greg_t(r->rsi); g[REG_RBP] = greg_t(r->rbp); g[REG_RBX] = greg_t(r->rbx);
    g[REG_RDX] = greg_t(r->rdx); g[REG_RCX] = greg_t(r->rcx); g[REG_RAX] = greg_t(r->rax);
  }

  uintptr_t thread_pointer() const override {
    uintptr_t tp;
    asm volatile("mov %%fs:0, %0" : "=r"(tp));
    return tp;
  }

  void local_fetch_barrier() const override {
    // x86 keeps fetch coherent with stores on the same core; cross-core
    // serialisation comes from the sync itself (membarrier / signal delivery).
  }
};

} // namespace
} // namespace lp::x86_64

namespace lp {
const Backend &host_backend() {
  static const x86_64::X86Backend b;
  return b;
}
} // namespace lp

extern "C" {
uintptr_t lp_regs_pc(const lp_regs *r) { return r ? r->rip : 0; }
uintptr_t lp_regs_sp(const lp_regs *r) { return r ? r->rsp : 0; }
uintptr_t lp_regs_arg(const lp_regs *r, unsigned i) {
  if (!r) return 0;
  switch (i) {
  case 0: return r->rdi;
  case 1: return r->rsi;
  case 2: return r->rdx;
  case 3: return r->rcx;
  case 4: return r->r8;
  case 5: return r->r9;
  default: return *reinterpret_cast<const uint64_t *>(r->rsp + 8 * (i - 6 + 1)); // stack args
  }
}
uintptr_t lp_regs_ret(const lp_regs *r) { return r ? r->rax : 0; }
uintptr_t lp_regs_return_address(const lp_regs *r) { return r ? *reinterpret_cast<const uint64_t *>(r->rsp) : 0; }
void lp_regs_set_ret(lp_regs *r, uintptr_t v) {
  if (r) r->rax = v;
}
void lp_regs_set_arg(lp_regs *r, unsigned i, uintptr_t v) {
  if (!r) return;
  switch (i) {
  case 0: r->rdi = v; break;
  case 1: r->rsi = v; break;
  case 2: r->rdx = v; break;
  case 3: r->rcx = v; break;
  case 4: r->r8 = v; break;
  case 5: r->r9 = v; break;
  default: *reinterpret_cast<uint64_t *>(r->rsp + 8 * (i - 6 + 1)) = v; break;
  }
}
}
