/* LP_PATCHABLE: marks a function with the entry nop sled libpatch probes
 * (-fpatchable-function-entry for one function). Compile whole programs with
 * -fpatchable-function-entry=5 (x86-64), =4 (rv64gc: 4 x c.nop) or =2 (rv64g)
 * instead, to make every function probeable. */
#ifndef LIBPATCH_PATCHABLE_H
#define LIBPATCH_PATCHABLE_H

#if defined(__x86_64__)
#define LP_PATCHABLE_NOPS 5
#elif defined(__riscv) && defined(__riscv_compressed)
#define LP_PATCHABLE_NOPS 4
#elif defined(__riscv)
#define LP_PATCHABLE_NOPS 2
#elif defined(__aarch64__)
#define LP_PATCHABLE_NOPS 2
#endif

#define LP_PATCHABLE __attribute__((noinline, patchable_function_entry(LP_PATCHABLE_NOPS)))

#endif
