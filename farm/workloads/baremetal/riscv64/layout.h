/* Layout shared by the assembly (entry.S, trampolines.S) and the C++ code of the
 * bare-metal image. Plain #defines so the .S files can use them. */
#ifndef LP_BM_LAYOUT_H
#define LP_BM_LAYOUT_H

#define BM_MAX_HARTS 16          /* hart ids 0..15 (qemu virt: up to 8 per socket) */
#define BM_STACK_SIZE 16384      /* per hart; the stack of hart h ends at __stacks_start + (h+1)*size */
#define BM_MAX_SITES 16

/* struct HartData (main.cpp static_asserts these offsets). tp points at it. */
#define HD_HARTID 0
#define HD_HITS 8                /* uint64_t hits[BM_MAX_SITES]: bumped by the trampolines */
#define HD_SIZE 512

/* Trap frame built by bm_trap_vector: x0..x31 (x0 slot unused, x2 = interrupted sp),
 * then sepc, scause, stval. */
#define TF_SEPC (32 * 8)
#define TF_SCAUSE (33 * 8)
#define TF_STVAL (34 * 8)
#define TF_SIZE (36 * 8)         /* multiple of 16 */

#endif
