# x86-64 sample functions for the relocator / torn-fetch tests. Self-contained:
# every target (callees, data) is inside this blob, so the bytes can run from any
# address (tests/mc/x86_exec_test.cpp executes them natively).
        .intel_syntax noprefix
        .text
        .globl x_pcrel
        .type x_pcrel,@function
# int x_pcrel(int a): a + counter (rip-relative load), via a call and branches
x_pcrel:
        push rbp
        mov rbp, rsp
        mov eax, dword ptr [rip + x_data]
        test edi, edi
        je 1f
        call x_twice
        add eax, 1
1:      lea rcx, [rip + x_data]
        add eax, dword ptr [rcx + 4]
        jmp 2f
        ud2
2:      add eax, edi
        pop rbp
        ret
        .size x_pcrel, .-x_pcrel

        .globl x_loop
        .type x_loop,@function
# long x_loop(long n): sum of 1..n with a jrcxz and a backward jcc
x_loop:
        xor eax, eax
        mov rcx, rdi
        jrcxz 3f
4:      add rax, rcx
        dec rcx
        jne 4b
3:      add rax, qword ptr [rip + x_data + 8]
        ret
        .size x_loop, .-x_loop

        .globl x_calls
        .type x_calls,@function
# int x_calls(int a): indirect call through rip-relative memory and a register
x_calls:
        push rbx
        mov ebx, edi
        call qword ptr [rip + x_fptr]
        lea rdx, [rip + x_twice]
        mov edi, eax
        call rdx
        add eax, ebx
        pop rbx
        ret
        .size x_calls, .-x_calls

        .globl x_short
        .type x_short,@function
# int x_short(void): too short for a 5-byte jump at most boundaries
x_short:
        mov eax, 7
        ret
        .size x_short, .-x_short

        .globl x_twice
        .type x_twice,@function
x_twice:
        lea eax, [rdi + rdi]
        ret
        .size x_twice, .-x_twice

        .p2align 3
        .globl x_data
        .type x_data,@object
x_data:
        .long 40
        .long 2
        .quad 1000
x_fptr:
        .quad 0            # patched by the exec test to x_twice's runtime address
        .size x_data, .-x_data
