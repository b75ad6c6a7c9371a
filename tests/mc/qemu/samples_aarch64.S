// Sample functions for the aarch64 relocation differential (gen_aarch64.cpp on
// the host relocates every word of them, runner_aarch64.c runs them under
// qemu-aarch64). Linked at 0x10000000 and dumped to a raw blob by
// tests/mc/CMakeLists.txt; the blob starts with its own table:
//   magic "6APL", count, then per entry: offset, size, kind
//   kind 0: a function the runner calls as long f(long)   (relocated)
//   kind 1: a helper the functions call                    (relocated)
//   kind 2: data the runner rewrites before every round    (not code)
// Every pc-relative form the relocator rewrites is here (adr, adrp near and
// beyond +-4 GiB of the copy, ldr w/x/sw/s/d/q and prfm literal, b, bl, blr,
// b.cond, cbz, cbnz, tbz, tbnz, br, ret), with the registers the rewrites
// borrow (x16, sp, the vector's upper half) checked by the results; and the
// refusals (an exclusive retry loop, blr x30, udf).
        .text
        .globl _start
_start:
        .word 0x4c504136
        .word (table_end - table) / 12
table:
        .word s_adr - _start, s_adrp - s_adr, 0
        .word s_adrp - _start, s_adrp_far - s_adrp, 0
        .word s_adrp_far - _start, s_ldr - s_adrp_far, 0
        .word s_ldr - _start, s_ldr_fp - s_ldr, 0
        .word s_ldr_fp - _start, s_ldr_q - s_ldr_fp, 0
        .word s_ldr_q - _start, s_prfm - s_ldr_q, 0
        .word s_prfm - _start, s_bcond - s_prfm, 0
        .word s_bcond - _start, s_cb - s_bcond, 0
        .word s_cb - _start, s_loop - s_cb, 0
        .word s_loop - _start, s_call - s_loop, 0
        .word s_call - _start, h_add3 - s_call, 0
        .word h_add3 - _start, h_twice - h_add3, 1
        .word h_twice - _start, s_b - h_twice, 1
        .word s_b - _start, s_br - s_b, 0
        .word s_br - _start, s_excl - s_br, 0
        .word s_excl - _start, s_blr30 - s_excl, 0
        .word s_blr30 - _start, code_end - s_blr30, 0
        .word d_words - _start, d_end - d_words, 2
table_end:

        .balign 16
s_adr:                              // adr, and a load through it
        adr x1, d_words
        ldr x1, [x1, #8]
        add x0, x0, x1
        ret
s_adrp:                             // adrp + add :lo12:
        adrp x1, d_words
        add x1, x1, :lo12:d_words
        ldr x1, [x1]
        eor x0, x0, x1
        ret
s_adrp_far:                         // values only: from a copy 64 MiB away, beyond +-4 GiB (movz/movk)
        mov x2, x0
        adrp x0, _start + 0xfff00000
        adrp x1, _start - 0xfff00000
        add x0, x0, x1
        add x0, x0, x2
        ret
s_ldr:                              // ldr x / w / sw literal (the data changes every round)
        ldr x1, d_words
        ldr w2, d_words + 8
        ldrsw x3, d_words + 12
        add x0, x0, x1
        add x0, x0, x2
        add x0, x0, x3
        ret
s_ldr_fp:                           // ldr s / d literal: x16 survives, the upper halves become 0
        mov x16, x0
        dup v1.2d, x0
        dup v2.2d, x0
        ldr s1, d_words + 4
        ldr d2, d_words + 16
        mov x3, v1.d[1]
        mov x4, v2.d[1]
        fmov w5, s1
        fmov x6, d2
        add x0, x16, x3
        add x0, x0, x4
        eor x0, x0, x5
        add x0, x0, x6
        ret
s_ldr_q:                            // ldr q literal: x16 and sp survive the spill
        mov x16, x0
        mov x7, sp
        ldr q3, d_words + 16
        mov x4, sp
        sub x7, x7, x4
        mov x5, v3.d[0]
        mov x6, v3.d[1]
        add x0, x16, x7
        eor x0, x0, x5
        add x0, x0, x6
        ret
s_prfm:
        prfm pldl1keep, d_words
        add x0, x0, #3
        ret
s_bcond:
        cmp x0, #5
        b.lt 1f
        add x0, x0, #100
1:      add x0, x0, #1
        b.ge 2f
        sub x0, x0, #7
2:      cmp x0, #50
        b.hi 3f
        add x0, x0, #13
3:      ret
s_cb:
        cbz x0, 1f
        add x0, x0, #2
1:      cbnz w0, 2f
        mov x0, #77
2:      tbz x0, #0, 3f
        add x0, x0, #1000
3:      tbnz x0, #40, 4f
        add x0, x0, #5
4:      tbnz w0, #3, 5f
        add x0, x0, #64
5:      ret
s_loop:                             // a backward b.gt (at most 255 rounds)
        and x0, x0, #0xff
        mov x1, #0
        cmp x0, #0
        b.le 2f
1:      add x1, x1, x0
        subs x0, x0, #1
        b.gt 1b
2:      mov x0, x1
        ret
s_call:                             // bl and blr: the callee returns to the original code
        stp x29, x30, [sp, #-16]!
        mov x29, sp
        bl h_add3
        adr x9, h_twice
        blr x9
        bl h_add3
        ldp x29, x30, [sp], #16
        ret
h_add3: add x0, x0, #3
        ret
h_twice:
        add x0, x0, x0
        ret
s_b:
        b 1f
        udf #0                      // never executed (refused: it traps)
1:      add x0, x0, #9
        ret
s_br:
        adr x9, 1f
        br x9
        udf #1
1:      add x0, x0, #11
        ret
s_excl:                             // an exclusive retry loop: the sites inside are refused
        adr x2, d_counter
1:      ldaxr x1, [x2]
        add x1, x1, x0
        stlxr w3, x1, [x2]
        cbnz w3, 1b
        mov x0, x1
        ret
s_blr30:                            // blr x30 is refused; the rest moves
        stp x29, x30, [sp, #-16]!
        adr x30, h_twice
        blr x30
        ldp x29, x30, [sp], #16
        ret
code_end:

        .balign 16
d_words:
        .quad 0x1111111111111111, 0x2222222222222222, 0x3333333333333333, 0x4444444444444444
d_counter:
        .quad 0
d_end:
