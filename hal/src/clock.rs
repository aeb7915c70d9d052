//! Time: a monotonic clock from the TSC, calibrated against the PIT; wall time from the CMOS
//! RTC; and the periodic tick (PIT channel 0 through the 8259 PIC) that wakes the CPU from
//! `hlt` so an idle appliance sleeps instead of spinning.

use crate::cpu::rdtsc;
use crate::port::{inb, outb};

/// The PIT's input clock, in Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// The tick rate of the idle timer when NICs cannot interrupt (polling every 1 ms).
pub const TICK_HZ: u64 = 1000;
/// The tick rate when every NIC interrupts on its own: ticks only drive protocol timers.
pub const TICK_HZ_WITH_NIC_IRQS: u64 = 100;
/// The interrupt vector the timer tick arrives on (PIC master remapped to 32..40).
pub const TIMER_VECTOR: u8 = 32;

const PIT_CH0: u16 = 0x40;
const PIT_CMD: u16 = 0x43;

/// A monotonic clock: microseconds since boot, from the TSC.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    tsc_hz: u64,
    tsc_at_boot: u64,
    /// Seconds since the Unix epoch when the clock was calibrated, from the RTC (0 if the
    /// machine has no readable RTC).
    wall_at_boot: u64,
}

/// Why calibration failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockError {
    /// The PIT counter never moved: there is no PIT on this machine.
    NoPit,
    /// The measured TSC rate is implausible (under 10 MHz or over 100 GHz).
    BadTscRate(u64),
}

impl Clock {
    /// Measures the TSC rate against the PIT (about 5 ms), reads the RTC, sets up the PICs
    /// and starts the periodic tick at [`TICK_HZ`].
    ///
    /// # Safety
    /// As for [`crate::pic::init`] and [`crate::pic::enable_virtual_wire`], and the caller
    /// owns the PIT and the RTC.
    pub unsafe fn init() -> Result<Clock, ClockError> {
        // SAFETY: the caller owns the PIT and PICs.
        let tsc_hz = unsafe { calibrate_tsc()? };
        // SAFETY: the caller owns the RTC.
        let wall_at_boot = unsafe { read_rtc() }.unwrap_or(0);
        let tsc_at_boot = rdtsc();
        // SAFETY: the caller owns the PIC and PIT and has a handler for the tick vector.
        unsafe {
            crate::pic::init();
            crate::pic::enable_virtual_wire();
            set_tick_hz(TICK_HZ);
        }
        Ok(Clock {
            tsc_hz,
            tsc_at_boot,
            wall_at_boot,
        })
    }

    /// The TSC frequency that calibration measured.
    pub fn tsc_hz(&self) -> u64 {
        self.tsc_hz
    }

    /// Microseconds since [`Clock::init`].
    pub fn now_us(&self) -> u64 {
        let ticks = rdtsc().wrapping_sub(self.tsc_at_boot);
        ((ticks as u128 * 1_000_000) / self.tsc_hz as u128) as u64
    }

    /// Nanoseconds since the Unix epoch (RTC at boot + monotonic time since), or `None` if
    /// the machine had no readable RTC.
    pub fn wall_ns(&self) -> Option<u64> {
        if self.wall_at_boot == 0 {
            return None;
        }
        let ticks = rdtsc().wrapping_sub(self.tsc_at_boot);
        let ns = ((ticks as u128 * 1_000_000_000) / self.tsc_hz as u128) as u64;
        Some(self.wall_at_boot * 1_000_000_000 + ns)
    }
}

/// Latches and reads PIT channel 0's current count.
///
/// # Safety
/// The caller owns the PIT.
unsafe fn pit_count() -> u16 {
    // SAFETY: the caller owns the PIT; the latch command (channel 0, latch) freezes the count
    // for the two reads that follow.
    unsafe {
        outb(PIT_CMD, 0x00);
        let lo = inb(PIT_CH0) as u16;
        let hi = inb(PIT_CH0) as u16;
        (hi << 8) | lo
    }
}

/// Counts TSC cycles over about 5 ms of PIT time.
///
/// # Safety
/// The caller owns the PIT.
unsafe fn calibrate_tsc() -> Result<u64, ClockError> {
    // Channel 0, lo/hi access, mode 2 (rate generator), binary, reload 0 (= 65536): one
    // period is 55 ms, longer than the measurement, so the count wraps at most once.
    // SAFETY: the caller owns the PIT.
    unsafe {
        outb(PIT_CMD, 0x34);
        outb(PIT_CH0, 0);
        outb(PIT_CH0, 0);
    }
    const WANT: u64 = PIT_HZ / 200; // 5 ms
                                    // SAFETY: the caller owns the PIT.
    let start = unsafe { pit_count() };
    let tsc0 = rdtsc();
    let mut elapsed: u64 = 0;
    let mut last = start;
    let mut unchanged = 0u32;
    while elapsed < WANT {
        // SAFETY: as above.
        let c = unsafe { pit_count() };
        if c == last {
            unchanged += 1;
            if unchanged > 5_000_000 {
                return Err(ClockError::NoPit);
            }
            continue;
        }
        unchanged = 0;
        // The counter runs down; going up means it reloaded.
        let step = if c < last {
            (last - c) as u64
        } else {
            last as u64 + (65536 - c as u64)
        };
        elapsed += step;
        last = c;
    }
    let tsc1 = rdtsc();
    let hz = ((tsc1 - tsc0) as u128 * PIT_HZ as u128 / elapsed as u128) as u64;
    if !(10_000_000..=100_000_000_000).contains(&hz) {
        return Err(ClockError::BadTscRate(hz));
    }
    Ok(hz)
}

/// Programs PIT channel 0 for `hz` periodic interrupts (19..=1_193_182).
///
/// # Safety
/// The caller owns the PIT.
pub unsafe fn set_tick_hz(hz: u64) {
    let reload = (PIT_HZ / hz.clamp(19, PIT_HZ)) as u16;
    // SAFETY: the caller owns the PIT; channel 0, lo/hi, mode 2.
    unsafe {
        outb(PIT_CMD, 0x34);
        outb(PIT_CH0, reload as u8);
        outb(PIT_CH0, (reload >> 8) as u8);
    }
}

/// Reads one CMOS register.
///
/// # Safety
/// The caller owns the RTC/CMOS ports.
unsafe fn cmos(reg: u8) -> u8 {
    // SAFETY: the caller owns the CMOS index/data ports; bit 7 of the index keeps NMIs
    // disabled as they are at boot.
    unsafe {
        outb(0x70, 0x80 | reg);
        inb(0x71)
    }
}

/// Reads the CMOS RTC as seconds since the Unix epoch (the RTC is taken to be UTC, as
/// QEMU and most hypervisors set it). `None` when there is no RTC or it reads nonsense.
///
/// # Safety
/// The caller owns the RTC/CMOS ports.
unsafe fn read_rtc() -> Option<u64> {
    // Read twice until two reads agree, so an update between reads cannot tear the value.
    let read = || {
        // SAFETY: the caller owns the CMOS ports.
        unsafe {
            let mut spins = 0;
            while cmos(0x0a) & 0x80 != 0 {
                spins += 1;
                if spins > 1_000_000 {
                    return None;
                }
            }
            Some([
                cmos(0x00),
                cmos(0x02),
                cmos(0x04),
                cmos(0x07),
                cmos(0x08),
                cmos(0x09),
                cmos(0x32),
            ])
        }
    };
    let mut a = read()?;
    for _ in 0..5 {
        let b = read()?;
        if a == b {
            break;
        }
        a = b;
    }
    // SAFETY: the caller owns the CMOS ports.
    let status_b = unsafe { cmos(0x0b) };
    if a.iter().all(|&v| v == 0xff) {
        return None;
    }
    let bcd = status_b & 0x04 == 0;
    let conv = |v: u8| if bcd { (v & 0x0f) + (v >> 4) * 10 } else { v };
    let sec = conv(a[0]) as u64;
    let min = conv(a[1]) as u64;
    let hour_raw = a[2];
    let pm = status_b & 0x02 == 0 && hour_raw & 0x80 != 0;
    let mut hour = conv(hour_raw & 0x7f) as u64;
    if status_b & 0x02 == 0 {
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let day = conv(a[3]) as u64;
    let month = conv(a[4]) as u64;
    let century = match conv(a[6]) {
        c @ 19..=21 => c as u64,
        _ => 20,
    };
    let year = century * 100 + conv(a[5]) as u64;
    if !(1..=31).contains(&day) || !(1..=12).contains(&month) || sec > 59 || min > 59 || hour > 23 {
        return None;
    }
    Some(unix_seconds(year, month, day, hour, min, sec))
}

/// Seconds since 1970-01-01 for a proleptic Gregorian UTC date and time.
pub fn unix_seconds(year: u64, month: u64, day: u64, hour: u64, min: u64, sec: u64) -> u64 {
    // Days from civil: shift the year to start in March so the leap day is last.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hour * 3600 + min * 60 + sec
}

#[cfg(test)]
mod tests {
    use super::unix_seconds;

    #[test]
    fn unix_seconds_matches_known_dates() {
        assert_eq!(unix_seconds(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(unix_seconds(2000, 3, 1, 0, 0, 0), 951_868_800);
        assert_eq!(unix_seconds(2026, 11, 27, 14, 42, 25), 1_795_790_545);
    }
}
