//! Ending the VM: isa-debug-exit when QEMU has it, else halt forever.

use vdcnet_hal::port::outb;

/// The isa-debug-exit port vdcnet's harness configures (`iobase=0xf4`).
const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Written to isa-debug-exit on failure: QEMU exits with status (0x10 << 1) | 1 = 33.
pub const FAILURE_CODE: u8 = 0x10;

/// Ends the VM with the failure status (33 under QEMU with isa-debug-exit), or halts.
pub fn fail() -> ! {
    // SAFETY: port 0xf4 is isa-debug-exit under QEMU (which then exits) and unassigned on
    // other machines, where the write is ignored.
    unsafe { outb(DEBUG_EXIT_PORT, FAILURE_CODE) };
    halt()
}

/// Stops the CPU for good.
pub fn halt() -> ! {
    loop {
        vdcnet_hal::cpu::disable_interrupts();
        // SAFETY: with interrupts off, `hlt` parks the CPU; only an NMI wakes it and the
        // loop halts again.
        unsafe { core::arch::asm!("hlt", options(nomem, nostack)) };
    }
}
