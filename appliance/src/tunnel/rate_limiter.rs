//! Handshake load detection and per-source rate limiting (whitepaper section 5.3).
//!
//! Every handshake message with a valid mac1 is counted. When more than
//! `handshakes_per_second` arrive within one second (or the caller says so with
//! [`HandshakeLimiter::set_under_load`]), we are *under load* for at least one more second:
//! messages then need a valid mac2 (else they get a cookie reply), and each source address
//! may pass only [`PER_SOURCE_PER_SECOND`] handshakes per second (burst
//! [`PER_SOURCE_BURST`]). Sources share a fixed table of token buckets indexed by a keyed
//! hash of the address, so the table is bounded and an attacker cannot aim collisions.

use core::net::IpAddr;

use rand_core::CryptoRngCore;
use smoltcp::time::{Duration, Instant};

use super::crypto::mac;

/// Default threshold of handshake messages per second before we consider ourselves loaded.
pub const DEFAULT_HANDSHAKES_PER_SECOND: u32 = 100;
/// Sustained handshakes per second one source may send while we are under load.
pub const PER_SOURCE_PER_SECOND: u64 = 20;
/// Burst one source may send while we are under load.
pub const PER_SOURCE_BURST: u64 = 5;
/// Number of per-source buckets.
const BUCKETS: usize = 128;

const COST_US: u64 = 1_000_000 / PER_SOURCE_PER_SECOND;
const BUCKET_MAX_US: u64 = COST_US * PER_SOURCE_BURST;
const WINDOW: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug)]
struct Bucket {
    addr: [u8; 16],
    tokens_us: u64,
    last: Instant,
}

const EMPTY_BUCKET: Bucket = Bucket {
    addr: [0xff; 16],
    tokens_us: BUCKET_MAX_US,
    last: Instant::ZERO,
};

/// Decides whether we are under load and rate-limits sources when we are.
#[cfg_attr(debug_assertions, derive(Clone))] // See `Device`.
pub struct HandshakeLimiter {
    handshakes_per_second: u32,
    window_start: Instant,
    count: u32,
    loaded_until: Option<Instant>,
    forced: bool,
    hash_key: [u8; 16],
    buckets: [Bucket; BUCKETS],
}

impl core::fmt::Debug for HandshakeLimiter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HandshakeLimiter")
            .field("handshakes_per_second", &self.handshakes_per_second)
            .field("count", &self.count)
            .field("forced", &self.forced)
            .finish_non_exhaustive()
    }
}

fn addr_bytes(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

impl HandshakeLimiter {
    /// A limiter that declares load above `handshakes_per_second`.
    pub fn new(handshakes_per_second: u32, rng: &mut impl CryptoRngCore) -> Self {
        let mut hash_key = [0u8; 16];
        rng.fill_bytes(&mut hash_key);
        Self {
            handshakes_per_second,
            window_start: Instant::ZERO,
            count: 0,
            loaded_until: None,
            forced: false,
            hash_key,
            buckets: [EMPTY_BUCKET; BUCKETS],
        }
    }

    /// Forces (or stops forcing) the under-load behaviour, e.g. when the caller's receive
    /// queue is backing up.
    pub fn set_under_load(&mut self, under_load: bool) {
        self.forced = under_load;
    }

    /// Counts one handshake message (with a valid mac1) and says whether we are under load.
    pub fn note_handshake(&mut self, now: Instant) -> bool {
        if now >= self.window_start + WINDOW || now < self.window_start {
            self.window_start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        if self.count > self.handshakes_per_second {
            self.loaded_until = Some(now + WINDOW);
        }
        self.is_under_load(now)
    }

    /// Whether we are under load at `now`.
    pub fn is_under_load(&self, now: Instant) -> bool {
        self.forced || self.loaded_until.is_some_and(|t| now < t)
    }

    /// Takes one token from `src`'s bucket; `false` if it has none left.
    pub fn allow_source(&mut self, now: Instant, src: IpAddr) -> bool {
        let addr = addr_bytes(src);
        let h = mac(&self.hash_key, &[&addr]);
        let i = usize::from(u16::from_le_bytes([h[0], h[1]])) % BUCKETS;
        let b = &mut self.buckets[i];
        if b.addr != addr {
            // A different source hashed here: it starts with a full bucket.
            *b = Bucket {
                addr,
                tokens_us: BUCKET_MAX_US,
                last: now,
            };
        }
        let elapsed = if now > b.last {
            (now - b.last).total_micros()
        } else {
            0
        };
        b.tokens_us = (b.tokens_us + elapsed).min(BUCKET_MAX_US);
        b.last = now;
        if b.tokens_us >= COST_US {
            b.tokens_us -= COST_US;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn load_is_declared_above_the_threshold_and_lasts_a_second() {
        let mut l = HandshakeLimiter::new(3, &mut OsRng);
        let t = Instant::from_secs(5);
        assert!(!l.note_handshake(t));
        assert!(!l.note_handshake(t));
        assert!(!l.note_handshake(t));
        assert!(l.note_handshake(t));
        assert!(l.is_under_load(t + Duration::from_millis(999)));
        assert!(!l.is_under_load(t + Duration::from_secs(1)));
    }

    #[test]
    fn forced_load_holds_until_cleared() {
        let mut l = HandshakeLimiter::new(100, &mut OsRng);
        l.set_under_load(true);
        assert!(l.note_handshake(Instant::ZERO));
        l.set_under_load(false);
        assert!(!l.is_under_load(Instant::ZERO));
    }

    #[test]
    fn each_source_gets_a_burst_then_its_steady_rate() {
        let mut l = HandshakeLimiter::new(100, &mut OsRng);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let t = Instant::from_secs(1);
        for _ in 0..PER_SOURCE_BURST {
            assert!(l.allow_source(t, a));
        }
        assert!(!l.allow_source(t, a));
        assert!(l.allow_source(t + Duration::from_millis(50), a));
        assert!(!l.allow_source(t + Duration::from_millis(50), a));
        // Another source is not affected.
        assert!(l.allow_source(t + Duration::from_millis(50), b));
    }
}
