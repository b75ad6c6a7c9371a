// The AArch64 backend: entry sleds from -fpatchable-function-entry (NOPs, after
// a `bti c` / `paciasp` the compiler put first, which stays), `BRK #0xc9` trap
// probes, `B trampoline` jump probes. Every store is one aligned word and every
// transition an entry site makes (NOP -> BRK -> B, B -> BRK -> NOP, ...) is
// between two instructions of the architecture's concurrent-modification list
// (encoding.hpp); cache.hpp says how each store reaches instruction fetch.
// docs/aarch64.md has the whole story.
#include <csignal>
#include <cstring>
#include <ucontext.h>

#include "backend.hpp"
#include "cache.hpp"
#include "encoding.hpp"
#include "libpatch/patch.h"
#include "libpatch/regs.h"
#include "insn_trampoline.hpp"
#include "trampoline.hpp"

namespace lp::aarch64 {
namespace {

constexpr uint32_t kBtiJc = 0xd50324df, kPacibsp = 0xd503237f;

// A landing pad or return-address signing the compiler put before the sled:
// the site starts after it, and it is never rewritten.
bool is_entry_prefix(uint32_t w) { return w == kBtiC || w == kBtiJc || w == kPaciasp || w == kPacibsp; }

// Linux's signal frame keeps the FP/SIMD registers in mcontext.__reserved as
// a list of records (arch/arm64/include/uapi/asm/sigcontext.h): FPSIMD always;
// SVE when the thread has used SVE (glibc's string functions do, on a CPU
// with SVE: qemu's -cpu max, many Arm servers), whose Z registers' low 128
// bits ARE the V registers -- and sigreturn then restores V from the SVE
// record, not from FPSIMD, so a handler's writes must go to both; EXTRA
// points at more records beyond __reserved (a large SVE record goes there).
constexpr uint32_t kFpsimdMagic = 0x46508001, kSveMagic = 0x53564501, kExtraMagic = 0x45585401;
struct CtxHead {
  uint32_t magic, size;
};
struct FpsimdCtx {
  CtxHead head;
  uint32_t fpsr, fpcr;
  uint64_t v[32][2];
};
struct SveCtx {
  CtxHead head;
  uint16_t vl; // vector length in bytes
  uint16_t flags;
  uint16_t reserved[2];
  // then, when head.size says so, Z0..Z31 (vl bytes each, lowest bytes first), P0..P15, FFR
};
constexpr size_t kSveRegsOffset = 16; // SVE_SIG_REGS_OFFSET
struct ExtraCtx {
  CtxHead head;
  uint64_t datap;
  uint32_t size;
  uint32_t reserved[3];
};

// The FPSIMD record and, when it holds register data, the SVE record.
struct FpRecords {
  uint8_t *fpsimd = nullptr;
  uint8_t *sve = nullptr;
};

FpRecords find_fp(const mcontext_t &m) {
  FpRecords r;
  uint8_t *p = const_cast<uint8_t *>(reinterpret_cast<const uint8_t *>(m.__reserved));
  uint8_t *end = p + sizeof(m.__reserved);
  bool extra_taken = false;
  while (p + sizeof(CtxHead) <= end) {
    CtxHead h;
    std::memcpy(&h, p, sizeof h);
    if (h.magic == 0) break;
    if (h.size < sizeof(CtxHead) || h.size > size_t(end - p)) break;
    if (h.magic == kFpsimdMagic && h.size >= sizeof(FpsimdCtx)) r.fpsimd = p;
    if (h.magic == kSveMagic && h.size >= sizeof(SveCtx)) {
      SveCtx sc;
      std::memcpy(&sc, p, sizeof sc);
      if (sc.vl >= 16 && sc.vl % 16 == 0 && h.size >= kSveRegsOffset + 32u * sc.vl) r.sve = p;
    }
    if (h.magic == kExtraMagic && h.size >= sizeof(ExtraCtx) && !extra_taken) {
      ExtraCtx x;
      std::memcpy(&x, p, sizeof x);
      // The list goes on at datap (in __reserved only the terminator follows EXTRA).
      extra_taken = true;
      p = reinterpret_cast<uint8_t *>(uintptr_t(x.datap));
      end = p + x.size;
      continue;
    }
    p += h.size;
  }
  return r;
}

class A64Backend final : public Backend {
public:
  const char *arch() const override { return "aarch64"; }
  uint32_t granule() const override { return 4; }

  int probe_site(uintptr_t addr, size_t avail, SiteShape *out) const override {
    if ((addr & 3) != 0 || avail < 4) return LP_EBOUNDARY;
    const uintptr_t start = site_start(addr, avail);
    avail -= start - addr;
    addr = start;
    const auto *p = reinterpret_cast<const uint8_t *>(addr);
    const uint32_t max_len = avail < engine::kMaxSiteBytes ? uint32_t(avail) & ~3u : engine::kMaxSiteBytes;
    const uint32_t n = sled_nops(p, max_len);
    if (n == 0) return LP_EBOUNDARY;
    SiteShape s;
    s.addr = addr;
    s.len = 4 * n;
    s.unit = 4;
    s.entry_sled = true;
    *out = s;
    return 0;
  }

  uintptr_t site_start(uintptr_t addr, size_t avail) const override {
    if ((addr & 3) != 0 || avail < 8) return addr;
    return is_entry_prefix(get32(reinterpret_cast<const uint8_t *>(addr))) ? addr + 4 : addr;
  }

  void disabled_bytes(const SiteShape &s, const uint8_t *original, uint8_t *out) const override {
    std::memcpy(out, original, s.len); // the NOPs: every later state differs in the first word only
  }

  int jump_bytes(const SiteShape &s, uintptr_t tramp, uint8_t *out) const override {
    for (uint32_t off = 0; off < s.len; off += 4) put32(out + off, kNop); // a site is all NOPs (probe_site)
    return encode_entry_jump(s.addr, tramp, out) ? 0 : LP_ERANGE;
  }

  void trap_bytes(const SiteShape &s, const uint8_t *disabled, uint8_t *out) const override {
    std::memcpy(out, disabled, s.len);
    put32(out, trap_insn()); // the trap handler resumes at the sled's end
  }

  void make_transition(const SiteShape &s, const uint8_t *cur, const uint8_t *next,
                       engine::Transition *t) const override {
    // Only the first word ever changes, between NOP, BRK #0xc9 and B: phase 1
    // stores the BRK, phase 2 has nothing to store (the other words stay NOPs),
    // phase 3 the new first word. Each store is a listed pair (B2.2.5), and no
    // boundary inside the sled ever changes, so nothing is evacuated: a thread
    // at a later NOP of the sled runs NOPs whatever the first word holds.
    t->addr = s.addr;
    t->len = s.len;
    t->trap_len = 4;
    std::memcpy(t->old_bytes, cur, s.len);
    std::memcpy(t->new_bytes, next, s.len);
    put32(t->trap_bytes, trap_insn());
    t->evacuate = false;
  }

  int64_t reach() const override { return kReach; }
  size_t trampoline_slot_size() const override { return kSlotSize; }
  size_t trampoline_data_offset() const override { return kDataOffset; }
  int emit_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec) const override {
    return emit_entry_trampoline(buf, at, spec);
  }
  // Instruction sites: `B tramp` in, `B` back; the stopped protocol for the
  // first word (store_needs_stop).
  int emit_insn_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec, size_t *size) const override {
    return aarch64::emit_insn_trampoline(buf, at, spec, size);
  }
  size_t insn_trampoline_max() const override { return kInsnTrampolineMax; }

  int emit_return_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec,
                             ReturnTrampoline *out) const override {
    return aarch64::emit_return_trampoline(buf, at, spec, out);
  }
  size_t return_trampoline_max() const override { return kReturnTrampolineMax; }
  int emit_redirect_stub(uint8_t *buf, uintptr_t at, uintptr_t data, size_t *size) const override {
    return aarch64::emit_redirect_stub(buf, at, data, size);
  }

  int trap_signal() const override { return SIGTRAP; }

  bool trap_site(int signo, const void *si_, const void *uc, uintptr_t *site) const override {
    const auto *si = static_cast<const siginfo_t *>(si_);
    // BRK at EL0: SIGTRAP, TRAP_BRKPT, si_addr = pc = the BRK itself
    // (arch/arm64/kernel/debug-monitors.c do_el0_brk64 -> brk_handler;
    // qemu-user's cpu_loop agrees). raise()/kill() have si_code <= 0.
    if (signo != SIGTRAP || si->si_code != TRAP_BRKPT) return false;
    const uintptr_t pc = context_pc(uc);
    if ((pc & 3) != 0) return false;
    // Another BRK (a debugger's #0, __builtin_trap's #0x3e8, ...) is never
    // ours: chained. The word may also no longer be a BRK at all -- phase 3
    // replaced our trap after this thread hit it -- which the caller resolves
    // from the site table (is_trap_at then says the trap is gone).
    uint16_t imm;
    if (decode_brk(*reinterpret_cast<const volatile uint32_t *>(pc), &imm) && imm != kBrkImm) return false;
    *site = pc;
    return true;
  }

  bool is_trap_at(uintptr_t site) const override {
    const bool trap = *reinterpret_cast<const volatile uint32_t *>(site) == trap_insn();
    // The caller resumes at `site` when the trap is gone: this core's fetch
    // must not run a stale copy of it.
    if (!trap) local_fetch_barrier();
    return trap;
  }

  GoneTrap gone_trap(uintptr_t site, uintptr_t *to) const override {
    const uint32_t w = *reinterpret_cast<const volatile uint32_t *>(site);
    if (w == kNop) {
      *to = site + 4;
      return GoneTrap::Resume;
    }
    int64_t off;
    bool link;
    if (decode_b(w, &off, &link) && !link) return GoneTrap::AsTrap;
    return GoneTrap::Refetch;
  }

  uintptr_t context_pc(const void *uc) const override {
    return uintptr_t(static_cast<const ucontext_t *>(uc)->uc_mcontext.pc);
  }
  void set_context_pc(void *uc, uintptr_t pc) const override {
    static_cast<ucontext_t *>(uc)->uc_mcontext.pc = pc;
  }

  void context_to_regs(const void *uc_, uintptr_t site, lp_regs *r) const override {
    const mcontext_t &m = static_cast<const ucontext_t *>(uc_)->uc_mcontext;
    for (int i = 0; i < 31; ++i) r->x[i] = m.regs[i];
    r->sp = m.sp;
    r->pc = site;
    r->pstate = m.pstate;
    const FpRecords fp = find_fp(m);
    if (fp.fpsimd) {
      const auto *f = reinterpret_cast<const FpsimdCtx *>(fp.fpsimd);
      r->fpsr = f->fpsr;
      r->fpcr = f->fpcr;
      std::memcpy(r->v, f->v, sizeof r->v); // the kernel syncs it from Z when the thread uses SVE
    } else {
      r->fpsr = r->fpcr = 0;
      std::memset(r->v, 0, sizeof r->v);
    }
  }

  void regs_to_context(const lp_regs *r, void *uc_) const override {
    mcontext_t &m = static_cast<ucontext_t *>(uc_)->uc_mcontext;
    // Everything but sp (a trampoline does not restore it either) and the
    // PSTATE bits other than NZCV, which user code cannot change.
    for (int i = 0; i < 31; ++i) m.regs[i] = r->x[i];
    constexpr uint64_t kNzcv = 0xf0000000u;
    m.pstate = (m.pstate & ~kNzcv) | (r->pstate & kNzcv);
    const FpRecords fp = find_fp(m);
    if (fp.fpsimd) {
      auto *f = reinterpret_cast<FpsimdCtx *>(fp.fpsimd);
      f->fpsr = uint32_t(r->fpsr);
      f->fpcr = uint32_t(r->fpcr);
      std::memcpy(f->v, r->v, sizeof r->v);
    }
    if (fp.sve) {
      // Z_n's low 128 bits are V_n; the rest of Z_n keeps what it had (a
      // handler's lp_regs has only V).
      SveCtx sc;
      std::memcpy(&sc, fp.sve, sizeof sc);
      for (unsigned n = 0; n < 32; ++n) std::memcpy(fp.sve + kSveRegsOffset + size_t(n) * sc.vl, r->v[n], 16);
    }
  }

  uintptr_t thread_pointer() const override {
    uintptr_t tp;
    asm volatile("mrs %0, tpidr_el0" : "=r"(tp));
    return tp;
  }

  void local_fetch_barrier() const override { asm volatile("isb" ::: "memory"); }
  void publish_code(uintptr_t addr, size_t len) const override { sync_code_to_pou(addr, len); }
  bool store_needs_stop(uintptr_t addr, const uint8_t *next, uint32_t g) const override {
    if (g != 4) return true;
    return !concurrent_modification_safe(*reinterpret_cast<const volatile uint32_t *>(addr), get32(next));
  }
  bool insn_sites_need_stop() const override { return true; }
};

} // namespace
} // namespace lp::aarch64

namespace lp {
const Backend &host_backend() {
  static const aarch64::A64Backend b;
  return b;
}
} // namespace lp

extern "C" {
uintptr_t lp_regs_pc(const lp_regs *r) { return r ? r->pc : 0; }
uintptr_t lp_regs_sp(const lp_regs *r) { return r ? r->sp : 0; }
// x0..x7, then the stack: at function entry the 9th integer argument is at [sp].
uintptr_t lp_regs_arg(const lp_regs *r, unsigned i) {
  if (!r) return 0;
  if (i < 8) return r->x[i];
  return *reinterpret_cast<const uint64_t *>(r->sp + 8 * (i - 8));
}
uintptr_t lp_regs_ret(const lp_regs *r) { return r ? r->x[0] : 0; }
uintptr_t lp_regs_return_address(const lp_regs *r) { return r ? r->x[30] : 0; }
void lp_regs_set_ret(lp_regs *r, uintptr_t v) {
  if (r) r->x[0] = v;
}
void lp_regs_set_arg(lp_regs *r, unsigned i, uintptr_t v) {
  if (!r) return;
  if (i < 8)
    r->x[i] = v;
  else
    *reinterpret_cast<uint64_t *>(r->sp + 8 * (i - 8)) = v;
}
}
