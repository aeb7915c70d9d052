/*
 * The smallest PVH kernel: the floor the boot benchmark compares vdcnet against.
 *
 * QEMU's `-kernel` loader finds the entry point in the XEN_ELFNOTE_PHYS32_ENTRY note,
 * enters it in 32-bit protected mode with paging off, and this code does nothing but
 * write to the isa-debug-exit port (0xf4), which ends QEMU at once with status
 * (0 << 1) | 1 = 1. Built with -DHALT_FOREVER it halts with interrupts off instead: the
 * peer for the idle-CPU figure. boot.sh builds both with `gcc -m32 -c` and
 * `ld -m elf_i386 -T minimal-pvh.ld`.
 */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4                 /* namesz: "Xen\0" */
	.long 4                 /* descsz: one 32-bit physical address */
	.long 18                /* type: XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.balign 4
	.long pvh_entry

	.text
	.code32
	.globl pvh_entry
pvh_entry:
#ifndef HALT_FOREVER
	movw $0xf4, %dx
	xorl %eax, %eax
	outl %eax, %dx
#endif
	cli
1:	hlt                     /* without HALT_FOREVER, reached only without isa-debug-exit */
	jmp 1b
