// Subjects of the call-probe tests (call_test.cpp): patchable functions that
// return, nest, longjmp, throw, recurse, block, fork and tail-call.
#pragma once

#include <atomic>
#include <csetjmp>
#include <setjmp.h>
#include <exception>
#include <sys/types.h>

#include "libpatch/patchable.h"

// Everything the tests probe: a sled, out of line, and opaque to the
// interprocedural passes (no constprop clone or IPA-SRA copy a caller could
// call instead of the probed symbol).
#define LPC_FN LP_PATCHABLE __attribute__((noipa))

extern "C" {
// Plain values.
LPC_FN int lpc_add(int a, int b);
LPC_FN int lpc_twice(int x);
LPC_FN long lpc_six(long a, long b, long c, long d, long e, long f);
extern std::atomic<int> lpc_body_runs; // lpc_counted's body increments it
LPC_FN int lpc_counted(int x);          // ++lpc_body_runs, x + 1

// Chains (a calls b calls c, each adds 1) whose innermost frame leaves by
// lpc_chain_mode: 0 return, 1 longjmp(lpc_jb), 2 siglongjmp(lpc_sjb),
// 3 raise(SIGUSR2) whose handler (the test's) siglongjmps.
extern std::jmp_buf lpc_jb;
extern sigjmp_buf lpc_sjb;
extern volatile int lpc_chain_mode;
LPC_FN int lpc_chain_a(int x);
LPC_FN int lpc_chain_b(int x);
LPC_FN int lpc_chain_c(int x);

// Exceptions: lpc_ex_c throws std::runtime_error("lpc_ex_c: <x>") for x < 0.
LPC_FN int lpc_ex_a(int x);   // lpc_ex_b(x) + 1
LPC_FN int lpc_ex_b(int x);   // lpc_ex_c(x) + 1
LPC_FN int lpc_ex_c(int x);   // x, or throws
LPC_FN int lpc_ex_top(int x); // lpc_ex_mid(x) + 1
LPC_FN int lpc_ex_mid(int x); // lpc_ex_b(x) + 1, or -100 when it catches (message in lpc_caught)
extern char lpc_caught[128];
extern std::atomic<int> lpc_rethrows;
LPC_FN int lpc_ex_rethrow_top(int x); // lpc_ex_rethrow_mid(x) + 1
LPC_FN int lpc_ex_rethrow_mid(int x); // catch (...) { ++lpc_rethrows; throw; } around lpc_ex_b(x) + 1
extern std::exception_ptr lpc_stored;
LPC_FN int lpc_ex_ptr_a(int x); // lpc_ex_ptr_b(x) + 1
LPC_FN int lpc_ex_ptr_b(int x); // std::rethrow_exception(lpc_stored) when set, else x
// A frame whose destructor, run by the unwind, calls a probed function and
// throws and catches an exception of its own.
extern std::atomic<int> lpc_cleanups;
LPC_FN int lpc_ex_guard_top(int x);   // lpc_ex_guard_mid(x) + 1
LPC_FN int lpc_ex_guard_mid(int x);   // { Cleanup c; return lpc_ex_b(x) + 1; }
extern volatile int lpc_cleanup_nested_throw; // Cleanup's destructor also throws and catches inside itself

// Recursion: n + 1 nested probed calls, returns n.
LPC_FN int lpc_recurse(int n);

// Tail calls (call_tail.S): lpt_tail_caller(x) jumps to lpt_tail_callee(x + 1).
int lpt_tail_caller(int x);
LPC_FN int lpt_tail_callee(int x); // x * 3; throws for x < 0
// The first instruction after lpt_tail_caller's sled: a boundary inside a function.
#if defined(__x86_64__)
#define LPT_TAIL_CALLER_SLED 5
#elif defined(__riscv)
#define LPT_TAIL_CALLER_SLED 8
#elif defined(__aarch64__)
#define LPT_TAIL_CALLER_SLED 8
#endif

// Spinning: lpc_spin(x) sets lpc_inside (to x), waits for lpc_release, returns
// x * 2; it gives up after ~10 s of wall time (returns -999) so a broken test
// fails instead of hanging.
extern std::atomic<int> lpc_inside;
extern std::atomic<int> lpc_release;
LPC_FN int lpc_spin(int x);
LPC_FN int lpc_spin_outer(int x); // lpc_spin(x) + 1

// Thread ends inside probed frames. lpc_end_outer(mode) holds a Guard and calls
// lpc_end_inner(mode), which holds another and: mode 0 pthread_exit, mode 1
// sets lpc_inside and blocks in pause() (a cancellation point) for good,
// mode 2 pthread_exit with one more object whose destructor throws and
// catches inside itself (adds 100).
extern std::atomic<int> lpc_guards_destroyed;
LPC_FN int lpc_end_outer(int mode);
LPC_FN int lpc_end_inner(int mode);

// fork() inside a probed function: x + 100 in the child, x + 200 in the parent.
LPC_FN int lpc_fork(int x, pid_t *pid);

// backtrace() under probed frames: lpc_bt_a -> b -> c, which captures into buf.
LPC_FN int lpc_bt_a(void **buf, int max);
LPC_FN int lpc_bt_b(void **buf, int max);
LPC_FN int lpc_bt_c(void **buf, int max);

#if defined(__x86_64__)
LPC_FN int lpc_cet(int x); // x + 1, entry: endbr64, then the sled (call_functions_cet.cpp)
#endif

// Replacement subjects.
LPC_FN int lpc_repl(int x); // x * 2
__attribute__((noipa)) int lpc_plain(int x); // no sled: a loop, then ^ 0x55
}
