//! DHCPv4 server for one directly attached segment (a subset of RFC 2131/2132).
//!
//! Sans-I/O: [`DhcpServer::handle`] takes the UDP payload of a datagram that arrived on the
//! segment for port 67 plus the current monotonic time, updates the lease table and writes
//! the reply's UDP payload, saying which MAC and IP address it must go to. It answers
//! DISCOVER (OFFER), REQUEST in the selecting, init-reboot, renewing and rebinding states
//! (ACK or NAK), RELEASE, DECLINE and INFORM. Addresses come from the subnet of the
//! server's own address; static leases pin an address to a MAC. The lease table is
//! allocated once ([`MAX_LEASES`] entries); handling a packet never allocates.
//!
//! A static lease outside the server's subnet is a *visiting* one: the workload belongs to
//! another appliance's segment of the same VDC and may turn up here with its address. It
//! gets that address with mask 255.255.255.255, the server as router, and classless static
//! routes (RFC 3442, option 121): the server's address on-link, the default route through
//! it. This is how clouds hand out /32 leases; Linux clients (udhcpc, dhclient,
//! systemd-networkd, NetworkManager) apply it. [`DhcpServer::visiting`] lists them, bound
//! or not, for the router's host routes.
//!
//! What it does not do: relay agents (`giaddr` set is dropped), option overload (options in
//! `sname`/`file` are not read), long options split over several instances (RFC 3396),
//! client identifiers (option 61 is ignored: clients are keyed by `chaddr`), plain BOOTP
//! (no option 53), and persistence: the table lives in memory, so after a restart the server
//! acts as authoritative and re-grants whatever free address a client asks for.

use alloc::vec::Vec;
use smoltcp::wire::{EthernetAddress, Ipv4Address};

/// UDP port the server listens on (replies are sent from it).
pub const DHCP_SERVER_PORT: u16 = 67;
/// UDP port replies are sent to.
pub const DHCP_CLIENT_PORT: u16 = 68;
/// Entries in the dynamic lease table (offers, leases, released and declined addresses).
/// Static leases are kept apart and do not count against it.
pub const MAX_LEASES: usize = 256;
/// How long an offered address stays reserved for the client it was offered to.
pub const OFFER_HOLD_SECS: u64 = 60;
/// How long an address a client declined (found in use) is kept out of the pool.
pub const DECLINE_HOLD_SECS: u64 = 600;
/// Shortest lease handed out; a shorter configured lease is raised to this.
pub const MIN_LEASE_SECS: u32 = 60;
/// Every reply is padded to this length (the BOOTP minimum some clients insist on);
/// `out` given to [`DhcpServer::handle`] must be at least this long.
pub const MIN_REPLY_LEN: usize = 300;

// BOOTP header layout (RFC 2131 section 2).
const OP: usize = 0;
const HTYPE: usize = 1;
const HLEN: usize = 2;
const XID: usize = 4;
const FLAGS: usize = 10;
const CIADDR: usize = 12;
const YIADDR: usize = 16;
const GIADDR: usize = 24;
const CHADDR: usize = 28;
const MAGIC: usize = 236;
const OPTIONS: usize = 240;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
const HTYPE_ETHERNET: u8 = 1;
const FLAG_BROADCAST: u8 = 0x80; // high bit of the first flags byte

// Option codes (RFC 2132).
const OPT_PAD: u8 = 0;
const OPT_SUBNET_MASK: u8 = 1;
const OPT_ROUTER: u8 = 3;
const OPT_DNS: u8 = 6;
const OPT_MTU: u8 = 26;
const OPT_BROADCAST: u8 = 28;
const OPT_CLASSLESS_ROUTES: u8 = 121;
const OPT_REQUESTED_IP: u8 = 50;
const OPT_LEASE_TIME: u8 = 51;
const OPT_MESSAGE_TYPE: u8 = 53;
const OPT_SERVER_ID: u8 = 54;
const OPT_T1: u8 = 58;
const OPT_T2: u8 = 59;
const OPT_END: u8 = 255;

// Message types (option 53).
const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const DECLINE: u8 = 4;
const ACK: u8 = 5;
const NAK: u8 = 6;
const RELEASE: u8 = 7;
const INFORM: u8 = 8;

/// What the server hands out on its segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpConfig {
    /// The server's own address on the segment; also the router (option 3) and the
    /// server identifier (option 54). The pool is the rest of its subnet.
    pub addr: Ipv4Address,
    /// Prefix length of the segment's subnet (pools exist for 1..=30).
    pub prefix_len: u8,
    /// Lease time (raised to [`MIN_LEASE_SECS`]); `u32::MAX` means infinite.
    pub lease_secs: u32,
    /// MAC to address pins. An address outside the subnet is a visiting lease (see the
    /// module documentation); inside it, the network, broadcast and server addresses are
    /// ignored, as are repeated MACs or addresses after the first, and 0.0.0.0, broadcast,
    /// multicast or loopback addresses.
    pub static_leases: Vec<(EthernetAddress, Ipv4Address)>,
    /// DNS server given to clients (option 6).
    pub dns: Option<Ipv4Address>,
    /// Interface MTU given to clients (option 26), if at least 68.
    pub mtu: Option<u16>,
}

/// Where the reply written into `out` must be sent: an Ethernet frame to `dst_mac` carrying
/// IPv4 from the server's address to `dst_ip`, UDP from port 67 to port 68.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhcpReply {
    /// Length of the UDP payload written at the start of `out`.
    pub len: usize,
    /// Ethernet destination: the client's `chaddr`, or broadcast.
    pub dst_mac: EthernetAddress,
    /// IPv4 destination: 255.255.255.255, the client's `ciaddr` or the offered address
    /// (RFC 2131 4.1 without relays). Send it directly to `dst_mac`; do not ARP for it.
    pub dst_ip: Ipv4Address,
    /// For an ACK of a lease: the client's MAC and address, a neighbour the router now
    /// knows without asking.
    pub bound: Option<(EthernetAddress, Ipv4Address)>,
}

/// Why a datagram got no reply (each one a counter for the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DhcpDrop {
    /// Too short, bad magic cookie, not Ethernet, bad `chaddr`, options overrunning the
    /// datagram, a known option with the wrong length, or a REQUEST/DECLINE without the
    /// address it is about.
    Malformed,
    /// A BOOTREPLY, or a DHCP message type a client does not send (OFFER, ACK, NAK, unknown).
    NotRequest,
    /// No DHCP message type option (plain BOOTP, unsupported).
    NoMessageType,
    /// Relayed (`giaddr` set): this server only serves its own segment.
    Relayed,
    /// No address free for the client (pool or lease table full).
    PoolExhausted,
    /// REQUEST, DECLINE or RELEASE naming another server identifier.
    NotForUs,
    /// `out` is shorter than [`MIN_REPLY_LEN`].
    OutTooSmall,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reserved for the client until `expires` (it was sent an OFFER).
    Offered,
    /// Leased until `expires`.
    Bound,
    /// Given back by the client; reusable (kept so the client gets it again if free).
    Released,
    /// The client found the address in use; unusable until `expires`.
    Declined,
}

#[derive(Clone, Copy, Debug)]
struct Lease {
    mac: EthernetAddress,
    ip: Ipv4Address,
    expires: u64,
    state: State,
}

impl Lease {
    /// The entry stands for `mac`'s address (a declined entry belongs to no one).
    fn owned_by(&self, mac: EthernetAddress) -> bool {
        self.state != State::Declined && self.mac == mac
    }
}

#[derive(Clone, Copy, Debug)]
struct StaticLease {
    mac: EthernetAddress,
    ip: Ipv4Address,
    /// Set once acknowledged, cleared by RELEASE.
    expires: Option<u64>,
    /// Outside the subnet: served as a /32 with routes (see the module documentation).
    visiting: bool,
}

/// A parsed client message; only what the server uses.
struct Request {
    msg_type: u8,
    xid: [u8; 4],
    broadcast: bool,
    ciaddr: Ipv4Address,
    mac: EthernetAddress,
    requested: Option<Ipv4Address>,
    server_id: Option<Ipv4Address>,
}

/// The DHCPv4 server of one segment. See the module documentation.
#[derive(Debug)]
pub struct DhcpServer {
    addr: Ipv4Address,
    mask: u32,
    network: u32,
    broadcast: u32,
    lease_secs: u32,
    dns: Option<Ipv4Address>,
    mtu: Option<u16>,
    statics: Vec<StaticLease>,
    /// Invariants: at most one entry per address, at most one non-declined entry per MAC,
    /// never more than [`MAX_LEASES`] entries (capacity reserved at construction).
    table: Vec<Lease>,
}

impl DhcpServer {
    /// A server with an empty lease table.
    pub fn new(cfg: DhcpConfig) -> DhcpServer {
        let prefix_len = cfg.prefix_len.min(32);
        let mask = if prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix_len))
        };
        let network = cfg.addr.to_bits() & mask;
        let mut server = DhcpServer {
            addr: cfg.addr,
            mask,
            network,
            broadcast: network | !mask,
            lease_secs: cfg.lease_secs.max(MIN_LEASE_SECS),
            dns: cfg.dns,
            mtu: cfg.mtu.filter(|&m| m >= 68),
            statics: Vec::new(),
            table: Vec::with_capacity(MAX_LEASES),
        };
        let mut statics = Vec::with_capacity(cfg.static_leases.len());
        for &(mac, ip) in &cfg.static_leases {
            let visiting = server.is_visiting(ip);
            let usable = (server.in_pool(ip) || visiting)
                && !statics
                    .iter()
                    .any(|s: &StaticLease| s.mac == mac || s.ip == ip);
            if usable {
                statics.push(StaticLease {
                    mac,
                    ip,
                    expires: None,
                    visiting,
                });
            }
        }
        server.statics = statics;
        server
    }

    /// Handles one datagram received on UDP port 67. `payload` is the UDP payload and
    /// `now_secs` monotonic seconds. On `Ok(Some(_))` the reply's UDP payload is in
    /// `out[..len]`; `Ok(None)` means handled, nothing to send (RELEASE, DECLINE).
    pub fn handle(
        &mut self,
        now_secs: u64,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<Option<DhcpReply>, DhcpDrop> {
        let req = parse(payload)?;
        if out.len() < MIN_REPLY_LEN {
            return Err(DhcpDrop::OutTooSmall);
        }
        match req.msg_type {
            DISCOVER => self.discover(now_secs, &req, out).map(Some),
            REQUEST => self.request(now_secs, &req, out).map(Some),
            DECLINE => self.decline(now_secs, &req).map(|()| None),
            RELEASE => self.release(now_secs, &req).map(|()| None),
            INFORM => Ok(Some(self.reply(&req, ACK, Ipv4Address::UNSPECIFIED, out))),
            _ => Err(DhcpDrop::NotRequest),
        }
    }

    /// Acknowledged leases as `(MAC, address, expiry in now_secs time)`, static ones
    /// included. Expired leases stay listed until their address is reused; compare the
    /// expiry with the current time to tell.
    pub fn leases(&self) -> impl Iterator<Item = (EthernetAddress, Ipv4Address, u64)> + '_ {
        let statics = self
            .statics
            .iter()
            .filter_map(|s| s.expires.map(|e| (s.mac, s.ip, e)));
        let dynamic = self
            .table
            .iter()
            .filter(|l| l.state == State::Bound)
            .map(|l| (l.mac, l.ip, l.expires));
        statics.chain(dynamic)
    }

    /// The server's own address (source of every reply).
    pub fn addr(&self) -> Ipv4Address {
        self.addr
    }

    /// The visiting leases as `(MAC, address, expiry)`: the expiry is `None` while the
    /// lease was never acknowledged or was released.
    pub fn visiting(
        &self,
    ) -> impl Iterator<Item = (EthernetAddress, Ipv4Address, Option<u64>)> + '_ {
        self.statics
            .iter()
            .filter(|s| s.visiting)
            .map(|s| (s.mac, s.ip, s.expires))
    }

    /// Whether `ip` is pinned by a static lease of this subnet: a workload's address that
    /// may be away, visiting another segment.
    pub fn pins(&self, ip: Ipv4Address) -> bool {
        self.statics.iter().any(|s| !s.visiting && s.ip == ip)
    }

    /// A unicast address outside the subnet, the kind a visiting lease may pin.
    fn is_visiting(&self, ip: Ipv4Address) -> bool {
        ip.to_bits() & self.mask != self.network
            && !ip.is_multicast()
            && !ip.is_broadcast()
            && !ip.is_loopback()
            && !ip.is_unspecified()
    }

    fn is_visiting_static(&self, ip: Ipv4Address) -> bool {
        self.statics.iter().any(|s| s.visiting && s.ip == ip)
    }

    fn discover(&mut self, now: u64, req: &Request, out: &mut [u8]) -> Result<DhcpReply, DhcpDrop> {
        let ip = self.choose(now, req.mac, req.requested)?;
        let keep = self.table.iter().any(|l| {
            l.owned_by(req.mac) && l.ip == ip && l.state == State::Bound && l.expires > now
        });
        if !keep {
            self.assign(
                now,
                req.mac,
                ip,
                State::Offered,
                now.saturating_add(OFFER_HOLD_SECS),
            )?;
        }
        Ok(self.reply(req, OFFER, ip, out))
    }

    fn request(&mut self, now: u64, req: &Request, out: &mut [u8]) -> Result<DhcpReply, DhcpDrop> {
        let ciaddr = (!req.ciaddr.is_unspecified()).then_some(req.ciaddr);
        let ip = match req.server_id {
            // SELECTING: the client answers an OFFER (ours or another server's).
            Some(id) if id != self.addr => {
                self.forget_offer(now, req.mac);
                return Err(DhcpDrop::NotForUs);
            }
            Some(_) => req.requested.or(ciaddr),
            // INIT-REBOOT (requested address) or RENEWING/REBINDING (ciaddr).
            None => req.requested.or(ciaddr),
        }
        .ok_or(DhcpDrop::Malformed)?;
        if !self.can_assign(now, req.mac, ip) {
            return Ok(self.reply(req, NAK, Ipv4Address::UNSPECIFIED, out));
        }
        let expires = if self.lease_secs == u32::MAX {
            u64::MAX
        } else {
            now.saturating_add(u64::from(self.lease_secs))
        };
        self.assign(now, req.mac, ip, State::Bound, expires)?;
        let mut reply = self.reply(req, ACK, ip, out);
        reply.bound = Some((req.mac, ip));
        Ok(reply)
    }

    fn decline(&mut self, now: u64, req: &Request) -> Result<(), DhcpDrop> {
        if req.server_id.is_some_and(|id| id != self.addr) {
            return Err(DhcpDrop::NotForUs);
        }
        let ip = req.requested.ok_or(DhcpDrop::Malformed)?;
        // Only the holder can decline an address (a static address stays pinned).
        if let Some(l) = self
            .table
            .iter_mut()
            .find(|l| l.owned_by(req.mac) && l.ip == ip)
        {
            l.state = State::Declined;
            l.expires = now.saturating_add(DECLINE_HOLD_SECS);
        }
        Ok(())
    }

    fn release(&mut self, now: u64, req: &Request) -> Result<(), DhcpDrop> {
        if req.server_id.is_some_and(|id| id != self.addr) {
            return Err(DhcpDrop::NotForUs);
        }
        let ip = req.ciaddr;
        if let Some(s) = self
            .statics
            .iter_mut()
            .find(|s| s.mac == req.mac && s.ip == ip)
        {
            s.expires = None;
        }
        if let Some(l) = self
            .table
            .iter_mut()
            .find(|l| l.owned_by(req.mac) && l.ip == ip)
        {
            l.state = State::Released;
            l.expires = l.expires.min(now);
        }
        Ok(())
    }

    /// The client chose another server: free what we offered it.
    fn forget_offer(&mut self, now: u64, mac: EthernetAddress) {
        if let Some(l) = self
            .table
            .iter_mut()
            .find(|l| l.owned_by(mac) && l.state == State::Offered)
        {
            l.state = State::Released;
            l.expires = l.expires.min(now);
        }
    }

    /// A host address of the subnet other than the server's own.
    fn in_pool(&self, ip: Ipv4Address) -> bool {
        let v = ip.to_bits();
        v & self.mask == self.network && v != self.network && v != self.broadcast && ip != self.addr
    }

    fn static_of(&self, mac: EthernetAddress) -> Option<Ipv4Address> {
        self.statics.iter().find(|s| s.mac == mac).map(|s| s.ip)
    }

    /// Whether `ip` may be given to `mac` now.
    fn can_assign(&self, now: u64, mac: EthernetAddress, ip: Ipv4Address) -> bool {
        if let Some(pinned) = self.static_of(mac) {
            return pinned == ip;
        }
        if !self.in_pool(ip) {
            return false;
        }
        if self.statics.iter().any(|s| s.ip == ip) {
            return false;
        }
        match self.table.iter().find(|l| l.ip == ip) {
            None => true,
            Some(l) => l.owned_by(mac) || l.expires <= now,
        }
    }

    /// The address to offer `mac` (RFC 2131 4.3.1 order): its static address, its current
    /// or previous address, the address it asks for, a never used one, the oldest expired.
    fn choose(
        &self,
        now: u64,
        mac: EthernetAddress,
        requested: Option<Ipv4Address>,
    ) -> Result<Ipv4Address, DhcpDrop> {
        if let Some(ip) = self.static_of(mac) {
            return Ok(ip);
        }
        if let Some(l) = self.table.iter().find(|l| l.owned_by(mac)) {
            if self.can_assign(now, mac, l.ip) {
                return Ok(l.ip);
            }
        }
        if let Some(ip) = requested.filter(|&ip| self.can_assign(now, mac, ip)) {
            if self.table.len() < MAX_LEASES || self.oldest_expired(now).is_some() {
                return Ok(ip);
            }
        }
        if self.table.len() < MAX_LEASES {
            if let Some(ip) = self.unused() {
                return Ok(ip);
            }
        }
        self.oldest_expired(now)
            .map(|i| self.table[i].ip)
            .ok_or(DhcpDrop::PoolExhausted)
    }

    /// The lowest pool address with no table entry and no static lease. Terminates after
    /// at most `table + statics + 4` addresses unless the subnet runs out first.
    fn unused(&self) -> Option<Ipv4Address> {
        (self.network..=self.broadcast)
            .map(Ipv4Address::from_bits)
            .filter(|&ip| self.in_pool(ip))
            .find(|&ip| {
                !self.statics.iter().any(|s| s.ip == ip) && !self.table.iter().any(|l| l.ip == ip)
            })
    }

    /// Index of the entry that expired first among the expired ones.
    fn oldest_expired(&self, now: u64) -> Option<usize> {
        self.table
            .iter()
            .enumerate()
            .filter(|(_, l)| l.expires <= now)
            .min_by_key(|(_, l)| l.expires)
            .map(|(i, _)| i)
    }

    /// Records `ip` as `mac`'s (the caller checked [`Self::can_assign`]), keeping the table
    /// invariants: a stale holder of `ip` goes, `mac`'s entry moves, or a slot is taken.
    fn assign(
        &mut self,
        now: u64,
        mac: EthernetAddress,
        ip: Ipv4Address,
        state: State,
        expires: u64,
    ) -> Result<(), DhcpDrop> {
        if let Some(s) = self.statics.iter_mut().find(|s| s.mac == mac) {
            if state == State::Bound {
                s.expires = Some(expires);
            }
            return Ok(());
        }
        if let Some(i) = self
            .table
            .iter()
            .position(|l| l.ip == ip && !l.owned_by(mac))
        {
            self.table.swap_remove(i);
        }
        let lease = Lease {
            mac,
            ip,
            expires,
            state,
        };
        if let Some(l) = self.table.iter_mut().find(|l| l.owned_by(mac)) {
            *l = lease;
            return Ok(());
        }
        if self.table.len() < MAX_LEASES {
            self.table.push(lease);
            return Ok(());
        }
        let i = self.oldest_expired(now).ok_or(DhcpDrop::PoolExhausted)?;
        self.table[i] = lease;
        Ok(())
    }

    /// Writes a BOOTREPLY of type `msg` for `req` into `out` (at least [`MIN_REPLY_LEN`]).
    fn reply(&self, req: &Request, msg: u8, yiaddr: Ipv4Address, out: &mut [u8]) -> DhcpReply {
        let len = MIN_REPLY_LEN;
        out[..len].fill(0);
        out[OP] = BOOTREPLY;
        out[HTYPE] = HTYPE_ETHERNET;
        out[HLEN] = 6;
        out[XID..XID + 4].copy_from_slice(&req.xid);
        if req.broadcast {
            out[FLAGS] = FLAG_BROADCAST;
        }
        if msg == ACK {
            out[CIADDR..CIADDR + 4].copy_from_slice(&req.ciaddr.octets());
        }
        out[YIADDR..YIADDR + 4].copy_from_slice(&yiaddr.octets());
        out[CHADDR..CHADDR + 6].copy_from_slice(&req.mac.0);
        out[MAGIC..OPTIONS].copy_from_slice(&MAGIC_COOKIE);

        let mut w = OptionWriter {
            buf: &mut out[OPTIONS..len],
            pos: 0,
        };
        w.put(OPT_MESSAGE_TYPE, &[msg]);
        w.put(OPT_SERVER_ID, &self.addr.octets());
        if msg != NAK {
            if !yiaddr.is_unspecified() {
                let lease = self.lease_secs;
                let (t1, t2) = if lease == u32::MAX {
                    (u32::MAX, u32::MAX)
                } else {
                    (lease / 2, (u64::from(lease) * 7 / 8) as u32)
                };
                w.put(OPT_LEASE_TIME, &lease.to_be_bytes());
                w.put(OPT_T1, &t1.to_be_bytes());
                w.put(OPT_T2, &t2.to_be_bytes());
            }
            // An INFORM names its address in ciaddr.
            let holder = if yiaddr.is_unspecified() {
                req.ciaddr
            } else {
                yiaddr
            };
            let visiting = self.is_visiting_static(holder);
            let mask = if visiting { u32::MAX } else { self.mask };
            w.put(OPT_SUBNET_MASK, &mask.to_be_bytes());
            w.put(OPT_ROUTER, &self.addr.octets());
            if visiting {
                // RFC 3442: the server on-link (width 32, router 0.0.0.0), then the default
                // route (width 0, no destination octets) through it.
                let a = self.addr.octets();
                let routes = [
                    32, a[0], a[1], a[2], a[3], 0, 0, 0, 0, 0, a[0], a[1], a[2], a[3],
                ];
                w.put(OPT_CLASSLESS_ROUTES, &routes);
            }
            if let Some(dns) = self.dns {
                w.put(OPT_DNS, &dns.octets());
            }
            if let Some(mtu) = self.mtu {
                w.put(OPT_MTU, &mtu.to_be_bytes());
            }
            if !visiting {
                w.put(OPT_BROADCAST, &self.broadcast.to_be_bytes());
            }
        }
        w.end();

        let (dst_mac, dst_ip) = if msg == NAK {
            (EthernetAddress::BROADCAST, Ipv4Address::BROADCAST)
        } else if !req.ciaddr.is_unspecified() {
            (req.mac, req.ciaddr)
        } else if req.broadcast || yiaddr.is_unspecified() {
            (EthernetAddress::BROADCAST, Ipv4Address::BROADCAST)
        } else {
            (req.mac, yiaddr)
        };
        DhcpReply {
            len,
            dst_mac,
            dst_ip,
            bound: None,
        }
    }
}

/// Appends options to a zeroed buffer; an option that does not fit is left out (the
/// buffer is sized for the largest reply, so that does not happen).
struct OptionWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl OptionWriter<'_> {
    fn put(&mut self, code: u8, data: &[u8]) {
        let end = self.pos + 2 + data.len();
        // Keep a byte for the end option.
        if end < self.buf.len() {
            if let Ok(len) = u8::try_from(data.len()) {
                self.buf[self.pos] = code;
                self.buf[self.pos + 1] = len;
                self.buf[self.pos + 2..end].copy_from_slice(data);
                self.pos = end;
            }
        }
    }

    fn end(&mut self) {
        if let Some(b) = self.buf.get_mut(self.pos) {
            *b = OPT_END;
            self.pos += 1;
        }
    }
}

fn ipv4_at(b: &[u8], at: usize) -> Option<Ipv4Address> {
    let octets: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(Ipv4Address::from(octets))
}

fn ipv4_option(data: &[u8]) -> Result<Ipv4Address, DhcpDrop> {
    ipv4_at(data, 0)
        .filter(|_| data.len() == 4)
        .ok_or(DhcpDrop::Malformed)
}

/// Parses a client message, checking every length before use.
fn parse(b: &[u8]) -> Result<Request, DhcpDrop> {
    let (header, mut opts) = b.split_at_checked(OPTIONS).ok_or(DhcpDrop::Malformed)?;
    if header[OP] != BOOTREQUEST {
        return Err(DhcpDrop::NotRequest);
    }
    if header[HTYPE] != HTYPE_ETHERNET || header[HLEN] != 6 || header[MAGIC..] != MAGIC_COOKIE {
        return Err(DhcpDrop::Malformed);
    }
    let giaddr = ipv4_at(header, GIADDR).ok_or(DhcpDrop::Malformed)?;
    if !giaddr.is_unspecified() {
        return Err(DhcpDrop::Relayed);
    }
    let mac = EthernetAddress::from_bytes(&header[CHADDR..CHADDR + 6]);
    if !mac.is_unicast() || mac.0 == [0; 6] {
        return Err(DhcpDrop::Malformed);
    }
    let mut msg_type = None;
    let mut requested = None;
    let mut server_id = None;
    // Each step consumes at least one byte, so this ends.
    while let Some((&code, rest)) = opts.split_first() {
        match code {
            OPT_PAD => {
                opts = rest;
                continue;
            }
            OPT_END => break,
            _ => {}
        }
        let (&len, rest) = rest.split_first().ok_or(DhcpDrop::Malformed)?;
        let (data, rest) = rest
            .split_at_checked(usize::from(len))
            .ok_or(DhcpDrop::Malformed)?;
        opts = rest;
        // The first instance of an option counts.
        match code {
            OPT_MESSAGE_TYPE if msg_type.is_none() => match data {
                &[t] => msg_type = Some(t),
                _ => return Err(DhcpDrop::Malformed),
            },
            OPT_REQUESTED_IP if requested.is_none() => requested = Some(ipv4_option(data)?),
            OPT_SERVER_ID if server_id.is_none() => server_id = Some(ipv4_option(data)?),
            _ => {}
        }
    }
    let msg_type = msg_type.ok_or(DhcpDrop::NoMessageType)?;
    if !matches!(msg_type, DISCOVER | REQUEST | DECLINE | RELEASE | INFORM) {
        return Err(DhcpDrop::NotRequest);
    }
    Ok(Request {
        msg_type,
        xid: [
            header[XID],
            header[XID + 1],
            header[XID + 2],
            header[XID + 3],
        ],
        broadcast: header[FLAGS] & FLAG_BROADCAST != 0,
        ciaddr: ipv4_at(header, CIADDR).ok_or(DhcpDrop::Malformed)?,
        mac,
        requested,
        server_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const SERVER: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
    const DNS: Ipv4Address = Ipv4Address::new(10, 0, 0, 53);
    const LEASE: u32 = 3600;
    const T0: u64 = 1000;

    fn mac(n: u16) -> EthernetAddress {
        let [hi, lo] = n.to_be_bytes();
        EthernetAddress([0x02, 0x00, 0x5e, 0x10, hi, lo])
    }

    fn config(prefix_len: u8) -> DhcpConfig {
        DhcpConfig {
            addr: SERVER,
            prefix_len,
            lease_secs: LEASE,
            static_leases: Vec::new(),
            dns: Some(DNS),
            mtu: Some(1420),
        }
    }

    /// A client message laid out like Linux clients send it: a 548-byte BOOTREQUEST, option
    /// 53 first, the given options, the end option, zero padding.
    fn client_msg(
        msg: u8,
        mac: EthernetAddress,
        xid: u32,
        ciaddr: Ipv4Address,
        broadcast: bool,
        opts: &[(u8, &[u8])],
    ) -> Vec<u8> {
        let mut b = vec![0u8; 548];
        b[0] = 1;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&xid.to_be_bytes());
        if broadcast {
            b[10] = 0x80;
        }
        b[12..16].copy_from_slice(&ciaddr.octets());
        b[28..34].copy_from_slice(&mac.0);
        b[236..240].copy_from_slice(&[0x63, 0x82, 0x53, 0x63]);
        let mut at = 240;
        b[at..at + 3].copy_from_slice(&[53, 1, msg]);
        at += 3;
        for (code, data) in opts {
            b[at] = *code;
            b[at + 1] = data.len() as u8;
            b[at + 2..at + 2 + data.len()].copy_from_slice(data);
            at += 2 + data.len();
        }
        b[at] = 255;
        b
    }

    /// A reply read back independently of the server's own parser.
    #[derive(Debug, PartialEq)]
    struct Parsed {
        op: u8,
        xid: u32,
        flags: u16,
        ciaddr: Ipv4Address,
        yiaddr: Ipv4Address,
        chaddr: EthernetAddress,
        opts: Vec<(u8, Vec<u8>)>,
    }

    impl Parsed {
        fn read(b: &[u8]) -> Parsed {
            assert!(b.len() >= 300, "reply shorter than the BOOTP minimum");
            assert_eq!(&b[1..3], &[1, 6]);
            assert_eq!(&b[236..240], &[0x63, 0x82, 0x53, 0x63]);
            assert!(
                b[34..236].iter().all(|&x| x == 0),
                "chaddr tail, sname, file"
            );
            let ip = |at: usize| Ipv4Address::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
            let mut opts = Vec::new();
            let mut at = 240;
            loop {
                match b[at] {
                    0 => at += 1,
                    255 => break,
                    code => {
                        let len = usize::from(b[at + 1]);
                        opts.push((code, b[at + 2..at + 2 + len].to_vec()));
                        at += 2 + len;
                    }
                }
            }
            assert!(b[at + 1..].iter().all(|&x| x == 0), "padding after end");
            Parsed {
                op: b[0],
                xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
                flags: u16::from_be_bytes([b[10], b[11]]),
                ciaddr: ip(12),
                yiaddr: ip(16),
                chaddr: EthernetAddress::from_bytes(&b[28..34]),
                opts,
            }
        }

        fn opt(&self, code: u8) -> Option<&[u8]> {
            self.opts
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, d)| d.as_slice())
        }

        fn msg_type(&self) -> u8 {
            match self.opt(53) {
                Some(&[t]) => t,
                other => panic!("bad message type option {other:?}"),
            }
        }

        fn ip(&self, code: u8) -> Option<Ipv4Address> {
            self.opt(code)
                .map(|d| Ipv4Address::from(<[u8; 4]>::try_from(d).unwrap()))
        }

        fn u32(&self, code: u8) -> Option<u32> {
            self.opt(code)
                .map(|d| u32::from_be_bytes(d.try_into().unwrap()))
        }
    }

    fn send(
        server: &mut DhcpServer,
        now: u64,
        msg: &[u8],
    ) -> Result<Option<(DhcpReply, Parsed)>, DhcpDrop> {
        let mut out = [0xaau8; 576];
        let reply = server.handle(now, msg, &mut out)?;
        Ok(reply.map(|r| {
            let p = Parsed::read(&out[..r.len]);
            assert_eq!(p.op, 2);
            (r, p)
        }))
    }

    fn reply(server: &mut DhcpServer, now: u64, msg: &[u8]) -> (DhcpReply, Parsed) {
        send(server, now, msg).unwrap().expect("a reply")
    }

    fn discover(server: &mut DhcpServer, now: u64, m: EthernetAddress) -> Result<Parsed, DhcpDrop> {
        let msg = client_msg(DISCOVER, m, 7, Ipv4Address::UNSPECIFIED, false, &[]);
        send(server, now, &msg).map(|r| r.unwrap().1)
    }

    fn select(server: &mut DhcpServer, now: u64, m: EthernetAddress, ip: Ipv4Address) -> Parsed {
        let msg = client_msg(
            REQUEST,
            m,
            8,
            Ipv4Address::UNSPECIFIED,
            false,
            &[(50, &ip.octets()), (54, &SERVER.octets())],
        );
        reply(server, now, &msg).1
    }

    /// DISCOVER, OFFER, REQUEST, ACK; returns the leased address.
    fn lease(
        server: &mut DhcpServer,
        now: u64,
        m: EthernetAddress,
    ) -> Result<Ipv4Address, DhcpDrop> {
        let offer = discover(server, now, m)?;
        assert_eq!(offer.msg_type(), OFFER);
        let ack = select(server, now, m, offer.yiaddr);
        assert_eq!(ack.msg_type(), ACK);
        assert_eq!(ack.yiaddr, offer.yiaddr);
        Ok(ack.yiaddr)
    }

    #[test]
    fn full_exchange() {
        let mut s = DhcpServer::new(config(24));
        let m = mac(1);
        let msg = client_msg(
            DISCOVER,
            m,
            0xdead_beef,
            Ipv4Address::UNSPECIFIED,
            false,
            &[],
        );
        let (r, offer) = reply(&mut s, T0, &msg);
        assert_eq!(offer.msg_type(), OFFER);
        assert_eq!(offer.xid, 0xdead_beef);
        assert_eq!(offer.chaddr, m);
        assert_eq!(offer.flags, 0);
        assert_eq!(offer.ciaddr, Ipv4Address::UNSPECIFIED);
        let ip = offer.yiaddr;
        assert_eq!(ip, Ipv4Address::new(10, 0, 0, 2));
        // No broadcast flag: unicast to the offered address at the client's MAC.
        assert_eq!((r.dst_mac, r.dst_ip), (m, ip));
        assert_eq!(r.len, MIN_REPLY_LEN);
        assert_eq!(offer.ip(54), Some(SERVER));
        assert_eq!(offer.u32(51), Some(LEASE));
        assert_eq!(offer.u32(58), Some(LEASE / 2));
        assert_eq!(offer.u32(59), Some(LEASE / 8 * 7));
        assert_eq!(offer.ip(1), Some(Ipv4Address::new(255, 255, 255, 0)));
        assert_eq!(offer.ip(3), Some(SERVER));
        assert_eq!(offer.ip(6), Some(DNS));
        assert_eq!(offer.opt(26), Some(&1420u16.to_be_bytes()[..]));
        assert_eq!(offer.ip(28), Some(Ipv4Address::new(10, 0, 0, 255)));
        assert_eq!(offer.opts[0].0, 53, "message type first");
        // An offer is not a lease.
        assert_eq!(s.leases().count(), 0);

        let msg = client_msg(
            REQUEST,
            m,
            0xdead_bef0,
            Ipv4Address::UNSPECIFIED,
            false,
            &[(50, &ip.octets()), (54, &SERVER.octets())],
        );
        let (r, ack) = reply(&mut s, T0 + 1, &msg);
        assert_eq!(ack.msg_type(), ACK);
        assert_eq!(ack.xid, 0xdead_bef0);
        assert_eq!(ack.yiaddr, ip);
        assert_eq!((r.dst_mac, r.dst_ip), (m, ip));
        assert_eq!(ack.u32(51), Some(LEASE));
        assert_eq!(ack.ip(1), Some(Ipv4Address::new(255, 255, 255, 0)));
        assert_eq!(ack.ip(3), Some(SERVER));
        let leases: Vec<_> = s.leases().collect();
        assert_eq!(leases, vec![(m, ip, T0 + 1 + u64::from(LEASE))]);
    }

    #[test]
    fn broadcast_flag_and_minimal_config() {
        let mut s = DhcpServer::new(DhcpConfig {
            dns: None,
            mtu: None,
            lease_secs: 10,
            ..config(24)
        });
        let msg = client_msg(DISCOVER, mac(1), 1, Ipv4Address::UNSPECIFIED, true, &[]);
        let (r, offer) = reply(&mut s, T0, &msg);
        assert_eq!(offer.flags, 0x8000);
        assert_eq!(r.dst_mac, EthernetAddress::BROADCAST);
        assert_eq!(r.dst_ip, Ipv4Address::BROADCAST);
        assert_eq!(offer.opt(6), None);
        assert_eq!(offer.opt(26), None);
        assert_eq!(offer.u32(51), Some(MIN_LEASE_SECS));
    }

    #[test]
    fn same_client_same_address_and_requested_address() {
        let mut s = DhcpServer::new(config(24));
        let a = discover(&mut s, T0, mac(1)).unwrap().yiaddr;
        assert_eq!(discover(&mut s, T0 + 5, mac(1)).unwrap().yiaddr, a);
        // Another client meanwhile gets another address (the offer is held).
        let b = discover(&mut s, T0 + 5, mac(2)).unwrap().yiaddr;
        assert_ne!(a, b);
        // Bound, then a new DISCOVER (client restarted): same address again.
        select(&mut s, T0 + 6, mac(1), a);
        assert_eq!(discover(&mut s, T0 + 100, mac(1)).unwrap().yiaddr, a);
        assert_eq!(
            s.leases().count(),
            1,
            "the DISCOVER did not demote the lease"
        );
        // A new client asking for a free address gets it; for a taken one, another.
        let wanted = Ipv4Address::new(10, 0, 0, 77);
        let msg = client_msg(
            DISCOVER,
            mac(3),
            1,
            Ipv4Address::UNSPECIFIED,
            false,
            &[(50, &wanted.octets())],
        );
        assert_eq!(reply(&mut s, T0, &msg).1.yiaddr, wanted);
        let msg = client_msg(
            DISCOVER,
            mac(4),
            1,
            Ipv4Address::UNSPECIFIED,
            false,
            &[(50, &a.octets())],
        );
        let other = reply(&mut s, T0, &msg).1.yiaddr;
        assert!(other != a && other != wanted && other != b);
        // Requests outside the pool are ignored.
        for bad in [
            SERVER,
            Ipv4Address::new(10, 0, 0, 255),
            Ipv4Address::new(10, 0, 1, 9),
        ] {
            let msg = client_msg(
                DISCOVER,
                mac(5),
                1,
                Ipv4Address::UNSPECIFIED,
                false,
                &[(50, &bad.octets())],
            );
            assert_ne!(reply(&mut s, T0, &msg).1.yiaddr, bad);
        }
    }

    #[test]
    fn static_lease() {
        let pinned = Ipv4Address::new(10, 0, 0, 3);
        let mut s = DhcpServer::new(DhcpConfig {
            static_leases: vec![
                (mac(9), pinned),
                (mac(8), SERVER),                        // ignored: the server's own
                (mac(7), Ipv4Address::new(10, 0, 0, 7)), // ignored: the /29's broadcast
            ],
            ..config(29)
        });
        // Other clients fill the /29 pool (.2 to .6, minus .3): four addresses.
        let mut got = Vec::new();
        for n in 1..=4 {
            got.push(lease(&mut s, T0, mac(n)).unwrap());
        }
        assert!(!got.contains(&pinned));
        assert_eq!(discover(&mut s, T0, mac(5)), Err(DhcpDrop::PoolExhausted));
        // The pinned client still gets its address, even when asking for another.
        let msg = client_msg(
            DISCOVER,
            mac(9),
            1,
            Ipv4Address::UNSPECIFIED,
            false,
            &[(50, &got[0].octets())],
        );
        assert_eq!(reply(&mut s, T0, &msg).1.yiaddr, pinned);
        assert_eq!(lease(&mut s, T0, mac(9)), Ok(pinned));
        assert!(s
            .leases()
            .any(|l| l == (mac(9), pinned, T0 + u64::from(LEASE))));
        // It is refused another address; others are refused its address.
        assert_eq!(select(&mut s, T0, mac(9), got[0]).msg_type(), NAK);
        assert_eq!(select(&mut s, T0, mac(5), pinned).msg_type(), NAK);
        // Release clears it from the lease list.
        let msg = client_msg(RELEASE, mac(9), 1, pinned, false, &[(54, &SERVER.octets())]);
        assert!(send(&mut s, T0, &msg).unwrap().is_none());
        assert!(!s.leases().any(|(m, _, _)| m == mac(9)));
    }

    #[test]
    fn a_visiting_lease_is_a_host_address_with_routes_through_the_server() {
        let away = Ipv4Address::new(10, 20, 1, 10);
        let mut s = DhcpServer::new(DhcpConfig {
            static_leases: vec![
                (mac(9), away),
                (mac(8), Ipv4Address::new(224, 0, 0, 9)), // ignored: multicast
                (mac(7), Ipv4Address::BROADCAST),         // ignored
                (mac(6), Ipv4Address::UNSPECIFIED),       // ignored
            ],
            ..config(24)
        });
        assert_eq!(s.visiting().collect::<Vec<_>>(), vec![(mac(9), away, None)]);
        let msg = client_msg(DISCOVER, mac(9), 1, Ipv4Address::UNSPECIFIED, false, &[]);
        let (_, offer) = reply(&mut s, T0, &msg);
        assert_eq!((offer.msg_type(), offer.yiaddr), (OFFER, away));
        assert_eq!(offer.opt(1), Some(&[255u8, 255, 255, 255][..]));
        assert_eq!(offer.opt(3), Some(&SERVER.octets()[..]));
        // 10.0.0.1/32 on-link, then 0.0.0.0/0 via 10.0.0.1.
        assert_eq!(
            offer.opt(121),
            Some(&[32u8, 10, 0, 0, 1, 0, 0, 0, 0, 0, 10, 0, 0, 1][..])
        );
        assert_eq!(offer.opt(28), None, "no broadcast address for a /32");
        assert_eq!(lease(&mut s, T0, mac(9)), Ok(away));
        let until = T0 + u64::from(LEASE);
        assert_eq!(s.visiting().next(), Some((mac(9), away, Some(until))));
        // Renewing (unicast, ciaddr) keeps it; nobody else gets it or any pool address
        // through it.
        let msg = client_msg(REQUEST, mac(9), 2, away, false, &[]);
        let (r, ack) = reply(&mut s, T0 + 10, &msg);
        assert_eq!((ack.msg_type(), r.dst_ip, r.dst_mac), (ACK, away, mac(9)));
        assert_eq!(select(&mut s, T0, mac(5), away).msg_type(), NAK);
        assert_eq!(
            select(&mut s, T0, mac(9), Ipv4Address::new(10, 0, 0, 9)).msg_type(),
            NAK
        );
        // A subnet client keeps the subnet's mask and no routes option.
        let msg = client_msg(DISCOVER, mac(1), 3, Ipv4Address::UNSPECIFIED, false, &[]);
        let (_, offer) = reply(&mut s, T0, &msg);
        assert_eq!(offer.opt(1), Some(&[255u8, 255, 255, 0][..]));
        assert_eq!(offer.opt(121), None);
        // Release ends it.
        let msg = client_msg(RELEASE, mac(9), 4, away, false, &[(54, &SERVER.octets())]);
        assert!(send(&mut s, T0 + 20, &msg).unwrap().is_none());
        assert_eq!(s.visiting().next(), Some((mac(9), away, None)));
    }

    #[test]
    fn renew_and_rebind() {
        let mut s = DhcpServer::new(config(24));
        let ip = lease(&mut s, T0, mac(1)).unwrap();
        // RENEWING: unicast REQUEST with ciaddr, no server id, no requested address.
        let t = T0 + u64::from(LEASE) / 2;
        let msg = client_msg(REQUEST, mac(1), 3, ip, false, &[]);
        let (r, ack) = reply(&mut s, t, &msg);
        assert_eq!(ack.msg_type(), ACK);
        assert_eq!((ack.yiaddr, ack.ciaddr), (ip, ip));
        assert_eq!((r.dst_mac, r.dst_ip), (mac(1), ip));
        assert_eq!(s.leases().next(), Some((mac(1), ip, t + u64::from(LEASE))));
        // After a server restart (empty table) a renewing client keeps its free address.
        let mut s = DhcpServer::new(config(24));
        let (_, ack) = reply(&mut s, t, &msg);
        assert_eq!((ack.msg_type(), ack.yiaddr), (ACK, ip));
        // INIT-REBOOT: requested address, no server id, no ciaddr.
        let msg = client_msg(
            REQUEST,
            mac(1),
            4,
            Ipv4Address::UNSPECIFIED,
            false,
            &[(50, &ip.octets())],
        );
        assert_eq!(reply(&mut s, t + 1, &msg).1.msg_type(), ACK);
    }

    #[test]
    fn nak() {
        let mut s = DhcpServer::new(config(24));
        let ip = lease(&mut s, T0, mac(1)).unwrap();
        // Init-reboot from another subnet.
        let msg = client_msg(
            REQUEST,
            mac(2),
            5,
            Ipv4Address::UNSPECIFIED,
            false,
            &[(50, &[192, 168, 1, 20])],
        );
        let (r, nak) = reply(&mut s, T0, &msg);
        assert_eq!(nak.msg_type(), NAK);
        assert_eq!(nak.yiaddr, Ipv4Address::UNSPECIFIED);
        assert_eq!(nak.ip(54), Some(SERVER));
        assert_eq!(nak.opt(51), None);
        assert_eq!(nak.opt(3), None);
        assert_eq!(
            (r.dst_mac, r.dst_ip),
            (EthernetAddress::BROADCAST, Ipv4Address::BROADCAST)
        );
        // The address is leased to another MAC (selecting and renewing).
        assert_eq!(select(&mut s, T0, mac(2), ip).msg_type(), NAK);
        let msg = client_msg(REQUEST, mac(2), 6, ip, false, &[]);
        assert_eq!(reply(&mut s, T0, &msg).1.msg_type(), NAK);
        // The server's own address, the network and broadcast addresses.
        for bad in [
            SERVER,
            Ipv4Address::new(10, 0, 0, 0),
            Ipv4Address::new(10, 0, 0, 255),
        ] {
            assert_eq!(select(&mut s, T0, mac(2), bad).msg_type(), NAK);
        }
        assert_eq!(s.leases().count(), 1);
    }

    #[test]
    fn other_server_chosen() {
        let mut s = DhcpServer::new(config(29));
        let offered = discover(&mut s, T0, mac(1)).unwrap().yiaddr;
        let msg = client_msg(
            REQUEST,
            mac(1),
            1,
            Ipv4Address::UNSPECIFIED,
            false,
            &[(50, &[10, 0, 0, 99]), (54, &[10, 0, 0, 254])],
        );
        assert_eq!(send(&mut s, T0, &msg).unwrap_err(), DhcpDrop::NotForUs);
        // The offer is freed at once: a full /29 still has room for five others.
        for n in 2..=6 {
            lease(&mut s, T0 + 1, mac(n)).unwrap();
        }
        assert!(s.leases().any(|(_, ip, _)| ip == offered));
    }

    #[test]
    fn exhaustion_release_and_reuse() {
        // /29: .0 network, .1 server, .2-.6 pool, .7 broadcast.
        let mut s = DhcpServer::new(config(29));
        let mut got = Vec::new();
        for n in 1..=5 {
            got.push(lease(&mut s, T0 + u64::from(n), mac(n)).unwrap());
        }
        got.sort();
        let pool: Vec<_> = (2..=6).map(|h| Ipv4Address::new(10, 0, 0, h)).collect();
        assert_eq!(got, pool);
        assert_eq!(
            discover(&mut s, T0 + 10, mac(6)),
            Err(DhcpDrop::PoolExhausted)
        );
        // Client 3 releases: the next new client gets its address.
        let released = s.leases().find(|l| l.0 == mac(3)).unwrap().1;
        let msg = client_msg(
            RELEASE,
            mac(3),
            1,
            released,
            false,
            &[(54, &SERVER.octets())],
        );
        assert_eq!(send(&mut s, T0 + 11, &msg).unwrap(), None);
        assert_eq!(s.leases().count(), 4);
        assert_eq!(lease(&mut s, T0 + 12, mac(6)), Ok(released));
        assert_eq!(
            discover(&mut s, T0 + 13, mac(3)),
            Err(DhcpDrop::PoolExhausted)
        );
        // A RELEASE for someone else's address changes nothing.
        let msg = client_msg(RELEASE, mac(3), 1, got[0], false, &[]);
        assert_eq!(send(&mut s, T0 + 14, &msg).unwrap(), None);
        assert_eq!(s.leases().count(), 5);
    }

    #[test]
    fn expired_leases_reused_oldest_first() {
        let mut s = DhcpServer::new(config(29));
        let mut by_age = Vec::new();
        for n in 1..=5 {
            by_age.push(lease(&mut s, T0 + u64::from(n) * 10, mac(n)).unwrap());
        }
        let expiry = |n: u64| T0 + n * 10 + u64::from(LEASE);
        // Not yet expired.
        assert_eq!(
            discover(&mut s, expiry(1) - 1, mac(6)),
            Err(DhcpDrop::PoolExhausted)
        );
        // Renew client 1 so client 2's lease is the oldest to expire.
        let msg = client_msg(REQUEST, mac(1), 1, by_age[0], false, &[]);
        assert_eq!(reply(&mut s, T0 + 100, &msg).1.msg_type(), ACK);
        let now = expiry(3);
        assert_eq!(lease(&mut s, now, mac(6)), Ok(by_age[1]));
        assert_eq!(lease(&mut s, now, mac(7)), Ok(by_age[2]));
        assert_eq!(discover(&mut s, now, mac(8)), Err(DhcpDrop::PoolExhausted));
        // The old holder renewing its lost address is refused.
        let msg = client_msg(REQUEST, mac(2), 1, by_age[1], false, &[]);
        assert_eq!(reply(&mut s, now, &msg).1.msg_type(), NAK);
        // A client whose lease expired but was not reused gets it back.
        let now = expiry(5);
        assert_eq!(lease(&mut s, now, mac(5)), Ok(by_age[4]));
    }

    #[test]
    fn offers_expire() {
        let mut s = DhcpServer::new(config(29));
        for n in 1..=5 {
            discover(&mut s, T0, mac(n)).unwrap();
        }
        assert_eq!(
            discover(&mut s, T0 + OFFER_HOLD_SECS - 1, mac(6)),
            Err(DhcpDrop::PoolExhausted)
        );
        assert!(discover(&mut s, T0 + OFFER_HOLD_SECS, mac(6)).is_ok());
    }

    #[test]
    fn decline_holds_address() {
        let mut s = DhcpServer::new(config(29));
        let ip = lease(&mut s, T0, mac(1)).unwrap();
        let msg = client_msg(
            DECLINE,
            mac(1),
            1,
            Ipv4Address::UNSPECIFIED,
            false,
            &[(50, &ip.octets()), (54, &SERVER.octets())],
        );
        assert_eq!(send(&mut s, T0 + 1, &msg).unwrap(), None);
        assert_eq!(s.leases().count(), 0);
        // The client gets another address; the declined one stays out until the hold ends.
        let next = lease(&mut s, T0 + 2, mac(1)).unwrap();
        assert_ne!(next, ip);
        for n in 2..=4 {
            assert_ne!(lease(&mut s, T0 + 3, mac(n)).unwrap(), ip);
        }
        assert_eq!(
            discover(&mut s, T0 + 4, mac(5)),
            Err(DhcpDrop::PoolExhausted)
        );
        assert_eq!(select(&mut s, T0 + 4, mac(5), ip).msg_type(), NAK);
        assert_eq!(lease(&mut s, T0 + 1 + DECLINE_HOLD_SECS, mac(5)), Ok(ip));
        // A DECLINE naming another server, or without the address, is dropped.
        let msg = client_msg(
            DECLINE,
            mac(5),
            1,
            Ipv4Address::UNSPECIFIED,
            false,
            &[(54, &[10, 0, 0, 9])],
        );
        assert_eq!(send(&mut s, T0, &msg).unwrap_err(), DhcpDrop::NotForUs);
        let msg = client_msg(DECLINE, mac(5), 1, Ipv4Address::UNSPECIFIED, false, &[]);
        assert_eq!(send(&mut s, T0, &msg).unwrap_err(), DhcpDrop::Malformed);
    }

    #[test]
    fn inform() {
        let mut s = DhcpServer::new(config(24));
        let ciaddr = Ipv4Address::new(10, 0, 0, 200);
        let msg = client_msg(INFORM, mac(1), 9, ciaddr, false, &[]);
        let (r, ack) = reply(&mut s, T0, &msg);
        assert_eq!(ack.msg_type(), ACK);
        assert_eq!(ack.yiaddr, Ipv4Address::UNSPECIFIED);
        assert_eq!(ack.ciaddr, ciaddr);
        assert_eq!(ack.opt(51), None);
        assert_eq!(ack.opt(58), None);
        assert_eq!(ack.ip(3), Some(SERVER));
        assert_eq!(ack.ip(6), Some(DNS));
        assert_eq!((r.dst_mac, r.dst_ip), (mac(1), ciaddr));
        assert_eq!(s.leases().count(), 0);
    }

    #[test]
    fn lease_table_is_bounded() {
        let mut s = DhcpServer::new(config(16));
        let capacity = s.table.capacity();
        for n in 0..MAX_LEASES as u16 {
            lease(&mut s, T0, mac(n)).unwrap();
        }
        assert_eq!(discover(&mut s, T0, mac(999)), Err(DhcpDrop::PoolExhausted));
        let msg = client_msg(
            REQUEST,
            mac(999),
            1,
            Ipv4Address::new(10, 0, 200, 1),
            false,
            &[],
        );
        assert_eq!(send(&mut s, T0, &msg).unwrap_err(), DhcpDrop::PoolExhausted);
        let later = T0 + u64::from(LEASE);
        assert!(lease(&mut s, later, mac(999)).is_ok());
        assert_eq!(s.table.len(), MAX_LEASES);
        assert_eq!(s.table.capacity(), capacity);
        assert_eq!(s.leases().count(), MAX_LEASES);
    }

    #[test]
    fn drops() {
        let mut s = DhcpServer::new(config(24));
        let good = client_msg(DISCOVER, mac(1), 1, Ipv4Address::UNSPECIFIED, false, &[]);
        let mut out = [0u8; 576];
        let err = |s: &mut DhcpServer, b: &[u8]| {
            let mut out = [0u8; 576];
            s.handle(T0, b, &mut out).unwrap_err()
        };
        let mut b = good.clone();
        b[0] = 2;
        assert_eq!(err(&mut s, &b), DhcpDrop::NotRequest);
        for t in [OFFER, ACK, NAK, 0, 9, 200] {
            let b = client_msg(t, mac(1), 1, Ipv4Address::UNSPECIFIED, false, &[]);
            assert_eq!(err(&mut s, &b), DhcpDrop::NotRequest);
        }
        let mut b = good.clone();
        b[240..243].fill(0); // option 53 padded out
        assert_eq!(err(&mut s, &b), DhcpDrop::NoMessageType);
        let mut b = good.clone();
        b[24] = 10; // giaddr
        assert_eq!(err(&mut s, &b), DhcpDrop::Relayed);
        let mut b = good.clone();
        b[236] = 0; // cookie
        assert_eq!(err(&mut s, &b), DhcpDrop::Malformed);
        let mut b = good.clone();
        b[2] = 8; // hlen
        assert_eq!(err(&mut s, &b), DhcpDrop::Malformed);
        for bad_mac in [
            EthernetAddress::BROADCAST,
            EthernetAddress([1, 0, 0x5e, 0, 0, 1]),
            EthernetAddress([0; 6]),
        ] {
            let b = client_msg(DISCOVER, bad_mac, 1, Ipv4Address::UNSPECIFIED, false, &[]);
            assert_eq!(err(&mut s, &b), DhcpDrop::Malformed);
        }
        // Wrong lengths of known options, an option overrunning the datagram.
        let b = client_msg(
            DISCOVER,
            mac(1),
            1,
            Ipv4Address::UNSPECIFIED,
            false,
            &[(50, &[10, 0, 0])],
        );
        assert_eq!(err(&mut s, &b), DhcpDrop::Malformed);
        let mut b = good.clone();
        b[241] = 2;
        assert_eq!(err(&mut s, &b), DhcpDrop::Malformed);
        let mut b = good[..250].to_vec();
        b[243] = 12;
        b[244] = 200;
        assert_eq!(err(&mut s, &b), DhcpDrop::Malformed);
        // REQUEST naming no address at all.
        let b = client_msg(REQUEST, mac(1), 1, Ipv4Address::UNSPECIFIED, false, &[]);
        assert_eq!(err(&mut s, &b), DhcpDrop::Malformed);
        // Too small an output buffer.
        assert_eq!(
            s.handle(T0, &good, &mut out[..299]),
            Err(DhcpDrop::OutTooSmall)
        );
        // Without an end option, up to the end of the datagram: accepted.
        assert!(s.handle(T0, &good[..243], &mut out).unwrap().is_some());
        assert_eq!(s.leases().count(), 0);
    }

    /// A small deterministic generator for fuzz-like inputs.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn truncated_and_garbage_input_never_panics() {
        let mut s = DhcpServer::new(config(24));
        let mut out = [0u8; 576];
        let ip = Ipv4Address::new(10, 0, 0, 9);
        let valid = [
            client_msg(
                DISCOVER,
                mac(1),
                1,
                Ipv4Address::UNSPECIFIED,
                true,
                &[(50, &ip.octets()), (12, b"host")],
            ),
            client_msg(
                REQUEST,
                mac(1),
                1,
                Ipv4Address::UNSPECIFIED,
                false,
                &[(50, &ip.octets()), (54, &SERVER.octets())],
            ),
            client_msg(REQUEST, mac(1), 1, ip, false, &[]),
            client_msg(RELEASE, mac(1), 1, ip, false, &[(54, &SERVER.octets())]),
            client_msg(
                DECLINE,
                mac(1),
                1,
                Ipv4Address::UNSPECIFIED,
                false,
                &[(50, &ip.octets())],
            ),
            client_msg(INFORM, mac(1), 1, ip, false, &[]),
        ];
        for msg in &valid {
            for cut in 0..=msg.len() {
                let r = s.handle(T0, &msg[..cut], &mut out);
                if cut == OPTIONS {
                    assert_eq!(r, Err(DhcpDrop::NoMessageType));
                } else if cut < OPTIONS + 3 {
                    assert_eq!(r, Err(DhcpDrop::Malformed));
                }
                if let Ok(Some(reply)) = r {
                    Parsed::read(&out[..reply.len]);
                }
            }
        }
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut replies = 0;
        for round in 0..20_000u32 {
            let len = (rng.next() % 700) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if round % 2 == 0 && len >= OPTIONS + 3 {
                // Keep a plausible header so the option parser sees the noise.
                let template = &valid[round as usize % valid.len()];
                b[..OPTIONS].copy_from_slice(&template[..OPTIONS]);
                if round % 4 == 0 {
                    // Message type, then well-formed options with random codes and data.
                    b[OPTIONS..OPTIONS + 3].copy_from_slice(&template[OPTIONS..OPTIONS + 3]);
                    let mut at = OPTIONS + 3;
                    while at + 2 < len {
                        let opt_len = (rng.next() % 8) as usize;
                        if at + 2 + opt_len > len {
                            break;
                        }
                        b[at] = rng.next() as u8;
                        b[at + 1] = opt_len as u8;
                        at += 2 + opt_len;
                    }
                    b.truncate(at);
                }
            }
            if let Ok(Some(reply)) = s.handle(T0 + u64::from(round), &b, &mut out) {
                Parsed::read(&out[..reply.len]);
                replies += 1;
            }
        }
        assert!(
            replies > 100,
            "the noise reached the reply path ({replies})"
        );
        // Single-byte mutations of valid messages.
        for msg in &valid {
            for _ in 0..5_000 {
                let mut b = msg.clone();
                let at = (rng.next() % b.len() as u64) as usize;
                b[at] = rng.next() as u8;
                if let Ok(Some(reply)) = s.handle(T0, &b, &mut out) {
                    Parsed::read(&out[..reply.len]);
                }
            }
        }
        assert!(s.table.len() <= MAX_LEASES);
    }

    #[test]
    fn busybox_udhcpc_discover() {
        // Laid out as busybox udhcpc sends a DISCOVER: option 53, client id (61: type 1 and
        // the MAC), max message size (57: 576), parameter request list (55), hostname (12),
        // vendor class (60), end, zero padding to 548 bytes; flags 0, secs 0.
        let m = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        let mut b = vec![0u8; 548];
        b[..4].copy_from_slice(&[1, 1, 6, 0]);
        b[4..8].copy_from_slice(&[0x3a, 0x1b, 0x77, 0x04]);
        b[28..34].copy_from_slice(&m.0);
        b[236..240].copy_from_slice(&[0x63, 0x82, 0x53, 0x63]);
        let opts: &[u8] = &[
            53, 1, 1, //
            61, 7, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, //
            57, 2, 0x02, 0x40, //
            55, 7, 1, 3, 6, 12, 15, 28, 42, //
            12, 4, b'v', b'm', b'0', b'1', //
            60, 12, b'u', b'd', b'h', b'c', b'p', b' ', b'1', b'.', b'3', b'6', b'.', b'1', //
            255,
        ];
        b[240..240 + opts.len()].copy_from_slice(opts);
        let mut s = DhcpServer::new(config(24));
        let (r, offer) = reply(&mut s, T0, &b);
        assert_eq!(offer.msg_type(), OFFER);
        assert_eq!(offer.xid, 0x3a1b_7704);
        assert_eq!(offer.chaddr, m);
        assert_eq!((r.dst_mac, r.dst_ip), (m, offer.yiaddr));
        // Its REQUEST (selecting): 53, client id, 50, 54, 57, 55, hostname, vendor class.
        let ip = offer.yiaddr.octets();
        let mut req = b.clone();
        req[240..].fill(0);
        let opts: &[u8] = &[
            53, 1, 3, //
            61, 7, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, //
            50, 4, ip[0], ip[1], ip[2], ip[3], //
            54, 4, 10, 0, 0, 1, //
            57, 2, 0x02, 0x40, //
            55, 7, 1, 3, 6, 12, 15, 28, 42, //
            12, 4, b'v', b'm', b'0', b'1', //
            255,
        ];
        req[240..240 + opts.len()].copy_from_slice(opts);
        let (_, ack) = reply(&mut s, T0 + 1, &req);
        assert_eq!((ack.msg_type(), ack.yiaddr), (ACK, offer.yiaddr));
    }
}
