// Calls: what exit probes, skipped calls and the unwinder hooks share.
//
// A call probe's entry trampoline calls call_enter() instead of a handler. It
// pushes {entry sp, real return address, probe, the call's words} on the
// calling thread's shadow stack and swaps the function's return address for
// the return trampoline, which calls call_exit() when the function returns:
// the entry whose sp matches is popped, the exit handler runs, and the
// trampoline continues at the real return address.
//
// Invariants (what breaks without them is said where they are kept, in
// call_runtime.cpp):
//  * a shadow stack is touched only by its own thread (and by signal handlers
//    interrupting it, which nest: every push they do is popped before they
//    return to the interrupted code, or reaped as stale if they longjmp out);
//  * an entry is reserved (depth bumped, sp = kReserved) before its handler
//    runs and published (sp set) only after, so a nested signal handler never
//    reuses or reaps a slot in use;
//  * a return address is swapped only when the entry holding the real one is
//    published, and the real one is written back (detach) before anything
//    walks the stack: an unwinder, backtrace(), a forced unwind;
//  * the return trampoline, the runtime and every CallProbe outlive every
//    pending return: the patcher keeps (leaks) them at close while any
//    thread's shadow stack is not empty.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "backend.hpp"
#include "libpatch/patch.h"
#include "trampoline_pool.hpp"

namespace lp {

class CallRuntime;

struct CallProbe {
  lp_entry_handler entry = nullptr;
  lp_exit_handler exit = nullptr;
  void *user = nullptr;
  uintptr_t resume = 0;          // the sled's end (instruction site: its relocated prologue)
  bool insn_site = false;        // at an uninstrumented entry: no skipping, swap in place
  std::atomic<bool> live{true};  // false once its removal is committed
  CallRuntime *rt = nullptr;
};

class CallRuntime {
public:
  // One per patcher, created with the first call probe: emits the return
  // trampoline into a slot of `pool` (reached by `ret`, so anywhere).
  static int create(const Backend &b, TrampolinePool &pool, uintptr_t near, intptr_t tls_depth, bool save_vector,
                    std::unique_ptr<CallRuntime> *out);
  ~CallRuntime();
  CallProbe *add_probe(lp_entry_handler entry, lp_exit_handler exit, void *user, uintptr_t resume);

  const Backend &b;
  uintptr_t ret_tramp = 0; // where swapped return addresses point
  uintptr_t run_stub = 0;  // x86-64: `call`s the body of a call with a shadow entry (0: none)
  uintptr_t skip_stub = 0; // x86-64: a `ret` to the caller
  Slot slot;

  std::atomic<uint64_t> overflows{0}, unwound{0}, skipped{0}, skip_refused{0};

  // Sums over every thread's shadow stack (racy snapshots, for stats and close).
  static uint64_t pending();
  static uint64_t exits();

private:
  explicit CallRuntime(const Backend &be) : b(be) {}
  std::vector<std::unique_ptr<CallProbe>> probes_;
};

// The process's runtime (the one patcher's), for the unwinder hooks.
extern std::atomic<CallRuntime *> g_calls;

// Handler words of the trampolines (called from generated code), and of the
// trap path (the same with the return address swapped in place, continuing at
// the body: the trap handler sets no scratch register for a run stub).
uintptr_t call_enter(lp_regs *regs, void *call_probe);
uintptr_t call_enter_trap(lp_regs *regs, void *call_probe);
// The handler of an instruction-site call probe's trampoline (which can only
// fall through into the relocated prologue): swaps in place, never skips.
void call_enter_insn(lp_regs *regs, void *call_probe);
uintptr_t call_exit(lp_regs *regs, void *runtime);

// This thread, about to walk or unwind its stack: write the real return address
// back into every frame whose return the runtime swapped. `sp`: the current
// stack pointer (the lowest frame to search).
void shadow_detach(uintptr_t sp);
// This thread, after the walk: swap the return addresses back for frames still
// alive, those entered with a stack pointer above `caller_sp`; detached entries
// at or below it belong to unwound frames and are dropped (not called).
void shadow_reattach(uintptr_t caller_sp);
// The call ABI for the hooks (entry probes on the unwinder): the sp at the
// function's entry, and the caller's sp once it returns.
uintptr_t shadow_entry_sp(const lp_regs *regs);
uintptr_t shadow_caller_sp(const lp_regs *regs);

} // namespace lp
