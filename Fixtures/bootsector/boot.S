/*
 * VMDriver boot-sector fixture: a 512-byte real-mode guest for lifecycle tests.
 *
 * Prints "VMDRIVER-BOOT" to COM1 (0x3f8), then "tick N" (N = 1, 2, ...) about once
 * per second, forever. Lines end in CR LF. The wait is `hlt` until the BIOS timer
 * tick (IRQ 0, 18.2 Hz, counted in the BDA at 0040:006C) has changed 18 times, so the
 * guest idles instead of spinning. Runs under KVM and TCG. It has no ACPI: it
 * cannot honour a shutdown request, only destroy stops it.
 *
 * Build: as --32 -o boot.o boot.S
 *        ld -m elf_i386 -Ttext=0x7c00 -e _start --oformat binary -o boot.bin boot.o
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
        ljmp    $0, $start2             /* some BIOSes enter at 07C0:0000 */
start2:
        call    serial_init
        mov     $msg_boot, %si
        call    puts
        xor     %ebx, %ebx              /* tick counter */
main_loop:
        call    wait_1s
        inc     %ebx
        mov     $msg_tick, %si
        call    puts
        mov     %ebx, %eax
        call    putdec
        mov     $msg_crlf, %si
        call    puts
        jmp     main_loop

/* 16550 UART on COM1: 115200 8N1, FIFO on, interrupts off (we poll). */
serial_init:
        mov     $0x3f9, %dx
        xor     %al, %al
        out     %al, %dx                /* IER = 0 */
        mov     $0x3fb, %dx
        mov     $0x80, %al
        out     %al, %dx                /* LCR: DLAB */
        mov     $0x3f8, %dx
        mov     $1, %al
        out     %al, %dx                /* divisor low = 1 (115200) */
        mov     $0x3f9, %dx
        xor     %al, %al
        out     %al, %dx                /* divisor high = 0 */
        mov     $0x3fb, %dx
        mov     $0x03, %al
        out     %al, %dx                /* LCR: 8N1 */
        mov     $0x3fa, %dx
        mov     $0xc7, %al
        out     %al, %dx                /* FCR: enable + clear FIFOs */
        mov     $0x3fc, %dx
        mov     $0x03, %al
        out     %al, %dx                /* MCR: DTR RTS */
        ret

/* putc: AL -> COM1, waiting for THR empty (LSR bit 5). */
putc:
        push    %ax
        mov     $0x3fd, %dx
1:      in      %dx, %al
        test    $0x20, %al
        jz      1b
        pop     %ax
        mov     $0x3f8, %dx
        out     %al, %dx
        ret

/* puts: NUL-terminated string at DS:SI. */
puts:
        lodsb
        test    %al, %al
        jz      1f
        call    putc
        jmp     puts
1:      ret

/* putdec: EAX as unsigned decimal. */
putdec:
        mov     $10, %ecx
        xor     %di, %di
1:      xor     %edx, %edx
        div     %ecx
        push    %dx
        inc     %di
        test    %eax, %eax
        jnz     1b
2:      pop     %ax
        add     $'0', %al
        call    putc
        dec     %di
        jnz     2b
        ret

/* wait_1s: sleep (hlt) through 18 BIOS timer ticks. */
wait_1s:
        sti
        mov     $18, %cx
1:      mov     0x46c, %ax
2:      hlt
        cmp     0x46c, %ax
        je      2b
        loop    1b
        ret

msg_boot:  .asciz "VMDRIVER-BOOT\r\n"
msg_tick:  .asciz "tick "
msg_crlf:  .asciz "\r\n"

        .org    510
        .word   0xaa55
