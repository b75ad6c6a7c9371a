// Patchable functions and arch details shared by the live tests.
#pragma once

#include <csignal>
#include <cstdint>

#include "libpatch/patchable.h"

extern "C" {
LP_PATCHABLE int lpt_add(int a, int b);
LP_PATCHABLE long lpt_six(long a, long b, long c, long d, long e, long f);
LP_PATCHABLE int lpt_other(int x);
LP_PATCHABLE int lpt_third(int x);
__attribute__((noinline)) int lpt_plain(int x); // no sled
extern int lpt_data;
void lpt_long_insn(void); // asm: a 4+ byte first instruction, so +2 is inside it
}

#if defined(__x86_64__)
#define LPT_TRAP_SIGNAL SIGTRAP
// A real breakpoint in the program: resumes after itself when handled.
#define LPT_REAL_TRAP() asm volatile("int3")
#elif defined(__riscv)
#define LPT_TRAP_SIGNAL SIGILL
// csrrw x0, cycle, x0: a 4-byte illegal instruction whatever the ISA flavour.
#define LPT_REAL_TRAP() asm volatile(".4byte 0xc0001073")
#elif defined(__aarch64__)
#define LPT_TRAP_SIGNAL SIGTRAP
// GCC's __builtin_trap (brk #0x3e8): SIGTRAP, TRAP_BRKPT like ours, another immediate.
#define LPT_REAL_TRAP() asm volatile("brk #0x3e8")
#endif

// Moves a context past the real trap (the program's own handler does this).
void lpt_skip_real_trap(void *ucontext);
