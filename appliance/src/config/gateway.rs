//! `[Gateway]`: the public side of the web gateway.
//!
//! ```text
//! [Gateway]
//! Listen = 203.0.113.10, 2001:db8::10   # required: addresses of underlay [Link]s
//! HttpPort = 80                          # optional: port of the Mode = http services
//! TlsPort = 443                          # optional: port of the Mode = tls services
//! MaxConnections = 1024                  # optional: client connections at once
//! HeadTimeout = 10                       # optional, s: to send a ClientHello or a head
//! IdleTimeout = 60                       # optional, s: nothing moving either way
//! ConnectTimeout = 5                     # optional, s: to reach a backend
//! Peer = 10.20.2.1, fd20:ab:cd:3::1      # optional, repeatable: other gateways of the
//!                                        #   same services, by their address in the VDC
//! ```
//!
//! `Peer`s are asked over the mesh, once a second, which public addresses they serve and
//! which of their services have a healthy backend (`gateway::peers`); the DNS answers
//! list the live ones.
//!
//! The services themselves are `[Service]` sections (`service.rs`); the parser hands them
//! to [`GatewayBuilder::finish`] and checks `Listen` against the links at the end.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::wire::IpAddress;

use super::shared::{lookup, unknown_key, Seen, Single};
use super::values;
use super::{
    GatewayConfig, ServiceConfig, ServiceMode, DEFAULT_MAX_CONNECTIONS, GATEWAY_TIMEOUT_SECS,
    MAX_GATEWAY_PEERS, MAX_LISTEN,
};

#[derive(Clone, Copy)]
enum GatewayKey {
    Listen,
    HttpPort,
    TlsPort,
    MaxConnections,
    HeadTimeout,
    IdleTimeout,
    ConnectTimeout,
    Peer,
}

const GATEWAY_KEYS: &[(&str, GatewayKey)] = &[
    ("Listen", GatewayKey::Listen),
    ("HttpPort", GatewayKey::HttpPort),
    ("TlsPort", GatewayKey::TlsPort),
    ("MaxConnections", GatewayKey::MaxConnections),
    ("HeadTimeout", GatewayKey::HeadTimeout),
    ("IdleTimeout", GatewayKey::IdleTimeout),
    ("ConnectTimeout", GatewayKey::ConnectTimeout),
    ("Peer", GatewayKey::Peer),
];

pub(super) struct GatewayBuilder {
    header: usize,
    keep: bool,
    /// A line of this section could not be read; don't report missing keys.
    pub(super) damaged: bool,
    /// Each address with the line that gave it.
    pub(super) listen: Vec<(IpAddress, usize)>,
    listen_given: bool,
    http_port: Single<u16>,
    tls_port: Single<u16>,
    max_connections: Single<u16>,
    head_timeout: Single<u16>,
    idle_timeout: Single<u16>,
    connect_timeout: Single<u16>,
    /// Each peer gateway's address with the line that gave it.
    peers: Vec<(IpAddress, usize)>,
}

impl GatewayBuilder {
    pub(super) fn new(header: usize, keep: bool) -> GatewayBuilder {
        GatewayBuilder {
            header,
            keep,
            damaged: false,
            listen: Vec::new(),
            listen_given: false,
            http_port: Single::default(),
            tls_port: Single::default(),
            max_connections: Single::default(),
            head_timeout: Single::default(),
            idle_timeout: Single::default(),
            connect_timeout: Single::default(),
            peers: Vec::new(),
        }
    }

    pub(super) fn entry(&mut self, seen: &mut Seen, line: usize, key: &str, value: &str) {
        let Some((name, key)) = lookup(key, GATEWAY_KEYS) else {
            return unknown_key(seen, line, key, "[Gateway]");
        };
        if value.is_empty() {
            return seen.error(line, format!("{name} has no value"));
        }
        let port = |_: &mut Seen| values::number(name, value, 1..=u16::MAX);
        let seconds = |_: &mut Seen| values::number(name, value, GATEWAY_TIMEOUT_SECS);
        match key {
            GatewayKey::Listen => {
                self.listen_given = true;
                for item in values::list_items(value) {
                    if let Err(message) = self.listen(item, line) {
                        seen.error(line, message);
                    }
                }
            }
            GatewayKey::HttpPort => self.http_port.set(seen, name, line, port),
            GatewayKey::TlsPort => self.tls_port.set(seen, name, line, port),
            GatewayKey::MaxConnections => self.max_connections.set(seen, name, line, |_| {
                values::number(name, value, 1..=u16::MAX)
            }),
            GatewayKey::HeadTimeout => self.head_timeout.set(seen, name, line, seconds),
            GatewayKey::IdleTimeout => self.idle_timeout.set(seen, name, line, seconds),
            GatewayKey::ConnectTimeout => self.connect_timeout.set(seen, name, line, seconds),
            GatewayKey::Peer => {
                for item in values::list_items(value) {
                    if let Err(message) = self.peer(item, line) {
                        seen.error(line, message);
                    }
                }
            }
        }
    }

    /// Line of the `[Gateway]` header.
    pub(super) fn header(&self) -> usize {
        self.header
    }

    fn listen(&mut self, item: &str, line: usize) -> Result<(), String> {
        if item.is_empty() {
            return Err(String::from("empty item in the Listen list"));
        }
        let Some(addr) = values::ip(item) else {
            return Err(format!(
                "Listen {item:?} is not an IP address (no prefix length, no port)"
            ));
        };
        if let Some(kind) = values::non_unicast_kind(addr) {
            return Err(format!("Listen {addr} is {kind}"));
        }
        if let Some((_, first)) = self.listen.iter().find(|(a, _)| *a == addr) {
            return Err(format!("Listen {addr} is already given at line {first}"));
        }
        if self.listen.len() >= MAX_LISTEN {
            return Err(format!("more than {MAX_LISTEN} Listen addresses"));
        }
        self.listen.push((addr, line));
        Ok(())
    }

    fn peer(&mut self, item: &str, line: usize) -> Result<(), String> {
        let Some(addr) = values::ip(item) else {
            return Err(format!(
                "Peer {item:?} is not an IP address (the other gateway's address in the VDC)"
            ));
        };
        if let Some(kind) = values::non_unicast_kind(addr) {
            return Err(format!("Peer {addr} is {kind}"));
        }
        if let Some((_, first)) = self.peers.iter().find(|(a, _)| *a == addr) {
            return Err(format!("Peer {addr} is already given at line {first}"));
        }
        if self.peers.len() >= MAX_GATEWAY_PEERS {
            return Err(format!("more than {MAX_GATEWAY_PEERS} Peer gateways"));
        }
        self.peers.push((addr, line));
        Ok(())
    }

    /// Closes the section with the services of the file; `None` when it is incomplete
    /// (the errors are recorded) or over a limit.
    pub(super) fn finish(
        self,
        seen: &mut Seen,
        services: Vec<ServiceConfig>,
    ) -> Option<GatewayConfig> {
        let http_port = self.http_port.value.unwrap_or(80);
        let tls_port = self.tls_port.value.unwrap_or(443);
        if let (Some(line), true) = (self.tls_port.line, http_port == tls_port) {
            seen.error(
                line,
                format!("TlsPort {tls_port} is also the HttpPort; give them different ports"),
            );
        }
        for service in &services {
            if let ServiceMode::Tcp { port } = service.mode {
                if port == http_port || port == tls_port {
                    seen.error(
                        service.line,
                        format!(
                            "[Service] {} takes port {port}, which is the gateway's {} port",
                            service.name,
                            if port == http_port { "HTTP" } else { "TLS" }
                        ),
                    );
                }
            }
        }
        if !self.listen_given && !self.damaged {
            seen.error(
                self.header,
                String::from(
                    "[Gateway] has no Listen (the public addresses, e.g. Listen = 203.0.113.10)",
                ),
            );
        }
        if self.listen.is_empty() {
            return None;
        }
        self.keep.then(|| GatewayConfig {
            listen: self.listen.iter().map(|(a, _)| *a).collect(),
            http_port,
            tls_port,
            max_connections: self
                .max_connections
                .value
                .unwrap_or(DEFAULT_MAX_CONNECTIONS),
            head_timeout_secs: self.head_timeout.value.unwrap_or(10),
            idle_timeout_secs: self.idle_timeout.value.unwrap_or(60),
            connect_timeout_secs: self.connect_timeout.value.unwrap_or(5),
            peers: self.peers.iter().map(|(a, _)| *a).collect(),
            services,
            line: self.header,
        })
    }
}
