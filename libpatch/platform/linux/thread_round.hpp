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

// The "stopped" round: like round_run, but every other thread, once it ran
// `visit`, stays in its signal handler until round_release(). On 0 no other
// thread of the process executes a single instruction outside that handler
// until the release (threads created while the round was being set up are
// caught by a second listing: when one appears the round is released and
// retried, LP_ESYNC after a few tries). The caller must release, and between
// the two calls must not take a lock or allocate (a held thread may hold
// malloc's lock). LP_ESYNC after `timeout_ms` (every thread released again).
int round_hold(RoundVisitor visit, void *arg, unsigned timeout_ms, size_t *threads_out);
// Lets the held threads return from their handlers: each return from the
// signal handler is a context-synchronising event (it re-fetches what the
// holder wrote).
void round_release();

} // namespace lp::linux_platform
