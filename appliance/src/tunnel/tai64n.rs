//! TAI64N timestamps for handshake initiations (whitepaper section 5.1).
//!
//! The responder remembers the greatest timestamp it has accepted from each peer and
//! rejects any initiation that does not carry a greater one, which stops replayed
//! initiations. So the stamps we send must be strictly increasing.
//!
//! The core never reads a clock: the caller passes wall time as nanoseconds since the Unix
//! epoch (from the RTC). Within one boot, [`TaiClock`] keeps the stamps strictly monotonic
//! even if the wall clock stalls or steps back (it then uses the last stamp plus 1 ns).
//! Nothing is persisted: across a reboot, monotonicity relies on the RTC having advanced
//! past the last stamp sent before the reboot, which holds for any working RTC since a
//! reboot takes far longer than the sub-second whitening below.

/// Length of a TAI64N label on the wire.
pub const TAI64N_LEN: usize = 12;

/// TAI64 label of the Unix epoch: 2^62 plus the 10 s TAI-UTC offset of 1970.
const TAI64_EPOCH: u64 = 0x4000_0000_0000_000a;

/// The low 24 bits of the nanoseconds are cleared (about 16.7 ms granularity), so the
/// stamp does not leak a precise clock to a passive observer.
const WHITEN_MASK: u32 = !0x00ff_ffff;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A TAI64N label: 8 bytes of big-endian seconds then 4 of big-endian nanoseconds. The byte
/// order makes the derived `Ord` the chronological order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tai64n(pub [u8; TAI64N_LEN]);

impl Tai64n {
    fn from_parts(secs: u64, nanos: u32) -> Self {
        let mut b = [0u8; TAI64N_LEN];
        b[..8].copy_from_slice(&secs.to_be_bytes());
        b[8..].copy_from_slice(&nanos.to_be_bytes());
        Self(b)
    }

    fn parts(&self) -> (u64, u32) {
        let mut s = [0u8; 8];
        s.copy_from_slice(&self.0[..8]);
        let mut n = [0u8; 4];
        n.copy_from_slice(&self.0[8..]);
        (u64::from_be_bytes(s), u32::from_be_bytes(n))
    }

    /// The stamp for `wall_ns` nanoseconds since the Unix epoch, whitened.
    pub fn from_unix_nanos(wall_ns: u64) -> Self {
        let secs = TAI64_EPOCH + wall_ns / NANOS_PER_SEC;
        let nanos = (wall_ns % NANOS_PER_SEC) as u32 & WHITEN_MASK;
        Self::from_parts(secs, nanos)
    }

    /// The next representable stamp (1 ns later).
    fn successor(&self) -> Self {
        let (secs, nanos) = self.parts();
        if u64::from(nanos) + 1 >= NANOS_PER_SEC {
            Self::from_parts(secs + 1, 0)
        } else {
            Self::from_parts(secs, nanos + 1)
        }
    }
}

/// Produces strictly increasing stamps from caller-supplied wall time.
#[derive(Debug, Default, Clone)]
pub struct TaiClock {
    last: Option<Tai64n>,
}

impl TaiClock {
    /// A stamp for `wall_ns`, or last + 1 ns if that would not be greater than the last one.
    pub fn stamp(&mut self, wall_ns: u64) -> Tai64n {
        let mut t = Tai64n::from_unix_nanos(wall_ns);
        if let Some(last) = self.last {
            if t <= last {
                t = last.successor();
            }
        }
        self.last = Some(t);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_encodes_tai64_epoch_and_whitened_nanos() {
        // 1 s and 0x0123_4567 ns after the Unix epoch.
        let t = Tai64n::from_unix_nanos(1_000_000_000 + 0x0123_4567);
        assert_eq!(t.0, [0x40, 0, 0, 0, 0, 0, 0, 0x0b, 0x01, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn stamps_stay_strictly_monotonic_when_wall_clock_stalls_or_steps_back() {
        let mut c = TaiClock::default();
        let a = c.stamp(5_000_000_000);
        let b = c.stamp(5_000_000_000);
        let d = c.stamp(4_000_000_000);
        let e = c.stamp(6_000_000_000);
        assert!(a < b && b < d && d < e);
        assert_eq!(e, Tai64n::from_unix_nanos(6_000_000_000));
    }

    #[test]
    fn successor_carries_into_seconds() {
        let t = Tai64n::from_parts(7, 999_999_999);
        assert_eq!(t.successor(), Tai64n::from_parts(8, 0));
    }
}
