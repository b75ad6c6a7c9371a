// The trap signal (SIGTRAP for int3, SIGILL for unimp): libpatch's handler, and
// chaining of every trap that is not ours to whatever the program had installed,
// so a real int3/ud2/unimp or raise() behaves exactly as without libpatch.
#pragma once

#include <csignal>

namespace lp::linux_platform {

// Returns true when the trap was one of libpatch's and has been resolved.
using TrapDispatch = bool (*)(int signo, siginfo_t *si, void *uc);

int trap_signal_install(int signo, TrapDispatch dispatch);
void trap_signal_uninstall();
// If the program replaced our handler since, adopt its handler as the one we
// chain to and put ours back (called at every commit). Returns 0 or LP_ESIGNAL.
int trap_signal_reassert();
// Number of foreign traps passed on.
unsigned long trap_signal_chained_count();

} // namespace lp::linux_platform
