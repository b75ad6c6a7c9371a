// The RISC-V 64 backend: entry sleds from -fpatchable-function-entry (c.nop or
// nop units), an ILEN-aware trap (c.unimp halfword on a hart with C, a 0x00 low
// byte without), `jal t0` / `auipc t0 + jalr t0` jump probes. docs/riscv64.md
// has the whole story; encoding.hpp the freestanding encodings it builds on.
#include <csignal>
#include <cstring>
#include <ucontext.h>

#include "backend.hpp"
#include "encoding.hpp"
#include "hwprobe.hpp"
#include "insn_trampoline.hpp"
#include "libpatch/patch.h"
#include "libpatch/regs.h"
#include "trampoline.hpp"

namespace lp::riscv64 {
namespace {

class Rv64Backend final : public Backend {
public:
  Rv64Backend() : has_c_(hart_has_c()) {}

  const char *arch() const override { return "riscv64"; }
  uint32_t granule() const override { return riscv64::granule(has_c_); }

  int probe_site(uintptr_t addr, size_t avail, SiteShape *out) const override {
    if ((addr & 1) != 0) return LP_EBOUNDARY;
    const auto *p = reinterpret_cast<const uint8_t *>(addr);
    const uint32_t max_len = avail < engine::kMaxSiteBytes ? uint32_t(avail) : engine::kMaxSiteBytes;
    Ilen ilen = Ilen::C16;
    uint32_t len = skip_len(p, max_len, &ilen); // a site normalised by an earlier probe
    // `j .+4` alone (a 2 x c.nop sled, normalised) has no tail to tell the unit:
    // at 2 mod 4 it can only be C code.
    if (len != 0 && (addr & 3) != 0) ilen = Ilen::C16;
    if (len == 0) {
      const uint32_t n = sled_units(p, max_len, &ilen);
      if (n == 0) return LP_EBOUNDARY;
      len = n * uint32_t(ilen);
    }
    // rv64g code is 4-byte aligned; a hart without C cannot run c.nop sleds at all.
    if (ilen == Ilen::G32 && (addr & 3) != 0) return LP_EBOUNDARY;
    if (ilen == Ilen::C16 && !has_c_) return LP_EBOUNDARY;
    if (len < trap_len(has_c_) || len % granule() != 0) return LP_EBOUNDARY;
    SiteShape s;
    s.addr = addr;
    s.len = len;
    s.unit = uint32_t(ilen);
    s.entry_sled = true;
    *out = s;
    return 0;
  }

  void disabled_bytes(const SiteShape &s, const uint8_t *original, uint8_t *out) const override {
    Ilen tail;
    if (skip_len(original, s.len, &tail) == s.len) {
      std::memcpy(out, original, s.len); // already normalised
    } else if (s.len >= 4 && s.len > s.unit) {
      // More than one nop: `j .+len` then nops. Toggling between it, `jal t0`
      // and the trap is then a change of one instruction at the head (no
      // evacuation round), and a disabled site costs one jump.
      encode_skip(s.len, Ilen(s.unit), out);
    } else {
      std::memcpy(out, original, s.len); // one nop (or one c.nop): already one instruction
    }
  }

  int jump_bytes(const SiteShape &s, uintptr_t tramp, uint8_t *out) const override {
    switch (encode_entry_call(s.addr, tramp, s.len, Ilen(s.unit), out)) {
    case CallError::Ok: return 0;
    case CallError::TooShort: return LP_ETOOSHORT;
    case CallError::Range: return LP_ERANGE;
    case CallError::Misaligned: return LP_EINVAL;
    }
    return LP_EINVAL;
  }

  void trap_bytes(const SiteShape &s, const uint8_t *disabled, uint8_t *out) const override {
    std::memcpy(out, disabled, s.len);
    riscv64::trap_bytes(has_c_, out); // the handler resumes at the sled's end
  }

  void make_transition(const SiteShape &s, const uint8_t *cur, const uint8_t *next,
                       engine::Transition *t) const override {
    // Evacuate only when the raw sled or an auipc+jalr pair is involved (see
    // inner_entry): every other toggle changes one instruction at the head.
    make_site_transition(s.addr, s.len, Ilen(s.unit), has_c_, cur, next, t);
  }

  // auipc+jalr: [-2^31 - 2^11, 2^31 - 2^11); the pool checks |distance| < reach.
  int64_t reach() const override { return (int64_t(1) << 31) - 4096; }
  size_t trampoline_slot_size() const override { return kSlotSize; }
  size_t trampoline_data_offset() const override { return kDataOffset; }
  int emit_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec) const override {
    return emit_entry_trampoline(buf, at, spec);
  }

  // Instruction sites: `jal x0` in, `jal x0` back (no register is free at an
  // arbitrary boundary), so their trampolines and copies live within jal's reach.
  int64_t insn_reach() const override { return kInsnReach; }
  int emit_insn_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, size_t *size) const override {
    return riscv64::emit_insn_trampoline(buf, at, spec, size);
  }
  size_t insn_trampoline_max() const override { return kInsnTrampolineMax; }
  const char *decoder_features() const override { return has_c_ ? "+c" : "-c"; }

  int emit_return_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec,
                             ReturnTrampoline *out) const override {
    return riscv64::emit_return_trampoline(buf, at, spec, out);
  }
  size_t return_trampoline_max() const override { return kReturnTrampolineMax; }
  int emit_redirect_stub(uint8_t *buf, uintptr_t at, uintptr_t data, size_t *size) const override {
    return riscv64::emit_redirect_stub(buf, at, data, size);
  }
  int trap_signal() const override { return SIGILL; }

  bool trap_site(int signo, const void *si_, const void *uc, uintptr_t *site) const override {
    const auto *si = static_cast<const siginfo_t *>(si_);
    // c.unimp / an illegal low byte: SIGILL, ILL_ILLOPC, pc = the instruction
    // (Linux's do_trap_insn_illegal and qemu-user agree). raise()/kill() have
    // si_code <= 0 and are never ours.
    if (signo != SIGILL || si->si_code != ILL_ILLOPC) return false;
    *site = context_pc(uc);
    return true;
  }

  bool is_trap_at(uintptr_t site) const override {
    bool trap;
    if (has_c_)
      trap = *reinterpret_cast<const volatile uint16_t *>(site) == kCUnimp;
    else
      trap = *reinterpret_cast<const volatile uint8_t *>(site) == 0;
    // The caller resumes at `site` when the trap is gone: make this hart's fetch
    // see at least what this load saw, so it does not trap on a stale copy.
    if (!trap) local_fetch_barrier();
    return trap;
  }

  uintptr_t context_pc(const void *uc) const override {
    return uintptr_t(static_cast<const ucontext_t *>(uc)->uc_mcontext.__gregs[REG_PC]);
  }
  void set_context_pc(void *uc, uintptr_t pc) const override {
    static_cast<ucontext_t *>(uc)->uc_mcontext.__gregs[REG_PC] = pc;
  }

  void context_to_regs(const void *uc_, uintptr_t site, lp_regs *r) const override {
    const mcontext_t &m = static_cast<const ucontext_t *>(uc_)->uc_mcontext;
    r->x[0] = site;
    for (int i = 1; i < 32; ++i) r->x[i] = m.__gregs[i];
    for (int i = 0; i < 32; ++i) r->f[i] = m.__fpregs.__d.__f[i];
    r->fcsr = m.__fpregs.__d.__fcsr;
    r->pc = site;
  }

  void regs_to_context(const lp_regs *r, void *uc_) const override {
    mcontext_t &m = static_cast<ucontext_t *>(uc_)->uc_mcontext;
    // Everything but x0, sp, gp and tp (the same set a trampoline restores, plus t0).
    for (int i = 1; i < 32; ++i)
      if (i != kSp && i != kGp && i != kTp) m.__gregs[i] = r->x[i];
    for (int i = 0; i < 32; ++i) m.__fpregs.__d.__f[i] = r->f[i];
    m.__fpregs.__d.__fcsr = uint32_t(r->fcsr);
  }

  uintptr_t thread_pointer() const override {
    uintptr_t tp;
    asm volatile("mv %0, tp" : "=r"(tp));
    return tp;
  }

  void local_fetch_barrier() const override { asm volatile("fence.i" ::: "memory"); }

private:
  bool has_c_;
};

} // namespace
} // namespace lp::riscv64

namespace lp {
const Backend &host_backend() {
  static const riscv64::Rv64Backend b;
  return b;
}
} // namespace lp

extern "C" {
uintptr_t lp_regs_pc(const lp_regs *r) { return r ? r->pc : 0; }
uintptr_t lp_regs_sp(const lp_regs *r) { return r ? r->x[2] : 0; }
// a0..a7, then the stack: at function entry the 9th integer argument is at 0(sp).
uintptr_t lp_regs_arg(const lp_regs *r, unsigned i) {
  if (!r) return 0;
  if (i < 8) return r->x[10 + i];
  return *reinterpret_cast<const uint64_t *>(r->x[2] + 8 * (i - 8));
}
uintptr_t lp_regs_ret(const lp_regs *r) { return r ? r->x[10] : 0; }
uintptr_t lp_regs_return_address(const lp_regs *r) { return r ? r->x[1] : 0; }
void lp_regs_set_ret(lp_regs *r, uintptr_t v) {
  if (r) r->x[10] = v;
}
void lp_regs_set_arg(lp_regs *r, unsigned i, uintptr_t v) {
  if (!r) return;
  if (i < 8)
    r->x[10 + i] = v;
  else
    *reinterpret_cast<uint64_t *>(r->x[2] + 8 * (i - 8)) = v;
}
}
