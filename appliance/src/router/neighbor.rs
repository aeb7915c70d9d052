//! The neighbour cache of one link: IP address → MAC, learned from ARP and NDP, bounded,
//! with the probe schedule of unresolved entries and the link's probe budget. The packets
//! that wait for an answer are held by the router's [`super::ring::Pending`] pool, not here.
//!
//! Built to survive forged traffic the way Linux's neighbour table does. An unresolved
//! address (*incomplete*) is probed at most once per [`RETRY`]; after [`MAX_PROBES`]
//! unanswered probes it is *failed* and stays so for [`FAILED_TIME`]: packets to it are
//! dropped at once and nobody is asked again meanwhile. On top of that, every probe the
//! link sends (ARP request, neighbour solicitation, re-confirmation) spends a token of a
//! bucket refilled at [`PROBE_RATE`] per second; a probe without a token is suppressed
//! and counted, so a flood of packets for made-up addresses costs at most that many
//! broadcasts a second. When the cache is full, newcomers take the place of failed and
//! incomplete entries first; an answered entry used in the last [`IN_USE`], or an
//! incomplete one probed in the last [`RETRY`], is never evicted, so the neighbours that
//! carry traffic survive a flood of strangers, and a flood of more strangers than the
//! cache holds is refused (counted) rather than churned through it.

use alloc::vec::Vec;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, IpAddress};

/// Entries per link.
pub const NEIGHBORS: usize = 64;
/// How long an answer is trusted before it is re-confirmed (the entry keeps being used
/// meanwhile, as Linux's STALE state does).
const REACHABLE: Duration = Duration::from_secs(60);
/// Time between probes of one address.
pub const RETRY: Duration = Duration::from_secs(1);
/// Unanswered probes before the address is declared failed.
pub const MAX_PROBES: u8 = 3;
/// How long a failed address is remembered: packets to it are dropped without a probe.
pub const FAILED_TIME: Duration = Duration::from_secs(20);
/// Probes a link may send per second, over all its addresses (the bucket's refill).
pub const PROBE_RATE: u32 = 20;
/// Probes a link may send at once after a quiet spell (the bucket's size).
pub const PROBE_BURST: u32 = 20;
/// An answered entry used this recently is not evicted for a newcomer.
pub const IN_USE: Duration = Duration::from_secs(10);

/// One probe, in the bucket's units (thousandths of a probe, refilled per millisecond).
const TOKEN: u64 = 1000;

#[derive(Clone, Copy, Debug)]
enum State {
    /// Asked (or about to be asked) who has the address: `sent` probes so far, the last
    /// one at `last`.
    Incomplete { sent: u8, last: Option<Instant> },
    /// Answered: the MAC, when it was last confirmed and when we last re-probed it.
    Known {
        mac: EthernetAddress,
        confirmed: Instant,
        probed: Instant,
    },
    /// Never answered; remembered since `since`.
    Failed { since: Instant },
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    ip: IpAddress,
    state: State,
    /// Last use, for eviction.
    used: Instant,
}

/// What the caller should do to send to an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Send to this MAC; `probe` asks to re-confirm it in the background (the probe's
    /// token is already spent).
    Ready { mac: EthernetAddress, probe: bool },
    /// Unknown: send a probe now (its token is spent) and hold the packet.
    Probe,
    /// A probe is out, or the link's budget is spent: hold the packet.
    Wait,
    /// The address did not answer: drop the packet (and any held for it).
    Failed,
    /// The cache is full of neighbours in use: drop the packet.
    Full,
}

/// The cache of one link.
pub struct NeighborCache {
    entries: Vec<Entry>,
    capacity: usize,
    /// The probe bucket, in thousandths of a probe, as of `refilled`.
    tokens: u64,
    refilled: Instant,
    /// Entries evicted to make room.
    pub evicted: u64,
    /// Probes the link's budget suppressed (at most one per entry per [`RETRY`]).
    pub suppressed: u64,
    /// Newcomers refused because every entry was in use.
    pub refused: u64,
}

impl NeighborCache {
    pub fn new(capacity: usize) -> NeighborCache {
        NeighborCache {
            entries: Vec::with_capacity(capacity),
            capacity,
            tokens: u64::from(PROBE_BURST) * TOKEN,
            refilled: Instant::ZERO,
            evicted: 0,
            suppressed: 0,
            refused: 0,
        }
    }

    /// Number of entries.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Takes one probe's token from the link's bucket; counts a suppressed probe if there
    /// is none.
    fn take_token(&mut self, now: Instant) -> bool {
        let mut elapsed = 0;
        if now > self.refilled {
            elapsed = (now - self.refilled).total_millis();
            self.refilled = now;
        }
        let full = u64::from(PROBE_BURST) * TOKEN;
        self.tokens = self
            .tokens
            .saturating_add(elapsed.saturating_mul(u64::from(PROBE_RATE)))
            .min(full);
        if self.tokens >= TOKEN {
            self.tokens -= TOKEN;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// How to send to `ip` now; creates an entry for an unknown address (in place of a
    /// failed, incomplete or idle one when full).
    pub fn lookup(&mut self, ip: IpAddress, now: Instant) -> Lookup {
        let Some(i) = self.entries.iter().position(|e| e.ip == ip) else {
            let fresh = Entry {
                ip,
                state: State::Incomplete {
                    sent: 0,
                    last: None,
                },
                used: now,
            };
            if !self.insert(fresh, now, false) {
                return Lookup::Full;
            }
            return self.lookup(ip, now);
        };
        self.entries[i].used = now;
        match self.entries[i].state {
            State::Known {
                mac,
                confirmed,
                probed,
            } => {
                let due = now - confirmed > REACHABLE && now - probed >= RETRY;
                let probe = due && self.take_token(now);
                if due {
                    // Sent or suppressed, the next try is a RETRY away.
                    self.entries[i].state = State::Known {
                        mac,
                        confirmed,
                        probed: now,
                    };
                }
                Lookup::Ready { mac, probe }
            }
            State::Failed { since } if now - since < FAILED_TIME => Lookup::Failed,
            State::Failed { .. } => {
                // Forgotten: a new round of probes.
                self.entries[i].state = State::Incomplete {
                    sent: 0,
                    last: None,
                };
                self.lookup(ip, now)
            }
            State::Incomplete { last: Some(t), .. } if now - t < RETRY => Lookup::Wait,
            State::Incomplete { sent, .. } if sent >= MAX_PROBES => {
                self.entries[i].state = State::Failed { since: now };
                Lookup::Failed
            }
            State::Incomplete { sent, .. } => {
                // A suppressed probe does not count as a try, but the next one is a RETRY
                // away all the same: each entry asks for at most one probe a second.
                let probe = self.take_token(now);
                self.entries[i].state = State::Incomplete {
                    sent: sent + u8::from(probe),
                    last: Some(now),
                };
                if probe {
                    Lookup::Probe
                } else {
                    Lookup::Wait
                }
            }
        }
    }

    /// Records that `ip` is at `mac`. An unknown address is added only when `create` (an
    /// answer to us, or a request aimed at us); otherwise only known entries are updated,
    /// so strangers on the wire cannot flood the cache.
    pub fn learn(&mut self, ip: IpAddress, mac: EthernetAddress, now: Instant, create: bool) {
        let known = State::Known {
            mac,
            confirmed: now,
            probed: now,
        };
        if let Some(e) = self.entries.iter_mut().find(|e| e.ip == ip) {
            e.state = known;
            return;
        }
        if create {
            // Not in use until we send to it: a flood of requests from strangers cannot
            // pin the cache.
            let used = now - IN_USE;
            self.insert(
                Entry {
                    ip,
                    state: known,
                    used,
                },
                now,
                true,
            );
        }
    }

    /// Adds `entry`, evicting when full: a failed entry whose memory ran out, else the
    /// least recently used incomplete one not asked about in the last [`RETRY`], else the
    /// oldest failed one, else an answered one idle for [`IN_USE`]. `false` (and counted)
    /// if every entry is in use or waiting for an answer: a flood of strangers is turned
    /// away at the door instead of churning the cache (and the probe budget). An `answer`
    /// (a neighbour that spoke to us) may also take the place of an incomplete entry that
    /// is waiting, so a real newcomer gets in during a flood.
    fn insert(&mut self, entry: Entry, now: Instant, answer: bool) -> bool {
        if self.entries.len() < self.capacity {
            self.entries.push(entry);
            return true;
        }
        let rank = |e: &Entry| match e.state {
            State::Failed { since } if now - since >= FAILED_TIME => Some((0, since)),
            // An address asked about in the last RETRY is waiting for its answer.
            // An answer (a confirmed neighbour) may take its place all the same.
            State::Incomplete { last: Some(t), .. } if now - t < RETRY && !answer => None,
            State::Incomplete { .. } => Some((1, e.used)),
            State::Failed { since } => Some((2, since)),
            State::Known { .. } if now - e.used >= IN_USE => Some((3, e.used)),
            State::Known { .. } => None,
        };
        let victim = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| rank(e).map(|r| (r, i)))
            .min()
            .map(|(_, i)| i);
        match victim {
            Some(i) => {
                self.entries[i] = entry;
                self.evicted += 1;
                true
            }
            None => {
                self.refused += 1;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use smoltcp::wire::Ipv4Address;

    fn ip(n: u8) -> IpAddress {
        IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, n))
    }
    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn unknown_address_is_probed_then_waits_then_resolves() {
        let mut c = NeighborCache::new(4);
        let t = Instant::from_secs(10);
        assert_eq!(c.lookup(ip(1), t), Lookup::Probe);
        assert_eq!(c.lookup(ip(1), t + ms(10)), Lookup::Wait);
        c.learn(ip(1), MAC, t + ms(20), false);
        assert_eq!(
            c.lookup(ip(1), t + ms(30)),
            Lookup::Ready {
                mac: MAC,
                probe: false
            }
        );
    }

    #[test]
    fn an_address_is_probed_at_most_once_a_second() {
        let mut c = NeighborCache::new(4);
        let t = Instant::from_secs(10);
        // A packet every 10 ms for 2.5 s: probes at 0 s, 1 s and 2 s only.
        let mut probes = vec![];
        for k in 0..250 {
            let now = t + ms(10 * k);
            if c.lookup(ip(1), now) == Lookup::Probe {
                probes.push((now - t).total_millis());
            }
        }
        assert_eq!(probes, [0, 1000, 2000]);
        assert_eq!(c.suppressed, 0);
    }

    #[test]
    fn a_failure_is_remembered_then_forgotten() {
        let mut c = NeighborCache::new(4);
        let mut t = Instant::from_secs(10);
        let mut seen = vec![];
        for _ in 0..4 {
            seen.push(c.lookup(ip(1), t));
            t += RETRY;
        }
        assert_eq!(
            seen,
            [Lookup::Probe, Lookup::Probe, Lookup::Probe, Lookup::Failed]
        );
        let failed_at = t - RETRY;
        // Remembered: every packet is refused at once, nothing is probed.
        let mut now = failed_at;
        while now - failed_at < FAILED_TIME {
            assert_eq!(c.lookup(ip(1), now), Lookup::Failed);
            now += ms(250);
        }
        // Then forgotten: a new round of probes starts.
        assert_eq!(c.lookup(ip(1), failed_at + FAILED_TIME), Lookup::Probe);
    }

    #[test]
    fn a_late_answer_revives_a_failed_entry() {
        let mut c = NeighborCache::new(4);
        let mut t = Instant::from_secs(10);
        for _ in 0..=MAX_PROBES {
            c.lookup(ip(1), t);
            t += RETRY;
        }
        assert_eq!(c.lookup(ip(1), t), Lookup::Failed);
        c.learn(ip(1), MAC, t, false);
        assert_eq!(
            c.lookup(ip(1), t),
            Lookup::Ready {
                mac: MAC,
                probe: false
            }
        );
    }

    #[test]
    fn the_link_spends_at_most_its_probe_budget() {
        let mut c = NeighborCache::new(NEIGHBORS);
        let t = Instant::from_secs(100);
        // 150 made-up addresses, each sending every 10 ms for 5 s: 75,000 packets.
        let mut probes = 0u64;
        for k in 0..500u64 {
            for n in 0..150u32 {
                let a = IpAddress::Ipv4(Ipv4Address::from_bits(0x0a01_0000 + n));
                if c.lookup(a, t + ms(10 * k)) == Lookup::Probe {
                    probes += 1;
                }
            }
        }
        // The burst, then PROBE_RATE a second over the remaining 4.99 s.
        let budget = u64::from(PROBE_BURST) + u64::from(PROBE_RATE) * 5;
        assert!(probes <= budget, "{probes} probes > {budget}");
        // Entries retry once a second, so the budget is spent in steps of a second.
        assert!(
            probes >= budget / 2,
            "{probes} probes: the budget went unused"
        );
        // Every address asked about once a second at most, whether or not it was probed.
        // Every address asked for a probe once a second at most, sent or suppressed...
        assert!(c.suppressed > 100, "suppressed {}", c.suppressed);
        assert!(
            probes + c.suppressed <= 150 * 5,
            "suppressed {}",
            c.suppressed
        );
        // ...and the strangers the full cache had no room for were turned away.
        assert!(c.refused > 10_000, "refused {}", c.refused);
        assert_eq!(c.len(), NEIGHBORS);
    }

    #[test]
    fn the_budget_refills_over_time() {
        let mut c = NeighborCache::new(NEIGHBORS);
        let t = Instant::from_secs(100);
        let mut n = 0u8;
        let mut next = |c: &mut NeighborCache, now| {
            n += 1;
            c.lookup(ip(n), now)
        };
        for _ in 0..PROBE_BURST {
            assert_eq!(next(&mut c, t), Lookup::Probe);
        }
        assert_eq!(next(&mut c, t), Lookup::Wait);
        assert_eq!(c.suppressed, 1);
        // One token per 1/PROBE_RATE s.
        let step = ms(1000 / u64::from(PROBE_RATE));
        assert_eq!(next(&mut c, t + step), Lookup::Probe);
        assert_eq!(next(&mut c, t + step), Lookup::Wait);
    }

    #[test]
    fn busy_neighbours_survive_a_flood_of_strangers() {
        let mut c = NeighborCache::new(8);
        let t = Instant::from_secs(100);
        for n in 1..=4 {
            c.learn(ip(n), MAC, t, true);
        }
        for k in 0..300u64 {
            let now = t + ms(10 * k);
            // The four real neighbours keep carrying traffic...
            for n in 1..=4 {
                assert!(
                    matches!(c.lookup(ip(n), now), Lookup::Ready { mac: MAC, .. }),
                    "neighbour {n} lost at {k}"
                );
            }
            // ...while strangers crowd the rest of the cache and are turned away.
            c.lookup(ip(100 + (k % 150) as u8), now);
        }
        assert!(c.evicted + c.refused >= 296, "{} {}", c.evicted, c.refused);
        assert!(c.refused > 100);
        assert_eq!(c.len(), 8);
    }

    #[test]
    fn a_cache_full_of_busy_neighbours_refuses_newcomers() {
        let mut c = NeighborCache::new(2);
        let t = Instant::from_secs(100);
        for n in [1, 2] {
            c.learn(ip(n), MAC, t, true);
            assert!(matches!(c.lookup(ip(n), t), Lookup::Ready { .. }));
        }
        assert_eq!(c.lookup(ip(3), t + ms(1)), Lookup::Full);
        assert_eq!(c.refused, 1);
        // Once one of them has been idle long enough, it gives way.
        c.lookup(ip(1), t + IN_USE);
        assert_eq!(c.lookup(ip(3), t + IN_USE + ms(1)), Lookup::Probe);
        assert!(matches!(
            c.lookup(ip(1), t + IN_USE + ms(2)),
            Lookup::Ready { .. }
        ));
        assert_eq!(c.evicted, 1);
    }

    #[test]
    fn strangers_do_not_fill_the_cache_and_it_stays_bounded() {
        let mut c = NeighborCache::new(4);
        let t = Instant::from_secs(1);
        c.learn(ip(9), MAC, t, false);
        assert_eq!(c.len(), 0);
        for n in 0..20 {
            c.lookup(ip(n), t + ms(n as u64));
        }
        assert_eq!(c.len(), 4);
        // The first four wait for their answers; the rest are refused until then.
        assert_eq!((c.evicted, c.refused), (0, 16));
        assert_eq!(c.lookup(ip(30), t + RETRY), Lookup::Probe);
        assert_eq!(c.evicted, 1);
    }

    #[test]
    fn old_answers_are_reconfirmed_but_still_used() {
        let mut c = NeighborCache::new(4);
        let t = Instant::from_secs(1);
        c.learn(ip(1), MAC, t, true);
        let later = t + REACHABLE + Duration::from_secs(1);
        assert_eq!(
            c.lookup(ip(1), later),
            Lookup::Ready {
                mac: MAC,
                probe: true
            }
        );
        assert_eq!(
            c.lookup(ip(1), later + ms(1)),
            Lookup::Ready {
                mac: MAC,
                probe: false
            }
        );
    }

    #[test]
    fn a_neighbour_that_speaks_to_us_gets_in_during_a_flood() {
        let mut c = NeighborCache::new(4);
        let t = Instant::from_secs(100);
        for n in 100..104 {
            c.lookup(ip(n), t);
        }
        // Full of strangers waiting for answers: another stranger is refused...
        assert_eq!(c.lookup(ip(104), t + ms(1)), Lookup::Full);
        // ...but a host that asks for our address (or answers us) takes a stranger's place.
        c.learn(ip(1), MAC, t + ms(2), true);
        assert!(matches!(c.lookup(ip(1), t + ms(3)), Lookup::Ready { .. }));
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn neighbours_learned_but_never_used_do_not_pin_the_cache() {
        let mut c = NeighborCache::new(4);
        let t = Instant::from_secs(100);
        // Forged requests for our address from strangers fill the cache...
        for n in 100..110 {
            c.learn(ip(n), MAC, t, true);
        }
        assert_eq!(c.len(), 4);
        // ...yet the address we need to send to gets an entry at once.
        assert_eq!(c.lookup(ip(1), t + ms(1)), Lookup::Probe);
    }
}
