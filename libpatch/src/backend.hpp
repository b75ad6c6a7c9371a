// The ISA backend interface the arch-free core talks to. One implementation per
// architecture lives in backends/<arch>/ and is linked in by the build; the core
// only ever sees this header (never an arch header).
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/protocol.hpp"

struct lp_regs;

namespace lp {

inline constexpr int LP_ENOTSUP_CODE = -16; // LP_ENOTSUP (patch.h), without the C header here

// What the backend found at a probe address.
struct SiteShape {
  uintptr_t addr = 0;      // first byte the protocol rewrites (may be after an endbr64)
  uint32_t len = 0;        // bytes of the site
  uint32_t unit = 0;       // bytes of one original nop/instruction (for evacuation maps)
  bool entry_sled = false; // a compiler-emitted nop sled (vs. an instruction site)
};

// Parameters of one jump-probe trampoline.
struct TrampolineSpec {
  uintptr_t site = 0;        // probed address (reported as the pc in lp_regs)
  uint32_t site_len = 0;
  uintptr_t data = 0;        // address of the slot's data words (handler, user)
  intptr_t tls_depth = 0;    // thread-pointer offset of the per-thread trampoline depth counter
  bool save_vector = true;   // false: the handler promised not to touch vector/FP registers
  // The handler is the call runtime (call_runtime.hpp): it returns where the
  // trampoline continues (the sled's end, or a return to the caller for a
  // skipped call) instead of the trampoline's fixed site + site_len.
  bool call_runtime = false;
};

// Where a return trampoline's code lies in its slot.
struct ReturnTrampoline {
  size_t code_size = 0;
  // Offset of the "run the function" stub a call probe's entry trampoline
  // continues at when the call has a shadow entry (x86-64: drop the return
  // address, `call` the body, so the return-stack buffer predicts the return
  // into the trampoline; the return trampoline proper starts right after it);
  // 0 where the backend has none (the trampoline continues at the body, whose
  // return address was swapped in place).
  size_t run_off = 0;
  // Offset where the function's swapped return lands (the return trampoline proper).
  size_t ret_off = 0;
  // Offset of the "return to the caller" stub an entry trampoline continues at
  // for a skipped call (x86-64: a `ret`); 0 where the backend needs none.
  size_t skip_off = 0;
};

// Slot data words a trampoline reads at run time (kept beside its code).
struct TrampolineData {
  void (*handler)(lp_regs *, void *) = nullptr;
  void *user = nullptr;
};

// What a trap handler does when the trap it was raised for is no longer in
// the text (Backend::gone_trap).
enum class GoneTrap : uint8_t {
  Refetch, // continue at the site: the CPU fetches what it holds now
  Resume,  // continue at *to: what the word now there does (an AArch64 NOP: site + 4)
  AsTrap,  // resolve it as the trap it replaced (an AArch64 B to our trampoline)
};

class Backend {
public:
  virtual ~Backend() = default;
  virtual const char *arch() const = 0;

  // Granule of every protocol store (may depend on run-time CPU features).
  virtual uint32_t granule() const = 0;

  // Recognises a patchable site at `addr` (reading at most `avail` bytes of
  // text). Returns 0 or a negative LP_E* code (LP_EBOUNDARY when `addr` is no site).
  virtual int probe_site(uintptr_t addr, size_t avail, SiteShape *out) const = 0;

  // Where a site at `addr` would start, from what does not change when it is
  // patched (x86-64: after an endbr64 landing pad, which stays): to find the
  // probe that already owns a function once its sled holds a jump or a trap.
  virtual uintptr_t site_start(uintptr_t addr, size_t) const { return addr; }

  // The bytes a disabled site holds. For a site seen for the first time these may
  // differ from the original (normalised to a form whose later toggles are
  // single-instruction transitions).
  virtual void disabled_bytes(const SiteShape &s, const uint8_t *original, uint8_t *out) const = 0;
  // Site bytes for a jump probe into `tramp`. LP_ERANGE / LP_ETOOSHORT on failure.
  virtual int jump_bytes(const SiteShape &s, uintptr_t tramp, uint8_t *out) const = 0;
  // Site bytes that reach `target` leaving the stack and the return address as
  // the caller left them, for call probes and replacements (x86-64: jmp rel32,
  // not the entry probe's call; RISC-V: jump_bytes' jal t0 / auipc t0 + jalr t0,
  // which touch no stack and only t0, dead at an entry).
  virtual int tail_jump_bytes(const SiteShape &s, uintptr_t target, uint8_t *out) const {
    return jump_bytes(s, target, out);
  }
  // Site bytes for a trap probe.
  virtual void trap_bytes(const SiteShape &s, const uint8_t *disabled, uint8_t *out) const = 0;
  // The protocol transition `cur -> next` at site `s`.
  virtual void make_transition(const SiteShape &s, const uint8_t *cur, const uint8_t *next,
                               engine::Transition *out) const = 0;

  // Trampolines. Max distance from a site a jump can reach, slot size in bytes
  // (code + data), and code generation into `buf` (a writable view of the slot
  // that will execute at `spec.data - data_offset`).
  virtual int64_t reach() const = 0;
  virtual size_t trampoline_slot_size() const = 0;
  virtual size_t trampoline_data_offset() const = 0;
  virtual int emit_trampoline(uint8_t *buf, uintptr_t at, const TrampolineSpec &spec) const = 0;
  // Instruction-site trampoline: entered by a jump from anywhere in a function,
  // it preserves every register, the flags and the red zone, calls the handler,
  // and falls through at buf + *code_size into the out-of-line copy of the
  // displaced instructions (which the core places there). LP_ENOTSUP if the
  // backend has no instruction-site support.
  virtual int emit_insn_trampoline(uint8_t *, uintptr_t, const TrampolineSpec &, size_t *) const {
    return LP_ENOTSUP_CODE;
  }
  // Upper bound of emit_insn_trampoline's code size.
  virtual size_t insn_trampoline_max() const { return 0; }
  // Max distance between an instruction site and its trampoline / out-of-line
  // copy (the site jump and the copy's jump back may have a shorter reach than
  // an entry site's call, which can clobber a register).
  virtual int64_t insn_reach() const { return reach(); }
  // lp::mc::Decoder feature string for the code this CPU runs ("" = the arch
  // default; RISC-V without C: "-c", so compressed encodings never decode).
  virtual const char *decoder_features() const { return ""; }

  // ---- Calls (exit probes, replacement): the call ABI at a function entry ----
  // The return trampoline: reached by the probed function's own return (its
  // swapped return address), it builds an lp_regs (pc 0, sp the caller's after
  // the return), calls spec.data's handler -- the call runtime's exit, which
  // returns the real return address -- restores the return-value registers from
  // lp_regs and continues at that address. LP_ENOTSUP without call support.
  virtual int emit_return_trampoline(uint8_t *, uintptr_t, const TrampolineSpec &, ReturnTrampoline *) const {
    return LP_ENOTSUP_CODE;
  }
  virtual size_t return_trampoline_max() const { return 0; }
  // A redirect stub: continues at the address held in the data word at `data`
  // with every argument register, the stack and the return address intact.
  // Entered at a function's entry by tail_jump_bytes or an instruction site's
  // jump; may clobber what is dead there (RISC-V: t1).
  virtual int emit_redirect_stub(uint8_t *, uintptr_t, uintptr_t /*data*/, size_t * /*code_size*/) const {
    return LP_ENOTSUP_CODE;
  }
  // The call ABI itself (return address, stack pointers at entry and return)
  // is not here: the call runtime needs it on every probed call and inlines it
  // from backends/<arch>/call_abi.hpp (LP_CALL_ABI_HEADER).

  // Trap handling (called from the signal handler: async-signal-safe).
  virtual int trap_signal() const = 0;
  // Whether a signal is a trap the CPU raised (not raise()/kill()), and the site
  // address it reports.
  virtual bool trap_site(int signo, const void *siginfo, const void *ucontext, uintptr_t *site) const = 0;
  // Whether the text at `site` currently starts with our trap.
  virtual bool is_trap_at(uintptr_t site) const = 0;
  // The trap at `site` is gone (is_trap_at false): how to continue without
  // relying on the CPU to fetch the new word at once. Refetch everywhere the
  // fetch is coherent by the time the handler runs. AArch64 reads the word: a
  // NOP is stepped over, a B (our jump) is resolved as the trap it replaced;
  // anything else is refetched. An emulator that keeps running a stale BRK
  // (QEMU's multi-threaded TCG: docs/aarch64.md) would otherwise trap at the
  // same pc forever.
  virtual GoneTrap gone_trap(uintptr_t /*site*/, uintptr_t * /*to*/) const { return GoneTrap::Refetch; }
  virtual uintptr_t context_pc(const void *ucontext) const = 0;
  virtual void set_context_pc(void *ucontext, uintptr_t pc) const = 0;
  virtual void context_to_regs(const void *ucontext, uintptr_t site, lp_regs *regs) const = 0;
  virtual void regs_to_context(const lp_regs *regs, void *ucontext) const = 0;

  // Thread pointer of the calling thread (for TLS offsets used by trampolines).
  virtual uintptr_t thread_pointer() const = 0;
  // Makes this core's instruction fetch coherent with its own and synced stores
  // (RISC-V fence.i; AArch64 ISB; nothing on x86). Async-signal-safe.
  virtual void local_fetch_barrier() const = 0;
  // Makes this core's stores to the code at [addr, addr + len) reach every
  // core's instruction fetch once that core is context-synchronised (the
  // sync): AArch64's DC CVAU / DSB ISH / IC IVAU / DSB ISH (aarch64/cache.hpp).
  // Nothing on x86-64 (fetch snoops stores) and RISC-V (fence.i is part of the
  // sync itself). Called after every protocol store and on every trampoline
  // slot the core fills, always before the sync that lets another core run it.
  virtual void publish_code(uintptr_t, size_t) const {}
  // Whether the store of `g` bytes `next` at `addr` (the text holds its current
  // bytes there) must be made while no other thread runs: the "stopped"
  // protocol. true on AArch64 when the word at `addr` or the new word is not
  // in the B2.2.5 concurrent-modification list (aarch64/encoding.hpp): the
  // first word of an instruction site becoming BRK, or BRK becoming it again.
  // The patcher then makes that store inside a hold round
  // (linux_platform::round_hold), which is also the phase's sync. false on
  // x86-64 and RISC-V, whose breakpoint protocol covers every store.
  virtual bool store_needs_stop(uintptr_t /*addr*/, const uint8_t * /*next*/, uint32_t /*g*/) const {
    return false;
  }
  // Whether instruction sites get the stopped protocol (lp_probe_protocol).
  virtual bool insn_sites_need_stop() const { return false; }
};

// The backend of the architecture this library was built for.
const Backend &host_backend();

} // namespace lp
