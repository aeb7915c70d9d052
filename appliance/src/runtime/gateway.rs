//! The web gateway on the local stack: the sans-I/O [`gateway`](crate::gateway) core's
//! listeners, client connections, backend connections and health checks, carried out
//! with smoltcp TCP sockets.
//!
//! - **Listening.** [`BACKLOG`] listening sockets per public address and port; one that
//!   took a SYN becomes a client connection (or is reset, when the core refuses it: the
//!   connection limit) and a fresh one takes its place.
//! - **Flow control.** Client bytes are read only while the backend's send buffer has
//!   room (or while no backend is asked for yet: the core reads a ClientHello or a head
//!   into its own bounded buffer), and backend bytes only while the client's has room.
//!   What the core writes beyond a socket's room (an HTTP head it rewrote, a canned
//!   answer) waits in a per-side overflow that is drained before anything more is read.
//! - **Backends** are dialled from an address of a segment or of the tunnel (never an
//!   underlay one), so they are reached through the mesh like any workload's traffic.
//!   Local ports come from [`EPHEMERAL`], never two sockets on the same one.
//! - **Closing.** A side the core closes gets a FIN after its queued bytes, then lingers
//!   until it is closed or [`LINGER`] passes (then it is reset).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;
use core::net::{IpAddr, SocketAddr};
use core::ops::RangeInclusive;

use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpCidr, IpEndpoint, IpListenEndpoint};

use crate::config::{GatewayConfig, HealthCheck};
use crate::gateway::peers::{self, GatewayPeers, STATUS_PORT};
use crate::gateway::{self, Action, ConnId, Gateway, HealthCheckJob};

/// Listening sockets per public address and port: how many SYNs one poll can take.
pub const BACKLOG: usize = 16;
/// Client sockets' receive and send buffers (bytes).
pub const CLIENT_BUFFERS: (usize, usize) = (4096, 8192);
/// Backend sockets' receive and send buffers (bytes).
pub const BACKEND_BUFFERS: (usize, usize) = (8192, 4096);
/// Health check sockets' buffers.
const CHECK_BUFFERS: (usize, usize) = (1024, 512);
/// The most of a health check's answer kept while its status line is incomplete.
const CHECK_ANSWER: usize = 1024;
/// Bytes moved per read.
const CHUNK: usize = 4096;
/// Events handled per connection per poll, so that one busy connection cannot starve the
/// others.
const ROUNDS: usize = 8;
/// How long a closed side may take to finish closing before it is reset.
pub const LINGER: Duration = Duration::from_secs(5);
/// Local ports of backend and health check connections.
pub const EPHEMERAL: RangeInclusive<u16> = 32768..=60999;

/// What one client connection may cost at most, all told: both sockets' buffers, the
/// sockets themselves, a head being read or rewritten, and the tables' share.
pub const CONNECTION_COST: usize = CLIENT_BUFFERS.0
    + CLIENT_BUFFERS.1
    + BACKEND_BUFFERS.0
    + BACKEND_BUFFERS.1
    + 2 * 1024
    + 8 * 1024;

/// How many client connections a heap of `heap` bytes holds with a quarter to spare for
/// everything else (at least 16).
pub fn connections_that_fit(heap: usize) -> u16 {
    (heap / 4 * 3 / CONNECTION_COST).clamp(16, usize::from(u16::MAX)) as u16
}

/// The sockets a gateway of `config` may have at once: listening ones, both sides of
/// every connection, health checks, and as many again lingering.
pub fn sockets_needed(config: &GatewayConfig) -> usize {
    let ports = 2 + config.services.len();
    let listeners = config.listen.len() * ports * BACKLOG;
    let checks: usize = config.services.iter().map(|s| s.backends.len()).sum();
    listeners + 2 * usize::from(config.max_connections) + checks + 64
}

/// What the runtime itself counts (the core counts the rest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeCounters {
    /// Clients reset at once because the core refused them (the connection limit).
    pub refused: u64,
    /// Backend connects that could not start: no source address of that family, or
    /// every local port taken.
    pub connect_errors: u64,
    /// Sides reset because they did not finish closing within [`LINGER`].
    pub lingered_out: u64,
    /// Status datagrams that came to a public address, or were neither a request nor
    /// an answer.
    pub status_refused: u64,
}

struct Listening {
    endpoint: IpListenEndpoint,
    handles: Vec<SocketHandle>,
}

struct BackendSide {
    handle: SocketHandle,
    port: u16,
    connected: bool,
    eof: bool,
    overflow: Vec<u8>,
    shutdown: bool,
}

struct Pair {
    client: SocketHandle,
    client_eof: bool,
    overflow: Vec<u8>,
    shutdown_client: bool,
    backend: Option<BackendSide>,
    /// The core closed the connection at this time: flush, then close both sides.
    closing: Option<Instant>,
}

struct CheckConn {
    job: HealthCheckJob,
    handle: SocketHandle,
    port: u16,
    deadline: Instant,
    sent: bool,
    answer: Vec<u8>,
}

struct Lingering {
    handle: SocketHandle,
    port: Option<u16>,
    deadline: Instant,
}

/// One event of a connection, for the core.
enum Event {
    BackendConnected,
    BackendFailed,
    ClientData(usize),
    BackendData(usize),
    ClientClosed { reset: bool },
    BackendClosed,
}

/// The gateway on the local stack.
pub(crate) struct GatewayService {
    core: Gateway,
    listening: Vec<Listening>,
    pairs: BTreeMap<ConnId, Pair>,
    checks: Vec<CheckConn>,
    lingering: Vec<Lingering>,
    ports: BTreeSet<u16>,
    next_port: u16,
    /// Addresses backends are dialled from: the segments' and the tunnel's.
    sources: Vec<IpCidr>,
    /// Scratch: the core's actions, and the connections to visit this poll.
    actions: Vec<(ConnId, Action)>,
    ids: Vec<ConnId>,
    counters: RuntimeCounters,
    /// The status exchange with the other gateways (`gateway::peers`).
    status: SocketHandle,
    peers: GatewayPeers,
    public: Vec<IpAddr>,
}

fn socket(buffers: (usize, usize)) -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; buffers.0]),
        tcp::SocketBuffer::new(vec![0; buffers.1]),
    );
    s.set_nagle_enabled(false);
    s
}

fn listener(sockets: &mut SocketSet<'static>, endpoint: IpListenEndpoint) -> SocketHandle {
    let mut s = socket(CLIENT_BUFFERS);
    let _ = s.listen(endpoint);
    sockets.add(s)
}

fn core_ip(a: IpAddress) -> IpAddr {
    match a {
        IpAddress::Ipv4(a) => IpAddr::V4(a),
        IpAddress::Ipv6(a) => IpAddr::V6(a),
    }
}

fn to_core(e: IpEndpoint) -> SocketAddr {
    let ip = match e.addr {
        IpAddress::Ipv4(a) => IpAddr::V4(a),
        IpAddress::Ipv6(a) => IpAddr::V6(a),
    };
    SocketAddr::new(ip, e.port)
}

fn to_smoltcp(a: SocketAddr) -> IpEndpoint {
    let addr = match a.ip() {
        IpAddr::V4(v4) => IpAddress::Ipv4(v4),
        IpAddr::V6(v6) => IpAddress::Ipv6(v6),
    };
    IpEndpoint::new(addr, a.port())
}

/// Writes what fits of `overflow` into the socket; `true` if anything went.
fn flush(s: &mut tcp::Socket, overflow: &mut Vec<u8>) -> bool {
    if overflow.is_empty() || !s.may_send() {
        return false;
    }
    match s.send_slice(overflow) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            overflow.drain(..n);
            true
        }
    }
}

/// Writes `bytes` to the socket, keeping what does not fit in `overflow` (behind what
/// is already there). Bytes for a socket that can no longer send are dropped.
fn write(s: &mut tcp::Socket, overflow: &mut Vec<u8>, bytes: &[u8]) {
    if !s.may_send() {
        return;
    }
    if overflow.is_empty() {
        let n = s.send_slice(bytes).unwrap_or(0);
        overflow.extend_from_slice(&bytes[n..]);
    } else {
        overflow.extend_from_slice(bytes);
        flush(s, overflow);
    }
}

fn room(s: &tcp::Socket) -> usize {
    if s.may_send() {
        s.send_capacity() - s.send_queue()
    } else {
        0
    }
}

impl GatewayService {
    /// The gateway of `config`, listening on its public addresses; backends are dialled
    /// from `sources`.
    pub fn new(
        config: &GatewayConfig,
        sources: Vec<IpCidr>,
        sockets: &mut SocketSet<'static>,
        seed: u64,
        now: Instant,
    ) -> GatewayService {
        let core = Gateway::new(config, now);
        let listening = core
            .listeners()
            .into_iter()
            .map(|a| {
                let e = to_smoltcp(a);
                let endpoint = IpListenEndpoint {
                    addr: Some(e.addr),
                    port: e.port,
                };
                Listening {
                    endpoint,
                    handles: (0..BACKLOG).map(|_| listener(sockets, endpoint)).collect(),
                }
            })
            .collect();
        let span = u64::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
        let mut status = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 8 * 1280]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 8], vec![0; 8 * 1280]),
        );
        let _ = status.bind(STATUS_PORT);
        let peer_ips: Vec<IpAddr> = config.peers.iter().map(|&a| core_ip(a)).collect();
        GatewayService {
            core,
            listening,
            pairs: BTreeMap::new(),
            checks: Vec::new(),
            lingering: Vec::new(),
            ports: BTreeSet::new(),
            next_port: EPHEMERAL.start() + (seed % span) as u16,
            sources,
            actions: Vec::new(),
            ids: Vec::new(),
            counters: RuntimeCounters::default(),
            status: sockets.add(status),
            peers: GatewayPeers::new(&peer_ips, now),
            public: config.listen.iter().map(|&a| core_ip(a)).collect(),
        }
    }

    /// What a scrape reports of the gateway at `now`.
    pub fn stats(&self, now: Instant) -> crate::metrics::GatewayStats {
        let peers = self
            .peers
            .peers()
            .iter()
            .map(|p| (p.addr.ip(), p.is_alive(now)))
            .collect();
        crate::metrics::GatewayStats::of(
            &self.core,
            self.counters.connect_errors,
            &|i| self.serving(i, now).len(),
            peers,
        )
    }

    /// The public addresses that serve the service `index` now: ours while one of its
    /// backends is up, and those of the live peer gateways whose service of the same
    /// name can serve.
    pub fn serving(&self, index: usize, now: Instant) -> Vec<IpAddr> {
        let Some((name, _, pool)) = self.core.service(index) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if (0..pool.len()).any(|b| pool.is_up(b)) {
            out.extend_from_slice(&self.public);
        }
        let name = alloc::string::ToString::to_string(name);
        out.extend(self.peers.serving(&name, now));
        out
    }

    /// Answers status requests, reads the peers' answers, asks the peers that are due.
    fn run_status(&mut self, sockets: &mut SocketSet<'static>, now: Instant) -> bool {
        let mut busy = false;
        let mut buf = [0u8; peers::MAX_ANSWER + 1];
        let mut answer = alloc::string::String::new();
        loop {
            let s = sockets.get_mut::<udp::Socket>(self.status);
            let Ok((n, meta)) = s.recv_slice(&mut buf) else {
                break;
            };
            busy = true;
            let inner = meta
                .local_address
                .is_some_and(|a| self.sources.iter().any(|c| c.address() == a));
            if !inner {
                self.counters.status_refused += 1;
                continue;
            }
            let from = to_core(meta.endpoint);
            if &buf[..n] == peers::REQUEST {
                let services = (0..self.core.service_count()).filter_map(|i| {
                    let (name, _, pool) = self.core.service(i)?;
                    Some((name, (0..pool.len()).any(|b| pool.is_up(b))))
                });
                peers::write_answer(&self.public, services, &mut answer);
                let reply = udp::UdpMetadata {
                    endpoint: meta.endpoint,
                    local_address: meta.local_address,
                    meta: Default::default(),
                };
                let _ = s.send_slice(answer.as_bytes(), reply);
            } else if self.peers.answer(from, &buf[..n], now).is_err() {
                self.counters.status_refused += 1;
            }
        }
        while let Some(to) = self.peers.due(now) {
            busy = true;
            let remote = to_smoltcp(to);
            let Some(src) = self.source(remote.addr) else {
                continue;
            };
            let meta = udp::UdpMetadata {
                endpoint: remote,
                local_address: Some(src),
                meta: Default::default(),
            };
            let _ = sockets
                .get_mut::<udp::Socket>(self.status)
                .send_slice(peers::REQUEST, meta);
        }
        busy
    }

    /// The core (its counters, services and pools).
    #[cfg(test)]
    pub fn core(&self) -> &Gateway {
        &self.core
    }

    /// What the runtime counted.
    #[cfg(test)]
    pub fn counters(&self) -> RuntimeCounters {
        self.counters
    }

    /// Moves bytes, runs the core's timers and health checks; `true` if anything
    /// happened (poll the interface again).
    pub fn run(
        &mut self,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        now: Instant,
    ) -> bool {
        let mut busy = self.accept(iface, sockets, now);
        let mut ids = core::mem::take(&mut self.ids);
        ids.clear();
        ids.extend(self.pairs.keys().copied());
        for &id in &ids {
            busy |= self.pump(id, iface, sockets, now);
        }
        self.ids = ids;
        self.core.poll(now, &mut self.actions);
        busy |= self.apply(iface, sockets, now);
        busy |= self.run_checks(iface, sockets, now);
        busy |= self.linger(sockets, now);
        busy |= self.run_status(sockets, now);
        busy
    }

    /// Turns listening sockets that took a SYN into connections.
    fn accept(
        &mut self,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        now: Instant,
    ) -> bool {
        let mut busy = false;
        for l in 0..self.listening.len() {
            for k in 0..BACKLOG {
                let h = self.listening[l].handles[k];
                let endpoint = self.listening[l].endpoint;
                let s = sockets.get_mut::<tcp::Socket>(h);
                if s.state() == tcp::State::Listen {
                    continue;
                }
                busy = true;
                if !s.is_open() {
                    // Reset during the handshake: listen again.
                    let _ = s.listen(endpoint);
                    continue;
                }
                let (Some(remote), Some(local)) = (s.remote_endpoint(), s.local_endpoint()) else {
                    let _ = s.listen(endpoint);
                    continue;
                };
                match self
                    .core
                    .accept(to_core(remote), to_core(local), now, &mut self.actions)
                {
                    Ok(id) => {
                        self.pairs.insert(
                            id,
                            Pair {
                                client: h,
                                client_eof: false,
                                overflow: Vec::new(),
                                shutdown_client: false,
                                backend: None,
                                closing: None,
                            },
                        );
                    }
                    Err(_) => {
                        self.counters.refused += 1;
                        s.abort();
                        self.linger_later(h, None, now);
                    }
                }
                self.listening[l].handles[k] = listener(sockets, endpoint);
                self.apply(iface, sockets, now);
            }
        }
        busy
    }

    /// Handles up to [`ROUNDS`] events of one connection.
    fn pump(
        &mut self,
        id: ConnId,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        now: Instant,
    ) -> bool {
        let mut busy = false;
        let mut buf = [0u8; CHUNK];
        for _ in 0..ROUNDS {
            let Some(pair) = self.pairs.get_mut(&id) else {
                return busy;
            };
            busy |= pair.flush(sockets);
            if let Some(since) = pair.closing {
                if pair.finish_closing(sockets, now >= since + LINGER) {
                    let pair = self.pairs.remove(&id).expect("looked up above");
                    self.retire(pair, now);
                    busy = true;
                }
                return busy;
            }
            let Some(event) = pair.next_event(sockets, &mut buf) else {
                break;
            };
            busy = true;
            let out = &mut self.actions;
            match event {
                Event::BackendConnected => self.core.backend_connected(id, now, out),
                Event::BackendFailed => self.core.backend_failed(id, now, out),
                Event::ClientData(n) => self.core.client_data(id, &buf[..n], now, out),
                Event::BackendData(n) => self.core.backend_data(id, &buf[..n], now, out),
                Event::ClientClosed { reset } => {
                    self.core.client_closed(id, out);
                    if reset {
                        // Nobody is left to read the backend's answer.
                        self.core.backend_closed(id, now, out);
                    }
                }
                Event::BackendClosed => self.core.backend_closed(id, now, out),
            }
            self.apply(iface, sockets, now);
        }
        busy
    }

    /// Carries out the core's actions (and those they lead to).
    fn apply(
        &mut self,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        now: Instant,
    ) -> bool {
        let mut busy = false;
        while !self.actions.is_empty() {
            let actions = core::mem::take(&mut self.actions);
            for (id, action) in actions {
                busy = true;
                self.act(id, action, iface, sockets, now);
            }
        }
        busy
    }

    fn act(
        &mut self,
        id: ConnId,
        action: Action,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        now: Instant,
    ) {
        let Some(pair) = self.pairs.get_mut(&id) else {
            return;
        };
        match action {
            Action::Connect { addr } => {
                if let Some(old) = pair.backend.take() {
                    // The core asks for a new backend only after dropping the old one.
                    sockets.get_mut::<tcp::Socket>(old.handle).abort();
                    self.linger_later(old.handle, Some(old.port), now);
                }
                match self.dial(addr, BACKEND_BUFFERS, iface, sockets) {
                    Some((handle, port)) => {
                        let pair = self.pairs.get_mut(&id).expect("looked up above");
                        pair.backend = Some(BackendSide {
                            handle,
                            port,
                            connected: false,
                            eof: false,
                            overflow: Vec::new(),
                            shutdown: false,
                        });
                    }
                    None => {
                        self.counters.connect_errors += 1;
                        self.core.backend_failed(id, now, &mut self.actions);
                    }
                }
            }
            Action::ToClient(bytes) => {
                let s = sockets.get_mut::<tcp::Socket>(pair.client);
                write(s, &mut pair.overflow, &bytes);
            }
            Action::ToBackend(bytes) => {
                if let Some(b) = &mut pair.backend {
                    let s = sockets.get_mut::<tcp::Socket>(b.handle);
                    write(s, &mut b.overflow, &bytes);
                }
            }
            Action::ShutdownClient => pair.shutdown_client = true,
            Action::ShutdownBackend => {
                if let Some(b) = &mut pair.backend {
                    b.shutdown = true;
                }
            }
            Action::CloseBackend => {
                if let Some(b) = pair.backend.take() {
                    sockets.get_mut::<tcp::Socket>(b.handle).close();
                    self.linger_later(b.handle, Some(b.port), now);
                }
            }
            Action::Close => {
                pair.closing = Some(now);
                pair.flush(sockets);
                if pair.finish_closing(sockets, false) {
                    let pair = self.pairs.remove(&id).expect("looked up above");
                    self.retire(pair, now);
                }
            }
        }
    }

    /// Keeps a socket we closed or reset until it is done (see [`GatewayService::linger`]).
    fn linger_later(&mut self, handle: SocketHandle, port: Option<u16>, now: Instant) {
        self.lingering.push(Lingering {
            handle,
            port,
            deadline: now + LINGER,
        });
    }

    /// Hands a closed connection's sockets to the lingering list.
    fn retire(&mut self, pair: Pair, now: Instant) {
        self.linger_later(pair.client, None, now);
        if let Some(b) = pair.backend {
            self.linger_later(b.handle, Some(b.port), now);
        }
    }

    /// A free local port, or `None` when every one is taken.
    fn take_port(&mut self) -> Option<u16> {
        let span = usize::from(EPHEMERAL.end() - EPHEMERAL.start()) + 1;
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p == *EPHEMERAL.end() {
                *EPHEMERAL.start()
            } else {
                p + 1
            };
            if self.ports.insert(p) {
                return Some(p);
            }
        }
        None
    }

    /// The address backends of `dst`'s family are dialled from: one whose subnet holds
    /// `dst`, else the first of that family.
    fn source(&self, dst: IpAddress) -> Option<IpAddress> {
        crate::runtime::services::source_for(&self.sources, &dst)
    }

    /// Opens a TCP connection to `addr`; its socket and local port.
    fn dial(
        &mut self,
        addr: SocketAddr,
        buffers: (usize, usize),
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
    ) -> Option<(SocketHandle, u16)> {
        let remote = to_smoltcp(addr);
        let src = self.source(remote.addr)?;
        let port = self.take_port()?;
        let mut s = socket(buffers);
        if s.connect(iface.context(), remote, IpEndpoint::new(src, port))
            .is_err()
        {
            self.ports.remove(&port);
            return None;
        }
        Some((sockets.add(s), port))
    }

    /// Starts the health checks that are due and moves the running ones along.
    fn run_checks(
        &mut self,
        iface: &mut Interface,
        sockets: &mut SocketSet<'static>,
        now: Instant,
    ) -> bool {
        let mut busy = false;
        while let Some(job) = self.core.next_check(now) {
            busy = true;
            let timeout = self.core.check_timeout(&job);
            match self.dial(job.check.addr, CHECK_BUFFERS, iface, sockets) {
                Some((handle, port)) => self.checks.push(CheckConn {
                    job,
                    handle,
                    port,
                    deadline: now + timeout,
                    sent: false,
                    answer: Vec::new(),
                }),
                None => {
                    self.counters.connect_errors += 1;
                    self.core.check_done(&job, false, now);
                }
            }
        }
        let mut i = 0;
        while i < self.checks.len() {
            let c = &mut self.checks[i];
            let s = sockets.get_mut::<tcp::Socket>(c.handle);
            let result = match (s.state(), &c.job.kind) {
                _ if now >= c.deadline => Some(false),
                (tcp::State::SynSent | tcp::State::SynReceived, _) => None,
                (tcp::State::Closed | tcp::State::TimeWait, _) if !c.sent => Some(false),
                (tcp::State::Established | tcp::State::CloseWait, HealthCheck::Tcp) => Some(true),
                (_, HealthCheck::Http { path }) => {
                    if !c.sent && s.may_send() {
                        let host = self.core.check_host(c.job.service);
                        let req = gateway::http_check_request(path, &host);
                        c.sent = s.send_slice(&req).is_ok_and(|n| n == req.len());
                        busy = true;
                    }
                    let mut buf = [0u8; 256];
                    while let Ok(n @ 1..) = s.recv_slice(&mut buf) {
                        let keep = n.min(CHECK_ANSWER - c.answer.len());
                        c.answer.extend_from_slice(&buf[..keep]);
                    }
                    match gateway::http_check_ok(&c.answer) {
                        Some(ok) => Some(ok),
                        None if c.answer.len() >= CHECK_ANSWER => Some(false),
                        // Closed before a whole status line came.
                        None if !s.may_recv() => Some(false),
                        None => None,
                    }
                }
                _ => Some(false),
            };
            match result {
                None => i += 1,
                Some(ok) => {
                    busy = true;
                    let c = self.checks.swap_remove(i);
                    self.core.check_done(&c.job, ok, now);
                    let s = sockets.get_mut::<tcp::Socket>(c.handle);
                    if ok && matches!(c.job.kind, HealthCheck::Tcp) {
                        s.close();
                    } else {
                        s.abort();
                    }
                    self.linger_later(c.handle, Some(c.port), now);
                }
            }
        }
        busy
    }

    /// Removes sockets that finished closing; resets those that took too long.
    fn linger(&mut self, sockets: &mut SocketSet<'static>, now: Instant) -> bool {
        let mut busy = false;
        let mut i = 0;
        while i < self.lingering.len() {
            let l = &self.lingering[i];
            let s = sockets.get_mut::<tcp::Socket>(l.handle);
            // A reset socket keeps its endpoints until the reset went out.
            let done = match s.state() {
                tcp::State::TimeWait => true,
                tcp::State::Closed => s.remote_endpoint().is_none() || now >= l.deadline + LINGER,
                _ => false,
            };
            if done {
                let l = self.lingering.swap_remove(i);
                sockets.remove(l.handle);
                if let Some(p) = l.port {
                    self.ports.remove(&p);
                }
                busy = true;
                continue;
            }
            if now >= l.deadline && s.state() != tcp::State::Closed {
                s.abort();
                self.counters.lingered_out += 1;
                busy = true;
            }
            i += 1;
        }
        busy
    }

    /// The boot line: listeners, services, the connection limit.
    pub fn describe(&self, out: &mut dyn Write) {
        let _ = write!(out, "vdcnet: gateway");
        for l in &self.listening {
            if let Some(a) = l.endpoint.addr {
                let _ = write!(out, " {a}:{}", l.endpoint.port);
            }
        }
        let _ = writeln!(
            out,
            " services {} max_connections {}",
            self.core.service_count(),
            self.core.max_connections()
        );
    }

    /// The gateway's part of the stats line.
    pub fn write_status(&self, now: Instant, out: &mut dyn Write) {
        let c = self.core.counters();
        let _ = write!(
            out,
            " gw open={} accepted={} refused={} requests={} head_timeouts={} idle_timeouts={}",
            self.core.open_connections(),
            c.accepted,
            c.refused_full,
            c.requests,
            c.head_timeouts,
            c.idle_timeouts
        );
        for i in 0..self.core.service_count() {
            let Some((name, sc, pool)) = self.core.service(i) else {
                continue;
            };
            let _ = write!(
                out,
                " svc{i} {name} conns={} requests={} in={} out={} connect_failures={} no_backend={}",
                sc.connections,
                sc.requests,
                sc.bytes_from_clients,
                sc.bytes_to_clients,
                sc.connect_failures,
                sc.no_backend
            );
            for b in 0..pool.len() {
                let (Some(addr), Some(bc)) = (pool.addr(b), pool.counters(b)) else {
                    continue;
                };
                let _ = write!(
                    out,
                    " be{b}={addr}/{}/active={}/conns={}/fails={}/checks_failed={}",
                    if pool.is_up(b) { "up" } else { "down" },
                    pool.active(b),
                    bc.connections,
                    bc.connect_failures,
                    bc.check_failures
                );
            }
        }
        for p in self.peers.peers() {
            let _ = write!(
                out,
                " peer={}/{}",
                p.addr.ip(),
                if p.is_alive(now) { "alive" } else { "dead" }
            );
        }
        let _ = write!(out, ";");
    }
}

impl Pair {
    /// Drains both overflows, then the shutdowns asked for behind them.
    fn flush(&mut self, sockets: &mut SocketSet<'static>) -> bool {
        let mut busy = false;
        let c = sockets.get_mut::<tcp::Socket>(self.client);
        busy |= flush(c, &mut self.overflow);
        if self.shutdown_client && self.overflow.is_empty() && self.closing.is_none() {
            c.close();
            self.shutdown_client = false;
            busy = true;
        }
        if let Some(b) = &mut self.backend {
            let s = sockets.get_mut::<tcp::Socket>(b.handle);
            if b.connected {
                busy |= flush(s, &mut b.overflow);
                if b.shutdown && b.overflow.is_empty() {
                    s.close();
                    b.shutdown = false;
                    busy = true;
                }
            }
        }
        busy
    }

    /// Closes both sides once their overflows are out (or at once when `force`); `true`
    /// when the pair can go.
    fn finish_closing(&mut self, sockets: &mut SocketSet<'static>, force: bool) -> bool {
        let c = sockets.get_mut::<tcp::Socket>(self.client);
        if !self.overflow.is_empty() && c.may_send() && !force {
            return false;
        }
        if force {
            c.abort();
        } else {
            c.close();
        }
        if let Some(b) = &self.backend {
            let s = sockets.get_mut::<tcp::Socket>(b.handle);
            if force || !b.connected {
                s.abort();
            } else {
                s.close();
            }
        }
        true
    }

    /// The next thing the core should hear about, reading at most what the other side
    /// can take into `buf`.
    fn next_event(
        &mut self,
        sockets: &mut SocketSet<'static>,
        buf: &mut [u8; CHUNK],
    ) -> Option<Event> {
        // The backend's connection state first.
        let mut backend_room = CHUNK;
        let mut backend_ready = true;
        if let Some(b) = &mut self.backend {
            let s = sockets.get_mut::<tcp::Socket>(b.handle);
            if !b.connected {
                match s.state() {
                    tcp::State::SynSent | tcp::State::SynReceived => {
                        // Client bytes wait for the connect; a client reset does not.
                        let c = sockets.get::<tcp::Socket>(self.client);
                        if !self.client_eof && !c.is_open() {
                            self.client_eof = true;
                            return Some(Event::ClientClosed { reset: true });
                        }
                        return None;
                    }
                    tcp::State::Closed | tcp::State::TimeWait | tcp::State::Listen => {
                        return Some(Event::BackendFailed)
                    }
                    _ => {
                        b.connected = true;
                        return Some(Event::BackendConnected);
                    }
                }
            }
            backend_room = room(s).min(CHUNK);
            backend_ready = b.overflow.is_empty() && !b.shutdown;
        }
        let c = sockets.get_mut::<tcp::Socket>(self.client);
        // Client bytes, as far as the backend can take them.
        if !self.client_eof && backend_ready && backend_room > 0 && c.can_recv() {
            if let Ok(n @ 1..) = c.recv_slice(&mut buf[..backend_room]) {
                return Some(Event::ClientData(n));
            }
        }
        let client_room = if self.overflow.is_empty() && !self.shutdown_client {
            room(c).min(CHUNK)
        } else {
            0
        };
        let client_gone = !c.is_open() && c.state() != tcp::State::TimeWait;
        let client_done = match c.state() {
            tcp::State::SynReceived => false,
            _ => !c.may_recv() && c.recv_queue() == 0,
        };
        // Backend bytes, as far as the client can take them.
        if let Some(b) = &mut self.backend {
            let s = sockets.get_mut::<tcp::Socket>(b.handle);
            if client_room > 0 && s.can_recv() {
                if let Ok(n @ 1..) = s.recv_slice(&mut buf[..client_room]) {
                    return Some(Event::BackendData(n));
                }
            }
            if !b.eof && !s.may_recv() && s.recv_queue() == 0 {
                b.eof = true;
                return Some(Event::BackendClosed);
            }
        }
        if !self.client_eof && client_done {
            self.client_eof = true;
            return Some(Event::ClientClosed { reset: client_gone });
        }
        None
    }
}
