/*
 * VMDriver accelerator probe: a 512-byte boot sector that walks the CPU from real
 * mode through 32-bit protected mode into 64-bit long mode, reporting each step on
 * COM1 (0x3f8), lines ending in CR LF:
 *
 *   VMDRIVER-PROBE-START        real mode, from the BIOS
 *   VMDRIVER-LONGMODE-OK        64-bit long mode (PAE, EFER.LME, paging: identity map of
 *                               the first 1 GiB through PML4 -> PDPT -> PD of 2 MiB pages)
 *   VMDRIVER-CMPXCHG16B-OK      lock cmpxchg16b worked (Linux's SLUB uses it at boot; a
 *                               KVM that emulates instructions without it stops the guest
 *                               with "KVM internal error", libvirt shows it paused)
 *   VMDRIVER-PROBE-DONE         after a fixed workload in long mode: 2^24 iterations of
 *                               dec/jnz (~34M instructions) and 12 MiB of 8-byte stores
 *                               at 2-14 MiB (the guest needs >= 16 MiB of RAM)
 *
 * then halts with interrupts off. Page tables live at 0x1000-0x3fff.
 *
 * Reaching LONGMODE-OK is not enough to say "this accelerator runs Linux": on a host
 * whose /dev/kvm emulates instructions in software (kvm_pvm for a non-PVM guest) every
 * step works but runs ~500x slower than TCG. Time LONGMODE-OK -> PROBE-DONE: a working
 * accelerator takes well under 0.1 s (TCG ~0.05 s); the emulating one takes ~30 s.
 *
 * Build: as --32 -o probe.o probe.S
 *        ld -m elf_i386 -Ttext=0x7c00 -e _start --oformat binary -o probe.bin probe.o
 */
        .code16
        .text
        .globl _start
_start:
        cli
        xor     %ax, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     $0x7c00, %sp
        ljmp    $0, $start2
start2:
        /* COM1: 115200 8N1, FIFO, no interrupts */
        mov     $0x3f9, %dx
        xor     %al, %al
        out     %al, %dx
        mov     $0x3fb, %dx
        mov     $0x80, %al
        out     %al, %dx
        mov     $0x3f8, %dx
        mov     $1, %al
        out     %al, %dx
        mov     $0x3f9, %dx
        xor     %al, %al
        out     %al, %dx
        mov     $0x3fb, %dx
        mov     $0x03, %al
        out     %al, %dx
        mov     $0x3fa, %dx
        mov     $0xc7, %al
        out     %al, %dx
        mov     $0x3fc, %dx
        mov     $0x03, %al
        out     %al, %dx

        mov     $msg_start, %si
1:      lodsb
        test    %al, %al
        jz      2f
        call    putc16
        jmp     1b
2:
        /* enter 32-bit protected mode */
        lgdt    gdtr
        mov     %cr0, %eax
        or      $1, %eax
        mov     %eax, %cr0
        ljmp    $0x08, $pm32

putc16:
        push    %ax
        mov     $0x3fd, %dx
1:      in      %dx, %al
        test    $0x20, %al
        jz      1b
        pop     %ax
        mov     $0x3f8, %dx
        out     %al, %dx
        ret

        .code32
pm32:
        mov     $0x10, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %ss
        mov     $0x7c00, %esp

        /* identity map 0-2 MiB: PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 (one 2 MiB page) */
        mov     $0x1000, %edi
        xor     %eax, %eax
        mov     $3072, %ecx
        cld
        rep stosl
        movl    $0x2003, 0x1000
        movl    $0x3003, 0x2000
        mov     $0x3000, %edi
        mov     $0x83, %eax             /* present, writable, 2 MiB page */
        mov     $512, %ecx
1:      mov     %eax, (%edi)
        add     $0x200000, %eax
        add     $8, %edi
        loop    1b
        mov     %cr4, %eax
        or      $0x20, %eax             /* CR4.PAE */
        mov     %eax, %cr4
        mov     $0x1000, %eax
        mov     %eax, %cr3
        mov     $0xc0000080, %ecx       /* EFER */
        rdmsr
        or      $0x100, %eax            /* LME */
        wrmsr
        mov     %cr0, %eax
        or      $0x80000000, %eax       /* PG */
        mov     %eax, %cr0
        ljmp    $0x18, $lm64

        .code64
lm64:
        mov     $msg_lm, %esi
        call    puts64
        /* lock cmpxchg16b (Linux's SLUB allocator needs it early): compare RDX:RAX (0)
         * with the 16 zero bytes at 0x4000 and store RCX:RBX there. */
        mov     $0x4000, %edi
        xor     %eax, %eax
        xor     %edx, %edx
        mov     %rax, (%rdi)
        mov     %rax, 8(%rdi)
        mov     $0x5678, %ebx
        mov     $0x1234, %ecx
        lock cmpxchg16b (%rdi)
        jnz     halt
        cmpl    $0x5678, (%rdi)
        jne     halt
        mov     $msg_cx16, %esi
        call    puts64
        mov     $0x1000000, %ecx        /* compute: 2^24 x dec/jnz */
1:      dec     %ecx
        jnz     1b
        mov     $0x200000, %edi         /* memory: 12 MiB of stores at 2-14 MiB */
        mov     $0x180000, %ecx
1:      mov     %rcx, (%rdi)
        add     $8, %rdi
        dec     %ecx
        jnz     1b
        mov     $msg_done, %esi
        call    puts64
halt:   cli
1:      hlt
        jmp     1b

puts64:
1:      lodsb
        test    %al, %al
        jz      3f
        mov     %al, %ah
        mov     $0x3fd, %dx
2:      in      %dx, %al
        test    $0x20, %al
        jz      2b
        mov     %ah, %al
        mov     $0x3f8, %dx
        out     %al, %dx
        jmp     1b
3:      ret

        .p2align 3
gdt:
        .quad   0
        .quad   0x00cf9a000000ffff      /* 0x08: 32-bit code, flat */
        .quad   0x00cf92000000ffff      /* 0x10: data, flat */
        .quad   0x00af9a000000ffff      /* 0x18: 64-bit code */
gdt_end:
gdtr:
        .word   gdt_end - gdt - 1
        .long   gdt

msg_start: .asciz "VMDRIVER-PROBE-START\r\n"
msg_lm:    .asciz "VMDRIVER-LONGMODE-OK\r\n"
msg_cx16:  .asciz "VMDRIVER-CMPXCHG16B-OK\r\n"
msg_done:  .asciz "VMDRIVER-PROBE-DONE\r\n"

        .org    510
        .word   0xaa55
