//! 16550 UART, polled.

use crate::port::{inb, outb};

/// COM1: the human-readable console.
pub const COM1: u16 = 0x3f8;
/// COM2: defmt log frames.
pub const COM2: u16 = 0x2f8;

/// A 16550-compatible UART at a fixed I/O port base.
pub struct Serial {
    base: u16,
}

impl Serial {
    /// Programs the UART at `base` for 115200 8N1 with FIFOs on and interrupts off.
    ///
    /// # Safety
    /// `base` is the I/O base of a 16550 (or of nothing: a missing UART reads as 0xff and
    /// ignores writes), and nothing else drives that UART.
    pub unsafe fn new(base: u16) -> Serial {
        // SAFETY: the caller owns the UART at `base`.
        unsafe {
            outb(base + 1, 0x00); // no interrupts
            outb(base + 3, 0x80); // DLAB on
            outb(base, 0x01); // divisor 1: 115200 baud
            outb(base + 1, 0x00);
            outb(base + 3, 0x03); // 8N1, DLAB off
            outb(base + 2, 0xc7); // FIFO on, cleared, 14-byte threshold
            outb(base + 4, 0x03); // DTR + RTS
        }
        Serial { base }
    }

    /// A handle to a UART that [`Serial::new`] already programmed (for fault handlers,
    /// which must print without taking locks).
    ///
    /// # Safety
    /// As for [`Serial::new`], and the UART was already programmed.
    pub const unsafe fn attach(base: u16) -> Serial {
        Serial { base }
    }

    /// Sends one byte, waiting for room in the transmit holding register.
    pub fn write_byte(&mut self, b: u8) {
        // SAFETY: `self` owns the UART (constructor contract); LSR reads have no side
        // effect on transmission. A missing UART reads 0xff, so the loop ends at once.
        unsafe {
            let mut spins = 0u32;
            while inb(self.base + 5) & 0x20 == 0 && spins < 100_000 {
                spins += 1;
                core::hint::spin_loop();
            }
            outb(self.base, b);
        }
    }

    /// Sends `bytes` as they are.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_byte(b);
        }
    }
}

impl core::fmt::Write for Serial {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
        Ok(())
    }
}
