/* S-mode entry points and the trap vector of the bare-metal stress image.
 *
 * OpenSBI (fw_dynamic, QEMU's -bios default) enters _start in S-mode on one
 * hart, chosen at random, with a0 = hart id and a1 = the device tree. Other harts
 * are started by bm_boot_main() with SBI HSM hart_start at _secondary_start
 * (a0 = hart id, a1 = opaque). Every hart gets its own stack (indexed by hart
 * id) and tp = &bm_harts[hart id]. */
#include "layout.h"

  .section .text.entry, "ax"
  .globl _start
_start:
  csrw sie, zero
  csrci sstatus, 2                /* SIE = 0 */
  li t0, BM_MAX_HARTS
  bgeu a0, t0, bm_bad_hartid
  la t0, bm_trap_vector
  csrw stvec, t0
  /* Clear .bss before anything reads it (only the boot hart runs here, the
   * others are still stopped). */
  la t0, __bss_start
  la t1, __bss_end
1:
  bgeu t0, t1, 2f
  sd zero, 0(t0)
  addi t0, t0, 8
  j 1b
2:
  call bm_setup_hart              /* sp and tp from a0; keeps a0, a1 */
  call bm_boot_main
  j bm_halt

  .globl _secondary_start
_secondary_start:
  csrw sie, zero
  csrci sstatus, 2
  li t0, BM_MAX_HARTS
  bgeu a0, t0, bm_bad_hartid
  la t0, bm_trap_vector
  csrw stvec, t0
  call bm_setup_hart
  call bm_secondary_main
  j bm_halt

/* sp = top of this hart's stack, tp = &bm_harts[a0]. Called before any stack
 * exists, so it uses only t-registers and returns through ra. */
bm_setup_hart:
  la t0, __stacks_start
  li t1, BM_STACK_SIZE
  addi t2, a0, 1
  mul t1, t1, t2
  add sp, t0, t1
  la t0, bm_harts
  li t1, HD_SIZE
  mul t1, t1, a0
  add tp, t0, t1
  ret

bm_bad_hartid:
  /* Cannot even print safely without a stack: power off with a failure code. */
  li t0, 0x100000
  li t1, (9 << 16) | 0x3333
  sw t1, 0(t0)
bm_halt:
  csrci sstatus, 2
1:
  wfi
  j 1b

/* The trap vector (direct mode). All traps come from S-mode on a valid stack,
 * so the frame is pushed on the current one. bm_trap() may change the saved
 * sepc (resume elsewhere) and registers. */
  .text
  .balign 4
  .globl bm_trap_vector
bm_trap_vector:
  addi sp, sp, -TF_SIZE
  sd x1, 1*8(sp)
  sd x3, 3*8(sp)
  sd x4, 4*8(sp)
  sd x5, 5*8(sp)
  sd x6, 6*8(sp)
  sd x7, 7*8(sp)
  sd x8, 8*8(sp)
  sd x9, 9*8(sp)
  sd x10, 10*8(sp)
  sd x11, 11*8(sp)
  sd x12, 12*8(sp)
  sd x13, 13*8(sp)
  sd x14, 14*8(sp)
  sd x15, 15*8(sp)
  sd x16, 16*8(sp)
  sd x17, 17*8(sp)
  sd x18, 18*8(sp)
  sd x19, 19*8(sp)
  sd x20, 20*8(sp)
  sd x21, 21*8(sp)
  sd x22, 22*8(sp)
  sd x23, 23*8(sp)
  sd x24, 24*8(sp)
  sd x25, 25*8(sp)
  sd x26, 26*8(sp)
  sd x27, 27*8(sp)
  sd x28, 28*8(sp)
  sd x29, 29*8(sp)
  sd x30, 30*8(sp)
  sd x31, 31*8(sp)
  addi t0, sp, TF_SIZE
  sd t0, 2*8(sp)
  csrr t0, sepc
  sd t0, TF_SEPC(sp)
  csrr t0, scause
  sd t0, TF_SCAUSE(sp)
  csrr t0, stval
  sd t0, TF_STVAL(sp)
  mv a0, sp
  call bm_trap
  ld t0, TF_SEPC(sp)
  csrw sepc, t0
  ld x1, 1*8(sp)
  ld x3, 3*8(sp)
  ld x4, 4*8(sp)
  ld x5, 5*8(sp)
  ld x6, 6*8(sp)
  ld x7, 7*8(sp)
  ld x8, 8*8(sp)
  ld x9, 9*8(sp)
  ld x10, 10*8(sp)
  ld x11, 11*8(sp)
  ld x12, 12*8(sp)
  ld x13, 13*8(sp)
  ld x14, 14*8(sp)
  ld x15, 15*8(sp)
  ld x16, 16*8(sp)
  ld x17, 17*8(sp)
  ld x18, 18*8(sp)
  ld x19, 19*8(sp)
  ld x20, 20*8(sp)
  ld x21, 21*8(sp)
  ld x22, 22*8(sp)
  ld x23, 23*8(sp)
  ld x24, 24*8(sp)
  ld x25, 25*8(sp)
  ld x26, 26*8(sp)
  ld x27, 27*8(sp)
  ld x28, 28*8(sp)
  ld x29, 29*8(sp)
  ld x30, 30*8(sp)
  ld x31, 31*8(sp)
  addi sp, sp, TF_SIZE
  sret
