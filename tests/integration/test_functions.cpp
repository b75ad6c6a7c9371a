#include "test_functions.hpp"

#include <ucontext.h>

extern "C" {
LP_PATCHABLE int lpt_add(int a, int b) {
  asm volatile("" ::: "memory");
  return a + b;
}
LP_PATCHABLE long lpt_six(long a, long b, long c, long d, long e, long f) {
  asm volatile("" ::: "memory");
  return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f;
}
LP_PATCHABLE int lpt_other(int x) {
  asm volatile("" ::: "memory");
  return x * 7;
}
LP_PATCHABLE int lpt_third(int x) {
  asm volatile("" ::: "memory");
  return x - 3;
}
__attribute__((noinline)) int lpt_plain(int x) {
  asm volatile("" ::: "memory");
  return x ^ 0x55;
}
int lpt_data = 42;
}

void lpt_skip_real_trap(void *uc) {
#if defined(__riscv)
  static_cast<ucontext_t *>(uc)->uc_mcontext.__gregs[REG_PC] += 4;
#elif defined(__aarch64__)
  static_cast<ucontext_t *>(uc)->uc_mcontext.pc += 4; // BRK reports its own address
#else
  (void)uc; // int3 already reports the pc after itself
#endif
}

#if defined(__x86_64__)
asm(".text\n.globl lpt_long_insn\n.type lpt_long_insn,@function\nlpt_long_insn:\n"
    "  movabsq $0x1122334455667788, %rax\n  ret\n.size lpt_long_insn, .-lpt_long_insn\n");
#elif defined(__riscv)
asm(".text\n.globl lpt_long_insn\n.type lpt_long_insn,@function\n.option push\n.option norvc\nlpt_long_insn:\n"
    "  lui a0, 0x12345\n  ret\n.option pop\n.size lpt_long_insn, .-lpt_long_insn\n");
#elif defined(__aarch64__)
asm(".text\n.globl lpt_long_insn\n.type lpt_long_insn,@function\n.p2align 2\nlpt_long_insn:\n"
    "  movz x0, #0x1234\n  ret\n.size lpt_long_insn, .-lpt_long_insn\n");
#endif
