// A nop inside a function body, where an entry trampoline would corrupt live
// state: x86-64 keeps a value in the red zone (an entry call pushes its return
// address there), RISC-V keeps one in t0 (the entry call's link register),
// AArch64 one in x16 (the call-probe trampoline's scratch, dead at an entry).
// lpd_body_nop(x) returns x + 1 whatever is probed, if the nop is treated as
// the instruction site it is (DifferentialLive.NopInsideABodyIsAnInstructionSite).
        .text
        .globl lpd_body_nop
        .type lpd_body_nop, @function
#if defined(__x86_64__)
lpd_body_nop:
        movq %rdi, -8(%rsp)             // live in the red zone across the nop
        .byte 0x0f, 0x1f, 0x44, 0x00, 0x00 // nopl 0x0(%rax,%rax,1): an entry sled's shape
        movq -8(%rsp), %rax
        addq $1, %rax
        ret
#elif defined(__riscv)
        .option push
        .option norvc
        .p2align 2
lpd_body_nop:
        addi t0, a0, 1                  // live in t0 across the nop
        nop                             // looks like a 1-nop rv64g sled
        nop
        mv a0, t0
        ret
        .option pop
#elif defined(__aarch64__)
        .p2align 2
lpd_body_nop:
        add x16, x0, #1                 // live in x16 across the nops (an entry's
        nop                             // scratch: dead at an entry, live here)
        nop                             // looks like a 2-nop sled
        mov x0, x16
        ret
#endif
        .size lpd_body_nop, .-lpd_body_nop
        .section .note.GNU-stack, "", @progbits
