/* Probe trampolines. An enabled site is `jal t0, bm_trampN` (near) or
 * `auipc t0, hi; jalr t0, lo(t0)` (far, > 1 MiB away): t0 holds the return
 * address, which is dead at function entry, so the function's own arguments
 * (a0..a7), ra and sp reach the trampoline untouched. A trampoline saves what
 * it uses (t1, t2), checks that it was entered from its own site (t0 must be the
 * address right after the site's call instruction, published by the patcher in
 * bm_tramp_expect[N]), bumps this hart's hit counter (tp = &bm_harts[hart]) and
 * returns with `jr t0` into the rest of the sled (nops). */
#include "layout.h"

.macro TRAMP idx
  .balign 4
  .globl bm_tramp\idx
bm_tramp\idx:
  addi sp, sp, -16
  sd t1, 0(sp)
  sd t2, 8(sp)
  la t1, bm_tramp_expect
  ld t1, (\idx * 8)(t1)
  bne t0, t1, 9f
  ld t2, (HD_HITS + \idx * 8)(tp)
  addi t2, t2, 1
  sd t2, (HD_HITS + \idx * 8)(tp)
  ld t2, 8(sp)
  ld t1, 0(sp)
  addi sp, sp, 16
  jr t0
9:
  mv a0, t0
  li a1, \idx
  call bm_tramp_fail            /* does not return */
.endm

  /* Near trampolines (site i % 4 != 3): in .text, within jal range (+-1 MiB). */
  .text
  TRAMP 0
  TRAMP 1
  TRAMP 2
  TRAMP 4
  TRAMP 5
  TRAMP 6
  TRAMP 8
  TRAMP 9
  TRAMP 10
  TRAMP 12
  TRAMP 13
  TRAMP 14

  /* Far trampolines (site i % 4 == 3): the linker script puts .bm_far 2 MiB above
   * the image, out of jal range, so these sites get the 8-byte auipc+jalr sequence. */
  .section .bm_far, "ax"
  TRAMP 3
  TRAMP 7
  TRAMP 11
  TRAMP 15

  /* Trampoline of each site, by index. */
  .section .rodata
  .balign 8
  .globl bm_tramps
bm_tramps:
  .quad bm_tramp0, bm_tramp1, bm_tramp2, bm_tramp3, bm_tramp4, bm_tramp5, bm_tramp6, bm_tramp7
  .quad bm_tramp8, bm_tramp9, bm_tramp10, bm_tramp11, bm_tramp12, bm_tramp13, bm_tramp14, bm_tramp15
