#include "call_runtime.hpp"

#include <csignal>
#include <cstring>
#include <new>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "libpatch/regs.h"
#include LP_CALL_ABI_HEADER // backends/<arch>/call_abi.hpp: the hit path, inlined

namespace lp {

constinit std::atomic<CallRuntime *> g_calls{nullptr};

namespace {

// An entry being entered: its handler runs, its return address is not swapped
// yet. Never below any stack pointer, so never reaped, and never any key.
constexpr uintptr_t kReserved = UINTPTR_MAX;

struct ShadowEntry {
  uintptr_t sp;    // the stack pointer at the function's entry: the entry's key
  uintptr_t ret;   // the real return address
  CallProbe *probe;
  uintptr_t slot;  // while detached: where the real return address was written back
  uint32_t walk;   // while detached: the stack walk that detached it (see below)
  uint64_t words[LP_CALL_WORDS];
};

// Stack walks of one thread nest: an exception raised while another one
// unwinds (a destructor that throws and catches internally), a backtrace() in
// a cleanup, a forced unwind whose cleanup catches its own exception. Each
// walk that detaches entries gets a number, pushed on `walks`; the catch (or
// the end of a backtrace) that ends the innermost walk pops it and reattaches
// only the entries that walk detached: the outer walk is still going through
// the others. Deeper than kMaxWalks nested walks: the excess detach what they
// find but never reattach it (those calls lose their exits; nothing breaks).
constexpr uint32_t kMaxWalks = 16;

// One thread's shadow stack. Preallocated whole (mmap, the first time a thread
// enters a call probe: async-signal-safe), kept in a push-only registry and
// reused by a later thread once its owner exits: no malloc, no lock, ever.
// `depth` and `exits` are written only by the owner (relaxed stores, no
// read-modify-write: no cache line is shared on the hit path) and read
// racily by stats.
struct ShadowStack {
  ShadowStack *next = nullptr; // registry link, immutable once published
  std::atomic<uint32_t> in_use{1}; // a word: sub-word CAS needs libatomic on RISC-V
  std::atomic<uint32_t> depth{0};
  std::atomic<uint64_t> exits{0};
  uint32_t nwalks = 0, next_walk = 0;
  uint32_t walks[kMaxWalks] = {};
  ShadowEntry e[LP_CALL_DEPTH];
};

constinit std::atomic<ShadowStack *> g_stacks{nullptr};
constinit __thread ShadowStack *t_shadow __attribute__((tls_model("initial-exec"))) = nullptr;
constinit pthread_once_t g_key_once = PTHREAD_ONCE_INIT;
constinit pthread_key_t g_key = 0;
constinit bool g_key_ok = false;

// Signal handlers of this same thread are the only other code that touches a
// shadow stack; a compiler fence orders our stores against them.
inline void fence() { std::atomic_signal_fence(std::memory_order_seq_cst); }

uint32_t depth_of(const ShadowStack &s) { return s.depth.load(std::memory_order_relaxed); }
void set_depth(ShadowStack &s, uint32_t d) {
  fence();
  s.depth.store(d, std::memory_order_relaxed);
  fence();
}

// Thread exit (pthread key destructor): entries left are calls that never
// returned (the thread exited or was cancelled inside them).
void release_stack(void *p) {
  auto *s = static_cast<ShadowStack *>(p);
  if (const uint32_t d = depth_of(*s); d != 0)
    if (CallRuntime *rt = g_calls.load(std::memory_order_acquire)) rt->unwound.fetch_add(d, std::memory_order_relaxed);
  s->depth.store(0, std::memory_order_relaxed);
  if (t_shadow == s) t_shadow = nullptr;
  s->in_use.store(0, std::memory_order_release);
}

void make_key() { g_key_ok = pthread_key_create(&g_key, release_stack) == 0; }

ShadowStack *acquire_stack() {
  ShadowStack *s = g_stacks.load(std::memory_order_acquire);
  for (; s; s = s->next) {
    uint32_t free_now = 0;
    if (s->in_use.load(std::memory_order_relaxed) == 0 &&
        s->in_use.compare_exchange_strong(free_now, 1, std::memory_order_acq_rel)) {
      s->depth.store(0, std::memory_order_relaxed);
      s->nwalks = 0;
      break;
    }
  }
  if (!s) {
    void *m = mmap(nullptr, sizeof(ShadowStack), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    s = new (m) ShadowStack;
    ShadowStack *head = g_stacks.load(std::memory_order_relaxed);
    do s->next = head;
    while (!g_stacks.compare_exchange_weak(head, s, std::memory_order_release, std::memory_order_relaxed));
  }
  t_shadow = s;
  // glibc stores keys below PTHREAD_KEY_2NDLEVEL_SIZE (32) in the thread
  // descriptor itself: no allocation, safe from a signal handler too. The
  // key is created early (CallRuntime::create), so it is one of those.
  if (g_key_ok) pthread_setspecific(g_key, s);
  return s;
}

uintptr_t load_word(uintptr_t a) { return *reinterpret_cast<const volatile uintptr_t *>(a); }
void store_word(uintptr_t a, uintptr_t v) { *reinterpret_cast<volatile uintptr_t *>(a) = v; }

// Entries at the top whose frames cannot be alive any more, now that a call
// enters with stack pointer `sp`: a frame entered at or below `sp` was left
// without returning (longjmp, siglongjmp, an exception caught above it) -- the
// new call occupies its stack. The one exception is a tail call: it enters
// with the very sp of the probed caller that jumped to it, whose return
// address (the return trampoline, `tail`) it now shares; that entry is alive
// and its exit runs after the tail callee's.
//
// A signal handler running on an alternate stack (SA_ONSTACK) enters calls
// whose sp says nothing about the interrupted thread's frames: there only
// entries on the alternate stack itself are compared. The check costs a
// syscall and runs only when something would be reaped.
void reap(ShadowStack &s, CallRuntime &rt, uintptr_t sp, bool tail) {
  const uint32_t d = depth_of(s);
  auto dead = [&](const ShadowEntry &t) { return t.sp < sp || (t.sp == sp && !tail); };
  uint32_t n = d;
  while (n > 0 && dead(s.e[n - 1])) --n;
  if (n == d) return;
  stack_t st;
  if (sigaltstack(nullptr, &st) == 0 && (st.ss_flags & SS_ONSTACK)) {
    const uintptr_t lo = reinterpret_cast<uintptr_t>(st.ss_sp), hi = lo + st.ss_size;
    n = d;
    while (n > 0 && dead(s.e[n - 1]) && s.e[n - 1].sp >= lo && s.e[n - 1].sp < hi) --n;
    if (n == d) return;
  }
  rt.unwound.fetch_add(d - n, std::memory_order_relaxed);
  set_depth(s, n);
}

[[noreturn]] void no_entry() {
  static const char msg[] =
      "libpatch: a probed function returned into the return trampoline and this thread has no shadow entry "
      "for it (its stack was switched under a probed call: swapcontext, coroutines); aborting\n";
  (void)!write(2, msg, sizeof msg - 1);
  abort();
}

} // namespace

int CallRuntime::create(const Backend &b, TrampolinePool &pool, uintptr_t near, intptr_t tls_depth, bool save_vector,
                        std::unique_ptr<CallRuntime> *out) {
  pthread_once(&g_key_once, make_key);
  std::unique_ptr<CallRuntime> rt(new (std::nothrow) CallRuntime(b));
  if (!rt) return LP_ENOMEM;
  const size_t code_max = b.return_trampoline_max();
  if (code_max == 0) return LP_ENOTSUP;
  const size_t data_off = (code_max + 15) & ~size_t(15);
  if (int rc = pool.allocate(near, 1, &rt->slot, data_off + sizeof(TrampolineData)); rc != 0) return rc;
  TrampolineData d;
  d.handler = reinterpret_cast<void (*)(lp_regs *, void *)>(reinterpret_cast<void (*)()>(&call_exit)); // the trampoline calls it as what it is
  d.user = rt.get();
  std::memcpy(rt->slot.rw + data_off, &d, sizeof d);
  TrampolineSpec spec;
  spec.data = rt->slot.rx + data_off;
  spec.tls_depth = tls_depth;
  spec.save_vector = save_vector;
  ReturnTrampoline rtr;
  if (int rc = b.emit_return_trampoline(rt->slot.rw, rt->slot.rx, spec, &rtr); rc != 0) {
    pool.retire(rt->slot, 0);
    return rc;
  }
  b.publish_code(rt->slot.rx, rtr.code_size);
  rt->ret_tramp = rt->slot.rx + rtr.ret_off;
  rt->run_stub = rtr.run_off || rtr.ret_off ? rt->slot.rx + rtr.run_off : 0;
  rt->skip_stub = rt->slot.rx + rtr.skip_off;
  *out = std::move(rt);
  return 0;
}

CallRuntime::~CallRuntime() = default;

CallProbe *CallRuntime::add_probe(lp_entry_handler entry, lp_exit_handler exit, void *user, uintptr_t resume) {
  auto cp = std::make_unique<CallProbe>();
  cp->entry = entry;
  cp->exit = exit;
  cp->user = user;
  cp->resume = resume;
  cp->rt = this;
  probes_.push_back(std::move(cp));
  return probes_.back().get();
}

uint64_t CallRuntime::pending() {
  uint64_t n = 0;
  for (ShadowStack *s = g_stacks.load(std::memory_order_acquire); s; s = s->next)
    if (s->in_use.load(std::memory_order_acquire) != 0) n += depth_of(*s);
  return n;
}

uint64_t CallRuntime::exits() {
  uint64_t n = 0;
  for (ShadowStack *s = g_stacks.load(std::memory_order_acquire); s; s = s->next)
    n += s->exits.load(std::memory_order_relaxed);
  return n;
}

// ---- the reader side: runs on the probed thread, in a trampoline ----
//
// Everything below is async-signal-safe (a trap probe's entry runs it from the
// trap signal handler; a signal handler may enter probed calls at any point of
// the interrupted thread's own entry or exit). Safety against such a nested
// signal handler, which runs to completion (or longjmps away) before the
// interrupted code resumes:
//  * call_enter reserves its entry (sp = kReserved, then depth + 1) before the
//    entry handler runs: a nested call pushes above it and never reaps it;
//  * the entry is published (sp, then the swap) only after the handler: a
//    nested walk (detach) sees either no swap or a published entry;
//  * call_exit keeps its entry (depth) until the exit handler has returned:
//    a nested call cannot overwrite the words the handler is using.

namespace {

inline uintptr_t enter(lp_regs *regs, CallProbe &cp, bool trap) {
  CallRuntime &rt = *cp.rt;
  // Removal committed: the trampoline may still be entered by a thread that
  // was on its way in; no handler of a removed probe runs (lp_quiesce covers
  // this thread: it is inside a trampoline).
  if (!cp.live.load(std::memory_order_acquire)) return cp.resume;
  const uintptr_t sp = call_abi::entry_sp(regs);
  const uintptr_t ret = call_abi::return_address(regs);
  ShadowStack *s = t_shadow;
  ShadowEntry *e = nullptr;
  uint32_t idx = 0;
  if (cp.exit) {
    if (!s) s = acquire_stack();
    if (s) {
      reap(*s, rt, sp, ret == rt.ret_tramp);
      idx = depth_of(*s);
      if (idx < LP_CALL_DEPTH) {
        e = &s->e[idx];
        e->sp = kReserved;
        e->slot = 0;
        e->walk = 0;
        for (uint64_t &w : e->words) w = 0;
        set_depth(*s, idx + 1);
      }
    }
    if (!e) rt.overflows.fetch_add(1, std::memory_order_relaxed);
  }
  // An instruction-site trampoline can only fall through into the function:
  // a skip is refused there and the call runs (counted, documented), with the
  // return-value register as it was -- on RISC-V it is also the first
  // argument, which the skipping handler set to its return value.
  const uintptr_t ret_before = cp.insn_site ? call_abi::ret_value(regs) : 0;
  int action = cp.entry ? cp.entry(regs, e ? e->words : nullptr, cp.user) : LP_CALL_RUN;
  if (action == LP_CALL_SKIP && cp.insn_site) {
    rt.skip_refused.fetch_add(1, std::memory_order_relaxed);
    call_abi::set_ret_value(regs, ret_before);
    action = LP_CALL_RUN;
  }
  if (action == LP_CALL_SKIP) {
    if (e) set_depth(*s, idx); // nested calls the handler made are balanced: ours is the top
    rt.skipped.fetch_add(1, std::memory_order_relaxed);
    return call_abi::skip_resume(regs, rt.skip_stub);
  }
  if (e) {
    e->ret = ret;
    e->probe = &cp;
    fence();
    e->sp = sp;
    fence();
    // Swapped in place (a trap; or a backend without a run stub, whose
    // trampoline continues at the body). With a run stub the swap is redundant
    // (the stub's `call` writes the same slot) but keeps the slot consistent
    // for a signal handler that walks the stack before it runs.
    call_abi::set_return_address(regs, rt.ret_tramp);
    if (!trap && rt.run_stub) return rt.run_stub;
  }
  return cp.resume;
}

} // namespace

uintptr_t call_enter(lp_regs *regs, void *arg) { return enter(regs, *static_cast<CallProbe *>(arg), false); }
uintptr_t call_enter_trap(lp_regs *regs, void *arg) { return enter(regs, *static_cast<CallProbe *>(arg), true); }
void call_enter_insn(lp_regs *regs, void *arg) { (void)enter(regs, *static_cast<CallProbe *>(arg), true); }

uintptr_t call_exit(lp_regs *regs, void *arg) {
  CallRuntime &rt = *static_cast<CallRuntime *>(arg);
  const uintptr_t key = call_abi::entry_sp_at_return(regs);
  ShadowStack *s = t_shadow;
  const uint32_t d = s ? depth_of(*s) : 0;
  uint32_t i = d;
  // The match is the topmost entry with this key: a stale entry (a frame left
  // by longjmp) can share the key of a live one only below it.
  while (i > 0 && s->e[i - 1].sp != key) --i;
  if (i == 0) no_entry();
  ShadowEntry &e = s->e[i - 1];
  // Entries above ours: frames below the returning one that were left without
  // returning (they cannot be alive: the function that called them returns).
  if (i < d) {
    rt.unwound.fetch_add(d - i, std::memory_order_relaxed);
    set_depth(*s, i);
  }
  const uintptr_t ret = e.ret;
  call_abi::set_pc(regs, ret);
  CallProbe *cp = e.probe;
  if (cp->exit && cp->live.load(std::memory_order_acquire)) {
    cp->exit(regs, e.words, cp->user);
    s->exits.store(s->exits.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  set_depth(*s, i - 1);
  return ret;
}

namespace {
constexpr uint32_t kMaxRecords = 256; // frame records followed per walk (stack space: 2 KiB)
} // namespace

void shadow_detach(uintptr_t sp) {
  ShadowStack *s = t_shadow;
  CallRuntime *rt = g_calls.load(std::memory_order_acquire);
  if (!s || !rt) return;
  uint32_t walk = ++s->next_walk;
  if (walk == 0) walk = ++s->next_walk; // 0 is "no walk"
  if (s->nwalks < kMaxWalks) s->walks[s->nwalks] = walk;
  ++s->nwalks;
  fence();
  // The live frame records (call_abi::kFrameRecordChain): the saved return
  // addresses the unwinder will read, walked from this frame outwards while
  // each record lies above the last and below the outermost entry's sp.
  uintptr_t records[kMaxRecords];
  uint32_t nrec = 0;
  if constexpr (call_abi::kFrameRecordChain) {
    uintptr_t top = 0;
    for (uint32_t i = 0; i < depth_of(*s); ++i)
      if (s->e[i].sp != kReserved && s->e[i].sp > top) top = s->e[i].sp;
    uintptr_t fp = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
    while (nrec < kMaxRecords && fp != 0 && (fp & 7) == 0 && fp < top) {
      records[nrec++] = fp;
      const uintptr_t next = load_word(fp);
      if (next <= fp) break;
      fp = next;
    }
  }
  // From the innermost frame out: each frame's return address lies between
  // the inner frame's entry sp (or `sp`) and its own entry sp.
  uintptr_t lower = sp;
  for (uint32_t i = depth_of(*s); i-- > 0;) {
    ShadowEntry &e = s->e[i];
    if (e.sp == kReserved) continue; // being entered: nothing swapped yet
    if (e.slot == 0 && e.sp >= lower) {
      bool exact = true;
      const uintptr_t hint = call_abi::return_slot_hint(e.sp, &exact);
      uintptr_t found = 0;
      // A frame record of this frame holding the trampoline: exactly the
      // slot, and never a stale copy of the trampoline's address left in
      // the frame's unused words (the signal frame of a trap at a tail
      // callee's entry holds one right below its sp).
      for (uint32_t k = 0; !found && k < nrec; ++k) {
        const uintptr_t slot = call_abi::frame_record_return_slot(records[k]);
        if (slot >= lower && slot < e.sp && load_word(slot) == rt->ret_tramp) found = slot;
      }
      if (found) {
      } else if (hint >= lower && load_word(hint) == rt->ret_tramp) {
        found = hint;
      } else if (!exact) {
        for (uintptr_t a = hint; a >= lower + sizeof(uintptr_t);) {
          a -= sizeof(uintptr_t);
          if (load_word(a) == rt->ret_tramp) {
            found = a;
            break;
          }
        }
      }
      // A tail-call pair: the outer entry (same entry sp) shares the inner
      // one's slot, which the inner one just set back to the trampoline (its
      // `ret`). On RISC-V that slot lies below the shared sp, outside the
      // range searched above.
      if (!found && i + 1 < depth_of(*s) && s->e[i + 1].sp == e.sp && s->e[i + 1].slot != 0 &&
          load_word(s->e[i + 1].slot) == rt->ret_tramp)
        found = s->e[i + 1].slot;
      if (found) {
        store_word(found, e.ret);
        fence();
        e.walk = walk;
        e.slot = found;
      }
    }
    if (e.sp > lower) lower = e.sp;
  }
}

uintptr_t shadow_entry_sp(const lp_regs *regs) { return call_abi::entry_sp(regs); }
uintptr_t shadow_caller_sp(const lp_regs *regs) { return call_abi::caller_sp(regs); }

void shadow_reattach(uintptr_t caller_sp) {
  ShadowStack *s = t_shadow;
  CallRuntime *rt = g_calls.load(std::memory_order_acquire);
  if (!s || !rt || s->nwalks == 0) return; // a catch without a walk we saw: nothing detached
  const uint32_t n_walks = --s->nwalks;
  const uint32_t walk = n_walks < kMaxWalks ? s->walks[n_walks] : 0; // 0: too deep, reattach nothing
  fence();
  // Frames entered at or below the catcher's sp were unwound: their calls end
  // here without an exit.
  const uint32_t d = depth_of(*s);
  uint32_t n = d;
  while (n > 0 && s->e[n - 1].sp <= caller_sp) --n;
  if (n != d) {
    rt->unwound.fetch_add(d - n, std::memory_order_relaxed);
    set_depth(*s, n);
  }
  // From the outermost frame in (a tail-call pair shares one slot: the outer
  // entry writes the trampoline, the inner finds it holding its own `ret`).
  for (uint32_t i = 0; i < n; ++i) {
    ShadowEntry &e = s->e[i];
    if (e.slot == 0 || e.sp == kReserved || e.walk != walk) continue; // attached, or an outer walk's
    if (load_word(e.slot) == e.ret) store_word(e.slot, rt->ret_tramp);
    fence();
    e.slot = 0;
  }
}

} // namespace lp
