//! Response rate limiting over UDP: a token bucket per client network in a fixed table.
//!
//! A UDP query's source address can be forged, so a server that answers every query
//! reflects floods at whoever the forger names. Each client network (an IPv4 /24, an
//! IPv6 /56) gets [`RateLimit`] responses per second with a burst of as many; past that,
//! every second response is a *slip* (a TC=1 answer with the question only, so a real
//! client retries over TCP, which cannot be forged) and the rest are dropped.
//!
//! The table has [`RRL_ENTRIES`] buckets in sets of [`RRL_WAYS`]: a network hashes to one
//! set and, when none of its buckets is the network's, takes the least recently used one.
//! A flood from many networks therefore costs no memory and only forgets buckets; a
//! forgotten network starts again with a full bucket (the limiter errs on answering).

use alloc::vec;
use alloc::vec::Vec;
use core::net::IpAddr;

use smoltcp::time::Instant;

/// Buckets in the table.
pub const RRL_ENTRIES: usize = 1024;
/// Buckets per set.
pub const RRL_WAYS: usize = 4;

/// Milli-tokens in one response.
const TOKEN: u64 = 1000;

/// What to do with one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// Send a TC=1 answer instead.
    Slip,
    /// Send nothing.
    Drop,
}

#[derive(Clone, Copy, Default)]
struct Bucket {
    /// 0 for an unused bucket; else the network with a tag bit (see [`key`]).
    key: u128,
    /// Milli-tokens left.
    tokens: u64,
    /// Milliseconds of the last refill (and use).
    last_ms: i64,
    /// Whether the next limited response slips.
    slip_next: bool,
}

/// The limiter; see the module doc.
pub struct RateLimit {
    per_second: u64,
    buckets: Vec<Bucket>,
    /// Buckets taken over from another network.
    pub evictions: u64,
}

/// A client's network as a table key: the /24 or /56 prefix, with a bit that keeps the
/// two families apart and makes every key non-zero.
fn key(client: IpAddr) -> u128 {
    match client {
        IpAddr::V4(v4) => (1 << 64) | u128::from(u32::from(v4) >> 8),
        IpAddr::V6(v6) => (2 << 64) | u128::from((u128::from(v6) >> 72) as u64),
    }
}

/// Spreads keys over the sets (splitmix64's finaliser).
fn set_of(key: u128) -> usize {
    let mut x = (key as u64) ^ ((key >> 64) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x as usize) % (RRL_ENTRIES / RRL_WAYS)
}

impl RateLimit {
    /// `per_second` responses per second per client network (at least 1).
    pub fn new(per_second: u16) -> RateLimit {
        RateLimit {
            per_second: u64::from(per_second.max(1)),
            buckets: vec![Bucket::default(); RRL_ENTRIES],
            evictions: 0,
        }
    }

    /// Accounts for one response to `client` at `now`.
    pub fn check(&mut self, now: Instant, client: IpAddr) -> Verdict {
        let key = key(client);
        let now_ms = now.total_millis();
        let full = self.per_second * TOKEN;
        let start = set_of(key) * RRL_WAYS;
        let set = &mut self.buckets[start..start + RRL_WAYS];
        let way = match set.iter().position(|b| b.key == key) {
            Some(way) => way,
            None => {
                let (way, old) = set
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, b)| (b.key != 0, b.last_ms))
                    .map(|(i, b)| (i, b.key))
                    .unwrap_or((0, 0));
                if old != 0 {
                    self.evictions += 1;
                }
                set[way] = Bucket {
                    key,
                    tokens: full,
                    last_ms: now_ms,
                    slip_next: true,
                };
                way
            }
        };
        let b = &mut set[way];
        // A clock that went backwards refills nothing.
        let elapsed = u64::try_from(now_ms.saturating_sub(b.last_ms)).unwrap_or(0);
        b.tokens = b
            .tokens
            .saturating_add(elapsed.saturating_mul(self.per_second))
            .min(full);
        b.last_ms = b.last_ms.max(now_ms);
        if b.tokens >= TOKEN {
            b.tokens -= TOKEN;
            return Verdict::Send;
        }
        b.slip_next = !b.slip_next;
        if b.slip_next {
            Verdict::Drop
        } else {
            Verdict::Slip
        }
    }

    /// Buckets in use (for tests and the stats line).
    pub fn used(&self) -> usize {
        self.buckets.iter().filter(|b| b.key != 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn a_network_gets_its_rate_then_alternating_slips_and_drops_then_refills() {
        let mut r = RateLimit::new(5);
        let t = Instant::from_millis(1_000);
        for i in 0..5 {
            assert_eq!(r.check(t, v4(192, 0, 2, i)), Verdict::Send, "{i}");
        }
        // Another host of the same /24 shares the bucket.
        assert_eq!(r.check(t, v4(192, 0, 2, 200)), Verdict::Slip);
        assert_eq!(r.check(t, v4(192, 0, 2, 1)), Verdict::Drop);
        assert_eq!(r.check(t, v4(192, 0, 2, 1)), Verdict::Slip);
        assert_eq!(r.check(t, v4(192, 0, 2, 1)), Verdict::Drop);
        // Another /24 is not limited.
        assert_eq!(r.check(t, v4(192, 0, 3, 1)), Verdict::Send);
        // 200 ms later one response's worth has come back.
        let t = Instant::from_millis(1_200);
        assert_eq!(r.check(t, v4(192, 0, 2, 1)), Verdict::Send);
        assert_ne!(r.check(t, v4(192, 0, 2, 1)), Verdict::Send);
        // A clock going backwards changes nothing.
        assert_ne!(
            r.check(Instant::from_millis(0), v4(192, 0, 2, 1)),
            Verdict::Send
        );
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_slash_56() {
        let mut r = RateLimit::new(1);
        let t = Instant::from_millis(0);
        let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0x00ff, 0, 0, 0, 1));
        let same = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0x0001, 9, 9, 9, 9));
        let other = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0x0100, 0, 0, 0, 1));
        assert_eq!(r.check(t, a), Verdict::Send);
        assert_ne!(r.check(t, same), Verdict::Send);
        assert_eq!(r.check(t, other), Verdict::Send);
    }

    #[test]
    fn a_flood_from_many_networks_stays_in_the_table_and_forgets_the_oldest() {
        let mut r = RateLimit::new(2);
        for i in 0..100_000u32 {
            let [_, a, b, c] = i.to_be_bytes();
            r.check(Instant::from_millis(i64::from(i)), v4(a, b, c, 1));
        }
        assert!(r.used() <= RRL_ENTRIES);
        assert!(r.evictions >= 100_000 - RRL_ENTRIES as u64);
        // A legitimate client arriving during the flood is answered.
        assert_eq!(
            r.check(Instant::from_millis(100_001), v4(198, 51, 100, 7)),
            Verdict::Send
        );
    }
}
