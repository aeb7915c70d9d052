//! Cryptokey routing table (whitepaper section 2): IPv4 and IPv6 prefixes to peers, longest
//! prefix wins.
//!
//! Outbound, the destination picks the peer; inbound, a decrypted packet is accepted only if
//! its source maps back to the peer it came from. The table is a vector whose capacity is
//! fixed at creation and kept sorted by prefix length (longest first), so a lookup is one
//! linear scan with the first match winning, and inserting never reallocates.

use alloc::vec::Vec;
use core::net::IpAddr;

/// A prefix in the table: an address and a prefix length (0..=32 or 0..=128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllowedIp {
    /// The network address (host bits are ignored).
    pub addr: IpAddr,
    /// Prefix length in bits.
    pub prefix_len: u8,
}

impl AllowedIp {
    /// A prefix, or `None` if the length is too long for the family.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix_len <= max).then_some(Self { addr, prefix_len })
    }
}

/// Why an insert failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllowedIpsError {
    /// The table is at its capacity.
    Full,
    /// The prefix length is longer than the address family allows.
    BadPrefix,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    v6: bool,
    /// Masked network bits; IPv4 uses the low 32 bits.
    net: u128,
    mask: u128,
    len: u8,
    owner: u16,
}

fn bits(addr: IpAddr) -> (bool, u128) {
    match addr {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

fn mask(v6: bool, len: u8) -> u128 {
    let width = if v6 { 128 } else { 32 };
    if len == 0 {
        0
    } else {
        let all: u128 = if v6 { u128::MAX } else { u128::from(u32::MAX) };
        all & (all << (width - u32::from(len)))
    }
}

/// Prefix → owner (a peer slot number) with longest-prefix lookup.
#[derive(Debug)]
#[cfg_attr(debug_assertions, derive(Clone))] // See `Device`.
pub struct AllowedIps {
    entries: Vec<Entry>,
    capacity: usize,
}

impl AllowedIps {
    /// An empty table that will hold up to `capacity` prefixes (allocated now, once).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// The most prefixes the table will hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Maps `prefix` to `owner`. A prefix already present moves to the new owner, as with
    /// `wg set ... allowed-ips`.
    pub fn insert(&mut self, prefix: AllowedIp, owner: u16) -> Result<(), AllowedIpsError> {
        let prefix =
            AllowedIp::new(prefix.addr, prefix.prefix_len).ok_or(AllowedIpsError::BadPrefix)?;
        let (v6, addr) = bits(prefix.addr);
        let m = mask(v6, prefix.prefix_len);
        let e = Entry {
            v6,
            net: addr & m,
            mask: m,
            len: prefix.prefix_len,
            owner,
        };
        if let Some(existing) = self
            .entries
            .iter_mut()
            .find(|x| x.v6 == e.v6 && x.len == e.len && x.net == e.net)
        {
            existing.owner = owner;
            return Ok(());
        }
        if self.entries.len() >= self.capacity {
            return Err(AllowedIpsError::Full);
        }
        let at = self
            .entries
            .iter()
            .position(|x| x.len < e.len)
            .unwrap_or(self.entries.len());
        self.entries.insert(at, e);
        Ok(())
    }

    /// Removes every prefix (keeps the capacity).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Removes every prefix of `owner`.
    pub fn remove_owner(&mut self, owner: u16) {
        self.entries.retain(|e| e.owner != owner);
    }

    /// The owner of the longest prefix containing `addr`.
    pub fn lookup(&self, addr: IpAddr) -> Option<u16> {
        let (v6, a) = bits(addr);
        self.entries
            .iter()
            .find(|e| e.v6 == v6 && a & e.mask == e.net)
            .map(|e| e.owner)
    }

    /// The prefixes of `owner`, longest first.
    pub fn prefixes_of(&self, owner: u16) -> impl Iterator<Item = AllowedIp> + '_ {
        self.entries
            .iter()
            .filter(move |e| e.owner == owner)
            .map(|e| {
                let addr = if e.v6 {
                    IpAddr::V6(e.net.into())
                } else {
                    IpAddr::V4((e.net as u32).into())
                };
                AllowedIp {
                    addr,
                    prefix_len: e.len,
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, len: u8) -> AllowedIp {
        AllowedIp::new(s.parse().unwrap(), len).unwrap()
    }

    #[test]
    fn longest_prefix_wins_for_ipv4_and_ipv6() {
        let mut t = AllowedIps::with_capacity(8);
        t.insert(p("0.0.0.0", 0), 1).unwrap();
        t.insert(p("10.0.0.0", 8), 2).unwrap();
        t.insert(p("10.1.2.0", 24), 3).unwrap();
        t.insert(p("fd00::", 8), 4).unwrap();
        t.insert(p("fd00:1::", 32), 5).unwrap();
        assert_eq!(t.lookup("10.1.2.3".parse().unwrap()), Some(3));
        assert_eq!(t.lookup("10.1.3.3".parse().unwrap()), Some(2));
        assert_eq!(t.lookup("192.0.2.1".parse().unwrap()), Some(1));
        assert_eq!(t.lookup("fd00:1::9".parse().unwrap()), Some(5));
        assert_eq!(t.lookup("fd00:2::9".parse().unwrap()), Some(4));
        assert_eq!(t.lookup("2001:db8::1".parse().unwrap()), None);
    }

    #[test]
    fn host_bits_are_ignored_and_v4_never_matches_v6() {
        let mut t = AllowedIps::with_capacity(4);
        t.insert(p("10.1.2.99", 24), 7).unwrap();
        assert_eq!(t.lookup("10.1.2.1".parse().unwrap()), Some(7));
        assert_eq!(t.lookup("::a01:201".parse().unwrap()), None);
        let mut t = AllowedIps::with_capacity(4);
        t.insert(p("::", 0), 9).unwrap();
        assert_eq!(t.lookup("10.1.2.1".parse().unwrap()), None);
        assert_eq!(t.lookup("::1".parse().unwrap()), Some(9));
    }

    #[test]
    fn same_prefix_moves_to_the_new_owner_and_capacity_is_enforced() {
        let mut t = AllowedIps::with_capacity(2);
        t.insert(p("10.0.0.1", 32), 1).unwrap();
        t.insert(p("10.0.0.1", 32), 2).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup("10.0.0.1".parse().unwrap()), Some(2));
        t.insert(p("10.0.0.2", 32), 1).unwrap();
        assert_eq!(t.insert(p("10.0.0.3", 32), 1), Err(AllowedIpsError::Full));
        t.remove_owner(1);
        assert_eq!(t.len(), 1);
        assert_eq!(t.prefixes_of(2).next(), Some(p("10.0.0.1", 32)));
    }

    #[test]
    fn overlong_prefixes_are_refused() {
        assert!(AllowedIp::new("10.0.0.0".parse().unwrap(), 33).is_none());
        assert!(AllowedIp::new("::".parse().unwrap(), 129).is_none());
        let bad = AllowedIp {
            addr: "10.0.0.0".parse().unwrap(),
            prefix_len: 40,
        };
        assert_eq!(
            AllowedIps::with_capacity(1).insert(bad, 0),
            Err(AllowedIpsError::BadPrefix)
        );
    }
}
