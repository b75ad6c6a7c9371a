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

/* A probed or replaced function changes behaviour at run time, which the
 * compiler must not see through: GCC's noipa keeps callers from inlining it,
 * cloning it for constant arguments or treating it as pure/const (two calls
 * with the same arguments folded into one would hide a hit, or keep a
 * replaced function's old result). Clang has no noipa: noinline. */
#if defined(__clang__)
#define LP_PATCHABLE_NOIPA noinline
#else
#define LP_PATCHABLE_NOIPA noipa
#endif
#define LP_PATCHABLE __attribute__((LP_PATCHABLE_NOIPA, patchable_function_entry(LP_PATCHABLE_NOPS)))

#endif
