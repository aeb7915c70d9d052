//! The neighbour cache of one link: IP address → MAC, learned from ARP and NDP, bounded,
//! with the probe schedule of unresolved entries. The packets that wait for an answer are
//! held by the router's [`super::pending`] pool, not here.

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
/// Unanswered probes before the address is declared unreachable.
const MAX_PROBES: u8 = 3;

#[derive(Clone, Copy, Debug)]
struct Entry {
    ip: IpAddress,
    mac: Option<EthernetAddress>,
    /// When the MAC was last confirmed.
    confirmed: Instant,
    /// When we last probed, and how many unanswered probes there were.
    probed: Instant,
    probes: u8,
    /// Last use, for eviction.
    used: Instant,
}

/// What the caller should do to send to an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Send to this MAC; `probe` asks to re-confirm it in the background.
    Ready { mac: EthernetAddress, probe: bool },
    /// Unknown: send a probe now and hold the packet.
    Probe,
    /// A probe is out: hold the packet.
    Wait,
    /// No answer after every probe: drop the packet.
    Unreachable,
}

/// The cache of one link.
pub struct NeighborCache {
    entries: Vec<Entry>,
    capacity: usize,
    /// Entries evicted to make room.
    pub evicted: u64,
}

impl NeighborCache {
    pub fn new(capacity: usize) -> NeighborCache {
        NeighborCache {
            entries: Vec::with_capacity(capacity),
            capacity,
            evicted: 0,
        }
    }

    /// Number of entries.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// How to send to `ip` now; creates an entry (evicting the least recently used one
    /// when full) for an unknown address.
    pub fn lookup(&mut self, ip: IpAddress, now: Instant) -> Lookup {
        if let Some(e) = self.entries.iter_mut().find(|e| e.ip == ip) {
            e.used = now;
            return match e.mac {
                Some(mac) => {
                    let probe = now - e.confirmed > REACHABLE && now - e.probed >= RETRY;
                    if probe {
                        e.probed = now;
                    }
                    Lookup::Ready { mac, probe }
                }
                None if now - e.probed < RETRY => Lookup::Wait,
                None if e.probes >= MAX_PROBES => {
                    // Give up on this round; the next packet starts a new one.
                    e.probes = 0;
                    Lookup::Unreachable
                }
                None => {
                    e.probes += 1;
                    e.probed = now;
                    Lookup::Probe
                }
            };
        }
        self.insert(Entry {
            ip,
            mac: None,
            confirmed: now,
            probed: now,
            probes: 1,
            used: now,
        });
        Lookup::Probe
    }

    /// Records that `ip` is at `mac`. An unknown address is added only when `create` (an
    /// answer to us, or a request aimed at us); otherwise only known entries are updated,
    /// so strangers on the wire cannot flood the cache.
    pub fn learn(&mut self, ip: IpAddress, mac: EthernetAddress, now: Instant, create: bool) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.ip == ip) {
            e.mac = Some(mac);
            e.confirmed = now;
            e.probes = 0;
            return;
        }
        if create {
            self.insert(Entry {
                ip,
                mac: Some(mac),
                confirmed: now,
                probed: now,
                probes: 0,
                used: now,
            });
        }
    }

    fn insert(&mut self, entry: Entry) {
        if self.entries.len() < self.capacity {
            self.entries.push(entry);
            return;
        }
        // Evict an unresolved entry first, else the least recently used.
        let victim = self
            .entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| (e.mac.is_some(), e.used))
            .map(|(i, _)| i);
        if let Some(i) = victim {
            self.entries[i] = entry;
            self.evicted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::Ipv4Address;

    fn ip(n: u8) -> IpAddress {
        IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, n))
    }
    const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

    #[test]
    fn unknown_address_is_probed_then_waits_then_resolves() {
        let mut c = NeighborCache::new(4);
        let t = Instant::from_secs(10);
        assert_eq!(c.lookup(ip(1), t), Lookup::Probe);
        assert_eq!(c.lookup(ip(1), t + Duration::from_millis(10)), Lookup::Wait);
        c.learn(ip(1), MAC, t + Duration::from_millis(20), false);
        assert_eq!(
            c.lookup(ip(1), t + Duration::from_millis(30)),
            Lookup::Ready {
                mac: MAC,
                probe: false
            }
        );
    }

    #[test]
    fn unanswered_probes_end_in_unreachable() {
        let mut c = NeighborCache::new(4);
        let mut t = Instant::from_secs(10);
        let mut seen = alloc::vec::Vec::new();
        for _ in 0..4 {
            seen.push(c.lookup(ip(1), t));
            t += RETRY;
        }
        assert_eq!(
            seen,
            [
                Lookup::Probe,
                Lookup::Probe,
                Lookup::Probe,
                Lookup::Unreachable
            ]
        );
    }

    #[test]
    fn strangers_do_not_fill_the_cache_and_it_stays_bounded() {
        let mut c = NeighborCache::new(4);
        let t = Instant::from_secs(1);
        c.learn(ip(9), MAC, t, false);
        assert_eq!(c.len(), 0);
        for n in 0..20 {
            c.lookup(ip(n), t + Duration::from_millis(n as u64));
        }
        assert_eq!(c.len(), 4);
        assert_eq!(c.evicted, 16);
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
            c.lookup(ip(1), later + Duration::from_millis(1)),
            Lookup::Ready {
                mac: MAC,
                probe: false
            }
        );
    }
}
