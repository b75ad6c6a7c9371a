// Interrupting every other thread of the process with a signal and waiting for
// each to run a visitor in its handler. This is the portable core sync (signal
// delivery and return are context-synchronising on every arch Linux supports;
// the visitor adds fence.i where the ISA needs it), and the only way user space
// can see where a thread is parked: evacuation out of a site being rewritten and
// the trampoline grace period both ride on it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lp::linux_platform {

// Runs in the interrupted thread's signal handler: async-signal-safe only.
using RoundVisitor = void (*)(void *arg, void *ucontext);

// Installs the handler for `signo` (a real-time signal). 0 or LP_ESIGNAL.
int round_init(int signo);
void round_fini();

// Interrupts all other threads; returns 0 once every one of them ran `visit`
// (or exited), LP_ESYNC after `timeout_ms` (a thread blocking the signal forever).
// `threads_out` receives the number of threads visited. Serialised internally.
int round_run(RoundVisitor visit, void *arg, unsigned timeout_ms, size_t *threads_out);

} // namespace lp::linux_platform
