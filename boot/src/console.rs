//! The two serial ports: COM1 is the human console (banner, config errors, fault reports,
//! the `vdcnet: ready` line); COM2 carries defmt frames for the host to decode.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use vdcnet_hal::serial::{Serial, COM1, COM2};

/// Programs both UARTs.
///
/// # Safety
/// Called once at boot; the kernel owns COM1 and COM2.
pub unsafe fn init() {
    // SAFETY: forwarded from the caller.
    unsafe {
        Serial::new(COM1);
        Serial::new(COM2);
    }
}

/// The human console. Single-threaded kernel, and interrupt handlers never print, so
/// every writer is the only one while it writes.
pub fn console() -> Serial {
    // SAFETY: COM1 was programmed by `init`; see above for exclusivity.
    unsafe { Serial::attach(COM1) }
}

/// Prints a line on the console.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let mut c = $crate::image::console::console();
        let _ = writeln!(c, $($arg)*);
    }};
}

/// TSC rate and TSC at boot, for defmt timestamps (0 until the clock is calibrated).
pub static TSC_HZ: AtomicU64 = AtomicU64::new(0);
pub static TSC_BOOT: AtomicU64 = AtomicU64::new(0);

defmt::timestamp!("{=u64:us}", {
    let hz = TSC_HZ.load(Ordering::Relaxed);
    if hz == 0 {
        0
    } else {
        let ticks = vdcnet_hal::cpu::rdtsc().wrapping_sub(TSC_BOOT.load(Ordering::Relaxed));
        ((ticks as u128 * 1_000_000) / hz as u128) as u64
    }
});

#[defmt::global_logger]
struct Logger;

static TAKEN: AtomicBool = AtomicBool::new(false);
static mut ENCODER: defmt::Encoder = defmt::Encoder::new();

fn write_com2(bytes: &[u8]) {
    // SAFETY: COM2 was programmed by `init`; only the defmt logger writes to it, under
    // TAKEN.
    let mut s = unsafe { Serial::attach(COM2) };
    s.write_bytes(bytes);
}

// SAFETY: `acquire`/`release` bracket every frame and TAKEN makes a nested acquire (which
// could only come from a panic inside a log call) fail loudly instead of interleaving
// frames; the kernel is single-core and interrupt handlers do not log.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        if TAKEN.swap(true, Ordering::Acquire) {
            let _ = writeln!(console(), "vdcnet: defmt logger re-entered");
            return;
        }
        // SAFETY: TAKEN gives us exclusive access to ENCODER.
        unsafe { (*(&raw mut ENCODER)).start_frame(write_com2) }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        // SAFETY: called after `acquire` by the same (only) context.
        unsafe { (*(&raw mut ENCODER)).end_frame(write_com2) }
        TAKEN.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: called between `acquire` and `release`.
        unsafe { (*(&raw mut ENCODER)).write(bytes, write_com2) }
    }
}
