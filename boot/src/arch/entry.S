/*
 * Entry from the boot loader: 32-bit protected mode, paging off.
 *   PVH (QEMU -kernel, Cloud Hypervisor, Firecracker): ebx = hvm_start_info.
 *   multiboot2 (GRUB): eax = 0x36d76289, ebx = multiboot information.
 * Builds identity page tables for the first 4 GiB, enters long mode and calls kernel_main(info_paddr, protocol).
 */

    .section .multiboot2, "a"
    .balign 8
mb2_header:
    .long 0xe85250d6                 /* magic */
    .long 0                          /* architecture: i386 protected mode */
    .long 24                         /* header length */
    .long 0x17adaf12                 /* checksum: -(magic + arch + length) mod 2^32 */
    .short 0                         /* end tag */
    .short 0
    .long 8

    .section .note.pvh, "a", @note
    .balign 4
    .long 4                          /* name size: "Xen\0" */
    .long 4                          /* descriptor size */
    .long 18                         /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_entry
    .long 0

    .section .text.boot32, "ax"
    .code32
    .global mb2_entry
mb2_entry:
    cli
    cld
    mov %ebx, %ebp
    mov $2, %ebx                     /* protocol 2: multiboot2 */
    cmp $0x36d76289, %eax
    je common32
    mov $0, %ebx                     /* unknown loader */
    jmp common32

    .global pvh_entry
pvh_entry:
    cli
    cld
    mov %ebx, %ebp
    mov $1, %ebx                     /* protocol 1: PVH */

common32:
    /* Zero .bss: page tables and stacks live there. */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb

    /* PML4[0] -> PDPT; PDPT[0..4] -> four page directories (4 GiB). */
    mov $boot_pdpt, %eax
    or $3, %eax
    mov %eax, boot_pml4
    mov $boot_pd, %eax
    or $3, %eax
    mov %eax, boot_pdpt
    add $4096, %eax
    mov %eax, boot_pdpt + 8
    add $4096, %eax
    mov %eax, boot_pdpt + 16
    add $4096, %eax
    mov %eax, boot_pdpt + 24

    /* 2048 2 MiB pages: present, writable, large. */
    mov $boot_pd, %edi
    mov $0x83, %eax
    mov $2048, %ecx
1:  mov %eax, (%edi)
    add $0x200000, %eax
    add $8, %edi
    loop 1b

    /* The first 2 MiB in 4 KiB pages (the loader's tables live in low memory; kernel_main
       unmaps page 0 once it has read them, so null pointers fault). */
    mov $boot_pt, %eax
    or $3, %eax
    mov %eax, boot_pd
    mov $boot_pt, %edi
    mov $0x3, %eax
    mov $512, %ecx
2:  mov %eax, (%edi)
    add $0x1000, %eax
    add $8, %edi
    loop 2b

    /* PAE, then long mode, then paging (with write protect). */
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    and $0x9fffffff, %eax            /* caches on: clear CD and NW */
    or $0x80010001, %eax             /* PG | WP | PE */
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $start64

    .code64
start64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    mov $boot_stack_top, %rsp
    mov %ebp, %edi                   /* kernel_main(info_paddr: u64, protocol: u32) */
    mov %ebx, %esi
    call kernel_main
3:  cli
    hlt
    jmp 3b

    .section .rodata
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff         /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff         /* 0x10: data */
boot_gdt_ptr:
    .short boot_gdt_ptr - boot_gdt - 1
    .long boot_gdt

    .section .bss.boot, "aw", @nobits
    .balign 4096
    .global boot_pml4
boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
boot_pd:
    .skip 4096 * 4
    .global boot_pt
boot_pt:
    .skip 4096
    /* Guard page: unmapped by kernel_main, so a stack overflow faults instead of
       overwriting the page tables below it. */
    .global boot_stack_guard
boot_stack_guard:
    .skip 4096
boot_stack:
    .skip 256 * 1024
    .global boot_stack_top
boot_stack_top:

/*
 * Interrupt stubs. Exceptions 0..31 push (error code or 0, vector) and go to
 * exception_entry, which never returns. The PIC timer tick and other PIC vectors only
 * acknowledge the PIC: their job is to wake the CPU from hlt.
 */
    .text
    .macro exc_noerr n
exc_\n:
    push $0
    push $\n
    jmp exception_common
    .endm
    .macro exc_err n
exc_\n:
    push $\n
    jmp exception_common
    .endm

    exc_noerr 0
    exc_noerr 1
    exc_noerr 2
    exc_noerr 3
    exc_noerr 4
    exc_noerr 5
    exc_noerr 6
    exc_noerr 7
    exc_err 8
    exc_noerr 9
    exc_err 10
    exc_err 11
    exc_err 12
    exc_err 13
    exc_err 14
    exc_noerr 15
    exc_noerr 16
    exc_err 17
    exc_noerr 18
    exc_noerr 19
    exc_noerr 20
    exc_err 21
    exc_noerr 22
    exc_noerr 23
    exc_noerr 24
    exc_noerr 25
    exc_noerr 26
    exc_noerr 27
    exc_noerr 28
    exc_err 29
    exc_err 30
    exc_noerr 31

exception_common:
    mov %rsp, %rdi                   /* &ExceptionFrame */
    and $-16, %rsp
    call exception_entry
4:  cli
    hlt
    jmp 4b

    .global spurious_isr
spurious_isr:
    iretq

/* A NIC interrupt routed through an I/O APIC (edge-triggered): end of interrupt at the
   local APIC, whose EOI register address the kernel stored in lapic_eoi_addr. */
    .global lapic_nic_isr
lapic_nic_isr:
    push %rax
    mov lapic_eoi_addr(%rip), %rax
    test %rax, %rax
    jz 1f
    movl $0, (%rax)
1:  pop %rax
    iretq

    .global timer_isr
timer_isr:
    push %rax
    mov $0x20, %al
    out %al, $0x20
    pop %rax
    iretq

/* IRQ n (1..15): mask the line and acknowledge. The event loop deals with the device and
   unmasks the line before it sleeps again (see hal::pic). */
    .macro irq_master n
irq_\n:
    push %rax
    in $0x21, %al
    or $(1 << \n), %al
    out %al, $0x21
    mov $0x20, %al
    out %al, $0x20
    pop %rax
    iretq
    .endm
    .macro irq_slave n
irq_\n:
    push %rax
    in $0xa1, %al
    or $(1 << (\n - 8)), %al
    out %al, $0xa1
    mov $0x20, %al
    out %al, $0xa0
    out %al, $0x20
    pop %rax
    iretq
    .endm
    irq_master 1
    irq_master 2
    irq_master 3
    irq_master 4
    irq_master 5
    irq_master 6
    irq_master 7
    irq_slave 8
    irq_slave 9
    irq_slave 10
    irq_slave 11
    irq_slave 12
    irq_slave 13
    irq_slave 14
    irq_slave 15

    .section .rodata
    .balign 8
    .global irq_stubs
irq_stubs:
    .irp n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
    .quad irq_\n
    .endr

    .section .rodata
    .balign 8
    .global exception_stubs
exception_stubs:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad exc_\n
    .endr
