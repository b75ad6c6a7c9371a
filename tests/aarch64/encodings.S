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
