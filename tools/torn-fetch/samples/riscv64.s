# riscv64 sample functions (rv64gc; the rv64g file is the same without C).
        .option norelax
        .text
        .globl r_pcrel
        .type r_pcrel,@function
# long r_pcrel(long a)
r_pcrel:
        addi sp, sp, -16
        sd ra, 8(sp)
6:      auipc t1, %pcrel_hi(r_data)
        ld t1, %pcrel_lo(6b)(t1)
        beqz a0, 1f
        call r_twice
        add a0, a0, t1
1:      bge a0, t1, 2f
        j 3f
2:      jal ra, r_twice
3:      ld ra, 8(sp)
        addi sp, sp, 16
        ret
        .size r_pcrel, .-r_pcrel

        .globl r_loop
        .type r_loop,@function
# long r_loop(long n)
r_loop:
        li a1, 0
4:      beqz a0, 5f
        add a1, a1, a0
        addi a0, a0, -1
        bnez a0, 4b
5:      mv a0, a1
        ret
        .size r_loop, .-r_loop

        .globl r_calls
        .type r_calls,@function
r_calls:
        addi sp, sp, -16
        sd ra, 8(sp)
        lla a5, r_twice
        jalr a5
        jalr ra, 0(a5)
        ld ra, 8(sp)
        addi sp, sp, 16
        ret
        .size r_calls, .-r_calls

        .globl r_twice
        .type r_twice,@function
r_twice:
        add a0, a0, a0
        ret
        .size r_twice, .-r_twice

        .p2align 3
        .globl r_data
        .type r_data,@object
r_data:
        .quad 40
        .size r_data, .-r_data
