// The unwinder hooks of call probes.
//
// A call probe swaps its function's return address for the return trampoline,
// which has no unwind information an unwinder could follow: a C++ exception, a
// forced unwind (pthread_exit, pthread_cancel) or backtrace() walking through
// such a frame would stop there (std::terminate, a truncated backtrace). So
// before any of them walks the stack, the thread's swapped return addresses are
// written back (shadow_detach), and afterwards swapped again for the frames
// still alive (shadow_reattach) -- the approach of restoring at throw time
// rather than giving the trampoline unwind info that would have to read the
// per-thread shadow stack (DWARF CFI cannot).
//
// Hooks, installed with the first call probe, committed with it, removed with
// the patcher; each is libpatch's own probe (internal), placed on the
// unwinder's entry points in whatever object defines them (libgcc_s and
// libstdc++, or the executable when they are linked statically):
//   _Unwind_RaiseException, _Unwind_Resume_or_Rethrow, _Unwind_ForcedUnwind:
//       entry probe: detach (phase 1 and 2 then walk real addresses);
//   __cxa_begin_catch: entry probe: the frames above the catcher are alive:
//       reattach them, drop the entries of the unwound ones;
//   _Unwind_Backtrace: replaced by backtrace_hook: detach, the original walk
//       (minus the hook's own frame), reattach.
// A process without one of them needs no hook for it; one that cannot be
// hooked is counted (lp_call_stats.unwind_missing) and documented.
#include <atomic>

#include "call_runtime.hpp"
#include "libpatch/patch.h"
#include "patcher.hpp"
#include "platform/linux/symbols.hpp"

namespace lp {
namespace {

void on_unwind_start(lp_regs *regs, void *) { shadow_detach(shadow_entry_sp(regs)); }

void on_begin_catch(lp_regs *regs, void *) { shadow_reattach(shadow_caller_sp(regs)); }

using Trace = int (*)(void *ctx, void *arg);
using Backtrace = int (*)(Trace, void *);
constinit std::atomic<Backtrace> g_backtrace_original{nullptr};

struct TraceWrap {
  Trace fn;
  void *arg;
  bool first;
};

// The walk starts at the caller of _Unwind_Backtrace: that is backtrace_hook,
// a frame the program would not have seen. Skip it.
int trace_skip_first(void *ctx, void *a) {
  auto *w = static_cast<TraceWrap *>(a);
  if (w->first) {
    w->first = false;
    return 0; // _URC_NO_REASON: go on
  }
  return w->fn(ctx, w->arg);
}

__attribute__((noinline)) int backtrace_hook(Trace fn, void *arg) {
  const Backtrace orig = g_backtrace_original.load(std::memory_order_acquire);
  shadow_detach(reinterpret_cast<uintptr_t>(__builtin_frame_address(0)));
  TraceWrap w{fn, arg, true};
  const int r = orig(trace_skip_first, &w);
  shadow_reattach(0); // nothing was unwound
  return r;
}

struct EntryHook {
  const char *symbol;
  lp_handler handler;
};

constexpr EntryHook kEntryHooks[] = {
    {"_Unwind_RaiseException", on_unwind_start},
    {"_Unwind_Resume_or_Rethrow", on_unwind_start},
    {"_Unwind_ForcedUnwind", on_unwind_start},
    {"__cxa_begin_catch", on_begin_catch},
};

void stage_enabled(lp_patcher &p, lp_probe *pr) {
  pr->internal = true;
  pr->staged = ProbeState::Enabled;
  p.dirty.push_back(pr);
}

} // namespace

void install_unwind_hooks(lp_patcher &p) {
  // The hooks are libpatch's own: a trap where no jump fits, whatever the
  // tracer's policy (a missing hook would break exceptions, not just cost).
  struct PolicyScope {
    lp_patcher &p;
    int saved;
    ~PolicyScope() { p.opt.policy = saved; }
  } scope{p, p.opt.policy};
  if (p.opt.policy == LP_PROBE_JUMP) p.opt.policy = LP_PROBE_JUMP_OR_TRAP;
  for (const EntryHook &h : kEntryHooks) {
    linux_platform::Symbol s;
    if (linux_platform::lookup_symbol(h.symbol, &s) != 0) continue; // not in this process: nothing to hook
    ++p.unwind_hooks;
    lp_probe *pr = nullptr;
    if (p.create_probe(reinterpret_cast<void *>(s.addr), h.handler, nullptr, &pr) != 0) {
      ++p.unwind_missing;
      continue;
    }
    stage_enabled(p, pr);
  }
  linux_platform::Symbol s;
  if (linux_platform::lookup_symbol("_Unwind_Backtrace", &s) == 0) {
    ++p.unwind_hooks;
    lp_probe *pr = nullptr;
    if (p.create_replacement(reinterpret_cast<void *>(s.addr), reinterpret_cast<void *>(&backtrace_hook), &pr,
                             true) != 0) {
      ++p.unwind_missing;
    } else {
      g_backtrace_original.store(reinterpret_cast<Backtrace>(pr->original_fn), std::memory_order_release);
      stage_enabled(p, pr);
    }
  }
}

} // namespace lp
