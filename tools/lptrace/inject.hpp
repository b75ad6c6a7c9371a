// Loading the agent into a running process that lptrace did not start
// (`lptrace attach`): ptrace-attach ONE thread (the process's main thread) just
// long enough to make it call dlopen(agent, RTLD_NOW), then restore its
// registers and detach. Every other thread keeps running; all patching is then
// done in-process by libpatch, with no thread stopped.
//
// The call: the thread's registers are saved; the library path is written
// below its red zone; rip = the target's dlopen (our libc's offset applied to
// the target's libc base: the same libc.so.6 file, checked), rdi = the path,
// rsi = RTLD_NOW, a zero return address, orig_rax = -1 (no syscall restart
// during the call). dlopen returns to 0: the SIGSEGV stop ends the call, rax is
// the handle. The saved registers go back, so an interrupted system call
// restarts as it would after any signal. Any failure on the way restores and
// detaches: the process is never left stopped or half-injected.
// Caveat (the same as gdb's `call dlopen`): the thread is taken wherever it
// is; if it holds a lock dlopen needs (the loader's, malloc's) the call waits.
// x86-64 only for now.
#pragma once

#include <string>
#include <sys/types.h>

namespace lptrace {

// 0, or 1 with `why` (a sentence the user can act on).
int inject_agent(pid_t pid, const std::string &agent_path, std::string *why);

} // namespace lptrace
