//! The two 8259 PICs, remapped to vectors 32..48.
//!
//! The image's handlers for IRQs 1..15 *mask* the line and acknowledge it: a NIC's
//! level-triggered INTx line stays asserted until the driver reads the device's interrupt
//! status, which happens in the event loop, not in the handler. The loop unmasks the NIC
//! lines again (with [`unmask`]) right before it sleeps.

use crate::port::{inb, outb};

/// First vector of the remapped PICs (master 32..40, slave 40..48).
pub const PIC_BASE: u8 = 32;

/// Remaps the PICs and masks everything but the timer (IRQ 0) and the cascade (IRQ 2).
///
/// # Safety
/// The caller owns the PICs and has handlers for vectors 32..48 that acknowledge them,
/// with interrupts disabled.
pub unsafe fn init() {
    // SAFETY: the caller owns the PICs; this is the standard ICW1..ICW4 sequence.
    unsafe {
        outb(0x20, 0x11);
        outb(0xa0, 0x11);
        outb(0x21, PIC_BASE);
        outb(0xa1, PIC_BASE + 8);
        outb(0x21, 0x04);
        outb(0xa1, 0x02);
        outb(0x21, 0x01);
        outb(0xa1, 0x01);
        outb(0x21, !0x05);
        outb(0xa1, 0xff);
    }
}

/// Unmasks the IRQ lines set in `lines` (bit n = IRQ n); lines 8..16 also unmask the
/// cascade.
///
/// # Safety
/// The caller owns the PICs and has a handler for each line it unmasks.
pub unsafe fn unmask(lines: u16) {
    if lines == 0 {
        return;
    }
    // SAFETY: the caller owns the PICs; reading and writing the mask registers (OCW1) has no
    // other effect.
    unsafe {
        let mut master = lines as u8;
        if lines >> 8 != 0 {
            master |= 0x04;
            let slave = inb(0xa1) & !((lines >> 8) as u8);
            outb(0xa1, slave);
        }
        outb(0x21, inb(0x21) & !master);
    }
}

/// The local APIC's physical base address, or `None` if the APIC is disabled.
pub fn lapic_base() -> Option<usize> {
    let (lo, hi): (u32, u32);
    // SAFETY: IA32_APIC_BASE (0x1b) exists on every x86_64 CPU; reading it has no effect.
    unsafe {
        core::arch::asm!("rdmsr", in("ecx") 0x1bu32, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
    }
    let msr = (hi as u64) << 32 | lo as u64;
    (msr & (1 << 11) != 0).then_some((msr & 0xf_ffff_f000) as usize)
}

/// Vector of the local APIC's spurious interrupts (its handler only returns).
pub const APIC_SPURIOUS_VECTOR: u8 = 0xff;

/// Puts the local APIC in virtual-wire mode, so the 8259's interrupts reach the CPU: LINT0
/// delivers ExtINT (the PIC), LINT1 delivers NMI. PC firmware (SeaBIOS) does this; the
/// minimal firmware of `microvm` and a PVH boot do not, and after reset both LVT entries
/// are masked.
///
/// # Safety
/// The local APIC is at the address IA32_APIC_BASE names, identity-mapped; the IDT has a
/// handler for [`APIC_SPURIOUS_VECTOR`]; interrupts are disabled.
pub unsafe fn enable_virtual_wire() {
    let Some(base) = lapic_base() else {
        // The APIC is globally disabled: the PIC drives the CPU's INTR pin directly.
        return;
    };
    let reg = |off: usize| (base + off) as *mut u32;
    // SAFETY: the caller guarantees the APIC page is mapped; these are the architectural
    // register offsets (SVR 0xf0, LVT LINT0 0x350, LVT LINT1 0x360).
    unsafe {
        reg(0xf0).write_volatile(0x100 | APIC_SPURIOUS_VECTOR as u32);
        reg(0x350).write_volatile(0x700); // ExtINT, unmasked
        reg(0x360).write_volatile(0x400); // NMI
    }
}
