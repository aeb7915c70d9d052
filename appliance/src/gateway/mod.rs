//! The web gateway, sans-I/O: public names to private services over the mesh.
//!
//! A [`Gateway`] is built from the `[Gateway]` config and its `[Service]`s. The caller
//! (the runtime, wiring it onto the local stack's TCP sockets) tells it about every
//! accepted client connection, every byte and every end of stream on either side, and
//! the time; the gateway answers with [`Action`]s per connection: connect to this backend,
//! write these bytes to the client or the backend, shut a side down, close. It never
//! touches a socket or reads a clock.
//!
//! - `tls` services are chosen by the ClientHello's SNI and passed through untouched (the
//!   gateway holds no key); an unknown or missing name gets a TLS alert and a close.
//! - `http` services are chosen by Host, per request on keep-alive connections; bodies are
//!   streamed, `Connection: upgrade` becomes a tunnel, X-Forwarded-* are set.
//! - `tcp` services take every connection to their public port.
//!
//! Flow control is the caller's: it reads from one side only as fast as the other side's
//! send buffer drains, so each event carries at most one read's worth of bytes.
//!
//! Bounded everything: at most `MaxConnections` client connections (the next one is
//! refused and counted), heads and ClientHellos under their limits and timeouts, buffers
//! capped; counters per gateway ([`GatewayCounters`]), per service ([`ServiceCounters`])
//! and per backend ([`backend::BackendCounters`]).
//!
//! Files: `sni` (ClientHello reader), `http` (heads, framing, canned answers), `proxy`
//! (PROXY protocol v2), `backend` (pools and health), `names` (name matching), `peers`
//! (which other gateways are alive and what they serve), `conn`
//! (one connection's state machine), this file (the gateway and its counters).

pub mod backend;
mod conn;
pub mod http;
pub mod names;
pub mod peers;
pub mod proxy;
pub mod sni;

use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use smoltcp::time::{Duration, Instant};
use smoltcp::wire::IpAddress;

use crate::config::{GatewayConfig, HealthCheck, ServiceMode};
use backend::{Check, HealthSettings, Pool};
use conn::{Conn, Listener};
use http::Status;
use names::{NamePattern, NameTable};

/// What the caller should do for one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to this backend, then report
    /// [`Gateway::backend_connected`] or [`Gateway::backend_failed`]. A connection has at
    /// most one backend connection at a time; a new `Connect` comes only after a
    /// `CloseBackend` (or a failure) of the previous one.
    Connect {
        /// The backend's address.
        addr: SocketAddr,
    },
    /// Write these bytes to the client.
    ToClient(Vec<u8>),
    /// Write these bytes to the backend.
    ToBackend(Vec<u8>),
    /// The backend sent its end of stream: pass it on (shut the client's write side).
    ShutdownClient,
    /// The client sent its end of stream: pass it on (shut the backend's write side).
    ShutdownBackend,
    /// Close the backend connection; the client connection goes on.
    CloseBackend,
    /// Close both sides once the writes asked for so far are out. The connection's id is
    /// no longer valid.
    Close,
}

/// A client connection, as the gateway knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConnId {
    index: u32,
    generation: u32,
}

/// Why [`Gateway::accept`] turned a client away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `MaxConnections` are open; close the new one at once (counted).
    Full,
    /// Nothing listens on that address and port.
    NoListener,
}

/// Limits and timeouts, from `[Gateway]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Client connections open at once.
    pub max_connections: usize,
    /// To send a whole ClientHello or request head.
    pub head_timeout: Duration,
    /// Nothing moving either way.
    pub idle_timeout: Duration,
    /// To reach a backend.
    pub connect_timeout: Duration,
}

/// Gateway-wide counters: connections, refusals, and what went wrong, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GatewayCounters {
    /// Client connections accepted.
    pub accepted: u64,
    /// Refused because `MaxConnections` were open.
    pub refused_full: u64,
    /// HTTP requests routed to a service.
    pub requests: u64,
    /// On the TLS port: not TLS at all.
    pub not_tls: u64,
    /// A ClientHello without SNI.
    pub no_sni: u64,
    /// A ClientHello naming no `tls` service.
    pub unknown_name: u64,
    /// A ClientHello over 16 KiB.
    pub hello_too_large: u64,
    /// A broken ClientHello.
    pub hello_malformed: u64,
    /// Answers 400 / 404 / 421 / 431 / 501 / 502 / 503 / 504.
    pub status_400: u64,
    /// See `status_400`.
    pub status_404: u64,
    /// See `status_400`.
    pub status_421: u64,
    /// See `status_400`.
    pub status_431: u64,
    /// See `status_400`.
    pub status_501: u64,
    /// See `status_400`.
    pub status_502: u64,
    /// See `status_400`.
    pub status_503: u64,
    /// See `status_400`.
    pub status_504: u64,
    /// A request body with broken chunked framing.
    pub bad_request_bodies: u64,
    /// A backend response that is not HTTP or breaks its framing.
    pub bad_responses: u64,
    /// A client pipelining more than a head's worth ahead.
    pub pipeline_overflows: u64,
    /// Bytes from a backend outside any response.
    pub stray_backend_bytes: u64,
    /// Connections closed for a slow ClientHello or head.
    pub head_timeouts: u64,
    /// Connections closed for idleness.
    pub idle_timeouts: u64,
    /// Upgraded (WebSocket) connections.
    pub upgrades: u64,
}

impl GatewayCounters {
    fn count_status(&mut self, status: Status) {
        let c = match status {
            Status::BadRequest => &mut self.status_400,
            Status::NotFound => &mut self.status_404,
            Status::MisdirectedRequest => &mut self.status_421,
            Status::HeadTooLarge => &mut self.status_431,
            Status::NotImplemented => &mut self.status_501,
            Status::BadGateway => &mut self.status_502,
            Status::Unavailable => &mut self.status_503,
            Status::GatewayTimeout => &mut self.status_504,
        };
        *c += 1;
    }
}

/// Per-service counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ServiceCounters {
    /// Client connections routed here (tls, tcp).
    pub connections: u64,
    /// HTTP requests routed here.
    pub requests: u64,
    /// Bytes from clients passed to backends.
    pub bytes_from_clients: u64,
    /// Bytes from backends passed to clients.
    pub bytes_to_clients: u64,
    /// Connects to a backend that failed (each one retried elsewhere when possible).
    pub connect_failures: u64,
    /// Of those, connects that timed out.
    pub connect_timeouts: u64,
    /// Clients that found no backend left to try.
    pub no_backend: u64,
    /// Requests whose response did not start within the idle timeout (504).
    pub response_timeouts: u64,
    /// 502 answers.
    pub bad_gateway: u64,
    /// 503 answers.
    pub unavailable: u64,
    /// 504 answers.
    pub gateway_timeout: u64,
}

impl ServiceCounters {
    fn count_status(&mut self, status: Status) {
        match status {
            Status::BadGateway => self.bad_gateway += 1,
            Status::Unavailable => self.unavailable += 1,
            Status::GatewayTimeout => self.gateway_timeout += 1,
            _ => {}
        }
    }
}

/// One service at run time.
#[derive(Debug)]
struct Service {
    name: NamePattern,
    pool: Pool,
    proxy_protocol: bool,
    health_check: HealthCheck,
    counters: ServiceCounters,
}

/// What connections share: services, names, limits, counters.
#[derive(Debug)]
struct Shared {
    services: Vec<Service>,
    tls_names: NameTable<usize>,
    http_names: NameTable<usize>,
    limits: Limits,
    counters: GatewayCounters,
}

/// A health check for the caller to run: connect to `check.addr` (and for
/// [`HealthCheck::Http`] send [`http_check_request`] and read the status line), then report
/// with [`Gateway::check_done`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckJob {
    /// The service the backend belongs to.
    pub service: usize,
    /// The backend and the token to report back.
    pub check: Check,
    /// What to check.
    pub kind: HealthCheck,
}

/// The gateway.
#[derive(Debug)]
pub struct Gateway {
    shared: Shared,
    listen: Vec<IpAddr>,
    http_port: u16,
    tls_port: u16,
    tcp_ports: Vec<(u16, usize)>,
    conns: Vec<Option<(u32, Conn)>>,
    generation: u32,
    open: usize,
}

impl Gateway {
    /// The gateway for a parsed `[Gateway]` section; backends start healthy, their first
    /// checks due at `now`.
    pub fn new(config: &GatewayConfig, now: Instant) -> Gateway {
        let mut shared = Shared {
            services: Vec::new(),
            tls_names: NameTable::new(),
            http_names: NameTable::new(),
            limits: Limits {
                max_connections: usize::from(config.max_connections),
                head_timeout: Duration::from_secs(config.head_timeout_secs.into()),
                idle_timeout: Duration::from_secs(config.idle_timeout_secs.into()),
                connect_timeout: Duration::from_secs(config.connect_timeout_secs.into()),
            },
            counters: GatewayCounters::default(),
        };
        let mut tcp_ports = Vec::new();
        for (i, s) in config.services.iter().enumerate() {
            match s.mode {
                ServiceMode::Tls => shared.tls_names.insert(&s.name, i),
                ServiceMode::Http => shared.http_names.insert(&s.name, i),
                ServiceMode::Tcp { port } => tcp_ports.push((port, i)),
            }
            let health = HealthSettings {
                interval: Duration::from_millis(s.check_interval_ms.into()),
                fast_interval: Duration::from_millis(s.check_interval_ms.min(1000).into()),
                timeout: Duration::from_millis(s.check_timeout_ms.into()),
                rise: s.rise,
                fall: s.fall,
            };
            shared.services.push(Service {
                name: s.name.clone(),
                pool: Pool::new(&s.backends, s.balance, health, now),
                proxy_protocol: s.proxy_protocol,
                health_check: s.health_check.clone(),
                counters: ServiceCounters::default(),
            });
        }
        Gateway {
            shared,
            listen: config.listen.iter().map(|&a| ip(a)).collect(),
            http_port: config.http_port,
            tls_port: config.tls_port,
            tcp_ports,
            conns: Vec::new(),
            generation: 0,
            open: 0,
        }
    }

    /// The public address and port pairs to listen on.
    pub fn listeners(&self) -> Vec<SocketAddr> {
        let mut ports = Vec::new();
        if !self.shared.http_names.is_empty() {
            ports.push(self.http_port);
        }
        if !self.shared.tls_names.is_empty() {
            ports.push(self.tls_port);
        }
        ports.extend(self.tcp_ports.iter().map(|(p, _)| *p));
        self.listen
            .iter()
            .flat_map(|&ip| ports.iter().map(move |&p| SocketAddr::new(ip, p)))
            .collect()
    }

    /// A client connected from `client` to our `local` address and port. The actions
    /// (for a tcp service: the backend connect) go to `out`.
    pub fn accept(
        &mut self,
        client: SocketAddr,
        local: SocketAddr,
        now: Instant,
        out: &mut Vec<(ConnId, Action)>,
    ) -> Result<ConnId, Refused> {
        if !self.listen.contains(&local.ip()) {
            return Err(Refused::NoListener);
        }
        let listener = if local.port() == self.http_port {
            Listener::Http
        } else if local.port() == self.tls_port {
            Listener::Tls
        } else if let Some(&(_, s)) = self.tcp_ports.iter().find(|(p, _)| *p == local.port()) {
            Listener::Tcp(s)
        } else {
            return Err(Refused::NoListener);
        };
        if self.open >= self.shared.limits.max_connections {
            self.shared.counters.refused_full += 1;
            return Err(Refused::Full);
        }
        self.shared.counters.accepted += 1;
        self.generation = self.generation.wrapping_add(1);
        let index = match self.conns.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        let id = ConnId {
            index: index as u32,
            generation: self.generation,
        };
        self.open += 1;
        let mut actions = Vec::new();
        let conn = Conn::new(&mut self.shared, listener, client, local, now, &mut actions);
        self.conns[index] = Some((self.generation, conn));
        self.finish(id, actions, out);
        Ok(id)
    }

    /// Runs `event` on the connection `id`, if it is still open.
    fn with(
        &mut self,
        id: ConnId,
        out: &mut Vec<(ConnId, Action)>,
        event: impl FnOnce(&mut Conn, &mut Shared, &mut Vec<Action>),
    ) {
        let Some(Some((generation, conn))) = self.conns.get_mut(id.index as usize) else {
            return;
        };
        if *generation != id.generation {
            return;
        }
        let mut actions = Vec::new();
        event(conn, &mut self.shared, &mut actions);
        self.finish(id, actions, out);
    }

    fn finish(&mut self, id: ConnId, actions: Vec<Action>, out: &mut Vec<(ConnId, Action)>) {
        let closed = self
            .conns
            .get(id.index as usize)
            .and_then(|c| c.as_ref())
            .is_some_and(|(_, c)| c.is_closed());
        if closed {
            self.conns[id.index as usize] = None;
            self.open -= 1;
        }
        out.extend(actions.into_iter().map(|a| (id, a)));
    }

    /// Bytes from the client.
    pub fn client_data(
        &mut self,
        id: ConnId,
        bytes: &[u8],
        now: Instant,
        out: &mut Vec<(ConnId, Action)>,
    ) {
        self.with(id, out, |c, s, o| c.client_data(s, bytes, now, o));
    }

    /// The client's end of stream (or a reset).
    pub fn client_closed(&mut self, id: ConnId, out: &mut Vec<(ConnId, Action)>) {
        self.with(id, out, |c, s, o| c.client_closed(s, o));
    }

    /// The backend connection asked for by [`Action::Connect`] is established.
    pub fn backend_connected(&mut self, id: ConnId, now: Instant, out: &mut Vec<(ConnId, Action)>) {
        self.with(id, out, |c, s, o| c.backend_connected(s, now, o));
    }

    /// The backend connect failed (refused, unreachable), or the connection broke.
    pub fn backend_failed(&mut self, id: ConnId, now: Instant, out: &mut Vec<(ConnId, Action)>) {
        self.with(id, out, |c, s, o| c.backend_failed(s, false, now, o));
    }

    /// Bytes from the backend.
    pub fn backend_data(
        &mut self,
        id: ConnId,
        bytes: &[u8],
        now: Instant,
        out: &mut Vec<(ConnId, Action)>,
    ) {
        self.with(id, out, |c, s, o| c.backend_data(s, bytes, now, o));
    }

    /// The backend's end of stream.
    pub fn backend_closed(&mut self, id: ConnId, now: Instant, out: &mut Vec<(ConnId, Action)>) {
        self.with(id, out, |c, s, o| c.backend_closed(s, now, o));
    }

    /// Runs the timeouts of every connection.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<(ConnId, Action)>) {
        for index in 0..self.conns.len() {
            let Some(Some((generation, conn))) = self.conns.get(index) else {
                continue;
            };
            if conn.deadline() > now {
                continue;
            }
            let id = ConnId {
                index: index as u32,
                generation: *generation,
            };
            self.with(id, out, |c, s, o| c.poll(s, now, o));
        }
    }

    /// The earliest deadline of any connection or health check.
    pub fn poll_at(&self) -> Option<Instant> {
        let conns = self.conns.iter().flatten().map(|(_, c)| c.deadline());
        let checks = self.shared.services.iter().filter_map(|s| s.pool.poll_at());
        conns.chain(checks).min()
    }

    /// The next health check to run now; call until `None`.
    pub fn next_check(&mut self, now: Instant) -> Option<HealthCheckJob> {
        self.shared
            .services
            .iter_mut()
            .enumerate()
            .find_map(|(i, s)| {
                s.pool.next_check(now).map(|check| HealthCheckJob {
                    service: i,
                    check,
                    kind: s.health_check.clone(),
                })
            })
    }

    /// The result of a health check.
    pub fn check_done(&mut self, job: &HealthCheckJob, ok: bool, now: Instant) {
        if let Some(s) = self.shared.services.get_mut(job.service) {
            s.pool.check_done(job.check, ok, now);
        }
    }

    /// How long the health check `job` may take.
    pub fn check_timeout(&self, job: &HealthCheckJob) -> Duration {
        self.shared
            .services
            .get(job.service)
            .map_or(Duration::from_secs(1), |s| s.pool.check_timeout())
    }

    /// The `Host` an `http` health check of the service sends: its name (for a wildcard,
    /// `check.` under its suffix).
    pub fn check_host(&self, service: usize) -> String {
        match self.shared.services.get(service).map(|s| &s.name) {
            Some(NamePattern::Exact(name)) => name.clone(),
            Some(NamePattern::Wildcard(suffix)) => alloc::format!("check.{suffix}"),
            None => String::new(),
        }
    }

    /// Client connections allowed at once.
    pub fn max_connections(&self) -> usize {
        self.shared.limits.max_connections
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> usize {
        self.open
    }

    /// The gateway-wide counters.
    pub fn counters(&self) -> GatewayCounters {
        self.shared.counters
    }

    /// How many services there are.
    pub fn service_count(&self) -> usize {
        self.shared.services.len()
    }

    /// A service's name, counters and pool (for backend counters and health).
    pub fn service(&self, index: usize) -> Option<(&NamePattern, ServiceCounters, &Pool)> {
        self.shared
            .services
            .get(index)
            .map(|s| (&s.name, s.counters, &s.pool))
    }
}

/// The request an `http` health check sends: `GET path` with `Connection: close`.
pub fn http_check_request(path: &str, host: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + path.len() + host.len());
    for part in [
        "GET ",
        path,
        " HTTP/1.1\r\nHost: ",
        host,
        "\r\nUser-Agent: vdcnet-check\r\nConnection: close\r\n\r\n",
    ] {
        out.extend_from_slice(part.as_bytes());
    }
    out
}

/// Whether an `http` health check's answer is good (2xx or 3xx); `None` while the status
/// line is incomplete.
pub fn http_check_ok(response: &[u8]) -> Option<bool> {
    match http::parse_response(response, false, false) {
        Ok(Some(head)) => Some((200..400).contains(&head.code)),
        Ok(None) => None,
        Err(()) => Some(false),
    }
}

fn ip(addr: IpAddress) -> IpAddr {
    match addr {
        IpAddress::Ipv4(a) => IpAddr::V4(a),
        IpAddress::Ipv6(a) => IpAddr::V6(a),
    }
}

#[cfg(test)]
mod tests;
