//! Babel packets on the wire (RFC 8966 section 4, RFC 9229 v4-via-v6, RFC 9616 timestamps).
//!
//! Parsing is checked and zero-allocation: [`Reader::new`] validates the packet header
//! (magic 42, version 2, body length) and then yields one [`Tlv`] at a time, resolving the
//! per-packet parser state the RFC defines (the current Router-Id, the per-family next
//! hops, and the default prefixes used by prefix compression) into each [`Update`]. A TLV
//! whose framing is intact but whose contents are wrong is reported as
//! [`TlvError::Malformed`] and skipped; a TLV that carries an unknown *mandatory* sub-TLV
//! is reported as [`TlvError::Mandatory`] and ignored, as section 4.4 requires; unknown
//! TLV types come back as [`Tlv::Unknown`]; a TLV whose length runs past the body ends
//! the packet ([`TlvError::Truncated`]).
//!
//! Emitting: [`Writer`] fills a caller buffer with a header and TLVs and refuses (without
//! writing) a TLV that does not fit. Updates are written uncompressed (no omitted octets),
//! with their router-id carried by a preceding Router-Id TLV.

use smoltcp::wire::{IpAddress, IpCidr, Ipv4Address, Ipv4Cidr, Ipv6Address, Ipv6Cidr};

/// The first octet of every Babel packet.
pub const MAGIC: u8 = 42;
/// The protocol version this module speaks.
pub const VERSION: u8 = 2;
/// Magic, version and body length.
pub const HEADER_LEN: usize = 4;
/// The metric (and cost) meaning "unreachable".
pub const INFINITY: u16 = 0xFFFF;
/// UDP port of Babel.
pub const PORT: u16 = 6696;
/// The link-local multicast group of Babel routers.
pub const MULTICAST: Ipv6Address = Ipv6Address::new(0xff02, 0, 0, 0, 0, 0, 1, 6);

/// TLV types (RFC 8966 section 4.6).
pub mod kind {
    pub const PAD1: u8 = 0;
    pub const PADN: u8 = 1;
    pub const ACK_REQ: u8 = 2;
    pub const ACK: u8 = 3;
    pub const HELLO: u8 = 4;
    pub const IHU: u8 = 5;
    pub const ROUTER_ID: u8 = 6;
    pub const NEXT_HOP: u8 = 7;
    pub const UPDATE: u8 = 8;
    pub const ROUTE_REQUEST: u8 = 9;
    pub const SEQNO_REQUEST: u8 = 10;
}

/// Sub-TLV types (RFC 8966 section 4.7, RFC 9616 section 3).
mod subkind {
    pub const PAD1: u8 = 0;
    pub const PADN: u8 = 1;
    pub const TIMESTAMP: u8 = 3;
    pub const MANDATORY: u8 = 0x80;
}

/// Address encodings (RFC 8966 section 4.1.3, RFC 9229 section 2.1).
pub mod ae {
    pub const WILDCARD: u8 = 0;
    pub const IPV4: u8 = 1;
    pub const IPV6: u8 = 2;
    pub const LINK_LOCAL: u8 = 3;
    pub const V4_VIA_V6: u8 = 4;
}

/// The Hello flag saying the Hello was sent unicast (section 4.6.5).
const HELLO_UNICAST: u16 = 0x8000;
/// Update flag: this prefix becomes the default for compression (section 4.6.9).
const UPDATE_PREFIX_FLAG: u8 = 0x80;
/// Update flag: the router-id is the low 64 bits of this prefix.
const UPDATE_ROUTER_ID_FLAG: u8 = 0x40;

/// An 8-octet router-id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouterId(pub [u8; 8]);

impl RouterId {
    /// The two values section 4.6.7 forbids.
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 8] && self.0 != [0xff; 8]
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for RouterId {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "{=[u8]:02x}", self.0)
    }
}

/// One Update, with the parser state resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Update {
    /// The prefix, normalised (host bits zero); `None` for a wildcard retraction (AE 0).
    pub prefix: Option<IpCidr>,
    /// The address encoding it arrived in (or is to be sent in); for an IPv4 prefix,
    /// [`ae::V4_VIA_V6`] says the next hop is IPv6.
    pub ae: u8,
    /// Centiseconds until the next scheduled update for this prefix (0: none promised).
    pub interval: u16,
    /// The source's sequence number.
    pub seqno: u16,
    /// The advertised metric ([`INFINITY`] retracts).
    pub metric: u16,
    /// The current Router-Id of the packet (from a Router-Id TLV or the router-id flag).
    pub router_id: Option<RouterId>,
    /// The packet's current next hop of the update's family, if a Next Hop TLV set one
    /// (otherwise the next hop is the sender).
    pub next_hop: Option<IpAddress>,
}

/// One TLV, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tlv {
    /// Acknowledgment Request.
    AckReq { opaque: u16, interval: u16 },
    /// Acknowledgment.
    Ack { opaque: u16 },
    /// Hello, with the RFC 9616 transmit timestamp (microseconds) if present.
    Hello {
        unicast: bool,
        seqno: u16,
        interval: u16,
        timestamp: Option<u32>,
    },
    /// I Heard You. `address` is `None` for AE 0 (the receiver, on a unicast IHU); the
    /// timestamp pair is (origin, receive) per RFC 9616.
    Ihu {
        rxcost: u16,
        interval: u16,
        address: Option<IpAddress>,
        timestamp: Option<(u32, u32)>,
    },
    /// Router-Id (sets the packet's current router-id).
    RouterId(RouterId),
    /// Next Hop (sets the packet's next hop of that family).
    NextHop(IpAddress),
    /// Update.
    Update(Update),
    /// Route Request; `None` asks for a full dump.
    RouteRequest { prefix: Option<IpCidr> },
    /// Seqno Request.
    SeqnoRequest {
        prefix: IpCidr,
        seqno: u16,
        hop_count: u8,
        router_id: RouterId,
    },
    /// A TLV type this module does not know (skipped, section 4.3).
    Unknown { kind: u8 },
}

/// Why a packet was refused as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PacketError {
    /// Shorter than the header.
    Short,
    /// Magic is not 42.
    BadMagic,
    /// Version is not 2.
    BadVersion,
    /// The body length runs past the datagram.
    BadLength,
}

/// Why one TLV was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TlvError {
    /// The TLV's length runs past the packet body: parsing of the packet stops.
    Truncated,
    /// The TLV is framed correctly but its contents are invalid: it is skipped.
    Malformed,
    /// The TLV carries a mandatory sub-TLV we do not understand: it is ignored.
    Mandatory,
    /// An address encoding this module does not know: the TLV is ignored.
    UnknownAe,
}

/// Sequence number comparison modulo 2^16 (section 3.2.1): `a` is newer than `b`.
pub fn seqno_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

/// The prefix with its host bits cleared.
pub fn normalize(prefix: IpCidr) -> IpCidr {
    match prefix {
        IpCidr::Ipv4(c) => {
            let bits = u32::from(c.address());
            let mask = if c.prefix_len() == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(c.prefix_len()))
            };
            IpCidr::Ipv4(Ipv4Cidr::new(
                Ipv4Address::from(bits & mask),
                c.prefix_len(),
            ))
        }
        IpCidr::Ipv6(c) => {
            let bits = u128::from(c.address());
            let mask = if c.prefix_len() == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(c.prefix_len()))
            };
            IpCidr::Ipv6(Ipv6Cidr::new(
                Ipv6Address::from(bits & mask),
                c.prefix_len(),
            ))
        }
    }
}

/// The per-packet parser state of section 4.5.
#[derive(Default)]
struct State {
    router_id: Option<RouterId>,
    next_hop_v4: Option<Ipv4Address>,
    next_hop_v6: Option<Ipv6Address>,
    default_v4: Option<[u8; 4]>,
    default_v6: Option<[u8; 16]>,
    default_v4_via_v6: Option<[u8; 4]>,
}

/// A validated packet, iterated TLV by TLV.
pub struct Reader<'a> {
    body: &'a [u8],
    pos: usize,
    state: State,
    done: bool,
}

impl<'a> Reader<'a> {
    /// Checks the header; the trailer (bytes after the body) is ignored.
    pub fn new(packet: &'a [u8]) -> Result<Self, PacketError> {
        if packet.len() < HEADER_LEN {
            return Err(PacketError::Short);
        }
        if packet[0] != MAGIC {
            return Err(PacketError::BadMagic);
        }
        if packet[1] != VERSION {
            return Err(PacketError::BadVersion);
        }
        let len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
        if HEADER_LEN + len > packet.len() {
            return Err(PacketError::BadLength);
        }
        Ok(Self {
            body: &packet[HEADER_LEN..HEADER_LEN + len],
            pos: 0,
            state: State::default(),
            done: false,
        })
    }

    fn parse(&mut self, t: u8, v: &[u8]) -> Result<Tlv, TlvError> {
        match t {
            kind::ACK_REQ => {
                if v.len() < 6 {
                    return Err(TlvError::Malformed);
                }
                sub_tlvs(&v[6..], |_, _| Ok(()))?;
                Ok(Tlv::AckReq {
                    opaque: be16(&v[2..]),
                    interval: be16(&v[4..]),
                })
            }
            kind::ACK => {
                if v.len() < 2 {
                    return Err(TlvError::Malformed);
                }
                sub_tlvs(&v[2..], |_, _| Ok(()))?;
                Ok(Tlv::Ack { opaque: be16(v) })
            }
            kind::HELLO => {
                if v.len() < 6 {
                    return Err(TlvError::Malformed);
                }
                let mut timestamp = None;
                sub_tlvs(&v[6..], |st, sv| {
                    if st == subkind::TIMESTAMP && sv.len() >= 4 {
                        timestamp = Some(be32(sv));
                    }
                    Ok(())
                })?;
                Ok(Tlv::Hello {
                    unicast: be16(v) & HELLO_UNICAST != 0,
                    seqno: be16(&v[2..]),
                    interval: be16(&v[4..]),
                    timestamp,
                })
            }
            kind::IHU => {
                if v.len() < 6 {
                    return Err(TlvError::Malformed);
                }
                let (address, used) = address(v[0], &v[6..])?;
                let mut timestamp = None;
                sub_tlvs(&v[6 + used..], |st, sv| {
                    if st == subkind::TIMESTAMP && sv.len() >= 8 {
                        timestamp = Some((be32(sv), be32(&sv[4..])));
                    }
                    Ok(())
                })?;
                Ok(Tlv::Ihu {
                    rxcost: be16(&v[2..]),
                    interval: be16(&v[4..]),
                    address,
                    timestamp,
                })
            }
            kind::ROUTER_ID => {
                if v.len() < 10 {
                    self.state.router_id = None;
                    return Err(TlvError::Malformed);
                }
                let mut id = [0; 8];
                id.copy_from_slice(&v[2..10]);
                let id = RouterId(id);
                if !id.is_valid() {
                    self.state.router_id = None;
                    return Err(TlvError::Malformed);
                }
                sub_tlvs(&v[10..], |_, _| Ok(()))?;
                self.state.router_id = Some(id);
                Ok(Tlv::RouterId(id))
            }
            kind::NEXT_HOP => {
                if v.len() < 2 {
                    return Err(TlvError::Malformed);
                }
                let (addr, used) = match address(v[0], &v[2..]) {
                    Ok((Some(a), used)) => (a, used),
                    Ok((None, _)) => return Err(TlvError::Malformed),
                    Err(e) => return Err(e),
                };
                sub_tlvs(&v[2 + used..], |_, _| Ok(()))?;
                match addr {
                    IpAddress::Ipv4(a) => self.state.next_hop_v4 = Some(a),
                    IpAddress::Ipv6(a) => self.state.next_hop_v6 = Some(a),
                }
                Ok(Tlv::NextHop(addr))
            }
            kind::UPDATE => self.update(v),
            kind::ROUTE_REQUEST => {
                if v.len() < 2 {
                    return Err(TlvError::Malformed);
                }
                let (prefix, used) = prefix(v[0], v[1], 0, &v[2..], None)?;
                sub_tlvs(&v[2 + used..], |_, _| Ok(()))?;
                Ok(Tlv::RouteRequest { prefix })
            }
            kind::SEQNO_REQUEST => {
                if v.len() < 14 {
                    return Err(TlvError::Malformed);
                }
                let (prefix, used) = prefix(v[0], v[1], 0, &v[14..], None)?;
                let prefix = prefix.ok_or(TlvError::Malformed)?;
                let mut id = [0; 8];
                id.copy_from_slice(&v[6..14]);
                sub_tlvs(&v[14 + used..], |_, _| Ok(()))?;
                Ok(Tlv::SeqnoRequest {
                    prefix,
                    seqno: be16(&v[2..]),
                    hop_count: v[4],
                    router_id: RouterId(id),
                })
            }
            other => Ok(Tlv::Unknown { kind: other }),
        }
    }

    fn update(&mut self, v: &[u8]) -> Result<Tlv, TlvError> {
        if v.len() < 10 {
            if v.len() >= 2 && v[1] & UPDATE_PREFIX_FLAG != 0 {
                self.forget_defaults();
            }
            return Err(TlvError::Malformed);
        }
        let (ae_, flags, plen, omitted) = (v[0], v[1], v[2], v[3]);
        let default: Option<&[u8]> = match ae_ {
            ae::IPV4 => self.state.default_v4.as_ref().map(|d| &d[..]),
            ae::IPV6 => self.state.default_v6.as_ref().map(|d| &d[..]),
            ae::V4_VIA_V6 => self.state.default_v4_via_v6.as_ref().map(|d| &d[..]),
            _ => None,
        };
        let parsed = prefix(ae_, plen, omitted, &v[10..], default);
        let (prefix, used) = match parsed {
            Ok(p) => p,
            Err(e) => {
                if flags & UPDATE_PREFIX_FLAG != 0 {
                    self.forget_defaults();
                }
                return Err(e);
            }
        };
        if flags & UPDATE_PREFIX_FLAG != 0 {
            match prefix {
                Some(IpCidr::Ipv4(c)) if ae_ == ae::IPV4 => {
                    self.state.default_v4 = Some(c.address().octets())
                }
                Some(IpCidr::Ipv4(c)) => self.state.default_v4_via_v6 = Some(c.address().octets()),
                Some(IpCidr::Ipv6(c)) if ae_ == ae::IPV6 => {
                    self.state.default_v6 = Some(c.address().octets())
                }
                _ => {}
            }
        }
        if flags & UPDATE_ROUTER_ID_FLAG != 0 {
            let mut id = [0; 8];
            match prefix {
                Some(IpCidr::Ipv4(c)) => id[4..].copy_from_slice(&c.address().octets()),
                Some(IpCidr::Ipv6(c)) => id.copy_from_slice(&c.address().octets()[8..]),
                None => return Err(TlvError::Malformed),
            }
            self.state.router_id = Some(RouterId(id));
        }
        let metric = be16(&v[8..]);
        if metric != INFINITY && prefix.is_some() && self.state.router_id.is_none() {
            return Err(TlvError::Malformed);
        }
        if prefix.is_none() && metric != INFINITY {
            return Err(TlvError::Malformed);
        }
        sub_tlvs(&v[10 + used..], |_, _| Ok(()))?;
        let next_hop = match prefix {
            Some(IpCidr::Ipv4(_)) if ae_ == ae::IPV4 => self.state.next_hop_v4.map(IpAddress::Ipv4),
            Some(_) => self.state.next_hop_v6.map(IpAddress::Ipv6),
            None => None,
        };
        // An IPv4 route announced with AE 1 needs an IPv4 next hop (section 4.6.9).
        if ae_ == ae::IPV4 && metric != INFINITY && next_hop.is_none() {
            return Err(TlvError::Malformed);
        }
        Ok(Tlv::Update(Update {
            prefix,
            ae: ae_,
            interval: be16(&v[4..]),
            seqno: be16(&v[6..]),
            metric,
            router_id: self.state.router_id,
            next_hop,
        }))
    }

    fn forget_defaults(&mut self) {
        self.state.default_v4 = None;
        self.state.default_v6 = None;
        self.state.default_v4_via_v6 = None;
    }
}

impl Iterator for Reader<'_> {
    type Item = Result<Tlv, TlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done || self.pos >= self.body.len() {
                return None;
            }
            let t = self.body[self.pos];
            if t == kind::PAD1 {
                self.pos += 1;
                continue;
            }
            if self.pos + 2 > self.body.len() {
                self.done = true;
                return Some(Err(TlvError::Truncated));
            }
            let len = usize::from(self.body[self.pos + 1]);
            let start = self.pos + 2;
            if start + len > self.body.len() {
                self.done = true;
                return Some(Err(TlvError::Truncated));
            }
            self.pos = start + len;
            if t == kind::PADN {
                continue;
            }
            let v = &self.body[start..start + len];
            return Some(self.parse(t, v));
        }
    }
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Walks a sub-TLV area; `f` sees every non-padding sub-TLV's type and value. An unknown
/// mandatory sub-TLV makes the whole TLV ignored; the only known one here is Timestamp.
fn sub_tlvs(
    mut area: &[u8],
    mut f: impl FnMut(u8, &[u8]) -> Result<(), TlvError>,
) -> Result<(), TlvError> {
    let mut mandatory = false;
    while let Some(&t) = area.first() {
        if t == subkind::PAD1 {
            area = &area[1..];
            continue;
        }
        if area.len() < 2 || area.len() < 2 + usize::from(area[1]) {
            return Err(TlvError::Malformed);
        }
        let (v, rest) = area[2..].split_at(usize::from(area[1]));
        if t != subkind::PADN {
            if t & subkind::MANDATORY != 0 {
                mandatory = true;
            } else {
                f(t, v)?;
            }
        }
        area = rest;
    }
    if mandatory {
        Err(TlvError::Mandatory)
    } else {
        Ok(())
    }
}

/// An address in encoding `ae` at the start of `b`, and how many octets it used.
fn address(ae_: u8, b: &[u8]) -> Result<(Option<IpAddress>, usize), TlvError> {
    match ae_ {
        ae::WILDCARD => Ok((None, 0)),
        ae::IPV4 => {
            let o: [u8; 4] = b
                .get(..4)
                .and_then(|s| s.try_into().ok())
                .ok_or(TlvError::Malformed)?;
            Ok((Some(IpAddress::Ipv4(Ipv4Address::from(o))), 4))
        }
        ae::IPV6 => {
            let o: [u8; 16] = b
                .get(..16)
                .and_then(|s| s.try_into().ok())
                .ok_or(TlvError::Malformed)?;
            Ok((Some(IpAddress::Ipv6(Ipv6Address::from(o))), 16))
        }
        ae::LINK_LOCAL => {
            let low = b.get(..8).ok_or(TlvError::Malformed)?;
            let mut o = [0u8; 16];
            o[0] = 0xfe;
            o[1] = 0x80;
            o[8..].copy_from_slice(low);
            Ok((Some(IpAddress::Ipv6(Ipv6Address::from(o))), 8))
        }
        // v4-via-v6 has no address form of its own (RFC 9229 section 2.1).
        ae::V4_VIA_V6 => Err(TlvError::Malformed),
        _ => Err(TlvError::UnknownAe),
    }
}

/// A (possibly compressed) prefix in encoding `ae`: `None` for AE 0. Returns the prefix,
/// normalised, and the octets it used.
fn prefix(
    ae_: u8,
    plen: u8,
    omitted: u8,
    b: &[u8],
    default: Option<&[u8]>,
) -> Result<(Option<IpCidr>, usize), TlvError> {
    let pb = usize::from(plen).div_ceil(8);
    let omitted = usize::from(omitted);
    let (width, fixed) = match ae_ {
        ae::WILDCARD => {
            return if plen == 0 && omitted == 0 {
                Ok((None, 0))
            } else {
                Err(TlvError::Malformed)
            }
        }
        ae::IPV4 | ae::V4_VIA_V6 => (4, 0),
        ae::IPV6 => (16, 0),
        ae::LINK_LOCAL => (16, 8),
        _ => return Err(TlvError::UnknownAe),
    };
    if pb > width || omitted > width || (ae_ == ae::LINK_LOCAL && omitted != 0) {
        return Err(TlvError::Malformed);
    }
    let mut o = [0u8; 16];
    if ae_ == ae::LINK_LOCAL {
        o[0] = 0xfe;
        o[1] = 0x80;
    }
    if omitted > 0 {
        let d = default.ok_or(TlvError::Malformed)?;
        o[..omitted].copy_from_slice(&d[..omitted]);
    }
    let from = omitted.max(fixed);
    let used = pb.saturating_sub(from);
    let src = b.get(..used).ok_or(TlvError::Malformed)?;
    o[from..from + used].copy_from_slice(src);
    let cidr = if width == 4 {
        let a: [u8; 4] = [o[0], o[1], o[2], o[3]];
        IpCidr::Ipv4(Ipv4Cidr::new(Ipv4Address::from(a), plen))
    } else {
        IpCidr::Ipv6(Ipv6Cidr::new(Ipv6Address::from(o), plen))
    };
    Ok((Some(normalize(cidr)), used))
}

/// The buffer is full: the TLV was not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// Writes one packet into a caller buffer.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Writer<'a> {
    /// Starts a packet; `None` if the buffer cannot even hold the header.
    pub fn new(buf: &'a mut [u8]) -> Option<Self> {
        if buf.len() < HEADER_LEN || buf.len() > HEADER_LEN + usize::from(u16::MAX) {
            return None;
        }
        buf[0] = MAGIC;
        buf[1] = VERSION;
        buf[2] = 0;
        buf[3] = 0;
        Some(Self {
            buf,
            len: HEADER_LEN,
        })
    }

    /// Takes `n` octets already in the buffer after the header as written (to resume a
    /// packet across calls).
    pub(crate) fn skip(&mut self, n: usize) {
        self.len = (self.len + n).min(self.buf.len());
    }

    /// Whether only the header has been written.
    pub fn is_empty(&self) -> bool {
        self.len == HEADER_LEN
    }

    /// Octets left for TLVs.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Appends one TLV, or refuses it whole if it does not fit (or cannot be encoded:
    /// a wildcard in a Seqno Request, an unknown TLV).
    pub fn push(&mut self, tlv: &Tlv) -> Result<(), Full> {
        let mut tmp = [0u8; 64];
        let n = encode(tlv, &mut tmp).ok_or(Full)?;
        if n > self.remaining() {
            return Err(Full);
        }
        self.buf[self.len..self.len + n].copy_from_slice(&tmp[..n]);
        self.len += n;
        Ok(())
    }

    /// Sets the body length and returns the packet's length.
    pub fn finish(self) -> usize {
        let body = (self.len - HEADER_LEN) as u16;
        self.buf[2..4].copy_from_slice(&body.to_be_bytes());
        self.len
    }
}

/// Address octets of a prefix (uncompressed), with its AE.
fn prefix_octets(p: &IpCidr, v4_ae: u8, out: &mut [u8]) -> (u8, u8, usize) {
    let pb = usize::from(p.prefix_len()).div_ceil(8);
    match p {
        IpCidr::Ipv4(c) => {
            out[..pb].copy_from_slice(&c.address().octets()[..pb]);
            (v4_ae, c.prefix_len(), pb)
        }
        IpCidr::Ipv6(c) => {
            out[..pb].copy_from_slice(&c.address().octets()[..pb]);
            (ae::IPV6, c.prefix_len(), pb)
        }
    }
}

fn address_octets(a: &IpAddress, out: &mut [u8]) -> (u8, usize) {
    match a {
        IpAddress::Ipv4(a) => {
            out[..4].copy_from_slice(&a.octets());
            (ae::IPV4, 4)
        }
        IpAddress::Ipv6(a) => {
            let o = a.octets();
            if o[..8] == [0xfe, 0x80, 0, 0, 0, 0, 0, 0] {
                out[..8].copy_from_slice(&o[8..]);
                (ae::LINK_LOCAL, 8)
            } else {
                out[..16].copy_from_slice(&o);
                (ae::IPV6, 16)
            }
        }
    }
}

/// Encodes one TLV into `out` (large enough for any TLV this module writes), returning
/// its length.
fn encode(tlv: &Tlv, out: &mut [u8; 64]) -> Option<usize> {
    let (t, len) = match *tlv {
        Tlv::AckReq { opaque, interval } => {
            out[2..4].fill(0);
            out[4..6].copy_from_slice(&opaque.to_be_bytes());
            out[6..8].copy_from_slice(&interval.to_be_bytes());
            (kind::ACK_REQ, 6)
        }
        Tlv::Ack { opaque } => {
            out[2..4].copy_from_slice(&opaque.to_be_bytes());
            (kind::ACK, 2)
        }
        Tlv::Hello {
            unicast,
            seqno,
            interval,
            timestamp,
        } => {
            let flags = if unicast { HELLO_UNICAST } else { 0 };
            out[2..4].copy_from_slice(&flags.to_be_bytes());
            out[4..6].copy_from_slice(&seqno.to_be_bytes());
            out[6..8].copy_from_slice(&interval.to_be_bytes());
            match timestamp {
                Some(ts) => {
                    out[8] = subkind::TIMESTAMP;
                    out[9] = 4;
                    out[10..14].copy_from_slice(&ts.to_be_bytes());
                    (kind::HELLO, 12)
                }
                None => (kind::HELLO, 6),
            }
        }
        Tlv::Ihu {
            rxcost,
            interval,
            address,
            timestamp,
        } => {
            let (ae_, alen) = match address {
                Some(a) => address_octets(&a, &mut out[8..]),
                None => (ae::WILDCARD, 0),
            };
            out[2] = ae_;
            out[3] = 0;
            out[4..6].copy_from_slice(&rxcost.to_be_bytes());
            out[6..8].copy_from_slice(&interval.to_be_bytes());
            let mut len = 6 + alen;
            if let Some((origin, receive)) = timestamp {
                let s = 2 + len;
                out[s] = subkind::TIMESTAMP;
                out[s + 1] = 8;
                out[s + 2..s + 6].copy_from_slice(&origin.to_be_bytes());
                out[s + 6..s + 10].copy_from_slice(&receive.to_be_bytes());
                len += 10;
            }
            (kind::IHU, len)
        }
        Tlv::RouterId(id) => {
            out[2..4].fill(0);
            out[4..12].copy_from_slice(&id.0);
            (kind::ROUTER_ID, 10)
        }
        Tlv::NextHop(a) => {
            let (ae_, alen) = address_octets(&a, &mut out[4..]);
            out[2] = ae_;
            out[3] = 0;
            (kind::NEXT_HOP, 2 + alen)
        }
        Tlv::Update(u) => {
            let (ae_, plen, pb) = match u.prefix {
                Some(p) => {
                    let v4_ae = if u.ae == ae::IPV4 {
                        ae::IPV4
                    } else {
                        ae::V4_VIA_V6
                    };
                    prefix_octets(&p, v4_ae, &mut out[12..])
                }
                None => (ae::WILDCARD, 0, 0),
            };
            out[2] = ae_;
            out[3] = 0;
            out[4] = plen;
            out[5] = 0;
            out[6..8].copy_from_slice(&u.interval.to_be_bytes());
            out[8..10].copy_from_slice(&u.seqno.to_be_bytes());
            out[10..12].copy_from_slice(&u.metric.to_be_bytes());
            (kind::UPDATE, 10 + pb)
        }
        Tlv::RouteRequest { prefix } => {
            let (ae_, plen, pb) = match prefix {
                Some(p) => prefix_octets(&p, ae::IPV4, &mut out[4..]),
                None => (ae::WILDCARD, 0, 0),
            };
            out[2] = ae_;
            out[3] = plen;
            (kind::ROUTE_REQUEST, 2 + pb)
        }
        Tlv::SeqnoRequest {
            prefix,
            seqno,
            hop_count,
            router_id,
        } => {
            let (ae_, plen, pb) = prefix_octets(&prefix, ae::IPV4, &mut out[16..]);
            out[2] = ae_;
            out[3] = plen;
            out[4..6].copy_from_slice(&seqno.to_be_bytes());
            out[6] = hop_count;
            out[7] = 0;
            out[8..16].copy_from_slice(&router_id.0);
            (kind::SEQNO_REQUEST, 14 + pb)
        }
        Tlv::Unknown { .. } => return None,
    };
    out[0] = t;
    out[1] = len as u8;
    Some(2 + len)
}
