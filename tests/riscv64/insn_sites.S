// Instruction sites (not entry sleds) whose inner boundary is a page boundary:
// qemu ends a translation block there and can deliver a signal, so threads
// hammering these functions get caught *inside* a displaced range by the
// signal rounds of the protocol -- the evacuation paths, live.
// Each lives in a section of its own, placed by the linker (CMakeLists.txt):
//   .lp_far_text  at 0x20000000, walled in by two 2 MiB NOBITS sections
//                 (.lp_wall_lo / .lp_wall_hi) so that no trampoline memory can
//                 be mapped within jal's +-1 MiB: only the far site jump
//                 (auipc+jalr) reaches;
//   .lp_near_text at 0x30000000: free space around it, the short `jal x0`.

        .section .lp_far_text, "ax", @progbits
        .option push
        .option norelax
        .option norvc
        .p2align 12
        .skip 4092
        .globl rv_far_split
        .type rv_far_split, @function
rv_far_split:                   // returns a0 + 13
        addi a1, a0, 5          // the site: its far jump's auipc goes here...
        addi a2, a1, 7          // ...and its jalr here, the first word of the next page
        li   a5, 1              // a5 is written before it is read: dead at the site
        add  a0, a2, a5
        ret
        .size rv_far_split, .-rv_far_split
        .option pop

        .section .lp_near_text, "ax", @progbits
        .option push
        .option norelax
        .option rvc
        .p2align 12
        .skip 4094
        .globl rv_near_split_c
        .type rv_near_split_c, @function
rv_near_split_c:                // returns a0 + 9
        c.addi a0, 2            // the site: two compressed instructions under one jal,
        c.addi a0, 3            // this one on the next page
        .option norvc
        addi a0, a0, 4
        ret
        .size rv_near_split_c, .-rv_near_split_c
        .option pop

        // The walls: address space taken, no file space.
        .section .lp_wall_lo, "aw", @nobits
        .skip 0x200000
        .section .lp_wall_hi, "aw", @nobits
        .skip 0x200000
