/* A guaranteed tail call between two probed functions (call_test.cpp):
 * int lpt_tail_caller(int x) { return lpt_tail_callee(x + 1); } as a jump,
 * with an entry sled libpatch accepts. */
#if defined(__x86_64__)
        .text
        .globl  lpt_tail_caller
        .type   lpt_tail_caller, @function
        .p2align 4
lpt_tail_caller:
        .cfi_startproc
        .byte   0x0f, 0x1f, 0x44, 0x00, 0x00   /* the 5-byte nop: the sled */
        addl    $1, %edi
        jmp     lpt_tail_callee@PLT
        .cfi_endproc
        .size   lpt_tail_caller, .-lpt_tail_caller
#elif defined(__riscv)
        .text
        .globl  lpt_tail_caller
        .type   lpt_tail_caller, @function
        .p2align 2
lpt_tail_caller:
        .cfi_startproc
        .option push
        .option norvc
        nop                                     /* two 4-byte nops: the sled */
        nop                                     /* (a site on rv64gc and rv64g) */
        .option pop
        addiw   a0, a0, 1
        tail    lpt_tail_callee
        .cfi_endproc
        .size   lpt_tail_caller, .-lpt_tail_caller
#elif defined(__aarch64__)
        .text
        .globl  lpt_tail_caller
        .type   lpt_tail_caller, %function
        .p2align 2
lpt_tail_caller:
        .cfi_startproc
        nop                                     /* two nops: the sled */
        nop                                     /* (-fpatchable-function-entry=2) */
        add     w0, w0, #1
        b       lpt_tail_callee
        .cfi_endproc
        .size   lpt_tail_caller, .-lpt_tail_caller
#else
#error "call_tail.S: no tail call for this architecture"
#endif
        .section .note.GNU-stack,"",@progbits
