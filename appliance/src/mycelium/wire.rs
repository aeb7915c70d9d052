//! Mycelium's control packets on the wire: a Babel-style header and exactly one TLV.
//!
//! Mycelium 0.7 speaks a Babel variant of its own, not RFC 8966: the header is magic 42,
//! **version 3**, a big-endian body length, and the body is one TLV (type, length,
//! contents) with no sub-TLVs and no packet-wide parser state. Router-ids are 40 octets
//! (the node's X25519 public key, two zero "zone" octets, six random octets drawn at
//! start) and ride inside each Update and Seqno Request. The layouts (all integers
//! big-endian; `P` is the prefix, `ceil(plen / 8)` octets):
//!
//! ```text
//! Hello    4  len 6        flags(2, 0x8000 unicast) seqno(2) interval(2, centiseconds)
//! IHU      5  len 6 + A    ae(1) reserved(1) rxcost(2) interval(2) address(A by ae)
//! Update   8  len 50 + P   ae(1) flags(1) plen(1) omitted(1) interval(2) seqno(2)
//!                          metric(2) prefix(P) router-id(40)
//! Route    9  len 3 + P    generation(1) ae(1) plen(1) prefix(P)
//!   Request
//! Seqno   10  len 46 + P   ae(1) plen(1) seqno(2) hop-count(1) reserved(1)
//!   Request                router-id(40) prefix(P)
//! ```
//!
//! Parsing ([`parse`]) is checked: the header's body length must be exactly the TLV plus
//! its two-octet type and length, and each TLV's length must be exactly what its fields
//! and prefix length say (mycelium's own reader does not check this and would lose
//! framing; a mismatch here is [`TlvError::Malformed`]). Only IPv6 prefixes (AE 2) mean
//! anything in Mycelium: the other encodings parse to [`TlvError::UnsupportedAe`]. The
//! outer peer-stream framing lives in `frame`; this module sees one Babel packet.
//!
//! Emitting ([`emit`]) writes header and TLV into a caller buffer.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The first octet of every control packet.
pub const MAGIC: u8 = 42;
/// Mycelium's Babel version.
pub const VERSION: u8 = 3;
/// Magic, version and body length.
pub const HEADER_LEN: usize = 4;
/// The largest control packet: the header, TLV type and length, 255 octets of TLV.
pub const MAX_PACKET: usize = HEADER_LEN + 2 + 255;
/// The metric meaning "unreachable" (a retraction).
pub const INFINITY: u16 = 0xFFFF;
/// Octets of a router-id.
pub const ROUTER_ID_LEN: usize = 40;

/// TLV types.
pub mod kind {
    pub const HELLO: u8 = 4;
    pub const IHU: u8 = 5;
    pub const UPDATE: u8 = 8;
    pub const ROUTE_REQUEST: u8 = 9;
    pub const SEQNO_REQUEST: u8 = 10;
}

/// Address encodings.
pub mod ae {
    pub const WILDCARD: u8 = 0;
    pub const IPV4: u8 = 1;
    pub const IPV6: u8 = 2;
    pub const LINK_LOCAL: u8 = 3;
}

/// The Hello flag "sent unicast" (the only flag Mycelium keeps).
pub const HELLO_UNICAST: u16 = 0x8000;

/// Sequence numbers compare modulo 2^16 (the same rule as RFC 8966's).
pub use crate::routing::wire::seqno_newer;

/// `a + b` for metrics, as Mycelium adds them: infinity absorbs, and a finite sum
/// saturates at one below infinity.
pub fn metric_add(a: u16, b: u16) -> u16 {
    if a == INFINITY || b == INFINITY {
        return INFINITY;
    }
    a.checked_add(b).unwrap_or(INFINITY).min(INFINITY - 1)
}

/// An IPv6 prefix with its host bits cleared (Mycelium compares prefixes by their
/// network, so this is the only form kept).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet {
    network: [u8; 16],
    len: u8,
}

impl Subnet {
    /// The prefix `addr/len`, host bits cleared; `None` if `len` is over 128.
    pub fn new(addr: Ipv6Addr, len: u8) -> Option<Self> {
        if len > 128 {
            return None;
        }
        let bits = u128::from(addr);
        let mask = if len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(len))
        };
        Some(Self {
            network: (bits & mask).to_be_bytes(),
            len,
        })
    }

    /// The /64 holding `addr`.
    pub fn slash64(addr: Ipv6Addr) -> Self {
        Self::new(addr, 64).unwrap_or(Self {
            network: [0; 16],
            len: 0,
        })
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.network)
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `addr` lies inside.
    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        Self::new(addr, self.len).is_some_and(|s| s.network == self.network)
    }

    /// Whether every address of `other` lies inside.
    pub fn contains_subnet(&self, other: &Subnet) -> bool {
        other.len >= self.len && self.contains(other.network())
    }

    /// Octets the prefix takes on the wire.
    fn wire_len(&self) -> usize {
        usize::from(self.len).div_ceil(8)
    }
}

impl fmt::Debug for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.len)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Subnet {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "{}/{=u8}", self.network(), self.len)
    }
}

/// A 40-octet router-id: public key, zone (zero), six random octets.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouterId(pub [u8; ROUTER_ID_LEN]);

impl RouterId {
    /// The router-id of a node with `public_key`, its last six octets `random`.
    pub fn new(public_key: &[u8; 32], random: [u8; 6]) -> Self {
        let mut id = [0u8; ROUTER_ID_LEN];
        id[..32].copy_from_slice(public_key);
        id[34..].copy_from_slice(&random);
        Self(id)
    }

    /// The public key it names.
    pub fn public_key(&self) -> [u8; 32] {
        let mut pk = [0u8; 32];
        pk.copy_from_slice(&self.0[..32]);
        pk
    }
}

impl fmt::Debug for RouterId {
    /// As mycelium prints it: the key in hex, then zone and random part.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0[..32] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("-")?;
        for b in &self.0[32..34] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("-")?;
        for b in &self.0[34..] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for RouterId {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "{=[u8]:02x}", self.0[..])
    }
}

/// An Update: a route to `subnet` from the node `router_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Update {
    /// Centiseconds until the sender announces it again (the receiver holds the route
    /// for 3.5 times this).
    pub interval: u16,
    pub seqno: u16,
    /// [`INFINITY`] retracts.
    pub metric: u16,
    pub subnet: Subnet,
    pub router_id: RouterId,
}

/// One control TLV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tlv {
    /// Hello; `interval` in centiseconds.
    Hello {
        unicast: bool,
        seqno: u16,
        interval: u16,
    },
    /// I Heard You: the sender's cost of the link to us. Mycelium sends AE 0 (no
    /// address).
    Ihu {
        rx_cost: u16,
        interval: u16,
        address: Option<IpAddr>,
    },
    Update(Update),
    /// Route Request; `None` asks for the whole table.
    RouteRequest {
        prefix: Option<Subnet>,
        generation: u8,
    },
    /// Seqno Request (`hop_count` is never 0).
    SeqnoRequest {
        seqno: u16,
        hop_count: u8,
        router_id: RouterId,
        prefix: Subnet,
    },
    /// A TLV type Mycelium 0.7 does not define (its framing is intact: skipped).
    Unknown {
        kind: u8,
    },
}

/// Why a control packet was not used. The packet's framing was intact in every case, so
/// the stream goes on; the caller counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TlvError {
    /// Shorter than a header and a TLV, wrong magic or version, or lengths that do not
    /// add up.
    Malformed,
    /// An address encoding that is valid Babel but carries nothing Mycelium uses (IPv4,
    /// link-local, a wildcard Update).
    UnsupportedAe,
    /// An address encoding Babel does not define.
    UnknownAe,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The prefix of `plen` bits from `bytes` (exactly `ceil(plen / 8)` of them).
fn ipv6_prefix(bytes: &[u8], plen: u8) -> Option<Subnet> {
    let mut a = [0u8; 16];
    a.get_mut(..bytes.len())?.copy_from_slice(bytes);
    Subnet::new(Ipv6Addr::from(a), plen)
}

fn router_id(bytes: &[u8]) -> RouterId {
    let mut id = [0u8; ROUTER_ID_LEN];
    id.copy_from_slice(&bytes[..ROUTER_ID_LEN]);
    RouterId(id)
}

/// Checks that an encoding's prefix length fits it and the TLV carries exactly the
/// prefix's octets (`prefix_octets`, after the fixed part).
fn check_prefix(ae: u8, plen: u8, prefix_octets: usize) -> Result<(), TlvError> {
    let max = match ae {
        ae::WILDCARD => 0,
        ae::IPV4 => 32,
        ae::IPV6 => 128,
        // Link-local prefixes are always /64 sent as their last 8 octets.
        ae::LINK_LOCAL => {
            return if plen == 64 && prefix_octets == 8 {
                Ok(())
            } else {
                Err(TlvError::Malformed)
            };
        }
        _ => return Err(TlvError::UnknownAe),
    };
    if plen > max || prefix_octets != usize::from(plen).div_ceil(8) {
        return Err(TlvError::Malformed);
    }
    Ok(())
}

/// Parses one control packet (magic, version, body length, one TLV).
pub fn parse(packet: &[u8]) -> Result<Tlv, TlvError> {
    if packet.len() < HEADER_LEN + 2 || packet[0] != MAGIC || packet[1] != VERSION {
        return Err(TlvError::Malformed);
    }
    let body_len = usize::from(be16(packet, 2));
    let tlv_len = usize::from(packet[5]);
    if body_len != packet.len() - HEADER_LEN || tlv_len + 2 != body_len {
        return Err(TlvError::Malformed);
    }
    let t = &packet[HEADER_LEN + 2..];
    match packet[4] {
        kind::HELLO => {
            if t.len() != 6 {
                return Err(TlvError::Malformed);
            }
            Ok(Tlv::Hello {
                unicast: be16(t, 0) & HELLO_UNICAST != 0,
                seqno: be16(t, 2),
                interval: be16(t, 4),
            })
        }
        kind::IHU => {
            if t.len() < 6 {
                return Err(TlvError::Malformed);
            }
            let a = &t[6..];
            let address = match (t[0], a.len()) {
                (ae::WILDCARD, 0) => None,
                (ae::IPV4, 4) => Some(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]))),
                (ae::IPV6, 16) => {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(a);
                    Some(IpAddr::V6(Ipv6Addr::from(o)))
                }
                (ae::LINK_LOCAL, 8) => {
                    let mut o = [0u8; 16];
                    o[0] = 0xfe;
                    o[1] = 0x80;
                    o[8..].copy_from_slice(a);
                    Some(IpAddr::V6(Ipv6Addr::from(o)))
                }
                (ae::WILDCARD | ae::IPV4 | ae::IPV6 | ae::LINK_LOCAL, _) => {
                    return Err(TlvError::Malformed)
                }
                _ => return Err(TlvError::UnknownAe),
            };
            Ok(Tlv::Ihu {
                rx_cost: be16(t, 2),
                interval: be16(t, 4),
                address,
            })
        }
        kind::UPDATE => {
            if t.len() < 10 + ROUTER_ID_LEN {
                return Err(TlvError::Malformed);
            }
            let (ae, plen) = (t[0], t[2]);
            let prefix = &t[10..t.len() - ROUTER_ID_LEN];
            check_prefix(ae, plen, prefix.len())?;
            if ae != ae::IPV6 {
                return Err(TlvError::UnsupportedAe);
            }
            Ok(Tlv::Update(Update {
                interval: be16(t, 4),
                seqno: be16(t, 6),
                metric: be16(t, 8),
                subnet: ipv6_prefix(prefix, plen).ok_or(TlvError::Malformed)?,
                router_id: router_id(&t[t.len() - ROUTER_ID_LEN..]),
            }))
        }
        kind::ROUTE_REQUEST => {
            if t.len() < 3 {
                return Err(TlvError::Malformed);
            }
            let (generation, ae, plen) = (t[0], t[1], t[2]);
            check_prefix(ae, plen, t.len() - 3)?;
            let prefix = match ae {
                ae::WILDCARD => None,
                ae::IPV6 => Some(ipv6_prefix(&t[3..], plen).ok_or(TlvError::Malformed)?),
                _ => return Err(TlvError::UnsupportedAe),
            };
            Ok(Tlv::RouteRequest { prefix, generation })
        }
        kind::SEQNO_REQUEST => {
            if t.len() < 6 + ROUTER_ID_LEN {
                return Err(TlvError::Malformed);
            }
            let (ae, plen, hop_count) = (t[0], t[1], t[4]);
            let prefix = &t[6 + ROUTER_ID_LEN..];
            check_prefix(ae, plen, prefix.len())?;
            if ae != ae::IPV6 {
                return Err(TlvError::UnsupportedAe);
            }
            if hop_count == 0 {
                return Err(TlvError::Malformed);
            }
            Ok(Tlv::SeqnoRequest {
                seqno: be16(t, 2),
                hop_count,
                router_id: router_id(&t[6..]),
                prefix: ipv6_prefix(prefix, plen).ok_or(TlvError::Malformed)?,
            })
        }
        other => Ok(Tlv::Unknown { kind: other }),
    }
}

/// Octets [`emit`] writes for `tlv` (header included).
pub fn emitted_len(tlv: &Tlv) -> usize {
    HEADER_LEN
        + 2
        + match tlv {
            Tlv::Hello { .. } => 6,
            Tlv::Ihu { address, .. } => {
                6 + match address {
                    None => 0,
                    Some(IpAddr::V4(_)) => 4,
                    Some(IpAddr::V6(_)) => 16,
                }
            }
            Tlv::Update(u) => 10 + u.subnet.wire_len() + ROUTER_ID_LEN,
            Tlv::RouteRequest { prefix, .. } => 3 + prefix.map_or(0, |p| p.wire_len()),
            Tlv::SeqnoRequest { prefix, .. } => 6 + ROUTER_ID_LEN + prefix.wire_len(),
            Tlv::Unknown { .. } => 0,
        }
}

/// Writes `tlv` as a control packet into `out`; returns its length, or `None` (nothing
/// written) if `out` is too short. [`Tlv::Unknown`] is written as an empty TLV of that
/// type (only tests use that).
pub fn emit(tlv: &Tlv, out: &mut [u8]) -> Option<usize> {
    let len = emitted_len(tlv);
    let out = out.get_mut(..len)?;
    let (head, t) = out.split_at_mut(HEADER_LEN + 2);
    head[0] = MAGIC;
    head[1] = VERSION;
    head[2..4].copy_from_slice(&((len - HEADER_LEN) as u16).to_be_bytes());
    head[4] = match tlv {
        Tlv::Hello { .. } => kind::HELLO,
        Tlv::Ihu { .. } => kind::IHU,
        Tlv::Update(_) => kind::UPDATE,
        Tlv::RouteRequest { .. } => kind::ROUTE_REQUEST,
        Tlv::SeqnoRequest { .. } => kind::SEQNO_REQUEST,
        Tlv::Unknown { kind } => *kind,
    };
    head[5] = (len - HEADER_LEN - 2) as u8;
    match *tlv {
        Tlv::Hello {
            unicast,
            seqno,
            interval,
        } => {
            let flags = if unicast { HELLO_UNICAST } else { 0 };
            t[0..2].copy_from_slice(&flags.to_be_bytes());
            t[2..4].copy_from_slice(&seqno.to_be_bytes());
            t[4..6].copy_from_slice(&interval.to_be_bytes());
        }
        Tlv::Ihu {
            rx_cost,
            interval,
            address,
        } => {
            t[1] = 0;
            t[2..4].copy_from_slice(&rx_cost.to_be_bytes());
            t[4..6].copy_from_slice(&interval.to_be_bytes());
            match address {
                None => t[0] = ae::WILDCARD,
                Some(IpAddr::V4(a)) => {
                    t[0] = ae::IPV4;
                    t[6..10].copy_from_slice(&a.octets());
                }
                Some(IpAddr::V6(a)) => {
                    t[0] = ae::IPV6;
                    t[6..22].copy_from_slice(&a.octets());
                }
            }
        }
        Tlv::Update(u) => {
            let p = u.subnet.wire_len();
            t[0] = ae::IPV6;
            t[1] = 0;
            t[2] = u.subnet.len;
            t[3] = 0;
            t[4..6].copy_from_slice(&u.interval.to_be_bytes());
            t[6..8].copy_from_slice(&u.seqno.to_be_bytes());
            t[8..10].copy_from_slice(&u.metric.to_be_bytes());
            t[10..10 + p].copy_from_slice(&u.subnet.network[..p]);
            t[10 + p..].copy_from_slice(&u.router_id.0);
        }
        Tlv::RouteRequest { prefix, generation } => {
            t[0] = generation;
            match prefix {
                None => {
                    t[1] = ae::WILDCARD;
                    t[2] = 0;
                }
                Some(p) => {
                    t[1] = ae::IPV6;
                    t[2] = p.len;
                    t[3..].copy_from_slice(&p.network[..p.wire_len()]);
                }
            }
        }
        Tlv::SeqnoRequest {
            seqno,
            hop_count,
            router_id,
            prefix,
        } => {
            t[0] = ae::IPV6;
            t[1] = prefix.len;
            t[2..4].copy_from_slice(&seqno.to_be_bytes());
            t[4] = hop_count;
            t[5] = 0;
            t[6..6 + ROUTER_ID_LEN].copy_from_slice(&router_id.0);
            t[6 + ROUTER_ID_LEN..].copy_from_slice(&prefix.network[..prefix.wire_len()]);
        }
        Tlv::Unknown { .. } => {}
    }
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn emit_vec(tlv: &Tlv) -> Vec<u8> {
        let mut b = [0u8; MAX_PACKET];
        let n = emit(tlv, &mut b).unwrap();
        b[..n].to_vec()
    }

    fn rid(seed: u8) -> RouterId {
        let mut id = [0u8; ROUTER_ID_LEN];
        for (i, b) in id.iter_mut().enumerate() {
            *b = seed.wrapping_add(i as u8);
        }
        RouterId(id)
    }

    fn p64() -> Subnet {
        Subnet::new(Ipv6Addr::new(0x400, 1, 2, 3, 0, 0, 0, 0), 64).unwrap()
    }

    /// A Hello as mycelium's own test spells it (unicast, seqno 16, 40 s): `80 00 00 10
    /// 0f a0` after the header.
    #[test]
    fn hello_bytes_match_mycelium() {
        let tlv = Tlv::Hello {
            unicast: true,
            seqno: 16,
            interval: 4000,
        };
        let b = emit_vec(&tlv);
        assert_eq!(b, [42, 3, 0, 8, 4, 6, 0x80, 0, 0, 16, 15, 160]);
        assert_eq!(parse(&b), Ok(tlv));
        // Unknown flag bits are ignored, as mycelium masks them.
        let b = [42, 3, 0, 8, 4, 6, 0x89, 0, 0, 100, 1, 144];
        assert_eq!(
            parse(&b),
            Ok(Tlv::Hello {
                unicast: true,
                seqno: 100,
                interval: 400
            })
        );
    }

    /// IHUs in every address encoding mycelium parses (bytes from its tests).
    #[test]
    fn ihu_address_encodings() {
        let b = [42, 3, 0, 8, 5, 6, 0, 0, 0, 1, 1, 44];
        assert_eq!(
            parse(&b),
            Ok(Tlv::Ihu {
                rx_cost: 1,
                interval: 300,
                address: None
            })
        );
        let b = [42, 3, 0, 12, 5, 10, 1, 0, 0, 25, 1, 144, 1, 1, 1, 1];
        assert_eq!(
            parse(&b),
            Ok(Tlv::Ihu {
                rx_cost: 25,
                interval: 400,
                address: Some(IpAddr::V4(Ipv4Addr::new(1, 1, 1, 1)))
            })
        );
        let b = [
            42, 3, 0, 16, 5, 14, 3, 0, 1, 2, 0, 42, 7, 8, 9, 10, 11, 12, 13, 14,
        ];
        assert_eq!(
            parse(&b),
            Ok(Tlv::Ihu {
                rx_cost: 258,
                interval: 42,
                address: Some(IpAddr::V6(Ipv6Addr::new(
                    0xfe80, 0, 0, 0, 0x708, 0x90a, 0xb0c, 0xd0e
                )))
            })
        );
        // AE 4 is no Babel encoding.
        let b = [42, 3, 0, 8, 5, 6, 4, 0, 0, 2, 0, 44];
        assert_eq!(parse(&b), Err(TlvError::UnknownAe));
        let ihu = Tlv::Ihu {
            rx_cost: 1015,
            interval: 6000,
            address: None,
        };
        assert_eq!(parse(&emit_vec(&ihu)), Ok(ihu));
    }

    /// An Update for 400:1:2:3::/64: the prefix octets come before the 40-octet
    /// router-id, 8 of them for a /64.
    #[test]
    fn update_layout() {
        let u = Tlv::Update(Update {
            interval: 30000,
            seqno: 16,
            metric: 25,
            subnet: p64(),
            router_id: rid(1),
        });
        let b = emit_vec(&u);
        assert_eq!(b.len(), 4 + 2 + 58);
        assert_eq!(&b[..6], &[42, 3, 0, 60, 8, 58]);
        assert_eq!(
            &b[6..16],
            &[2, 0, 64, 0, 0x75, 0x30, 0, 16, 0, 25],
            "ae flags plen omitted interval seqno metric"
        );
        assert_eq!(&b[16..24], &[4, 0, 0, 1, 0, 2, 0, 3]);
        assert_eq!(&b[24..], &rid(1).0[..]);
        assert_eq!(parse(&b), Ok(u));
    }

    #[test]
    fn update_prefix_lengths_are_checked() {
        let mut b = emit_vec(&Tlv::Update(Update {
            interval: 1,
            seqno: 1,
            metric: 1,
            subnet: p64(),
            router_id: rid(1),
        }));
        // A /65 needs 9 prefix octets, the TLV has 8.
        b[8] = 65;
        assert_eq!(parse(&b), Err(TlvError::Malformed));
        b[8] = 129;
        assert_eq!(parse(&b), Err(TlvError::Malformed));
        // Host bits in the prefix octets are cleared.
        let mut b = emit_vec(&Tlv::Update(Update {
            interval: 1,
            seqno: 1,
            metric: 1,
            subnet: Subnet::new(Ipv6Addr::new(0x400, 0, 0, 0, 0, 0, 0, 0), 60).unwrap(),
            router_id: rid(1),
        }));
        b[16 + 7] = 0xff;
        match parse(&b) {
            Ok(Tlv::Update(u)) => assert_eq!(u.subnet.network().octets()[7], 0xf0),
            other => panic!("{other:?}"),
        }
        // An IPv4 update is valid Babel, useless to Mycelium.
        let mut v4 = std::vec![42, 3, 0, 56, 8, 54, 1, 0, 32, 0, 0, 1, 0, 1, 0, 1, 10, 0, 0, 1];
        v4.extend_from_slice(&rid(2).0);
        assert_eq!(parse(&v4), Err(TlvError::UnsupportedAe));
    }

    #[test]
    fn route_requests_round_trip() {
        for tlv in [
            Tlv::RouteRequest {
                prefix: Some(p64()),
                generation: 13,
            },
            Tlv::RouteRequest {
                prefix: None,
                generation: 0,
            },
        ] {
            assert_eq!(parse(&emit_vec(&tlv)), Ok(tlv));
        }
        // Wildcard: generation, AE 0, plen 0, nothing else.
        assert_eq!(
            emit_vec(&Tlv::RouteRequest {
                prefix: None,
                generation: 2
            }),
            [42, 3, 0, 5, 9, 3, 2, 0, 0]
        );
        assert_eq!(
            parse(&[42, 3, 0, 5, 9, 3, 2, 0, 8]),
            Err(TlvError::Malformed),
            "a wildcard with a prefix length"
        );
    }

    #[test]
    fn seqno_request_layout() {
        let tlv = Tlv::SeqnoRequest {
            seqno: 16,
            hop_count: 64,
            router_id: rid(7),
            prefix: p64(),
        };
        let b = emit_vec(&tlv);
        assert_eq!(&b[..12], &[42, 3, 0, 56, 10, 54, 2, 64, 0, 16, 64, 0]);
        assert_eq!(&b[12..52], &rid(7).0[..]);
        assert_eq!(&b[52..], &[4, 0, 0, 1, 0, 2, 0, 3]);
        assert_eq!(parse(&b), Ok(tlv));
        let mut zero_hops = b.clone();
        zero_hops[10] = 0;
        assert_eq!(parse(&zero_hops), Err(TlvError::Malformed));
    }

    #[test]
    fn header_lengths_must_agree() {
        let b = emit_vec(&Tlv::Hello {
            unicast: true,
            seqno: 1,
            interval: 2000,
        });
        let mut bad = b.clone();
        bad[3] = 9; // body says 9, packet has 8
        assert_eq!(parse(&bad), Err(TlvError::Malformed));
        let mut bad = b.clone();
        bad[5] = 5; // TLV says 5, body has 6
        assert_eq!(parse(&bad), Err(TlvError::Malformed));
        let mut bad = b.clone();
        bad[1] = 2; // RFC 8966 Babel
        assert_eq!(parse(&bad), Err(TlvError::Malformed));
        assert_eq!(parse(&b[..5]), Err(TlvError::Malformed));
        assert_eq!(
            parse(&[42, 3, 0, 3, 77, 1, 0]),
            Ok(Tlv::Unknown { kind: 77 })
        );
    }

    #[test]
    fn metrics_saturate_below_infinity() {
        assert_eq!(metric_add(1, 2), 3);
        assert_eq!(metric_add(0xFFF0, 0x20), 0xFFFE);
        assert_eq!(metric_add(0xFFFE, 1), 0xFFFE);
        assert_eq!(metric_add(INFINITY, 0), INFINITY);
        assert_eq!(metric_add(3, INFINITY), INFINITY);
    }

    #[test]
    fn subnets() {
        let s = p64();
        assert!(s.contains(Ipv6Addr::new(0x400, 1, 2, 3, 9, 9, 9, 9)));
        assert!(!s.contains(Ipv6Addr::new(0x400, 1, 2, 4, 0, 0, 0, 0)));
        let global = Subnet::new(Ipv6Addr::new(0x400, 0, 0, 0, 0, 0, 0, 0), 7).unwrap();
        assert!(global.contains_subnet(&s));
        assert!(!s.contains_subnet(&global));
        assert!(global.contains(Ipv6Addr::new(0x5ff, 0, 0, 0, 0, 0, 0, 1)));
        assert!(!global.contains(Ipv6Addr::new(0x600, 0, 0, 0, 0, 0, 0, 1)));
        assert!(Subnet::new(Ipv6Addr::UNSPECIFIED, 129).is_none());
        assert_eq!(std::format!("{s}"), "400:1:2:3::/64");
    }
}
