//! x86 port I/O.
//!
//! These are `unsafe` because a write to the wrong port can reprogram hardware under the
//! kernel's feet; callers name the device they own.

use core::arch::asm;

/// Reads a byte from `port`.
///
/// # Safety
/// The caller owns the device behind `port` and reading it has no effect the caller does
/// not expect (some ports clear state when read).
#[inline]
pub unsafe fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: the caller guarantees the port belongs to a device it owns.
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Writes a byte to `port`.
///
/// # Safety
/// The caller owns the device behind `port`.
#[inline]
pub unsafe fn outb(port: u16, v: u8) {
    // SAFETY: the caller guarantees the port belongs to a device it owns.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a 32-bit word from `port`.
///
/// # Safety
/// As for [`inb`].
#[inline]
pub unsafe fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: the caller guarantees the port belongs to a device it owns.
    unsafe {
        asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Writes a 32-bit word to `port`.
///
/// # Safety
/// As for [`outb`].
#[inline]
pub unsafe fn outl(port: u16, v: u32) {
    // SAFETY: the caller guarantees the port belongs to a device it owns.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    };
}
