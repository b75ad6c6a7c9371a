// The assembler's bytes for what backends/aarch64/encoding.cpp encodes, in the
// order encoding_test.cpp expects them (linked at 0x10000, page aligned, by
// tests/CMakeLists.txt with Debian's aarch64-linux-gnu binutils). One word each.
        .text
        .globl _start
_start:
        nop                          // 0
        isb                          // 1
        ret                          // 2
        bti c                        // 3
        paciasp                      // 4
        brk #0xc9                    // 5
        b .+4096                     // 6
        b .-8                        // 7
        bl .+0x7fffffc               // 8: the farthest forward
        bl .-0x8000000               // 9: the farthest back
        br x16                       // 10
        blr x17                      // 11
        adrp x16, _start+0x5000      // 12: at 0x10030: page delta 0x5000
        add x16, x16, #0x123         // 13
        mov x9, x30                  // 14
        svc #0                       // 15
        hvc #0                       // 16
        smc #0                       // 17
        ldr x16, .+8                 // 18: not in the list
        brk #0                       // 19
        adrp x17, _start-0x100000000 // 20: at 0x10050: page delta -4 GiB
        // The trampolines' frame code (21..)
        sub sp, sp, #800             // 21
        add x16, sp, #800            // 22
        add x16, x16, x17            // 23
        stp x0, x1, [sp, #0]         // 24
        stp x28, x29, [sp, #224]     // 25
        ldp x2, x3, [sp, #16]        // 26
        stp q0, q1, [sp, #288]       // 27
        ldp q30, q31, [sp, #768]     // 28
        str x30, [sp, #240]          // 29
        ldr x16, [x17, #8]           // 30
        ldr x17, .-0x100000          // 31: the farthest back
        adr x16, .+0xfffff           // 32: the farthest forward
        movz x17, #0xbeef, lsl #48   // 33
        movk x17, #0x1234, lsl #16   // 34
        ret x16                      // 35
        mrs x16, nzcv                // 36
        msr nzcv, x16                // 37
        mrs x16, fpcr                // 38
        mrs x17, fpsr                // 39
        msr fpcr, x16                // 40
        msr fpsr, x17                // 41
        mrs x16, tpidr_el0           // 42
        stp x16, x17, [sp, #-16]     // 43: negative offset
        ldr x16, .+0xffffc           // 44: the farthest forward literal
        // ==== The relocator's encodings (encoding.hpp section of that name):
        // between two marker words, so this section may sit anywhere in the
        // file; encoding_test.cpp (A64Encoding.RelocatorEncodersMatchTheAssembler)
        // finds it by the first marker. Word r<i> is at marker + 4 + 4 * i.
        .word 0x4c504131             // marker "1APL"
        .arch armv8.8-a              // bc.cond (FEAT_HBC)
        b.eq .+8                     // r0
        b.nv .-0x100000              // r1: the farthest back
        bc.ne .+0xffffc              // r2: the farthest forward
        cbz w3, .+8                  // r3
        cbnz x30, .-0x100000         // r4
        cbnz w0, .+0xffffc           // r5
        tbz w5, #31, .+0x7ffc        // r6: the farthest forward
        tbnz x6, #63, .-0x8000       // r7: the farthest back
        tbz x7, #32, .+4             // r8
        ldr w16, [x17, #0x3ffc]      // r9
        ldrsw x1, [x2, #4]           // r10
        ldr q7, [x16, #0xfff0]       // r11
        str x16, [sp, #-16]!         // r12
        ldr x16, [sp], #16           // r13
        fmov d3, x16                 // r14
        fmov x16, d3                 // r15
        mov v3.d[1], x16             // r16
        mov d3, v3.d[1]              // r17
        mov s3, v3.s[2]              // r18
        braa x1, x2                  // r19
        brab x3, sp                  // r20
        braaz x4                     // r21
        brabz x30                    // r22
        str x16, [sp, #-256]!        // r23
        ldr x16, [sp], #255          // r24
        .arch armv8.5-a
        .word 0x4c504132             // marker "2APL"
