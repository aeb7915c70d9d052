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
