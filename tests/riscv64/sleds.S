// Hand-made entry sleds of BOTH encodings, whatever -march the test is built
// with, so each flavour's live test also exercises the other ILEN's sled.
// Each function returns a0 + a distinct constant.
        .text

        .globl rv_sled_g8
        .type rv_sled_g8, @function
        .p2align 2
rv_sled_g8:                      // 2 x nop (rv64g style, 8 bytes)
        .option push
        .option norvc
        nop
        nop
        addi a0, a0, 11
        ret
        .option pop
        .size rv_sled_g8, .-rv_sled_g8

        .globl rv_sled_g4
        .type rv_sled_g4, @function
        .p2align 2
rv_sled_g4:                      // 1 x nop (4 bytes: jal only)
        .option push
        .option norvc
        nop
        addi a0, a0, 13
        ret
        .option pop
        .size rv_sled_g4, .-rv_sled_g4

        .globl rv_sled_c8
        .type rv_sled_c8, @function
        .option push
        .option norelax          // before the alignment: no linker-relaxed padding
        .option rvc
        .p2align 2
        .2byte 0                 // padding so the sled starts 2 mod 4
rv_sled_c8:                      // 4 x c.nop (rv64gc style, 8 bytes), 2-byte aligned only
        c.nop
        c.nop
        c.nop
        c.nop
        .option norvc
        addi a0, a0, 17
        ret
        .option pop
        .size rv_sled_c8, .-rv_sled_c8

        .globl rv_sled_c4
        .type rv_sled_c4, @function
        .option push
        .option norelax          // before the alignment: no linker-relaxed padding
        .option rvc
        .p2align 2
        .2byte 0                 // padding so the sled starts 2 mod 4
rv_sled_c4:                      // 2 x c.nop (4 bytes: jal only; disabled = `j .+4`)
        c.nop
        c.nop
        .option norvc
        addi a0, a0, 29
        ret
        .option pop
        .size rv_sled_c4, .-rv_sled_c4

        .globl rv_sled_c2
        .type rv_sled_c2, @function
        .p2align 2
        .option push
        .option rvc
rv_sled_c2:                      // 1 x c.nop (2 bytes: trap probes only)
        c.nop
        .option norvc
        addi a0, a0, 19
        ret
        .option pop
        .size rv_sled_c2, .-rv_sled_c2

        // A real illegal instruction (not a site): must reach the program's own
        // SIGILL handler / kill the process, exactly as without libpatch.
        .globl rv_real_unimp
        .type rv_real_unimp, @function
        .p2align 2
rv_real_unimp:
        .option push
        .option norvc
        nop
        unimp
        ret
        .option pop
        .size rv_real_unimp, .-rv_real_unimp

        // A c.nop sled that straddles a page boundary: the first c.nop ends page
        // A, the other three start page B. qemu ends a translation block at a page
        // boundary and delivers signals between blocks, so a thread interrupted by
        // a signal round can really be parked at +2, inside the sled: the live
        // evacuation test. The jal written over the head would put its high half
        // at +2, so such a thread must be moved out in phase 1.
        .section .text.rv_split, "ax", @progbits
        .p2align 12
        .option push
        .option rvc
        .skip 4094
        .globl rv_sled_split_c
        .type rv_sled_split_c, @function
rv_sled_split_c:
        c.nop
        c.nop
        c.nop
        c.nop
        .option norvc
        addi a0, a0, 23
        ret
        .option pop
        .size rv_sled_split_c, .-rv_sled_split_c

        .section .note.GNU-stack,"",@progbits
