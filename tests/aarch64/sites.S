// Hand-assembled AArch64 subjects for live_test.cpp.
        .text

// a64_args(x0..x7, d0..d7): x0 + ... + x7 + (long)(d0 + ... + d7), behind a 2-NOP sled.
        .globl a64_args
        .type a64_args, %function
        .p2align 2
a64_args:
        nop
        nop
        add x0, x0, x1
        add x0, x0, x2
        add x0, x0, x3
        add x0, x0, x4
        add x0, x0, x5
        add x0, x0, x6
        add x0, x0, x7
        fadd d0, d0, d1
        fadd d0, d0, d2
        fadd d0, d0, d3
        fadd d0, d0, d4
        fadd d0, d0, d5
        fadd d0, d0, d6
        fadd d0, d0, d7
        fcvtzs x1, d0
        add x0, x0, x1
        ret
        .size a64_args, .-a64_args

// a64_live_across(x0, x1): NZCV, x9, x16, x17, d16 and v8's upper half are live
// across a64_live_site (an instruction site in the middle); returns
// (x0 == 5 ? 1000 : 2000) + x9 + x16 + x17 + (long)d16 + v8.d[1].
        .globl a64_live_across
        .globl a64_live_site
        .type a64_live_across, %function
        .p2align 2
a64_live_across:
        mov x9, #3
        mov x16, #5
        mov x17, #7
        scvtf d16, x1
        mov x10, #11
        mov v8.d[1], x10
        cmp x0, #5
a64_live_site:
        mov x11, #0                     // the probed instruction (flags untouched)
        b.eq 1f
        mov x0, #2000
        b 2f
1:      mov x0, #1000
2:      add x0, x0, x9
        add x0, x0, x16
        add x0, x0, x17
        fcvtzs x10, d16
        add x0, x0, x10
        mov x10, v8.d[1]
        add x0, x0, x10
        ret
        .size a64_live_across, .-a64_live_across

// a64_bti_sled: `bti c` first, then the sled: the site starts after the BTI.
        .globl a64_bti_sled
        .type a64_bti_sled, %function
        .p2align 2
a64_bti_sled:
        hint #34                        // bti c
        nop
        nop
        add x0, x0, #1
        ret
        .size a64_bti_sled, .-a64_bti_sled
        .section .note.GNU-stack, "", @progbits
