// aarch64 sample functions (A64), torn-fetch's instruction-site subjects.
// Assembled by Debian's aarch64-linux-gnu-as (gen.py). Every word is a
// candidate site: the relocator moves one word (`B target` replaces it). In
// a_excl it refuses the `bti c` landing pad and the words of the exclusive
// retry loop up to its stxr; the words after it are sites again.
        .text
        .globl a_pcrel
        .type a_pcrel,%function
// long a_pcrel(long a)
a_pcrel:
        stp x29, x30, [sp, #-16]!
        mov x29, sp
        adrp x1, a_data
        ldr x1, [x1, #:lo12:a_data]
        cbz x0, 1f
        bl a_twice
        add x0, x0, x1
1:      cmp x0, x1
        b.ge 2f
        b 3f
2:      ldr x2, a_data
        add x0, x0, x2
3:      ldp x29, x30, [sp], #16
        ret
        .size a_pcrel, .-a_pcrel

        .globl a_loop
        .type a_loop,%function
// long a_loop(long n)
a_loop:
        mov x1, #0
4:      cbz x0, 5f
        add x1, x1, x0
        sub x0, x0, #1
        tbnz x0, #63, 5f
        cbnz x0, 4b
5:      mov x0, x1
        ret
        .size a_loop, .-a_loop

        .globl a_calls
        .type a_calls,%function
a_calls:
        stp x29, x30, [sp, #-16]!
        adr x9, a_twice
        blr x9
        ldp x29, x30, [sp], #16
        ret
        .size a_calls, .-a_calls

        .globl a_twice
        .type a_twice,%function
a_twice:
        add x0, x0, x0
        ret
        .size a_twice, .-a_twice

        .globl a_excl
        .type a_excl,%function
// long a_excl(long *p): atomically ++*p (exclusive retry loop)
a_excl:
        bti c
6:      ldxr x1, [x0]
        add x1, x1, #1
        stxr w2, x1, [x0]
        cbnz w2, 6b
        mov x0, x1
        ret
        .size a_excl, .-a_excl

        .p2align 3
        .globl a_data
        .type a_data,%object
a_data:
        .quad 40
        .size a_data, .-a_data
