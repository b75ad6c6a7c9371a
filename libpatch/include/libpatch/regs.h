/* The register file a handler sees (lp_regs). Layout is per architecture and
 * part of the ABI: jump-probe trampolines build it on the stack, trap probes
 * fill it from the signal context. Writes to argument registers are applied
 * when the handler returns (both probe kinds). */
#ifndef LIBPATCH_REGS_H
#define LIBPATCH_REGS_H

#include <stdint.h>

#if defined(__x86_64__)
struct lp_regs {
  uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
  uint64_t rdi, rsi, rbp, rbx, rdx, rcx, rax;
  uint64_t rflags;
  uint64_t rip; /* the probed address */
  uint64_t rsp; /* the stack pointer at the probed address */
};
#define LP_REGS_ARCH "x86_64"
#elif defined(__riscv) && __riscv_xlen == 64
struct lp_regs {
  uint64_t x[32];  /* x[0] reads as the probed pc; x1 = ra, x2 = sp, x10..x17 = a0..a7 */
  uint64_t f[32];  /* f0..f31 (raw 64-bit) */
  uint64_t fcsr;
  uint64_t pc;     /* the probed address */
};
#define LP_REGS_ARCH "riscv64"
#elif defined(__aarch64__)
struct lp_regs {
  uint64_t x[31];    /* x0..x30; x30 = lr (the return address at an entry), x0..x7 = arguments */
  uint64_t sp;       /* the stack pointer at the probed address */
  uint64_t pc;       /* the probed address */
  uint64_t pstate;   /* NZCV in bits 31..28 (the flags a handler may read and write) */
  uint64_t fpsr, fpcr;
  uint64_t v[32][2]; /* q0..q31, low doubleword first (d0 = v[0][0]); q0..q7 = FP/SIMD arguments */
};
#define LP_REGS_ARCH "aarch64"
#else
#error "libpatch: unsupported architecture"
#endif

#endif
