//! IPv4 masquerade: source NAT of inside hosts to the egress link's address.
//!
//! [`Nat`] rewrites whole IPv4 packets (starting at the IPv4 header) in place.
//! [`Nat::outbound`] takes a packet leaving through the egress link and replaces
//! its source address with the public address and its TCP/UDP source port (or
//! ICMP echo identifier) with a mapped public port, creating the mapping if
//! needed. [`Nat::inbound`] takes a packet that arrived on the egress link for
//! the public address and, if it belongs to a mapping, rewrites its destination
//! back to the inside host and port.
//!
//! What it does:
//! - TCP, UDP and ICMP echo (request out, reply in); ICMP errors (destination
//!   unreachable incl. fragmentation needed, time exceeded) in both directions,
//!   translating the quoted packet as well as the outer header.
//! - Endpoint-independent mapping (every flow of one inside address/port uses
//!   one public port) with address-and-port-dependent filtering (inbound
//!   packets are only accepted from a remote address and port the inside
//!   endpoint has sent to). The table holds one entry per 5-tuple; entries of
//!   the same inside endpoint share their public port. A public port is never
//!   handed to two different inside endpoints of the same protocol.
//! - Checksums (IPv4 header, TCP, UDP, ICMP, and those inside a quoted packet)
//!   are updated incrementally (RFC 1624), so a packet that arrived with a bad
//!   transport checksum still has a bad one. A UDP checksum of 0 stays 0.
//! - Idle timeouts: UDP 60 s, ICMP 30 s, TCP 7440 s once a SYN has been seen in
//!   both directions, 240 s while opening or after a FIN or RST.
//! - A bounded table allocated once in [`Nat::new`]; nothing is allocated per
//!   packet. Two hash indexes (by inside endpoint, by public port) make lookups
//!   in both directions cheap, and per-timeout LRU lists make expiry and
//!   eviction O(1) per entry. When full, expired entries are reclaimed first,
//!   then the least recently used entry is evicted.
//!
//! What it does not do:
//! - Fragments (MF set or offset != 0) are refused with [`NatDrop::Fragment`];
//!   reassemble first if they must pass.
//! - No protocols other than TCP, UDP and ICMP (no GRE, SCTP, ESP...), no
//!   ICMP messages other than echo and the errors above, no hairpinning, no
//!   port forwarding, no application-level gateways (FTP, SIP...).
//! - No TCP sequence tracking: the state is only "SYN seen each way" and
//!   "FIN/RST seen". Any outbound TCP segment creates a mapping (so flows
//!   survive an eviction), not only a SYN.
//! - It does not decide what is inside: the caller only hands it packets that
//!   should be masqueraded. It does not touch the TTL or the link layer.
//! - Clocks are whatever the caller passes as `now_secs`; a clock going
//!   backwards never expires anything early.
//! - Lookups walk one hash bucket, but all flows of one inside endpoint (or
//!   one public port) share a bucket, so an endpoint talking to thousands of
//!   remotes makes that walk long (bounded by the capacity).
//! - Outbound ICMP errors are matched on the quoted packet only; their outer
//!   source is not checked against the inside host of the mapping.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::RangeInclusive;

use smoltcp::wire::Ipv4Address;

/// Idle timeout of a UDP mapping, seconds.
pub const UDP_TIMEOUT_SECS: u64 = 60;
/// Idle timeout of an ICMP echo mapping, seconds.
pub const ICMP_TIMEOUT_SECS: u64 = 30;
/// Idle timeout of an established TCP connection (SYN seen both ways), seconds.
pub const TCP_ESTABLISHED_TIMEOUT_SECS: u64 = 7440;
/// Idle timeout of a TCP connection being opened or closed, seconds.
pub const TCP_TRANSITORY_TIMEOUT_SECS: u64 = 240;

/// Why a packet was not translated. The caller drops it (or, for
/// [`NatDrop::NoMapping`] on inbound, may hand it to its own stack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatDrop {
    /// Not a well-formed IPv4 packet, or its TCP/UDP/ICMP header is truncated
    /// or inconsistent, or the IPv4 header checksum is wrong.
    Malformed,
    /// A protocol or ICMP message type this NAT does not translate.
    UnsupportedProtocol,
    /// No mapping could be created (capacity 0 or empty port range).
    TableFull,
    /// Inbound: not addressed to the public address, or no mapping matches
    /// (including a mapping that exists but for a different remote).
    NoMapping,
    /// An IPv4 fragment (MF set or non-zero offset).
    Fragment,
}

/// Table events since [`Nat::new`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NatCounters {
    /// Entries created.
    pub created: u64,
    /// Entries removed because they were idle past their timeout.
    pub expired: u64,
    /// Live entries removed to make room for a new one.
    pub evicted: u64,
}

const NIL: u32 = u32::MAX;

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_DST_UNREACHABLE: u8 = 3;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_TIME_EXCEEDED: u8 = 11;

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_ACK: u8 = 0x10;

/// TCP state bits kept per entry.
const ST_SYN_OUT: u8 = 1;
const ST_SYN_IN: u8 = 2;
const ST_CLOSING: u8 = 4;

/// Timeout classes; each has its own LRU list, so the tail of each list is the
/// first entry of that class to expire.
const CLASS_UDP: u8 = 0;
const CLASS_ICMP: u8 = 1;
const CLASS_TCP_TRANSITORY: u8 = 2;
const CLASS_TCP_ESTABLISHED: u8 = 3;
const CLASSES: usize = 4;
const TIMEOUTS: [u64; CLASSES] = [
    UDP_TIMEOUT_SECS,
    ICMP_TIMEOUT_SECS,
    TCP_TRANSITORY_TIMEOUT_SECS,
    TCP_ESTABLISHED_TIMEOUT_SECS,
];

/// One connection: the inside endpoint and the remote it talks to. For ICMP
/// echo the "port" is the identifier and `remote_port` is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Flow {
    proto: u8,
    inside: [u8; 4],
    inside_port: u16,
    remote: [u8; 4],
    remote_port: u16,
}

impl Flow {
    fn same_inside(&self, other: &Flow) -> bool {
        self.proto == other.proto
            && self.inside == other.inside
            && self.inside_port == other.inside_port
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    flow: Flow,
    public_port: u16,
    last_seen: u64,
    tcp: u8,
    class: u8,
    live: bool,
    /// Next entry in the same bucket of the inside-endpoint index.
    out_next: u32,
    /// Next entry in the same bucket of the public-port index.
    in_next: u32,
    /// LRU neighbours (towards the head = more recent, towards the tail).
    /// `next` also links the free list.
    prev: u32,
    next: u32,
}

impl Entry {
    const EMPTY: Entry = Entry {
        flow: Flow {
            proto: 0,
            inside: [0; 4],
            inside_port: 0,
            remote: [0; 4],
            remote_port: 0,
        },
        public_port: 0,
        last_seen: 0,
        tcp: 0,
        class: CLASS_UDP,
        live: false,
        out_next: NIL,
        in_next: NIL,
        prev: NIL,
        next: NIL,
    };
}

#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

/// IPv4 masquerade with a bounded connection table. See the module docs.
#[derive(Debug)]
pub struct Nat {
    public: [u8; 4],
    port_lo: u16,
    port_span: u32,
    seed: u64,
    entries: Vec<Entry>,
    /// Buckets keyed by (protocol, inside address, inside port).
    out_index: Vec<u32>,
    /// Buckets keyed by (protocol, public port).
    in_index: Vec<u32>,
    mask: usize,
    lists: [List; CLASSES],
    free: u32,
    len: usize,
    counters: NatCounters,
}

impl Nat {
    /// A table of `capacity` connections at most (allocated once here; nothing
    /// is allocated per packet). `public` is the egress link's address; mapped
    /// ports and echo identifiers come from `ports` (e.g. 20000..=59999).
    ///
    /// The capacity is clamped to the number of ports in `ports`, so a free
    /// public port always exists when a mapping is created.
    pub fn new(capacity: usize, public: Ipv4Address, ports: RangeInclusive<u16>) -> Nat {
        Nat::with_seed(capacity, public, ports, 0)
    }

    /// Like [`Nat::new`], with a secret `seed` (e.g. from the platform RNG)
    /// that randomises the hash indexes and the choice of public ports, so
    /// they cannot be predicted from outside.
    pub fn with_seed(
        capacity: usize,
        public: Ipv4Address,
        ports: RangeInclusive<u16>,
        seed: u64,
    ) -> Nat {
        let (lo, hi) = (*ports.start(), *ports.end());
        let port_span = if hi >= lo { u32::from(hi - lo) + 1 } else { 0 };
        let capacity = capacity.min(port_span as usize);
        let buckets = capacity.max(1).saturating_mul(2).next_power_of_two();
        let mut entries = vec![Entry::EMPTY; capacity];
        let mut index: u32 = 0;
        for e in entries.iter_mut() {
            index += 1;
            e.next = if (index as usize) < capacity {
                index
            } else {
                NIL
            };
        }
        Nat {
            public: public.octets(),
            port_lo: lo,
            port_span,
            seed,
            entries,
            out_index: vec![NIL; buckets],
            in_index: vec![NIL; buckets],
            mask: buckets - 1,
            lists: [List {
                head: NIL,
                tail: NIL,
            }; CLASSES],
            free: if capacity > 0 { 0 } else { NIL },
            len: 0,
            counters: NatCounters::default(),
        }
    }

    /// Entries in the table (entries idle past their timeout count until
    /// the next call to `outbound`, `inbound` or [`Nat::expire`]).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the table holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum number of entries.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    /// The public (egress) address packets are masqueraded to.
    pub fn public(&self) -> Ipv4Address {
        Ipv4Address::from(self.public)
    }

    /// Counters since creation.
    pub fn counters(&self) -> NatCounters {
        self.counters
    }

    /// Removes every entry idle past its timeout at `now_secs`. `outbound`
    /// and `inbound` do this themselves; call it to keep [`Nat::len`] exact
    /// while no traffic passes.
    pub fn expire(&mut self, now_secs: u64) {
        for class in 0..CLASSES {
            loop {
                let tail = self.lists[class].tail;
                let Some(e) = self.entries.get(tail as usize) else {
                    break;
                };
                if !expired(e, now_secs) {
                    break;
                }
                self.remove(tail);
                self.counters.expired += 1;
            }
        }
    }

    /// Rewrites one address and one port of a TCP/UDP packet of entry `i` (the source
    /// on the way out, the destination on the way back), fixes both checksums, and
    /// updates the entry's TCP state and age.
    fn rewrite_transport(
        &mut self,
        now_secs: u64,
        pkt: &mut [u8],
        i: u32,
        r: Rewrite,
        flags: u8,
        outbound: bool,
    ) -> Result<(), NatDrop> {
        let addr_d = rewrite_addr(pkt, r.addr_off, r.addr)?;
        let mut port_d = Delta::default();
        set16(pkt, r.port_off, r.port, &mut port_d)?;
        fix_l4_csum(pkt, r.proto, r.csum_off, addr_d.plus(port_d))?;
        if r.proto == PROTO_TCP {
            self.tcp_seen(i, flags, outbound);
        }
        self.touch(i, now_secs);
        Ok(())
    }

    /// A packet from the segment leaving through the egress link: rewrites the
    /// source address and TCP/UDP source port or ICMP echo identifier to the
    /// mapping (creating it) and fixes the checksums. Outbound ICMP errors
    /// about an inbound-translated packet are translated back (outer source,
    /// quoted destination and port). On error the packet is left unchanged.
    pub fn outbound(&mut self, now_secs: u64, packet: &mut [u8]) -> Result<(), NatDrop> {
        let ip = parse_ipv4(packet)?;
        let pkt = packet.get_mut(..ip.total).ok_or(NatDrop::Malformed)?;
        let l4 = ip.hl;
        match ip.proto {
            PROTO_TCP | PROTO_UDP => {
                let (csum_off, flags) = transport(pkt, ip.proto, l4)?;
                let flow = Flow {
                    proto: ip.proto,
                    inside: ip.src,
                    inside_port: rd16(pkt, l4)?,
                    remote: ip.dst,
                    remote_port: rd16(pkt, l4 + 2)?,
                };
                self.expire(now_secs);
                let i = self.lookup_or_create(now_secs, flow)?;
                let public_port = self.entry(i)?.public_port;
                let rewrite = Rewrite {
                    proto: ip.proto,
                    csum_off,
                    addr_off: 12,
                    addr: self.public,
                    port_off: l4,
                    port: public_port,
                };
                self.rewrite_transport(now_secs, pkt, i, rewrite, flags, true)
            }
            PROTO_ICMP => {
                let ty = *pkt.get(l4).ok_or(NatDrop::Malformed)?;
                if ip.total - l4 < 8 {
                    return Err(NatDrop::Malformed);
                }
                match ty {
                    ICMP_ECHO_REQUEST => {
                        let flow = Flow {
                            proto: PROTO_ICMP,
                            inside: ip.src,
                            inside_port: rd16(pkt, l4 + 4)?,
                            remote: ip.dst,
                            remote_port: 0,
                        };
                        self.expire(now_secs);
                        let i = self.lookup_or_create(now_secs, flow)?;
                        let public_id = self.entry(i)?.public_port;
                        rewrite_addr(pkt, 12, self.public)?;
                        rewrite_echo_id(pkt, l4, public_id)?;
                        self.touch(i, now_secs);
                        Ok(())
                    }
                    ICMP_DST_UNREACHABLE | ICMP_TIME_EXCEEDED => {
                        self.expire(now_secs);
                        self.icmp_error(pkt, &ip, false)
                    }
                    _ => Err(NatDrop::UnsupportedProtocol),
                }
            }
            _ => Err(NatDrop::UnsupportedProtocol),
        }
    }

    /// A packet arriving on the egress link for the public address: if it
    /// matches a mapping (same remote address and port the inside endpoint
    /// sent to), rewrites the destination back to the inside host/port and
    /// refreshes the mapping; otherwise `Err(NoMapping)`. ICMP errors whose
    /// quoted packet matches a mapping get their outer destination and the
    /// quoted source address and port translated. Echo requests to the public
    /// address are `NoMapping` (they are for the router itself). On error the
    /// packet is left unchanged.
    pub fn inbound(&mut self, now_secs: u64, packet: &mut [u8]) -> Result<(), NatDrop> {
        let ip = parse_ipv4(packet)?;
        let pkt = packet.get_mut(..ip.total).ok_or(NatDrop::Malformed)?;
        if ip.dst != self.public {
            return Err(NatDrop::NoMapping);
        }
        let l4 = ip.hl;
        match ip.proto {
            PROTO_TCP | PROTO_UDP => {
                let (csum_off, flags) = transport(pkt, ip.proto, l4)?;
                let remote_port = rd16(pkt, l4)?;
                let public_port = rd16(pkt, l4 + 2)?;
                self.expire(now_secs);
                let i = self.find_in(ip.proto, public_port, ip.src, remote_port);
                let flow = self.entry(i).map_err(|_| NatDrop::NoMapping)?.flow;
                let rewrite = Rewrite {
                    proto: ip.proto,
                    csum_off,
                    addr_off: 16,
                    addr: flow.inside,
                    port_off: l4 + 2,
                    port: flow.inside_port,
                };
                self.rewrite_transport(now_secs, pkt, i, rewrite, flags, false)
            }
            PROTO_ICMP => {
                let ty = *pkt.get(l4).ok_or(NatDrop::Malformed)?;
                if ip.total - l4 < 8 {
                    return Err(NatDrop::Malformed);
                }
                match ty {
                    ICMP_ECHO_REPLY => {
                        let public_id = rd16(pkt, l4 + 4)?;
                        self.expire(now_secs);
                        let i = self.find_in(PROTO_ICMP, public_id, ip.src, 0);
                        let flow = self.entry(i).map_err(|_| NatDrop::NoMapping)?.flow;
                        rewrite_addr(pkt, 16, flow.inside)?;
                        rewrite_echo_id(pkt, l4, flow.inside_port)?;
                        self.touch(i, now_secs);
                        Ok(())
                    }
                    ICMP_DST_UNREACHABLE | ICMP_TIME_EXCEEDED => {
                        self.expire(now_secs);
                        self.icmp_error(pkt, &ip, true)
                    }
                    ICMP_ECHO_REQUEST => Err(NatDrop::NoMapping),
                    _ => Err(NatDrop::UnsupportedProtocol),
                }
            }
            _ => Err(NatDrop::UnsupportedProtocol),
        }
    }

    /// Translates an ICMP error (`pkt` is exactly the IPv4 packet). Inbound:
    /// the quoted packet is one we sent out (public source); outbound: it is
    /// one we let in (inside destination). Does not refresh the mapping.
    fn icmp_error(
        &mut self,
        pkt: &mut [u8],
        ip: &Ipv4Header,
        inbound: bool,
    ) -> Result<(), NatDrop> {
        let e = ip.hl + 8;
        let eb0 = *pkt.get(e).ok_or(NatDrop::Malformed)?;
        if eb0 >> 4 != 4 {
            return Err(NatDrop::Malformed);
        }
        let ehl = usize::from(eb0 & 0x0f) * 4;
        if ehl < 20 {
            return Err(NatDrop::Malformed);
        }
        let t = e + ehl;
        if t + 8 > pkt.len() {
            return Err(NatDrop::Malformed);
        }
        let eproto = *pkt.get(e + 9).ok_or(NatDrop::Malformed)?;
        if rd16(pkt, e + 6)? & 0x1fff != 0 {
            // A later fragment: no ports to match.
            return Err(NatDrop::NoMapping);
        }
        let esrc = rd_addr(pkt, e + 12)?;
        let edst = rd_addr(pkt, e + 16)?;

        // Find the entry, and where the quoted packet carries the translated
        // address and port.
        let (i, addr_off, port_off) = match eproto {
            PROTO_TCP | PROTO_UDP => {
                let sport = rd16(pkt, t)?;
                let dport = rd16(pkt, t + 2)?;
                if inbound {
                    if esrc != self.public {
                        return Err(NatDrop::NoMapping);
                    }
                    (self.find_in(eproto, sport, edst, dport), e + 12, t)
                } else {
                    let flow = Flow {
                        proto: eproto,
                        inside: edst,
                        inside_port: dport,
                        remote: esrc,
                        remote_port: sport,
                    };
                    (self.find_out(&flow).0, e + 16, t + 2)
                }
            }
            PROTO_ICMP => {
                let ety = *pkt.get(t).ok_or(NatDrop::Malformed)?;
                let id = rd16(pkt, t + 4)?;
                if inbound {
                    if ety != ICMP_ECHO_REQUEST || esrc != self.public {
                        return Err(NatDrop::NoMapping);
                    }
                    (self.find_in(PROTO_ICMP, id, edst, 0), e + 12, t + 4)
                } else {
                    if ety != ICMP_ECHO_REPLY {
                        return Err(NatDrop::NoMapping);
                    }
                    let flow = Flow {
                        proto: PROTO_ICMP,
                        inside: edst,
                        inside_port: id,
                        remote: esrc,
                        remote_port: 0,
                    };
                    (self.find_out(&flow).0, e + 16, t + 4)
                }
            }
            _ => return Err(NatDrop::UnsupportedProtocol),
        };
        let entry = *self.entry(i).map_err(|_| NatDrop::NoMapping)?;
        let (new_addr, new_port) = if inbound {
            (entry.flow.inside, entry.flow.inside_port)
        } else {
            (self.public, entry.public_port)
        };

        // Everything below is inside the ICMP message, so every word changed
        // also goes into the outer ICMP checksum. All offsets are even
        // relative to the ICMP header, so words line up.
        let mut icmp_d = Delta::default();
        let mut eaddr_d = Delta::default();
        set_addr(pkt, addr_off, new_addr, &mut eaddr_d)?;
        icmp_d = icmp_d.plus(eaddr_d);
        let ecsum = rd16(pkt, e + 10)?;
        set16(pkt, e + 10, eaddr_d.apply(ecsum), &mut icmp_d)?;
        let mut port_d = Delta::default();
        set16(pkt, port_off, new_port, &mut port_d)?;
        icmp_d = icmp_d.plus(port_d);
        match eproto {
            PROTO_TCP => {
                // The quote may stop before the TCP checksum.
                if let Ok(old) = rd16(pkt, t + 16) {
                    set16(pkt, t + 16, eaddr_d.plus(port_d).apply(old), &mut icmp_d)?;
                }
            }
            PROTO_UDP => {
                let old = rd16(pkt, t + 6)?;
                if old != 0 {
                    set16(
                        pkt,
                        t + 6,
                        udp_csum(eaddr_d.plus(port_d).apply(old)),
                        &mut icmp_d,
                    )?;
                }
            }
            _ => {
                let old = rd16(pkt, t + 2)?;
                set16(pkt, t + 2, port_d.apply(old), &mut icmp_d)?;
            }
        }
        fix_csum(pkt, ip.hl + 2, icmp_d)?;

        let mut outer_d = Delta::default();
        if inbound {
            set_addr(pkt, 16, entry.flow.inside, &mut outer_d)?;
        } else {
            set_addr(pkt, 12, self.public, &mut outer_d)?;
        }
        fix_csum(pkt, 10, outer_d)
    }

    fn entry(&self, i: u32) -> Result<&Entry, NatDrop> {
        self.entries
            .get(i as usize)
            .filter(|e| e.live)
            .ok_or(NatDrop::NoMapping)
    }

    fn out_bucket(&self, proto: u8, addr: [u8; 4], port: u16) -> usize {
        let key = (u64::from(proto) << 48)
            | (u64::from(port) << 32)
            | u64::from(u32::from_be_bytes(addr));
        (mix(self.seed ^ key) as usize) & self.mask
    }

    fn in_bucket(&self, proto: u8, public_port: u16) -> usize {
        let key = (u64::from(proto) << 16) | u64::from(public_port);
        (mix(self.seed.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15 ^ key) as usize) & self.mask
    }

    /// The entry for exactly `flow` (or NIL), and the public port of any entry
    /// with the same inside endpoint.
    fn find_out(&self, flow: &Flow) -> (u32, Option<u16>) {
        let b = self.out_bucket(flow.proto, flow.inside, flow.inside_port);
        let mut i = self.out_index.get(b).copied().unwrap_or(NIL);
        let mut sibling = None;
        while let Some(e) = self.entries.get(i as usize) {
            if e.flow == *flow {
                return (i, Some(e.public_port));
            }
            if e.flow.same_inside(flow) {
                sibling = Some(e.public_port);
            }
            i = e.out_next;
        }
        (NIL, sibling)
    }

    fn find_in(&self, proto: u8, public_port: u16, remote: [u8; 4], remote_port: u16) -> u32 {
        let b = self.in_bucket(proto, public_port);
        let mut i = self.in_index.get(b).copied().unwrap_or(NIL);
        while let Some(e) = self.entries.get(i as usize) {
            if e.flow.proto == proto
                && e.public_port == public_port
                && e.flow.remote == remote
                && e.flow.remote_port == remote_port
            {
                return i;
            }
            i = e.in_next;
        }
        NIL
    }

    fn port_in_use(&self, proto: u8, public_port: u16) -> bool {
        let b = self.in_bucket(proto, public_port);
        let mut i = self.in_index.get(b).copied().unwrap_or(NIL);
        while let Some(e) = self.entries.get(i as usize) {
            if e.flow.proto == proto && e.public_port == public_port {
                return true;
            }
            i = e.in_next;
        }
        false
    }

    fn lookup_or_create(&mut self, now: u64, flow: Flow) -> Result<u32, NatDrop> {
        let (i, _) = self.find_out(&flow);
        if i != NIL {
            return Ok(i);
        }
        let slot = self.take_slot().ok_or(NatDrop::TableFull)?;
        // Look for a sibling after any eviction, which may have removed it.
        let port = match self.find_out(&flow).1 {
            Some(p) => Some(p),
            None => self.alloc_port(&flow),
        };
        let Some(port) = port else {
            self.release_slot(slot);
            return Err(NatDrop::TableFull);
        };
        self.insert(slot, flow, port, now);
        Ok(slot)
    }

    /// A free public port for `flow.proto`: probes sequentially from a
    /// pseudo-random starting point.
    fn alloc_port(&self, flow: &Flow) -> Option<u16> {
        if self.port_span == 0 {
            return None;
        }
        let key = (u64::from(flow.proto) << 48)
            ^ (u64::from(flow.inside_port) << 32)
            ^ u64::from(u32::from_be_bytes(flow.inside))
            ^ (u64::from(u32::from_be_bytes(flow.remote)) << 16)
            ^ u64::from(flow.remote_port);
        let start = mix(self.seed ^ mix(key ^ self.counters.created)) % u64::from(self.port_span);
        let mut off = start as u32;
        for _ in 0..self.port_span {
            let port = (u32::from(self.port_lo) + off) as u16;
            if !self.port_in_use(flow.proto, port) {
                return Some(port);
            }
            off += 1;
            if off == self.port_span {
                off = 0;
            }
        }
        None
    }

    /// A free slot, evicting the least recently used entry if there is none.
    /// (Expired entries were already reclaimed by `expire`.)
    fn take_slot(&mut self) -> Option<u32> {
        if self.free == NIL {
            let mut victim = NIL;
            let mut oldest = u64::MAX;
            for list in &self.lists {
                if let Some(e) = self.entries.get(list.tail as usize) {
                    if victim == NIL || e.last_seen < oldest {
                        victim = list.tail;
                        oldest = e.last_seen;
                    }
                }
            }
            if victim == NIL {
                return None;
            }
            self.remove(victim);
            self.counters.evicted += 1;
        }
        let slot = self.free;
        let e = self.entries.get_mut(slot as usize)?;
        self.free = e.next;
        e.next = NIL;
        Some(slot)
    }

    fn release_slot(&mut self, slot: u32) {
        if let Some(e) = self.entries.get_mut(slot as usize) {
            *e = Entry::EMPTY;
            e.next = self.free;
            self.free = slot;
        }
    }

    fn insert(&mut self, slot: u32, flow: Flow, public_port: u16, now: u64) {
        let ob = self.out_bucket(flow.proto, flow.inside, flow.inside_port);
        let ib = self.in_bucket(flow.proto, public_port);
        let (Some(&out_head), Some(&in_head)) = (self.out_index.get(ob), self.in_index.get(ib))
        else {
            return;
        };
        let class = match flow.proto {
            PROTO_TCP => CLASS_TCP_TRANSITORY,
            PROTO_UDP => CLASS_UDP,
            _ => CLASS_ICMP,
        };
        let Some(e) = self.entries.get_mut(slot as usize) else {
            return;
        };
        *e = Entry {
            flow,
            public_port,
            last_seen: now,
            tcp: 0,
            class,
            live: true,
            out_next: out_head,
            in_next: in_head,
            prev: NIL,
            next: NIL,
        };
        if let Some(h) = self.out_index.get_mut(ob) {
            *h = slot;
        }
        if let Some(h) = self.in_index.get_mut(ib) {
            *h = slot;
        }
        self.push_head(slot);
        self.len += 1;
        self.counters.created += 1;
    }

    fn remove(&mut self, i: u32) {
        let Some(e) = self.entries.get(i as usize).copied() else {
            return;
        };
        if !e.live {
            return;
        }
        self.unlink_lru(i);
        // Unlink from the inside-endpoint index.
        let ob = self.out_bucket(e.flow.proto, e.flow.inside, e.flow.inside_port);
        if self.out_index.get(ob) == Some(&i) {
            self.out_index[ob] = e.out_next;
        } else {
            let mut j = self.out_index.get(ob).copied().unwrap_or(NIL);
            while let Some(p) = self.entries.get_mut(j as usize) {
                if p.out_next == i {
                    p.out_next = e.out_next;
                    break;
                }
                j = p.out_next;
            }
        }
        // Unlink from the public-port index.
        let ib = self.in_bucket(e.flow.proto, e.public_port);
        if self.in_index.get(ib) == Some(&i) {
            self.in_index[ib] = e.in_next;
        } else {
            let mut j = self.in_index.get(ib).copied().unwrap_or(NIL);
            while let Some(p) = self.entries.get_mut(j as usize) {
                if p.in_next == i {
                    p.in_next = e.in_next;
                    break;
                }
                j = p.in_next;
            }
        }
        self.len -= 1;
        self.release_slot(i);
    }

    fn unlink_lru(&mut self, i: u32) {
        let Some(e) = self.entries.get(i as usize).copied() else {
            return;
        };
        let class = usize::from(e.class) % CLASSES;
        match self.entries.get_mut(e.prev as usize) {
            Some(p) => p.next = e.next,
            None => self.lists[class].head = e.next,
        }
        match self.entries.get_mut(e.next as usize) {
            Some(n) => n.prev = e.prev,
            None => self.lists[class].tail = e.prev,
        }
        if let Some(e) = self.entries.get_mut(i as usize) {
            e.prev = NIL;
            e.next = NIL;
        }
    }

    fn push_head(&mut self, i: u32) {
        let Some(e) = self.entries.get(i as usize) else {
            return;
        };
        let class = usize::from(e.class) % CLASSES;
        let old_head = self.lists[class].head;
        if let Some(e) = self.entries.get_mut(i as usize) {
            e.prev = NIL;
            e.next = old_head;
        }
        match self.entries.get_mut(old_head as usize) {
            Some(h) => h.prev = i,
            None => self.lists[class].tail = i,
        }
        self.lists[class].head = i;
    }

    /// Marks entry `i` used at `now`, moving it to the head of its (possibly
    /// new) timeout class.
    fn touch(&mut self, i: u32, now: u64) {
        self.unlink_lru(i);
        if let Some(e) = self.entries.get_mut(i as usize) {
            e.last_seen = e.last_seen.max(now);
            if e.flow.proto == PROTO_TCP {
                e.class = if e.tcp == ST_SYN_OUT | ST_SYN_IN {
                    CLASS_TCP_ESTABLISHED
                } else {
                    CLASS_TCP_TRANSITORY
                };
            }
        }
        self.push_head(i);
    }

    fn tcp_seen(&mut self, i: u32, flags: u8, outbound: bool) {
        let Some(e) = self.entries.get_mut(i as usize) else {
            return;
        };
        if outbound && flags & (TCP_SYN | TCP_ACK) == TCP_SYN && e.tcp & ST_CLOSING != 0 {
            // A new connection reusing the 5-tuple.
            e.tcp = 0;
        }
        if flags & TCP_SYN != 0 {
            e.tcp |= if outbound { ST_SYN_OUT } else { ST_SYN_IN };
        }
        if flags & (TCP_FIN | TCP_RST) != 0 {
            e.tcp |= ST_CLOSING;
        }
    }
}

fn expired(e: &Entry, now: u64) -> bool {
    let timeout = TIMEOUTS.get(usize::from(e.class)).copied().unwrap_or(0);
    now.saturating_sub(e.last_seen) >= timeout
}

/// 64-bit finaliser (splitmix64 / murmur3 style).
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The fields of a validated IPv4 header.
struct Ipv4Header {
    hl: usize,
    total: usize,
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
}

/// Validates the IPv4 header: version, IHL, total length within the buffer,
/// header checksum, not a fragment.
fn parse_ipv4(p: &[u8]) -> Result<Ipv4Header, NatDrop> {
    let b0 = *p.first().ok_or(NatDrop::Malformed)?;
    if b0 >> 4 != 4 {
        return Err(NatDrop::Malformed);
    }
    let hl = usize::from(b0 & 0x0f) * 4;
    if hl < 20 || p.len() < hl {
        return Err(NatDrop::Malformed);
    }
    let total = usize::from(rd16(p, 2)?);
    if total < hl || total > p.len() {
        return Err(NatDrop::Malformed);
    }
    let header = p.get(..hl).ok_or(NatDrop::Malformed)?;
    if fold(sum16(header)) != 0xffff {
        return Err(NatDrop::Malformed);
    }
    if rd16(p, 6)? & 0x3fff != 0 {
        return Err(NatDrop::Fragment);
    }
    Ok(Ipv4Header {
        hl,
        total,
        proto: *p.get(9).ok_or(NatDrop::Malformed)?,
        src: rd_addr(p, 12)?,
        dst: rd_addr(p, 16)?,
    })
}

/// Validates the TCP or UDP header at `l4` (which must fit in `pkt`) and
/// returns the offset of its checksum and the TCP flags (0 for UDP).
fn transport(pkt: &[u8], proto: u8, l4: usize) -> Result<(usize, u8), NatDrop> {
    let len = pkt.len().saturating_sub(l4);
    if proto == PROTO_TCP {
        if len < 20 {
            return Err(NatDrop::Malformed);
        }
        let doff = usize::from(*pkt.get(l4 + 12).ok_or(NatDrop::Malformed)? >> 4) * 4;
        if doff < 20 || doff > len {
            return Err(NatDrop::Malformed);
        }
        Ok((l4 + 16, *pkt.get(l4 + 13).ok_or(NatDrop::Malformed)?))
    } else {
        if len < 8 {
            return Err(NatDrop::Malformed);
        }
        let ulen = usize::from(rd16(pkt, l4 + 4)?);
        if ulen < 8 || ulen > len {
            return Err(NatDrop::Malformed);
        }
        Ok((l4 + 6, 0))
    }
}

fn sum16(data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    let mut sum: u32 = 0;
    for c in &mut chunks {
        if let [a, b] = *c {
            sum += u32::from(u16::from_be_bytes([a, b]));
        }
    }
    if let [a] = *chunks.remainder() {
        sum += u32::from(a) << 8;
    }
    sum
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Accumulated one's-complement change of some 16-bit words (RFC 1624).
#[derive(Debug, Clone, Copy, Default)]
struct Delta(u64);

impl Delta {
    fn word(&mut self, old: u16, new: u16) {
        self.0 += u64::from(!old) + u64::from(new);
    }

    fn plus(self, other: Delta) -> Delta {
        Delta(self.0 + other.0)
    }

    /// The checksum `csum` after the changes: HC' = ~(~HC + ~m + m').
    fn apply(self, csum: u16) -> u16 {
        let mut s = u64::from(!csum) + self.0;
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }
}

fn rd16(b: &[u8], off: usize) -> Result<u16, NatDrop> {
    let end = off.checked_add(2).ok_or(NatDrop::Malformed)?;
    let s = b.get(off..end).ok_or(NatDrop::Malformed)?;
    let a: [u8; 2] = s.try_into().map_err(|_| NatDrop::Malformed)?;
    Ok(u16::from_be_bytes(a))
}

fn rd_addr(b: &[u8], off: usize) -> Result<[u8; 4], NatDrop> {
    let end = off.checked_add(4).ok_or(NatDrop::Malformed)?;
    let s = b.get(off..end).ok_or(NatDrop::Malformed)?;
    s.try_into().map_err(|_| NatDrop::Malformed)
}

/// Writes `new` at `off`, recording the change in `d`.
fn set16(b: &mut [u8], off: usize, new: u16, d: &mut Delta) -> Result<(), NatDrop> {
    let old = rd16(b, off)?;
    let s = b.get_mut(off..off + 2).ok_or(NatDrop::Malformed)?;
    s.copy_from_slice(&new.to_be_bytes());
    d.word(old, new);
    Ok(())
}

/// Where a TCP/UDP translation writes, and what.
struct Rewrite {
    proto: u8,
    /// Offset of the transport checksum.
    csum_off: usize,
    /// 12 (source) or 16 (destination), and the address to put there.
    addr_off: usize,
    addr: [u8; 4],
    /// Offset of the port to replace, and the port.
    port_off: usize,
    port: u16,
}

/// Sets the IPv4 address at `off` (12: source, 16: destination) and patches the header
/// checksum; returns the change, for the transport checksum's pseudo-header.
fn rewrite_addr(pkt: &mut [u8], off: usize, addr: [u8; 4]) -> Result<Delta, NatDrop> {
    let mut d = Delta::default();
    set_addr(pkt, off, addr, &mut d)?;
    fix_csum(pkt, 10, d)?;
    Ok(d)
}

/// Sets the identifier of the ICMP echo message at `l4` and patches its checksum.
fn rewrite_echo_id(pkt: &mut [u8], l4: usize, id: u16) -> Result<(), NatDrop> {
    let mut d = Delta::default();
    set16(pkt, l4 + 4, id, &mut d)?;
    fix_csum(pkt, l4 + 2, d)
}

fn set_addr(b: &mut [u8], off: usize, new: [u8; 4], d: &mut Delta) -> Result<(), NatDrop> {
    set16(b, off, u16::from_be_bytes([new[0], new[1]]), d)?;
    set16(b, off + 2, u16::from_be_bytes([new[2], new[3]]), d)
}

/// Applies `d` to the checksum at `off`.
fn fix_csum(b: &mut [u8], off: usize, d: Delta) -> Result<(), NatDrop> {
    let old = rd16(b, off)?;
    set16(b, off, d.apply(old), &mut Delta::default())
}

/// Applies `d` to a TCP or UDP checksum (a UDP checksum of 0 means "none").
fn fix_l4_csum(b: &mut [u8], proto: u8, off: usize, d: Delta) -> Result<(), NatDrop> {
    let old = rd16(b, off)?;
    let new = if proto == PROTO_UDP {
        if old == 0 {
            return Ok(());
        }
        udp_csum(d.apply(old))
    } else {
        d.apply(old)
    };
    set16(b, off, new, &mut Delta::default())
}

/// A computed UDP checksum of 0 is sent as 0xffff (RFC 768).
fn udp_csum(c: u16) -> u16 {
    if c == 0 {
        0xffff
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use smoltcp::wire::{Icmpv4Packet, IpAddress, Ipv4Packet, TcpPacket, UdpPacket};
    use std::vec::Vec;

    const PUBLIC: [u8; 4] = [198, 51, 100, 1];
    const HOST_A: [u8; 4] = [10, 0, 0, 2];
    const HOST_B: [u8; 4] = [10, 0, 0, 3];
    const REMOTE: [u8; 4] = [203, 0, 113, 5];
    const REMOTE2: [u8; 4] = [203, 0, 113, 6];
    const ROUTER: [u8; 4] = [192, 0, 2, 77];

    fn nat(capacity: usize) -> Nat {
        Nat::new(capacity, Ipv4Address::from(PUBLIC), 20000..=59999)
    }

    fn ipaddr(a: [u8; 4]) -> IpAddress {
        IpAddress::Ipv4(Ipv4Address::from(a))
    }

    /// An IPv4 packet with `options` (a multiple of 4 bytes) and a valid
    /// header checksum.
    fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], options: &[u8], payload: &[u8]) -> Vec<u8> {
        let hl = 20 + options.len();
        let total = hl + payload.len();
        let mut b = vec![0u8; total];
        b[0] = 0x40 | (hl / 4) as u8;
        b[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        b[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        b[6] = 0x40; // DF
        b[8] = 64;
        b[9] = proto;
        b[12..16].copy_from_slice(&src);
        b[16..20].copy_from_slice(&dst);
        b[20..hl].copy_from_slice(options);
        b[hl..].copy_from_slice(payload);
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    fn tcp_seg(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        flags: u8,
        data: &[u8],
    ) -> Vec<u8> {
        let mut s = vec![0u8; 20 + data.len()];
        s[0..2].copy_from_slice(&sport.to_be_bytes());
        s[2..4].copy_from_slice(&dport.to_be_bytes());
        s[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        s[12] = 5 << 4;
        s[13] = flags;
        s[14..16].copy_from_slice(&8192u16.to_be_bytes());
        s[20..].copy_from_slice(data);
        TcpPacket::new_unchecked(&mut s[..]).fill_checksum(&ipaddr(src), &ipaddr(dst));
        s
    }

    fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u8) -> Vec<u8> {
        ipv4(
            PROTO_TCP,
            src,
            dst,
            &[],
            &tcp_seg(src, sport, dst, dport, flags, b"hello"),
        )
    }

    fn udp_dgram(
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        data: &[u8],
        csum: bool,
    ) -> Vec<u8> {
        let mut d = vec![0u8; 8 + data.len()];
        d[0..2].copy_from_slice(&sport.to_be_bytes());
        d[2..4].copy_from_slice(&dport.to_be_bytes());
        d[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
        d[8..].copy_from_slice(data);
        if csum {
            UdpPacket::new_unchecked(&mut d[..]).fill_checksum(&ipaddr(src), &ipaddr(dst));
        }
        d
    }

    fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        ipv4(
            PROTO_UDP,
            src,
            dst,
            &[],
            &udp_dgram(src, sport, dst, dport, b"query", true),
        )
    }

    fn icmp_msg(ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; 8 + data.len()];
        m[0] = ty;
        m[1] = code;
        m[4..8].copy_from_slice(&rest);
        m[8..].copy_from_slice(data);
        Icmpv4Packet::new_unchecked(&mut m[..]).fill_checksum();
        m
    }

    fn echo(ty: u8, src: [u8; 4], dst: [u8; 4], id: u16, seq: u16) -> Vec<u8> {
        let [a, b] = id.to_be_bytes();
        let [c, d] = seq.to_be_bytes();
        ipv4(
            PROTO_ICMP,
            src,
            dst,
            &[],
            &icmp_msg(ty, 0, [a, b, c, d], b"ping data"),
        )
    }

    /// An ICMP error from `src` to `dst` quoting `quoted` (a whole packet).
    fn icmp_err(
        ty: u8,
        code: u8,
        src: [u8; 4],
        dst: [u8; 4],
        rest: [u8; 4],
        quoted: &[u8],
    ) -> Vec<u8> {
        ipv4(PROTO_ICMP, src, dst, &[], &icmp_msg(ty, code, rest, quoted))
    }

    struct Seen {
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
    }

    /// Checks every checksum of a TCP, UDP or ICMP echo packet with smoltcp
    /// and returns its addresses and ports (echo: the id in both ports).
    fn check(p: &[u8]) -> Seen {
        let ip = Ipv4Packet::new_checked(p).expect("ipv4");
        assert!(ip.verify_checksum(), "ipv4 header checksum");
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let (sport, dport) = match ip.next_header() {
            smoltcp::wire::IpProtocol::Tcp => {
                let t = TcpPacket::new_checked(ip.payload()).expect("tcp");
                assert!(t.verify_checksum(&src.into(), &dst.into()), "tcp checksum");
                (t.src_port(), t.dst_port())
            }
            smoltcp::wire::IpProtocol::Udp => {
                let u = UdpPacket::new_checked(ip.payload()).expect("udp");
                assert!(u.verify_checksum(&src.into(), &dst.into()), "udp checksum");
                (u.src_port(), u.dst_port())
            }
            smoltcp::wire::IpProtocol::Icmp => {
                let i = Icmpv4Packet::new_checked(ip.payload()).expect("icmp");
                assert!(i.verify_checksum(), "icmp checksum");
                (i.echo_ident(), i.echo_ident())
            }
            other => panic!("unexpected protocol {other}"),
        };
        Seen {
            src: src.octets(),
            dst: dst.octets(),
            sport,
            dport,
        }
    }

    /// Sends `out` outbound, checks it was masqueraded, and returns the public port.
    fn go_out(n: &mut Nat, now: u64, mut out: Vec<u8>) -> u16 {
        let before = check(&out);
        n.outbound(now, &mut out).expect("outbound");
        let after = check(&out);
        assert_eq!(after.src, PUBLIC);
        assert_eq!(after.dst, before.dst);
        if out[9] != PROTO_ICMP {
            assert_eq!(after.dport, before.dport);
        }
        assert!((20000..=59999).contains(&after.sport));
        after.sport
    }

    #[test]
    fn tcp_round_trip_and_established_timeout() {
        let mut n = nat(16);
        let port = go_out(&mut n, 0, tcp(HOST_A, 40000, REMOTE, 443, TCP_SYN));
        let mut reply = tcp(REMOTE, 443, PUBLIC, port, TCP_SYN | TCP_ACK);
        n.inbound(1, &mut reply).unwrap();
        let s = check(&reply);
        assert_eq!(
            (s.src, s.sport, s.dst, s.dport),
            (REMOTE, 443, HOST_A, 40000)
        );
        // Same 5-tuple: same mapping.
        assert_eq!(
            go_out(&mut n, 2, tcp(HOST_A, 40000, REMOTE, 443, TCP_ACK)),
            port
        );
        assert_eq!(n.len(), 1);
        // Established: survives well past the transitory timeout.
        let mut late = tcp(REMOTE, 443, PUBLIC, port, TCP_ACK);
        n.inbound(2 + 7000, &mut late).unwrap();
        assert_eq!(check(&late).dst, HOST_A);
        let mut dead = tcp(REMOTE, 443, PUBLIC, port, TCP_ACK);
        assert_eq!(
            n.inbound(7002 + TCP_ESTABLISHED_TIMEOUT_SECS, &mut dead),
            Err(NatDrop::NoMapping)
        );
        assert_eq!(n.counters().expired, 1);
        assert!(n.is_empty());
    }

    #[test]
    fn tcp_transitory_timeouts() {
        let mut n = nat(16);
        // Only a SYN out: 240 s.
        let port = go_out(&mut n, 0, tcp(HOST_A, 40000, REMOTE, 443, TCP_SYN));
        let mut p = tcp(REMOTE, 443, PUBLIC, port, TCP_SYN | TCP_ACK);
        assert_eq!(
            n.inbound(TCP_TRANSITORY_TIMEOUT_SECS, &mut p),
            Err(NatDrop::NoMapping)
        );
        // Established, then a RST: back to 240 s.
        let port = go_out(&mut n, 1000, tcp(HOST_A, 40001, REMOTE, 443, TCP_SYN));
        let mut p = tcp(REMOTE, 443, PUBLIC, port, TCP_SYN | TCP_ACK);
        n.inbound(1000, &mut p).unwrap();
        go_out(&mut n, 1001, tcp(HOST_A, 40001, REMOTE, 443, TCP_RST));
        let mut p = tcp(REMOTE, 443, PUBLIC, port, TCP_ACK);
        n.inbound(1001 + 239, &mut p).unwrap();
        let mut p = tcp(REMOTE, 443, PUBLIC, port, TCP_ACK);
        assert_eq!(n.inbound(1240 + 240, &mut p), Err(NatDrop::NoMapping));
    }

    #[test]
    fn udp_round_trip_and_timeout() {
        let mut n = nat(16);
        let port = go_out(&mut n, 100, udp(HOST_A, 5353, REMOTE, 53));
        let mut reply = udp(REMOTE, 53, PUBLIC, port);
        n.inbound(159, &mut reply).unwrap();
        let s = check(&reply);
        assert_eq!((s.src, s.sport, s.dst, s.dport), (REMOTE, 53, HOST_A, 5353));
        // Refreshed at 159: alive at 218, gone at 219 + 60.
        let mut reply = udp(REMOTE, 53, PUBLIC, port);
        n.inbound(218, &mut reply).unwrap();
        let mut reply = udp(REMOTE, 53, PUBLIC, port);
        assert_eq!(
            n.inbound(218 + UDP_TIMEOUT_SECS, &mut reply),
            Err(NatDrop::NoMapping)
        );
        assert_eq!(n.counters().expired, 1);
        assert_eq!(n.len(), 0);
    }

    #[test]
    fn udp_zero_checksum_stays_zero() {
        let mut n = nat(16);
        let mut p = ipv4(
            PROTO_UDP,
            HOST_A,
            REMOTE,
            &[],
            &udp_dgram(HOST_A, 7, REMOTE, 9, b"x", false),
        );
        n.outbound(0, &mut p).unwrap();
        assert_eq!(&p[26..28], &[0, 0]);
        let port = check(&p).sport;
        let mut r = ipv4(
            PROTO_UDP,
            REMOTE,
            PUBLIC,
            &[],
            &udp_dgram(REMOTE, 9, PUBLIC, port, b"y", false),
        );
        n.inbound(1, &mut r).unwrap();
        assert_eq!(&r[26..28], &[0, 0]);
        assert_eq!(check(&r).dport, 7);
    }

    #[test]
    fn icmp_echo_round_trip_and_timeout() {
        let mut n = nat(16);
        let id = go_out(
            &mut n,
            0,
            echo(ICMP_ECHO_REQUEST, HOST_A, REMOTE, 0x4242, 1),
        );
        let mut reply = echo(ICMP_ECHO_REPLY, REMOTE, PUBLIC, id, 1);
        n.inbound(29, &mut reply).unwrap();
        let s = check(&reply);
        assert_eq!((s.src, s.dst, s.dport), (REMOTE, HOST_A, 0x4242));
        let mut reply = echo(ICMP_ECHO_REPLY, REMOTE, PUBLIC, id, 2);
        assert_eq!(
            n.inbound(29 + ICMP_TIMEOUT_SECS, &mut reply),
            Err(NatDrop::NoMapping)
        );
        // A reply from somewhere else does not match.
        let id = go_out(
            &mut n,
            100,
            echo(ICMP_ECHO_REQUEST, HOST_A, REMOTE, 0x4242, 1),
        );
        let mut other = echo(ICMP_ECHO_REPLY, REMOTE2, PUBLIC, id, 1);
        assert_eq!(n.inbound(100, &mut other), Err(NatDrop::NoMapping));
        // Echo requests to the public address are for the router itself.
        let mut req = echo(ICMP_ECHO_REQUEST, REMOTE, PUBLIC, 1, 1);
        assert_eq!(n.inbound(100, &mut req), Err(NatDrop::NoMapping));
    }

    #[test]
    fn two_hosts_same_port_get_distinct_public_ports() {
        let mut n = nat(16);
        let a = go_out(&mut n, 0, udp(HOST_A, 5000, REMOTE, 53));
        let b = go_out(&mut n, 0, udp(HOST_B, 5000, REMOTE, 53));
        assert_ne!(a, b);
        let ta = go_out(&mut n, 0, tcp(HOST_A, 5000, REMOTE, 80, TCP_SYN));
        let tb = go_out(&mut n, 0, tcp(HOST_B, 5000, REMOTE, 80, TCP_SYN));
        assert_ne!(ta, tb);
        let ia = go_out(&mut n, 0, echo(ICMP_ECHO_REQUEST, HOST_A, REMOTE, 1, 1));
        let ib = go_out(&mut n, 0, echo(ICMP_ECHO_REQUEST, HOST_B, REMOTE, 1, 1));
        assert_ne!(ia, ib);
        // Replies go to the right host.
        let mut r = udp(REMOTE, 53, PUBLIC, b);
        n.inbound(1, &mut r).unwrap();
        assert_eq!(check(&r).dst, HOST_B);
        let mut r = udp(REMOTE, 53, PUBLIC, a);
        n.inbound(1, &mut r).unwrap();
        assert_eq!(check(&r).dst, HOST_A);
    }

    #[test]
    fn endpoint_independent_mapping_with_dependent_filtering() {
        let mut n = nat(16);
        let p1 = go_out(&mut n, 0, udp(HOST_A, 4000, REMOTE, 3478));
        let p2 = go_out(&mut n, 0, udp(HOST_A, 4000, REMOTE2, 3478));
        assert_eq!(p1, p2, "one public port per inside endpoint");
        assert_eq!(n.len(), 2);
        for (src, ok) in [(REMOTE, true), (REMOTE2, true), (ROUTER, false)] {
            let mut r = udp(src, 3478, PUBLIC, p1);
            let res = n.inbound(1, &mut r);
            assert_eq!(res.is_ok(), ok, "{src:?}");
        }
        // Same address, different remote port.
        let mut r = udp(REMOTE, 3479, PUBLIC, p1);
        assert_eq!(n.inbound(1, &mut r), Err(NatDrop::NoMapping));
    }

    #[test]
    fn unsolicited_and_misaddressed_inbound() {
        let mut n = nat(16);
        let mut p = udp(REMOTE, 53, PUBLIC, 30000);
        assert_eq!(n.inbound(0, &mut p), Err(NatDrop::NoMapping));
        let mut p = tcp(REMOTE, 80, PUBLIC, 30000, TCP_SYN);
        assert_eq!(n.inbound(0, &mut p), Err(NatDrop::NoMapping));
        let port = go_out(&mut n, 0, udp(HOST_A, 5000, REMOTE, 53));
        // Right port, wrong protocol.
        let mut p = tcp(REMOTE, 53, PUBLIC, port, TCP_SYN);
        assert_eq!(n.inbound(0, &mut p), Err(NatDrop::NoMapping));
        // Right flow, not addressed to the public address.
        let mut p = udp(REMOTE, 53, ROUTER, port);
        assert_eq!(n.inbound(0, &mut p), Err(NatDrop::NoMapping));
        // Different remote port.
        let mut p = udp(REMOTE, 54, PUBLIC, port);
        let orig = p.clone();
        assert_eq!(n.inbound(0, &mut p), Err(NatDrop::NoMapping));
        assert_eq!(p, orig, "left unchanged");
    }

    #[test]
    fn full_table_reuses_expired_then_evicts_lru() {
        let mut n = nat(2);
        let u = go_out(&mut n, 0, udp(HOST_A, 1, REMOTE, 53));
        let t = go_out(&mut n, 0, tcp(HOST_A, 2, REMOTE, 80, TCP_SYN));
        // At 100 the UDP entry has expired: it is reclaimed, nothing evicted.
        go_out(&mut n, 100, udp(HOST_B, 3, REMOTE, 53));
        assert_eq!(n.len(), 2);
        assert_eq!(n.counters().expired, 1);
        assert_eq!(n.counters().evicted, 0);
        let mut r = udp(REMOTE, 53, PUBLIC, u);
        assert_eq!(n.inbound(100, &mut r), Err(NatDrop::NoMapping));
        // Now both live; the TCP entry (last seen at 0) is the LRU one.
        let x = go_out(&mut n, 101, udp(HOST_B, 4, REMOTE, 53));
        assert_eq!(n.counters().evicted, 1);
        assert_eq!(n.counters().created, 4);
        assert_eq!(n.len(), 2);
        let mut r = tcp(REMOTE, 80, PUBLIC, t, TCP_ACK);
        assert_eq!(n.inbound(101, &mut r), Err(NatDrop::NoMapping));
        let mut r = udp(REMOTE, 53, PUBLIC, x);
        n.inbound(101, &mut r).unwrap();
    }

    #[test]
    fn lru_follows_use() {
        let mut n = nat(2);
        let a = go_out(&mut n, 0, udp(HOST_A, 1, REMOTE, 53));
        let b = go_out(&mut n, 1, udp(HOST_A, 2, REMOTE, 53));
        // Use `a` again: `b` becomes the LRU.
        let mut r = udp(REMOTE, 53, PUBLIC, a);
        n.inbound(2, &mut r).unwrap();
        go_out(&mut n, 3, udp(HOST_A, 3, REMOTE, 53));
        let mut r = udp(REMOTE, 53, PUBLIC, b);
        assert_eq!(n.inbound(3, &mut r), Err(NatDrop::NoMapping));
        let mut r = udp(REMOTE, 53, PUBLIC, a);
        n.inbound(3, &mut r).unwrap();
    }

    #[test]
    fn ports_never_shared_between_endpoints() {
        // Three ports, capacity clamped to three.
        let mut n = Nat::new(10, Ipv4Address::from(PUBLIC), 100..=102);
        assert_eq!(n.capacity(), 3);
        let mut seen = Vec::new();
        for (i, host) in [HOST_A, HOST_B, REMOTE2].into_iter().enumerate() {
            let mut p = udp(host, 7, REMOTE, 53);
            n.outbound(i as u64, &mut p).unwrap();
            seen.push(check(&p).sport);
        }
        seen.sort_unstable();
        assert_eq!(seen, [100, 101, 102]);
        // A fourth evicts the oldest and takes its port.
        let mut p = udp(ROUTER, 7, REMOTE, 53);
        n.outbound(10, &mut p).unwrap();
        assert_eq!(n.counters().evicted, 1);
        // Many flows through a tiny table: live public ports stay distinct.
        let mut n = Nat::new(8, Ipv4Address::from(PUBLIC), 1000..=1009);
        for i in 0..200u16 {
            let mut p = udp([10, 0, (i % 7) as u8, 1], 1000 + i % 13, REMOTE, 53);
            n.outbound(u64::from(i), &mut p).unwrap();
            let mut ports: Vec<u16> = n
                .entries
                .iter()
                .filter(|e| e.live)
                .map(|e| e.public_port)
                .collect();
            let live = ports.len();
            assert_eq!(live, n.len());
            ports.sort_unstable();
            ports.dedup();
            assert_eq!(ports.len(), live);
        }
    }

    #[test]
    fn empty_table_is_full() {
        let mut n = nat(0);
        let mut p = udp(HOST_A, 1, REMOTE, 53);
        assert_eq!(n.outbound(0, &mut p), Err(NatDrop::TableFull));
        #[allow(clippy::reversed_empty_ranges)]
        let mut n = Nat::new(10, Ipv4Address::from(PUBLIC), 10..=9);
        assert_eq!(n.outbound(0, &mut p), Err(NatDrop::TableFull));
    }

    #[test]
    fn icmp_errors_inbound() {
        let mut n = nat(16);
        // UDP: quote the whole (empty-payload) datagram so its checksum can be checked.
        let mut out = ipv4(
            PROTO_UDP,
            HOST_A,
            REMOTE,
            &[],
            &udp_dgram(HOST_A, 5000, REMOTE, 53, b"", true),
        );
        n.outbound(0, &mut out).unwrap();
        let port = check(&out).sport;
        let mut err = icmp_err(ICMP_DST_UNREACHABLE, 3, REMOTE, PUBLIC, [0; 4], &out);
        n.inbound(1, &mut err).unwrap();
        check_icmp_error(&err, HOST_A);
        let q = check(&err[28..]);
        assert_eq!((q.src, q.sport, q.dst, q.dport), (HOST_A, 5000, REMOTE, 53));

        // TCP, fragmentation needed from a router on the path, whole SYN quoted.
        let mut syn = ipv4(
            PROTO_TCP,
            HOST_B,
            REMOTE,
            &[],
            &tcp_seg(HOST_B, 6000, REMOTE, 443, TCP_SYN, b""),
        );
        n.outbound(2, &mut syn).unwrap();
        let mut err = icmp_err(
            ICMP_DST_UNREACHABLE,
            4,
            ROUTER,
            PUBLIC,
            [0, 0, 0x05, 0x00],
            &syn,
        );
        n.inbound(3, &mut err).unwrap();
        check_icmp_error(&err, HOST_B);
        let q = check(&err[28..]);
        assert_eq!(
            (q.src, q.sport, q.dst, q.dport),
            (HOST_B, 6000, REMOTE, 443)
        );

        // TCP, time exceeded quoting only header + 8 bytes (no TCP checksum).
        let mut err = icmp_err(ICMP_TIME_EXCEEDED, 0, ROUTER, PUBLIC, [0; 4], &syn[..28]);
        n.inbound(3, &mut err).unwrap();
        check_icmp_error(&err, HOST_B);
        assert_eq!(&err[28 + 12..28 + 16], &HOST_B);
        assert_eq!(&err[48..50], &6000u16.to_be_bytes());

        // Echo request timed out.
        let mut ping = echo(ICMP_ECHO_REQUEST, HOST_A, REMOTE, 77, 1);
        n.outbound(4, &mut ping).unwrap();
        let mut err = icmp_err(ICMP_TIME_EXCEEDED, 0, ROUTER, PUBLIC, [0; 4], &ping);
        n.inbound(5, &mut err).unwrap();
        check_icmp_error(&err, HOST_A);
        let q = check(&err[28..]);
        assert_eq!((q.src, q.dst, q.sport), (HOST_A, REMOTE, 77));

        // A quote that matches no mapping (different remote port).
        let mut other = out.clone();
        other[22..24].copy_from_slice(&54u16.to_be_bytes());
        let mut err = icmp_err(ICMP_DST_UNREACHABLE, 3, REMOTE, PUBLIC, [0; 4], &other);
        assert_eq!(n.inbound(6, &mut err), Err(NatDrop::NoMapping));
        // Quoting a port no one has.
        let mut stray = out.clone();
        stray[20..22]
            .copy_from_slice(&(if port == 20000 { 20001u16 } else { 20000 }).to_be_bytes());
        let mut err = icmp_err(ICMP_DST_UNREACHABLE, 3, REMOTE, PUBLIC, [0; 4], &stray);
        assert_eq!(n.inbound(6, &mut err), Err(NatDrop::NoMapping));
        // Errors do not refresh: the UDP mapping still expires at 60.
        let mut r = udp(REMOTE, 53, PUBLIC, port);
        assert_eq!(n.inbound(60, &mut r), Err(NatDrop::NoMapping));
    }

    /// Outer IPv4 + ICMP checksums and the quoted IPv4 header checksum.
    fn check_icmp_error(p: &[u8], dst: [u8; 4]) {
        let ip = Ipv4Packet::new_checked(p).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst_addr().octets(), dst);
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(), "outer icmp checksum");
        let quoted = Ipv4Packet::new_unchecked(&ip.payload()[8..]);
        assert!(quoted.verify_checksum(), "quoted ipv4 header checksum");
    }

    #[test]
    fn icmp_errors_outbound() {
        let mut n = nat(16);
        let port = go_out(&mut n, 0, udp(HOST_A, 5000, REMOTE, 53));
        let mut r = ipv4(
            PROTO_UDP,
            REMOTE,
            PUBLIC,
            &[],
            &udp_dgram(REMOTE, 53, PUBLIC, port, b"", true),
        );
        n.inbound(1, &mut r).unwrap();
        // HOST_A answers with port unreachable, quoting what it received.
        let mut err = icmp_err(ICMP_DST_UNREACHABLE, 3, HOST_A, REMOTE, [0; 4], &r);
        n.outbound(2, &mut err).unwrap();
        let ip = Ipv4Packet::new_checked(&err[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.src_addr().octets(), PUBLIC);
        assert!(Icmpv4Packet::new_checked(ip.payload())
            .unwrap()
            .verify_checksum());
        let q = check(&err[28..]);
        assert_eq!((q.src, q.sport, q.dst, q.dport), (REMOTE, 53, PUBLIC, port));
        // About a flow that does not exist.
        let mut stray = icmp_err(
            ICMP_DST_UNREACHABLE,
            3,
            HOST_B,
            REMOTE,
            [0; 4],
            &udp(REMOTE, 53, HOST_B, 1),
        );
        assert_eq!(n.outbound(2, &mut stray), Err(NatDrop::NoMapping));
    }

    #[test]
    fn ip_options_round_trip() {
        let mut n = nat(16);
        let opts = [0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00]; // router alert, NOPs, EOL
        let seg = tcp_seg(HOST_A, 40000, REMOTE, 22, TCP_SYN, b"abc");
        let mut p = ipv4(PROTO_TCP, HOST_A, REMOTE, &opts, &seg);
        n.outbound(0, &mut p).unwrap();
        let s = check(&p);
        assert_eq!(s.src, PUBLIC);
        assert_eq!(&p[20..28], &opts);
        let seg = tcp_seg(REMOTE, 22, PUBLIC, s.sport, TCP_SYN | TCP_ACK, b"");
        let mut r = ipv4(PROTO_TCP, REMOTE, PUBLIC, &opts[..4], &seg);
        n.inbound(1, &mut r).unwrap();
        let s = check(&r);
        assert_eq!((s.dst, s.dport), (HOST_A, 40000));
    }

    #[test]
    fn trailing_bytes_after_total_length_are_ignored() {
        let mut n = nat(16);
        let mut p = udp(HOST_A, 1, REMOTE, 53);
        let len = p.len();
        p.extend_from_slice(&[0xaa; 6]); // e.g. Ethernet padding
        n.outbound(0, &mut p).unwrap();
        check(&p[..len]);
        assert_eq!(&p[len..], &[0xaa; 6]);
    }

    #[test]
    fn fragments_and_unsupported() {
        let mut n = nat(16);
        for frag in [0x2000u16, 0x0001, 0x20ff] {
            let mut p = udp(HOST_A, 1, REMOTE, 53);
            p[6..8].copy_from_slice(&frag.to_be_bytes());
            p[10..12].fill(0);
            Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
            assert_eq!(n.outbound(0, &mut p), Err(NatDrop::Fragment));
            p[12..16].copy_from_slice(&REMOTE);
            p[16..20].copy_from_slice(&PUBLIC);
            p[10..12].fill(0);
            Ipv4Packet::new_unchecked(&mut p[..]).fill_checksum();
            assert_eq!(n.inbound(0, &mut p), Err(NatDrop::Fragment));
        }
        let mut gre = ipv4(47, HOST_A, REMOTE, &[], &[0; 8]);
        assert_eq!(n.outbound(0, &mut gre), Err(NatDrop::UnsupportedProtocol));
        let mut ts = ipv4(
            PROTO_ICMP,
            HOST_A,
            REMOTE,
            &[],
            &icmp_msg(13, 0, [0; 4], &[0; 12]),
        );
        assert_eq!(n.outbound(0, &mut ts), Err(NatDrop::UnsupportedProtocol));
        // Bad IPv4 header checksum; not IPv4.
        let mut p = udp(HOST_A, 1, REMOTE, 53);
        p[10] ^= 1;
        assert_eq!(n.outbound(0, &mut p), Err(NatDrop::Malformed));
        let mut p = udp(HOST_A, 1, REMOTE, 53);
        p[0] = 0x65;
        assert_eq!(n.outbound(0, &mut p), Err(NatDrop::Malformed));
        assert!(n.is_empty());
    }

    #[test]
    fn many_flows_through_the_hash_indexes() {
        let mut n = Nat::with_seed(1024, Ipv4Address::from(PUBLIC), 20000..=59999, 0xdead_beef);
        let mut ports = Vec::new();
        for i in 0..1024u32 {
            let host = [10, 1, (i >> 8) as u8, i as u8];
            ports.push(go_out(
                &mut n,
                0,
                udp(host, 4000 + (i % 3) as u16, REMOTE, 53),
            ));
        }
        assert_eq!(n.len(), 1024);
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 1024);
        for (i, &port) in ports.iter().enumerate() {
            let mut r = udp(REMOTE, 53, PUBLIC, port);
            n.inbound(1, &mut r).unwrap();
            let s = check(&r);
            assert_eq!(s.dst, [10, 1, (i >> 8) as u8, i as u8]);
            assert_eq!(s.dport, 4000 + (i % 3) as u16);
        }
        // 1024 more: each evicts one of the first batch.
        for i in 0..1024u32 {
            let host = [10, 2, (i >> 8) as u8, i as u8];
            go_out(&mut n, 2, udp(host, 9, REMOTE2, 53));
        }
        assert_eq!(n.counters().evicted, 1024);
        assert_eq!(n.len(), 1024);
        let mut r = udp(REMOTE, 53, PUBLIC, ports[0]);
        assert_eq!(n.inbound(2, &mut r), Err(NatDrop::NoMapping));
        // All of them expire together; `expire` reaps without traffic.
        n.expire(2 + UDP_TIMEOUT_SECS);
        assert!(n.is_empty());
        assert_eq!(n.counters().expired, 1024);
        assert_eq!(n.counters().created, 2048);
    }

    #[test]
    fn clock_going_backwards_expires_nothing() {
        let mut n = nat(4);
        let port = go_out(&mut n, 1000, udp(HOST_A, 1, REMOTE, 53));
        let mut r = udp(REMOTE, 53, PUBLIC, port);
        n.inbound(5, &mut r).unwrap();
        // Last use is still 1000.
        let mut r = udp(REMOTE, 53, PUBLIC, port);
        n.inbound(1059, &mut r).unwrap();
    }

    #[test]
    fn new_syn_after_close_is_a_new_connection() {
        let mut n = nat(4);
        let port = go_out(&mut n, 0, tcp(HOST_A, 1, REMOTE, 80, TCP_SYN));
        n.inbound(0, &mut tcp(REMOTE, 80, PUBLIC, port, TCP_SYN | TCP_ACK))
            .unwrap();
        go_out(&mut n, 1, tcp(HOST_A, 1, REMOTE, 80, TCP_FIN | TCP_ACK));
        go_out(&mut n, 2, tcp(HOST_A, 1, REMOTE, 80, TCP_SYN));
        n.inbound(3, &mut tcp(REMOTE, 80, PUBLIC, port, TCP_SYN | TCP_ACK))
            .unwrap();
        // Established again: alive after 240 s idle.
        n.inbound(1000, &mut tcp(REMOTE, 80, PUBLIC, port, TCP_ACK))
            .unwrap();
    }

    /// Valid packets of every kind the NAT handles, with the direction.
    fn samples() -> Vec<(bool, Vec<u8>, Nat)> {
        let mut v = Vec::new();
        let opts = [1u8, 1, 1, 0];
        v.push((true, tcp(HOST_A, 1, REMOTE, 2, TCP_SYN), nat(4)));
        v.push((true, udp(HOST_A, 1, REMOTE, 2), nat(4)));
        v.push((true, echo(ICMP_ECHO_REQUEST, HOST_A, REMOTE, 1, 1), nat(4)));
        let seg = tcp_seg(HOST_A, 1, REMOTE, 2, TCP_ACK, b"");
        v.push((true, ipv4(PROTO_TCP, HOST_A, REMOTE, &opts, &seg), nat(4)));
        // Inbound ones need their mapping first.
        let mut n = nat(4);
        let mut out = udp(HOST_A, 5000, REMOTE, 53);
        n.outbound(0, &mut out).unwrap();
        let port = check(&out).sport;
        let mut m = nat(4);
        let mut t = tcp(HOST_A, 5000, REMOTE, 80, TCP_SYN);
        m.outbound(0, &mut t).unwrap();
        let tport = check(&t).sport;
        v.push((false, udp(REMOTE, 53, PUBLIC, port), n));
        let mut n2 = nat(4);
        n2.outbound(0, &mut udp(HOST_A, 5000, REMOTE, 53)).unwrap();
        // Same seed and same first flow: same port.
        v.push((
            false,
            icmp_err(ICMP_DST_UNREACHABLE, 3, ROUTER, PUBLIC, [0; 4], &out),
            n2,
        ));
        v.push((false, tcp(REMOTE, 80, PUBLIC, tport, TCP_ACK), m));
        v
    }

    #[test]
    fn every_truncation_is_an_error() {
        for (outbound, p, n) in samples() {
            // The untruncated packet works.
            let mut full = p.clone();
            let mut fresh = clone_nat(&n);
            let res = if outbound {
                fresh.outbound(1, &mut full)
            } else {
                fresh.inbound(1, &mut full)
            };
            res.unwrap();
            for cut in 0..p.len() {
                // Buffer cut short.
                let mut q = p[..cut].to_vec();
                let mut n = clone_nat(&n);
                let res = if outbound {
                    n.outbound(1, &mut q)
                } else {
                    n.inbound(1, &mut q)
                };
                assert!(res.is_err(), "cut at {cut} of {}", p.len());
                assert_eq!(q, p[..cut], "unchanged on error");
            }
            // Total length cut short (header still valid), down to the
            // minimum needed: shorter than the transport header is an error.
            let hl = usize::from(p[0] & 0x0f) * 4;
            let min = if p[9] == PROTO_ICMP && p[hl] == ICMP_DST_UNREACHABLE {
                hl + 8 + 20 + 8
            } else if p[9] == PROTO_TCP {
                hl + 20
            } else {
                hl + 8
            };
            for total in 0..min {
                let mut q = p.clone();
                q[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                q[10..12].fill(0);
                Ipv4Packet::new_unchecked(&mut q[..]).fill_checksum();
                let mut n = clone_nat(&n);
                let res = if outbound {
                    n.outbound(1, &mut q)
                } else {
                    n.inbound(1, &mut q)
                };
                assert!(res.is_err(), "total {total}");
            }
        }
    }

    fn clone_nat(n: &Nat) -> Nat {
        Nat {
            entries: n.entries.clone(),
            out_index: n.out_index.clone(),
            in_index: n.in_index.clone(),
            ..*n
        }
    }

    #[test]
    fn random_mutations_never_panic() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for (outbound, p, n) in samples() {
            let mut n = clone_nat(&n);
            for round in 0..3000u64 {
                let mut q = p.clone();
                for _ in 0..1 + rnd() % 4 {
                    let i = (rnd() as usize) % q.len();
                    q[i] = rnd() as u8;
                }
                if rnd() % 2 == 0 {
                    // Keep the header checksum valid so parsing goes deeper.
                    let hl = (usize::from(q[0] & 0x0f) * 4).clamp(20, q.len());
                    q[10..12].fill(0);
                    let c = !fold(sum16(&q[..hl]));
                    q[10..12].copy_from_slice(&c.to_be_bytes());
                }
                let _ = if outbound {
                    n.outbound(round, &mut q)
                } else {
                    n.inbound(round, &mut q)
                };
                assert!(n.len() <= n.capacity());
            }
        }
    }
}
