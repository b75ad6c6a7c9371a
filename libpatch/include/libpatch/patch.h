/* libpatch: live patching of probes into the text of a running, multi-threaded
 * process, using the breakpoint protocol (trap, sync, tails, sync, heads, sync).
 *
 * The C API is the contract; <libpatch/patch.hpp> wraps it for C++.
 * Every failing call returns a negative LP_E* code; lp_strerror() names it.
 */
#ifndef LIBPATCH_PATCH_H
#define LIBPATCH_PATCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LIBPATCH_VERSION_MAJOR 0
#define LIBPATCH_VERSION_MINOR 5 /* 0.3: lp_stats.kernel_icache_flushes (lp_stats grew: rebuild against this header); 0.4: lp_probe_fallback, lp_stats.text_mprotects (lp_stats grew again); 0.5: lp_probe_protocol, lp_stats.stopped_rounds and stale_traps (lp_stats grew again) */

typedef struct lp_patcher lp_patcher; /* one per process */
typedef struct lp_probe lp_probe;
typedef struct lp_regs lp_regs; /* arch register file, see <libpatch/regs.h> */

/* Called on every hit of an enabled probe, on the thread that hit it.
 * For jump probes it runs in the trampoline (ordinary context); for trap probes
 * it runs inside the trap signal handler. A hit that lands on a site while the
 * commit enabling it is in flight is also delivered from the trap handler,
 * for jump probes too: write handlers to be async-signal-safe. */
typedef void (*lp_handler)(lp_regs *regs, void *user);

enum lp_error {
  LP_OK = 0,
  LP_EINVAL = -1,      /* a NULL or malformed argument */
  LP_ENOMEM = -2,      /* out of memory */
  LP_ENOTEXEC = -3,    /* address is not in an executable mapping */
  LP_EBOUNDARY = -4,   /* address is not an instruction boundary / not a known site */
  LP_ETOOSHORT = -5,   /* the site is too short for a jump */
  LP_ERANGE = -6,      /* no trampoline within reach of the site */
  LP_ERELOC = -7,      /* a displaced instruction cannot be relocated */
  LP_EEXIST = -8,      /* a probe already exists at this address, or overlaps its site */
  LP_ESYNC = -9,       /* synchronising the cores failed */
  LP_EWRITE = -10,     /* writing the text failed */
  LP_ENOSYM = -11,     /* symbol not found */
  LP_EREMOVED = -12,   /* the probe was removed */
  LP_ESTATE = -13,     /* the text does not hold the bytes libpatch expects */
  LP_ESIGNAL = -14,    /* installing the trap signal handler failed */
  LP_EBUSY = -15,      /* another patcher is open, a grace period has not ended, or the
                          removal of the probe at this address is not committed yet */
  LP_ENOTSUP = -16,    /* the requested option is not supported here */
  LP_ETIMEDOUT = -17,  /* a grace period did not end in time */
  LP_ENOPROC = -18     /* /proc/self/maps cannot be read (is /proc mounted?): libpatch finds
                          the process's executable mappings there */
};

/* How bytes reach the text. */
enum lp_writer_kind {
  LP_WRITER_DEFAULT = 0, /* mprotect */
  LP_WRITER_MPROTECT = 1, /* make the batch's pages RWX for the commit, then R-X again */
  LP_WRITER_PROCMEM = 2   /* pwrite() to /proc/self/mem: text never becomes writable */
};

/* How every core is made to see the new text. */
enum lp_sync_kind {
  LP_SYNC_DEFAULT = 0,    /* the best available: membarrier, else flush_icache, else signal */
  LP_SYNC_MEMBARRIER = 1, /* membarrier(PRIVATE_EXPEDITED_SYNC_CORE) (+ riscv_flush_icache on RISC-V) */
  LP_SYNC_FLUSH_ICACHE = 2, /* RISC-V only: riscv_flush_icache(all harts) */
  LP_SYNC_SIGNAL = 3      /* a signal to every thread; its delivery serialises the core */
};

/* Which kind of probe lp_probe_at / lp_probe_symbol create. */
enum lp_probe_policy {
  LP_PROBE_JUMP_OR_TRAP = 0, /* a jump probe where possible, else a trap probe */
  LP_PROBE_JUMP = 1,         /* jump probes only: fail with the reason otherwise */
  LP_PROBE_TRAP = 2          /* trap probes only */
};

/* lp_options.flags */
enum lp_option_flags {
  /* The tracer promises its handlers never touch vector/FP registers (e.g.
   * built with -mgeneral-regs-only): entry jump-probe trampolines then skip
   * saving the vector argument registers, the fastest hit. A handler that
   * breaks the promise corrupts the probed function's FP arguments. */
  LP_FLAG_HANDLER_GPR_ONLY = 1u << 0,
  /* Call probes without the unwinder hooks (see lp_probe_call): libpatch then
   * leaves libgcc/libstdc++ untouched, and a C++ exception, forced unwind or
   * backtrace() through a frame with a pending exit is NOT supported (the
   * unwinder stops at the return trampoline: std::terminate, a short trace). */
  LP_FLAG_NO_UNWIND_HOOKS = 1u << 1
};

typedef struct lp_options {
  int writer; /* enum lp_writer_kind */
  int sync;   /* enum lp_sync_kind */
  int policy; /* enum lp_probe_policy */
  int signal; /* the real-time signal used by the signal sync; 0 = SIGRTMIN+5 */
  unsigned flags; /* enum lp_option_flags */
} lp_options;

/* Counters of a patcher, for tests and benchmarks. */
typedef struct lp_stats {
  uint64_t commits;   /* lp_commit calls that applied a batch */
  uint64_t syncs;     /* core syncs issued */
  uint64_t writes;    /* granule stores issued to the text */
  uint64_t sites;     /* site transitions applied */
  uint64_t traps;     /* traps taken at sites (transition or trap probe) */
  uint64_t chained;   /* foreign traps passed on to the program's own handler */
  uint64_t evacuated; /* threads moved out of a site while it was rewritten */
  /* Icache flushes of every hart running this process that the kernel did for
   * libpatch's text writes: LP_WRITER_PROCMEM on RISC-V costs one per write
   * (each /proc/self/mem write ends in flush_icache_mm: a fence.i on every hart
   * of the process, remote ones by IPI), plus the 2 writes of the probe at
   * lp_patcher_open; on top of the 3 syncs per commit. 0 with LP_WRITER_MPROTECT
   * (plain stores) and on x86-64 (the kernel flushes nothing there).
   * docs/riscv64.md "Writers" says when each writer fits. */
  uint64_t kernel_icache_flushes;
  /* mprotect() calls on the text (LP_WRITER_MPROTECT): 2 per run of contiguous
   * pages a commit writes (RWX before its first store, back after its last
   * sync). Each is a TLB shootdown of every other core running the process. */
  uint64_t text_mprotects;
  /* Hold rounds of the stopped protocol (lp_probe_protocol): each keeps every
   * other thread in a signal handler while the words the architecture does not
   * allow to change under running threads change. 0 on x86-64 and RISC-V. */
  uint64_t stopped_rounds;
  /* Traps resolved after their trap had left the text (the thread had fetched
   * it before the commit replaced it), whose new word the handler ran itself
   * (Backend::gone_trap: AArch64 NOP and B). Rare on hardware; under QEMU's
   * multi-threaded TCG a vCPU may keep running a stale BRK, and these count
   * each such hit. 0 on x86-64 and RISC-V (they refetch). */
  uint64_t stale_traps;
} lp_stats;

void lp_options_init(lp_options *opt);
int lp_patcher_open(const lp_options *opt, lp_patcher **out); /* opt may be NULL */
void lp_patcher_close(lp_patcher *);
int lp_patcher_stats(const lp_patcher *, lp_stats *out);

int lp_probe_at(lp_patcher *, void *addr, lp_handler, void *user, lp_probe **out);
int lp_probe_symbol(lp_patcher *, const char *symbol, lp_handler, void *user, lp_probe **out);
int lp_probe_enable(lp_probe *);  /* staged: takes effect at the next commit */
int lp_probe_disable(lp_probe *); /* staged: takes effect at the next commit */
/* Stages the probe's removal; after the next commit the handle is dead (every
 * other call on it returns LP_EREMOVED) and is freed by lp_patcher_close. */
int lp_probe_remove(lp_probe *);
int lp_probe_is_jump(const lp_probe *); /* 1 jump, 0 trap, <0 error */
/* Why a probe created under LP_PROBE_JUMP_OR_TRAP is a trap probe: the LP_E*
 * code (< 0, see lp_strerror) the jump probe failed with at creation, e.g.
 * LP_ERANGE (no trampoline within the jump's reach and no free register for
 * the far form), LP_ENOTSUP (the instructions it would displace cannot be
 * relocated), LP_EEXIST (they reach into another probe's site). 0 when the
 * probe is the kind its policy asked for (a jump probe, or any probe under
 * LP_PROBE_JUMP / LP_PROBE_TRAP); LP_EINVAL for NULL. */
int lp_probe_fallback(const lp_probe *);
/* How the probe's site changes under running threads:
 *  LP_PROTOCOL_BREAKPOINT  the breakpoint protocol (trap over the head, sync,
 *                          tail, sync, head, sync): every store is one the ISA
 *                          guarantees a concurrently executing thread sees as
 *                          old or new (x86-64 and RISC-V sites, AArch64 entry
 *                          sleds: NOP, BRK and B only);
 *  LP_PROTOCOL_STOPPED     AArch64 instruction sites: the first instruction
 *                          becomes BRK (and back) while every other thread is
 *                          held in a signal handler (a hold round per phase
 *                          that has such a store), because Arm ARM B2.2.5
 *                          guarantees old-or-new only between B, BL, BRK, HVC,
 *                          ISB, NOP, SMC and SVC.
 * LP_EINVAL for NULL. */
#define LP_PROTOCOL_BREAKPOINT 1
#define LP_PROTOCOL_STOPPED 2
int lp_probe_protocol(const lp_probe *);
void *lp_probe_address(const lp_probe *);
/* Bytes of text the probe rewrites, from lp_probe_address (a sled, or the
 * instructions an instruction site displaces); 0 for NULL. No other probe can
 * be placed inside them. */
size_t lp_probe_site_len(const lp_probe *);
uint64_t lp_probe_hits(const lp_probe *); /* hits counted for trap probes and transitions */

int lp_commit(lp_patcher *); /* applies everything staged as one batch: 3 syncs */

/* Waits until no thread is inside a trampoline or a handler called from one
 * (a grace period), so data a removed probe's handler used can be freed. */
int lp_quiesce(lp_patcher *, unsigned timeout_ms);

/* Symbol lookup in the main executable and loaded shared objects. */
int lp_lookup_symbol(const char *symbol, void **addr, size_t *size);

/* 1 when this build can probe any instruction boundary (a decoder for its
 * ISA: LLVM MC in native builds, the built-in RV64GC decoder on riscv64), 0
 * when only entry sleds are sites (lp_probe_at elsewhere is LP_ENOTSUP). */
int lp_supports_instruction_sites(void);

/* ---- Calls: exit probes, return-value override, function replacement ----
 *
 * A call probe sits on a function's entry sled and sees each call of the
 * function twice: its entry handler runs before the first instruction, its
 * exit handler when the call returns, both on the calling thread. The entry
 * trampoline swaps the return address for libpatch's return trampoline and
 * keeps the real one on the thread's shadow stack (preallocated, no malloc,
 * no lock), with the call's words. Staged and committed like every probe;
 * the same handler rules apply (async-signal-safe when a trap delivers them).
 *
 * `call` points at the call's LP_CALL_WORDS words, zero at entry, shared by
 * the entry and exit handler of that one call (e.g. a timestamp). It is NULL
 * in the entry handler of a probe without an exit handler, and when the
 * thread's shadow stack is full (recursion deeper than LP_CALL_DEPTH probed
 * calls): that call's exit handler will not run (lp_call_stats.overflows
 * counts it).
 *
 * An entry handler returns LP_CALL_RUN, or LP_CALL_SKIP to return to the
 * caller at once without running the function, with the value set by
 * lp_regs_set_ret (fault injection); a skipped call has no exit. An exit
 * handler reads the returned value with lp_regs_ret and may change it with
 * lp_regs_set_ret; its lp_regs_pc is the return address in the caller and
 * lp_regs_sp the caller's stack pointer after the return.
 *
 * Calls that never return normally: a longjmp/siglongjmp past probed frames,
 * a C++ exception unwinding them, a thread cancelled or exiting inside them.
 * Their exit handlers are NOT called (lp_call_stats.unwound counts them);
 * stale shadow entries are reaped by stack pointer at the thread's next probed
 * entry or exit. Exceptions, forced unwinds and backtrace() see the real return
 * addresses (libpatch restores them while the unwinder runs: see docs/calls.md).
 * After a call probe is disabled, calls already inside the function still get
 * their exit handler; after its removal is committed they return correctly
 * but no handler of the probe runs again (lp_quiesce then ends the last one).
 * A call probe sits on a function's entry sled or, where the function has
 * none, on its first instruction (an instruction site, relocated like any:
 * lp_supports_instruction_sites); anywhere else lp_probe_call is LP_ENOTSUP.
 * At an instruction site LP_CALL_SKIP is not possible (the call runs;
 * lp_call_stats.skip_refused counts it). Jump probes, or trap probes where no
 * jump fits. */
#define LP_CALL_WORDS 4
#define LP_CALL_DEPTH 256

enum lp_call_action {
  LP_CALL_RUN = 0, /* run the function (and its exit handler when it returns) */
  LP_CALL_SKIP = 1 /* return to the caller now with lp_regs_set_ret's value */
};

typedef int (*lp_entry_handler)(lp_regs *regs, uint64_t *call, void *user);
typedef void (*lp_exit_handler)(lp_regs *regs, uint64_t *call, void *user);

/* Either handler may be NULL, not both. */
int lp_probe_call(lp_patcher *, void *fn, lp_entry_handler on_entry, lp_exit_handler on_exit, void *user,
                  lp_probe **out);
int lp_probe_call_symbol(lp_patcher *, const char *symbol, lp_entry_handler on_entry, lp_exit_handler on_exit,
                         void *user, lp_probe **out);

/* Live function replacement: once enabled and committed, every call of `fn`
 * runs `replacement` (same signature) instead; threads already inside `fn`
 * finish in it. A probe handle like any other: staged enable/disable/remove,
 * batched with probes in one commit. `fn` may be an entry sled or any
 * function entry an instruction site can take (its prologue is relocated). */
int lp_replace(lp_patcher *, void *fn, void *replacement, lp_probe **out);
int lp_replace_symbol(lp_patcher *, const char *symbol, void *replacement, lp_probe **out);
/* For a replacement: an address that runs the original function (its sled or
 * relocated prologue, then the rest of it), callable from the replacement.
 * NULL for other probes. */
void *lp_probe_original(const lp_probe *);

typedef struct lp_call_stats {
  uint64_t exits;     /* exit handlers called */
  uint64_t overflows; /* calls whose exit was not probed: the shadow stack was full */
  uint64_t unwound;   /* pending calls that ended without returning (longjmp, exception, thread exit) */
  uint64_t skipped;   /* calls an entry handler skipped (LP_CALL_SKIP) */
  uint64_t skip_refused; /* LP_CALL_SKIP at an instruction-site call probe: the call ran */
  uint64_t pending;   /* shadow entries of every thread right now */
  uint32_t unwind_hooks; /* unwinder entry points libpatch hooks to restore return addresses */
  uint32_t unwind_missing; /* of those this process has, the ones that could not be hooked */
} lp_call_stats;
int lp_patcher_call_stats(const lp_patcher *, lp_call_stats *out);

const char *lp_strerror(int err);
const char *lp_arch(void); /* "x86_64", "riscv64", ... */

/* Register accessors: portable views of the arch register file. */
uintptr_t lp_regs_pc(const lp_regs *);
uintptr_t lp_regs_sp(const lp_regs *);
uintptr_t lp_regs_arg(const lp_regs *, unsigned i); /* i-th integer argument (ABI order) */
void lp_regs_set_arg(lp_regs *, unsigned i, uintptr_t value);
uintptr_t lp_regs_ret(const lp_regs *); /* the integer return value register (rax, a0) */
/* At a function's entry (an entry-sled probe, a call probe's entry handler):
 * the address the function will return to (x86-64: the word at sp; RISC-V:
 * ra). Meaningless elsewhere. */
uintptr_t lp_regs_return_address(const lp_regs *);
void lp_regs_set_ret(lp_regs *, uintptr_t value);

#ifdef __cplusplus
}
#endif
#endif
