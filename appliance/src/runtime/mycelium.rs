//! The Mycelium node on the local stack: the sans-I/O [`mycelium`](crate::mycelium) core's
//! peer connections carried out with smoltcp TCP sockets, and its IPv6 packets exchanged
//! with the router's Mycelium port ([`crate::router::MyceliumPort`]).
//!
//! - **Peers.** One TCP connection to each configured `Peer`, from the address of the
//!   underlay link the route to it leaves by (the router lets the appliance's own traffic
//!   out of an underlay link only from that link's address). A connection that fails,
//!   closes, breaks framing or is declared dead by the node is closed and tried again
//!   after a backoff ([`BACKOFF_MIN`], doubling up to [`BACKOFF_MAX`]; back to the
//!   minimum once a connection came up).
//! - **Listening** (`Listen =`): [`BACKLOG`] sockets on each underlay address; an
//!   accepted peer is a peer like any other (at most [`MAX_INBOUND`] at once).
//! - **Bytes.** What a socket received goes to [`Node::receive`]; what the node has for a
//!   peer ([`Node::transmit`]) is written as the socket has room. The node bounds its
//!   send buffers; a peer that reads nothing eventually misses its Hellos and is dropped.
//! - **Packets.** What the router queued for the node goes to [`Node::send`] (refusals
//!   back to the router for ICMPv6 errors); what the node opens goes to
//!   [`crate::router::Router::mycelium_in`].
//! - **Randomness.** The node's nonces and router-id come from a ChaCha20 generator
//!   (fast key erasure) keyed from the appliance's entropy at start ([`NodeRng`]).

use alloc::collections::BTreeSet;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;
use core::ops::RangeInclusive;

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::ChaCha20;
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpCidr, IpEndpoint, IpListenEndpoint, Ipv6Address, Ipv6Cidr};
use vdcnet_hal::net::NetDevice;
use zeroize::Zeroize;

use crate::config::{Config, ConfigError, LinkConfig, MyceliumConfig, Role};
use crate::mycelium::{self, Node, PeerId, SecretKey, Settings};
use crate::router::Router;

/// Peer sockets' receive and send buffers (bytes).
pub const PEER_BUFFERS: (usize, usize) = (64 * 1024, 32 * 1024);
/// Listening sockets per underlay address.
pub const BACKLOG: usize = 2;
/// Inbound peers at once.
pub const MAX_INBOUND: usize = 16;
/// A connect that takes longer is given up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// How long a closed socket may take to finish closing before it is reset.
const LINGER: Duration = Duration::from_secs(3);
/// Local ports of peer connections (below the gateway's range).
const PORTS: RangeInclusive<u16> = 28000..=32767;
/// Bytes read per socket per poll at most, so one busy peer cannot starve the others.
const READ_BUDGET: usize = 64 * 1024;

/// The node's generator: ChaCha20 keyed by 32 seed octets; every 64-octet block, the
/// first 32 octets re-key it (fast key erasure) and the rest are output.
pub struct NodeRng {
    key: [u8; 32],
    buf: [u8; 32],
    used: usize,
}

impl NodeRng {
    pub fn new(seed: [u8; 32]) -> NodeRng {
        NodeRng {
            key: seed,
            buf: [0; 32],
            used: 32,
        }
    }

    fn refill(&mut self) {
        let mut block = [0u8; 64];
        let mut c = ChaCha20::new(&self.key.into(), &[0u8; 12].into());
        c.apply_keystream(&mut block);
        self.key.copy_from_slice(&block[..32]);
        self.buf.copy_from_slice(&block[32..]);
        block.zeroize();
        self.used = 0;
    }
}

impl Drop for NodeRng {
    fn drop(&mut self) {
        self.key.zeroize();
        self.buf.zeroize();
    }
}

impl rand_core::RngCore for NodeRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for d in dest.iter_mut() {
            if self.used == self.buf.len() {
                self.refill();
            }
            *d = self.buf[self.used];
            self.buf[self.used] = 0;
            self.used += 1;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for NodeRng {}

/// 32 octets from the appliance's generator for the node's own (drawn before the tunnel
/// takes it); an error naming the `[Mycelium]` line without one.
pub fn seed<R: rand_core::CryptoRngCore>(
    config: &Config,
    rng: Option<&mut R>,
    errors: &mut Vec<ConfigError>,
) -> Option<[u8; 32]> {
    let m = config.mycelium.as_ref()?;
    match rng {
        Some(r) => {
            let mut s = [0u8; 32];
            r.fill_bytes(&mut s);
            Some(s)
        }
        None => {
            errors.push(ConfigError {
                line: m.line,
                message: "[Mycelium] needs a hardware random number generator for its nonces, and this machine has none".into(),
            });
            None
        }
    }
}

/// The node's address for a config's key.
pub fn node_address(m: &MyceliumConfig) -> Ipv6Address {
    SecretKey::from_bytes(m.private_key.0)
        .public_key()
        .address()
}

/// `link` as the router gets it: a `Planetary = yes` segment also holds the node's
/// address in its /64 (so the /64 is on-link there and advertised by its RAs).
pub fn link_config(config: &Config, link: &LinkConfig) -> LinkConfig {
    let mut l = link.clone();
    if let (true, Some(m)) = (link.planetary, &config.mycelium) {
        l.addresses
            .push(IpCidr::Ipv6(Ipv6Cidr::new(node_address(m), 64)));
    }
    l
}

/// The addresses the gateway dials backends from: the VDC's, plus the node's address
/// for backends inside 400::/7 (see `services::source_for`).
pub fn gateway_sources(config: &Config) -> Vec<IpCidr> {
    let mut v = config.inner_addresses();
    if let Some(m) = &config.mycelium {
        v.push(IpCidr::Ipv6(Ipv6Cidr::new(node_address(m), 128)));
    }
    v
}

/// What the runtime counts (the node counts the protocol).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MyceliumRuntimeCounters {
    pub connects: u64,
    pub connect_failures: u64,
    pub accepted: u64,
    /// Inbound peers reset because [`MAX_INBOUND`] were connected.
    pub refused: u64,
    /// Connections closed by the peer or reset.
    pub closed: u64,
    /// Peers dropped for bad framing / for missing Hellos.
    pub framing: u64,
    pub dead: u64,
    pub lingered_out: u64,
}

enum State {
    Idle {
        retry_at: Instant,
    },
    Connecting {
        handle: SocketHandle,
        port: Option<u16>,
        since: Instant,
    },
    Up {
        handle: SocketHandle,
        port: Option<u16>,
        id: PeerId,
    },
}

struct Conn {
    /// The configured peer; `None` for an inbound one.
    peer: Option<IpEndpoint>,
    state: State,
    backoff: Duration,
}

struct Listener {
    endpoint: IpListenEndpoint,
    handle: SocketHandle,
}

/// The node with its connections.
pub(crate) struct MyceliumService {
    node: Node<NodeRng>,
    conns: Vec<Conn>,
    listeners: Vec<Listener>,
    lingering: Vec<(SocketHandle, Option<u16>, Instant)>,
    ports: BTreeSet<u16>,
    next_port: u16,
    next_id: u32,
    counters: MyceliumRuntimeCounters,
    rx: Vec<u8>,
    pkt: Vec<u8>,
}

fn socket() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; PEER_BUFFERS.0]),
        tcp::SocketBuffer::new(vec![0; PEER_BUFFERS.1]),
    );
    s.set_nagle_enabled(false);
    // A delayed ACK holds up the peer's next packet while its Nagle waits for it
    // (measured: ~18 ms more RTT through the overlay).
    s.set_ack_delay(None);
    // Mycelium's own keepalive is its Hellos; this only finds half-open connections.
    s.set_keep_alive(Some(Duration::from_secs(30)));
    s
}

fn cost(a: IpAddress) -> u16 {
    match a {
        IpAddress::Ipv4(_) => mycelium::TCP_V4_COST,
        IpAddress::Ipv6(_) => mycelium::TCP_V6_COST,
    }
}

impl MyceliumService {
    /// The node of `config` (its key; `seed` keys its generator), listening on the
    /// underlay addresses when `Listen` says so.
    pub fn new(
        config: &Config,
        m: &MyceliumConfig,
        seed: [u8; 32],
        sockets: &mut SocketSet<'static>,
        port_seed: u64,
        now: Instant,
    ) -> MyceliumService {
        let secret = SecretKey::from_bytes(m.private_key.0);
        let node = Node::new(now, secret, Settings::default(), NodeRng::new(seed));
        let mut listeners = Vec::new();
        if let Some(port) = m.listen {
            for l in config.links.iter().filter(|l| l.role == Role::Underlay) {
                for c in &l.addresses {
                    let endpoint = IpListenEndpoint {
                        addr: Some(c.address()),
                        port,
                    };
                    for _ in 0..BACKLOG {
                        let mut s = socket();
                        let _ = s.listen(endpoint);
                        listeners.push(Listener {
                            endpoint,
                            handle: sockets.add(s),
                        });
                    }
                }
            }
        }
        let conns = m
            .peers
            .iter()
            .map(|&(addr, port)| Conn {
                peer: Some(IpEndpoint::new(addr, port)),
                state: State::Idle { retry_at: now },
                backoff: BACKOFF_MIN,
            })
            .collect();
        let span = u64::from(PORTS.end() - PORTS.start()) + 1;
        MyceliumService {
            node,
            conns,
            listeners,
            lingering: Vec::new(),
            ports: BTreeSet::new(),
            next_port: PORTS.start() + (port_seed % span) as u16,
            next_id: 1,
            counters: MyceliumRuntimeCounters::default(),
            rx: vec![0; 4096],
            pkt: vec![0; 2048],
        }
    }

    fn take_port(&mut self) -> Option<u16> {
        let span = usize::from(PORTS.end() - PORTS.start()) + 1;
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p == *PORTS.end() {
                *PORTS.start()
            } else {
                p + 1
            };
            if self.ports.insert(p) {
                return Some(p);
            }
        }
        None
    }

    /// Does the work there is; `true` if anything moved.
    pub fn run<D: NetDevice, R: rand_core::CryptoRngCore>(
        &mut self,
        router: &mut Router<D, R>,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        now: Instant,
    ) -> bool {
        let mut busy = self.accept(sockets, now);
        for i in 0..self.conns.len() {
            busy |= self.step(i, router, iface, sockets, now);
        }
        // Inbound connections that ended go; configured ones stay, idle.
        self.conns
            .retain(|c| c.peer.is_some() || !matches!(c.state, State::Idle { .. }));
        let mut dead = Vec::new();
        self.node.drain_dead(|id| dead.push(id));
        for id in dead {
            self.counters.dead += 1;
            if let Some(i) = self
                .conns
                .iter()
                .position(|c| matches!(c.state, State::Up { id: x, .. } if x == id))
            {
                self.drop_conn(i, sockets, now, true);
                busy = true;
            }
        }
        // Packets for the overlay.
        let mut pkt = core::mem::take(&mut self.pkt);
        while let Some(n) = router.mycelium_pop(&mut pkt) {
            busy = true;
            if let Err(e) = self.node.send(now, &pkt[..n]) {
                router.mycelium_refused(&pkt[..n], e);
            }
        }
        self.pkt = pkt;
        if now >= self.node.poll_at() {
            self.node.poll(now);
        }
        // What the node has for each peer (also what `send` and `poll` just queued).
        for c in &self.conns {
            if let State::Up { handle, id, .. } = c.state {
                let s = sockets.get_mut::<tcp::Socket>(handle);
                let tx = self.node.transmit(id);
                if !tx.is_empty() && s.can_send() {
                    if let Ok(n) = s.send_slice(tx) {
                        if n > 0 {
                            self.node.transmitted(id, n);
                            busy = true;
                        }
                    }
                }
            }
        }
        busy |= self.linger(sockets, now);
        busy
    }

    /// Listening sockets that took a connection become inbound peers.
    fn accept(&mut self, sockets: &mut SocketSet<'static>, now: Instant) -> bool {
        let mut busy = false;
        for k in 0..self.listeners.len() {
            let handle = self.listeners[k].handle;
            let state = sockets.get::<tcp::Socket>(handle).state();
            if state == tcp::State::Listen {
                continue;
            }
            busy = true;
            let mut fresh = socket();
            let _ = fresh.listen(self.listeners[k].endpoint);
            self.listeners[k].handle = sockets.add(fresh);
            let inbound = self.conns.iter().filter(|c| c.peer.is_none()).count();
            if inbound >= MAX_INBOUND || state == tcp::State::Closed {
                self.counters.refused += u64::from(state != tcp::State::Closed);
                sockets.get_mut::<tcp::Socket>(handle).abort();
                self.lingering.push((handle, None, now + LINGER));
                continue;
            }
            self.counters.accepted += 1;
            self.conns.push(Conn {
                peer: None,
                state: State::Connecting {
                    handle,
                    port: None,
                    since: now,
                },
                backoff: BACKOFF_MIN,
            });
        }
        busy
    }

    fn step<D: NetDevice, R: rand_core::CryptoRngCore>(
        &mut self,
        i: usize,
        router: &mut Router<D, R>,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        now: Instant,
    ) -> bool {
        match self.conns[i].state {
            State::Idle { retry_at } => {
                let Some(remote) = self.conns[i].peer else {
                    return false;
                };
                if now < retry_at {
                    return false;
                }
                let src = router.underlay_source(remote.addr);
                let port = self.take_port();
                let (Some(src), Some(port)) = (src, port) else {
                    if let Some(p) = port {
                        self.ports.remove(&p);
                    }
                    self.counters.connect_failures += 1;
                    self.backoff(i, now);
                    return false;
                };
                let mut s = socket();
                if s.connect(iface.context(), remote, IpEndpoint::new(src, port))
                    .is_err()
                {
                    self.ports.remove(&port);
                    self.counters.connect_failures += 1;
                    self.backoff(i, now);
                    return false;
                }
                self.counters.connects += 1;
                self.conns[i].state = State::Connecting {
                    handle: sockets.add(s),
                    port: Some(port),
                    since: now,
                };
                true
            }
            State::Connecting {
                handle,
                port,
                since,
            } => {
                let s = sockets.get_mut::<tcp::Socket>(handle);
                match s.state() {
                    tcp::State::Established => {
                        let remote = s.remote_endpoint();
                        let id = PeerId(self.next_id);
                        self.next_id = self.next_id.wrapping_add(1).max(1);
                        let c = remote.map_or(mycelium::TCP_V4_COST, |e| cost(e.addr));
                        if self.node.add_peer(now, id, c).is_err() {
                            self.drop_conn(i, sockets, now, true);
                            return true;
                        }
                        self.conns[i].state = State::Up { handle, port, id };
                        self.conns[i].backoff = BACKOFF_MIN;
                        true
                    }
                    tcp::State::Closed | tcp::State::TimeWait | tcp::State::CloseWait => {
                        self.counters.connect_failures += 1;
                        self.drop_conn(i, sockets, now, true);
                        true
                    }
                    _ if now - since > CONNECT_TIMEOUT => {
                        self.counters.connect_failures += 1;
                        self.drop_conn(i, sockets, now, true);
                        true
                    }
                    _ => false,
                }
            }
            State::Up { handle, id, .. } => {
                let mut busy = false;
                let mut rx = core::mem::take(&mut self.rx);
                let mut pkt = core::mem::take(&mut self.pkt);
                let mut read = 0;
                let mut failed = false;
                while read < READ_BUDGET {
                    let s = sockets.get_mut::<tcp::Socket>(handle);
                    let n = match s.recv_slice(&mut rx) {
                        Ok(n) if n > 0 => n,
                        _ => break,
                    };
                    read += n;
                    busy = true;
                    let r = self.node.receive(now, id, &rx[..n], |p| {
                        let n = p.len().min(pkt.len());
                        pkt[..n].copy_from_slice(&p[..n]);
                        router.mycelium_in(&mut pkt[..n]);
                    });
                    if r.is_err() {
                        failed = true;
                        break;
                    }
                }
                self.rx = rx;
                self.pkt = pkt;
                if failed {
                    // The node removed the peer already.
                    self.counters.framing += 1;
                    self.drop_conn(i, sockets, now, false);
                    return true;
                }
                let s = sockets.get::<tcp::Socket>(handle);
                let ended = !s.is_active() || (!s.may_recv() && s.recv_queue() == 0);
                if ended {
                    self.counters.closed += 1;
                    self.node.remove_peer(now, id);
                    self.drop_conn(i, sockets, now, false);
                    return true;
                }
                busy
            }
        }
    }

    fn backoff(&mut self, i: usize, now: Instant) {
        let c = &mut self.conns[i];
        c.state = State::Idle {
            retry_at: now + c.backoff,
        };
        c.backoff = (c.backoff * 2).min(BACKOFF_MAX);
    }

    /// Closes connection `i`'s socket (reset when `abort`), lets it linger, and makes the
    /// connection idle (a configured one is tried again after its backoff).
    fn drop_conn(&mut self, i: usize, sockets: &mut SocketSet<'static>, now: Instant, abort: bool) {
        let (handle, port) = match self.conns[i].state {
            State::Idle { .. } => return,
            State::Connecting { handle, port, .. } => (handle, port),
            State::Up { handle, port, id } => {
                self.node.remove_peer(now, id);
                (handle, port)
            }
        };
        let s = sockets.get_mut::<tcp::Socket>(handle);
        if abort {
            s.abort();
        } else {
            s.close();
        }
        self.lingering.push((handle, port, now + LINGER));
        self.backoff(i, now);
    }

    /// Removes sockets that finished closing; resets those that took too long.
    fn linger(&mut self, sockets: &mut SocketSet<'static>, now: Instant) -> bool {
        let mut busy = false;
        let mut k = 0;
        while k < self.lingering.len() {
            let (handle, port, deadline) = self.lingering[k];
            let s = sockets.get_mut::<tcp::Socket>(handle);
            let done = match s.state() {
                tcp::State::TimeWait => true,
                tcp::State::Closed => s.remote_endpoint().is_none() || now >= deadline + LINGER,
                _ => false,
            };
            if done {
                self.lingering.swap_remove(k);
                sockets.remove(handle);
                if let Some(p) = port {
                    self.ports.remove(&p);
                }
                busy = true;
                continue;
            }
            if now >= deadline && s.state() != tcp::State::Closed {
                s.abort();
                self.counters.lingered_out += 1;
                busy = true;
            }
            k += 1;
        }
        busy
    }

    /// The boot line: the node's address, /64 and public key.
    pub fn describe(&self, segment: Option<usize>, out: &mut dyn Write) {
        let _ = write!(
            out,
            "vdcnet: mycelium address {} subnet {} key {} peers {}",
            self.node.address(),
            self.node.subnet(),
            self.node.public_key(),
            self.conns.len()
        );
        match segment {
            Some(n) => {
                let _ = writeln!(out, " planetary link{n}");
            }
            None => {
                let _ = writeln!(out, " planetary none");
            }
        }
    }

    /// The stats line's part: peers up, routes, traffic, drops.
    /// What a scrape reports of the node.
    pub fn stats<D, R>(&self, router: &Router<D, R>) -> crate::metrics::MyceliumStats {
        let c = self.node.counters();
        let r = self.counters;
        crate::metrics::MyceliumStats {
            peers: self.conns.len(),
            peers_up: self
                .conns
                .iter()
                .filter(|c| matches!(c.state, State::Up { .. }))
                .count(),
            routes: self.node.routes().filter(|r| r.selected).count(),
            rx_bytes: c.rx_bytes,
            sealed: c.sealed,
            delivered: c.delivered,
            relayed: c.forwarded,
            no_route: c.no_route,
            connects: r.connects,
            connect_failures: r.connect_failures,
            closed: r.closed,
            framing: r.framing,
            dead: r.dead,
            refused: router
                .mycelium
                .as_ref()
                .map_or(0, |p| p.counters.refused + p.counters.private),
        }
    }

    pub fn write_status<D, R>(&self, router: &Router<D, R>, out: &mut dyn Write) {
        let up = self
            .conns
            .iter()
            .filter(|c| matches!(c.state, State::Up { .. }))
            .count();
        let c = self.node.counters();
        let r = self.counters;
        let routes = self.node.routes().filter(|r| r.selected).count();
        let _ = write!(
            out,
            " mycelium peers={up}/{} routes={routes} rx={} sealed={} delivered={} relayed={} no_route={} connects={} failures={} closed={} framing={} dead={}",
            self.conns.len(),
            c.rx_bytes,
            c.sealed,
            c.delivered,
            c.forwarded,
            c.no_route,
            r.connects,
            r.connect_failures,
            r.closed,
            r.framing,
            r.dead,
        );
        if let Some(p) = router.mycelium.as_ref() {
            let p = p.counters;
            let _ = write!(
                out,
                " to_node={} from_node={} refused={} private={} queue_full={}",
                p.to_node, p.from_node, p.refused, p.private, p.queue_full
            );
        }
        let _ = write!(out, ";");
    }
}
