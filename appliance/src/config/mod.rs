//! The node file: what addresses the appliance has, and which WireGuard peers it talks to.
//!
//! The format is INI in the spirit of `wg-quick` and systemd-networkd:
//!
//! ```text
//! [Link]                            # one per NIC, in PCI order, or bound by MACAddress
//! MACAddress = 52:54:00:12:34:56    # optional
//! Address = 10.0.2.15/24, fec0::15/64
//! Gateway = 10.0.2.2                # optional; at most one IPv4 and one IPv6
//! MTU = 1500                        # optional, 576..=9000 (>= 1280 with IPv6)
//! Role = underlay                   # optional: underlay (default) or segment
//! Egress = nat                      # optional, underlay only: segments may leave here,
//!                                   # masqueraded as this link's IPv4 address
//!
//! [Link]                            # a VDC segment: workloads plug in here
//! Role = segment
//! Address = 10.20.1.1/24, fd20:ab:cd:1::1/64
//! DHCPServer = yes                  # optional, default yes (needs an IPv4 Address)
//! LeaseTime = 3600                  # optional, seconds, 60..=604800
//! StaticLease = 52:54:00:aa:bb:01, 10.20.1.10   # optional, repeatable
//! SendRA = yes                      # optional, default yes: advertises each /64
//!
//! [Interface]                       # at most one: the WireGuard tunnel
//! PrivateKey = <base64>
//! ListenPort = 51820                # optional
//! Address = 10.20.1.1/24            # optional
//! MTU = 1420                        # optional
//!
//! [Peer]                            # zero or more
//! PublicKey = <base64>
//! PresharedKey = <base64>           # optional
//! Endpoint = 192.0.2.11:51820       # optional; [fd00::1]:51820 for IPv6; no DNS names
//! AllowedIPs = 10.20.2.0/24         # repeatable
//! PersistentKeepalive = 25          # optional; 0 or "off" disables it
//!
//! [Routing]                         # optional, at most one: Babel between appliances
//! Networks = 10.20.0.0/16, fd20:ab:cd::/48   # the VDC's address plan
//! HelloInterval = 400               # optional, milliseconds
//!
//! [Metrics]                         # optional: the Prometheus metrics service
//! Enabled = yes                     # optional, default yes
//! Listen = 10.20.1.1:9100           # optional, repeatable; default: port 9100 on every
//!                                   # segment and [Interface] address
//!
//! [Gateway]                         # optional, at most one: public names to services
//! Listen = 203.0.113.10, 2001:db8::10   # addresses of underlay [Link]s
//! HttpPort = 80                     # optional; TlsPort = 443 likewise
//! MaxConnections = 1024             # optional; HeadTimeout, IdleTimeout, ConnectTimeout
//!                                   # in seconds (10, 60, 5)
//!
//! [Service]                         # one or more, with a [Gateway]
//! Name = shop.example.org           # or *.example.org
//! Mode = tls                        # tls (by SNI) | http (by Host) | tcp (a whole Port)
//! Backend = 10.20.1.10:443, [fd20:ab:cd:2::10]:443   # repeatable
//! Balance = leastconn               # optional: roundrobin (default) | leastconn
//! ProxyProtocol = v2                # optional: v2 | off (default)
//! HealthCheck = tcp                 # optional: tcp (default) | http /path (Mode = http)
//! CheckInterval = 2000              # optional, ms; CheckTimeout = 1000, Rise = 2, Fall = 3
//!
//! [DNS]                             # optional, with a [Gateway]: authoritative DNS
//! Zone = example.org                # repeatable; the services' names in it are answered
//! NameServer = ns1.example.org, 203.0.113.10   # repeatable: a name and its glue
//! TTL = 30                          # optional; Hostmaster, Listen, RateLimit (dns.rs)
//!
//! [Mycelium]                        # optional, at most one: a Planetary Network node
//! PrivateKey = <64 hex digits>      # or base64: the 32 octets of mycelium's key file
//! Peer = tcp://203.0.113.7:9651     # repeatable
//! Listen = yes                      # optional: no (default), yes (9651) or a port
//! # and Planetary = yes on (at most) one segment [Link]
//! ```
//!
//! Comments start with `#` or `;`, on their own line or after a value. Section and key
//! names are case-insensitive; values are trimmed. List values are comma-separated and
//! list keys (`Address`, `Gateway`, `AllowedIPs`) may repeat; any other key given twice
//! in one section is an error.
//!
//! [`parse`] never stops at the first problem: it returns every error it finds, each with
//! the 1-based line it is about, so a bad file is fixed in one round. A file with errors
//! never yields a [`Config`]: the appliance does not boot half-configured.
//!
//! Files: `lines` (line splitting, comments, headers), `values` (one value at a time),
//! `parser` (the pass over the file), `link` / `interface` / `peer` / `routing` /
//! `metrics` / `gateway` / `service` / `dns` / `mycelium` (one section kind each), `shared` (what they
//! have in common), `keys` (WireGuard keys).

mod dns;
mod gateway;
mod interface;
mod keys;
mod lines;
mod link;
mod metrics;
mod mycelium;
mod parser;
mod peer;
mod routing;
mod service;
mod shared;
mod values;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddr;
use core::ops::RangeInclusive;

use smoltcp::wire::{
    EthernetAddress, IpAddress, IpCidr, Ipv4Address, Ipv4Cidr, Ipv6Address, Ipv6Cidr,
};

pub use crate::gateway::backend::Balance;
pub use crate::gateway::names::NamePattern;
pub use dns::{DnsConfig, DnsName};
pub use keys::{PublicKey, SecretKey, KEY_BASE64_LEN, KEY_LEN};
pub use lines::MAX_LINE_LEN;
pub use metrics::{DEFAULT_METRICS_PORT, MAX_METRICS_LISTEN};
pub use mycelium::{MyceliumConfig, MAX_MYCELIUM_PEERS};

/// The largest config file accepted, in bytes.
pub const MAX_CONFIG_LEN: usize = 64 * 1024;
/// `[Link]` sections: the image drives at most this many NICs.
pub const MAX_LINKS: usize = 4;
/// Addresses per `[Link]` or `[Interface]`: the network stack holds 8 per interface and
/// the appliance adds an IPv6 link-local address to every link.
pub const MAX_ADDRESSES: usize = 7;
/// `[Peer]` sections.
pub const MAX_PEERS: usize = 64;
/// `AllowedIPs` prefixes per `[Peer]`.
pub const MAX_ALLOWED_IPS: usize = 64;
/// Errors kept by [`parse`]; past this, one last error says how many more there were.
pub const MAX_ERRORS: usize = 100;
/// `ListenPort` when `[Interface]` does not give one.
pub const DEFAULT_LISTEN_PORT: u16 = 51820;
/// Accepted `MTU` values.
pub const MTU_RANGE: RangeInclusive<u16> = 576..=9000;
/// The smallest MTU IPv6 allows (RFC 8200 §5); required when a section has an IPv6 address.
pub const IPV6_MIN_MTU: u16 = 1280;

/// `Networks` prefixes in `[Routing]`.
pub const MAX_NETWORKS: usize = 16;
/// Accepted `HelloInterval` values, in milliseconds.
pub const HELLO_INTERVAL_MS: RangeInclusive<u16> = 50..=60_000;

/// `Listen` addresses in `[Gateway]`.
pub const MAX_LISTEN: usize = 8;
/// `Peer` gateways of one `[Gateway]`.
pub const MAX_GATEWAY_PEERS: usize = 16;
/// `[Service]` sections.
pub const MAX_SERVICES: usize = 64;
/// `Backend` addresses per `[Service]`.
pub const MAX_SERVICE_BACKENDS: usize = crate::gateway::backend::MAX_BACKENDS;
/// `MaxConnections` when `[Gateway]` does not give one.
pub const DEFAULT_MAX_CONNECTIONS: u16 = 1024;
/// Accepted `HeadTimeout`, `IdleTimeout` and `ConnectTimeout` values, in seconds.
pub const GATEWAY_TIMEOUT_SECS: RangeInclusive<u16> = 1..=3600;
/// Accepted `CheckInterval` and `CheckTimeout` values, in milliseconds.
pub const CHECK_MS: RangeInclusive<u16> = 100..=60_000;
/// Accepted `Rise` and `Fall` values.
pub const CHECK_STREAK: RangeInclusive<u16> = 1..=10;
/// The longest `HealthCheck = http` path.
pub const MAX_CHECK_PATH: usize = 256;

/// `LeaseTime` when a segment does not give one.
pub const DEFAULT_LEASE_SECS: u32 = 3600;
/// Accepted `LeaseTime` values, in seconds (one minute to one week).
pub const LEASE_SECS_RANGE: RangeInclusive<u32> = 60..=604_800;
/// `StaticLease` lines per segment.
pub const MAX_STATIC_LEASES: usize = 64;

/// A problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line number of the offending line (a section header for a missing key).
    /// 0 means the file as a whole (too large, no `[Link]` at all, too many errors).
    pub line: usize,
    /// What is wrong, in words meant for the operator.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

/// A parsed and validated node file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// One per NIC, in file order (1..=[`MAX_LINKS`] of them).
    pub links: Vec<LinkConfig>,
    /// The WireGuard tunnel, if there is one.
    pub interface: Option<InterfaceConfig>,
    /// The tunnel's peers, in file order; empty without an `[Interface]`.
    pub peers: Vec<PeerConfig>,
    /// The routing protocol between appliances, if the node runs it.
    pub routing: Option<RoutingConfig>,
    /// The `[Metrics]` section, if the file has one; see [`Config::metrics_listen`].
    pub metrics: Option<MetricsConfig>,
    /// The web gateway and its services, if the node is one.
    pub gateway: Option<GatewayConfig>,
    /// The gateway's authoritative DNS server, if it runs one (`dns.rs`).
    pub dns: Option<DnsConfig>,
    /// The Planetary Network node, if the appliance is one (`config/mycelium.rs`).
    pub mycelium: Option<MyceliumConfig>,
}

/// The `[Gateway]` section with the `[Service]`s it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Public addresses listened on; each is an `Address` of an underlay `[Link]`.
    pub listen: Vec<IpAddress>,
    /// Port of the `http` services (default 80).
    pub http_port: u16,
    /// Port of the `tls` services (default 443).
    pub tls_port: u16,
    /// Client connections open at once; the next one is refused (default 1024).
    pub max_connections: u16,
    /// Seconds a client has to send a whole ClientHello or request head (default 10).
    pub head_timeout_secs: u16,
    /// Seconds a connection may carry nothing either way (default 60).
    pub idle_timeout_secs: u16,
    /// Seconds to reach a backend before trying the next, or 504 (default 5).
    pub connect_timeout_secs: u16,
    /// Other gateways of the same services, by their address in the VDC.
    pub peers: Vec<IpAddress>,
    /// The services, in file order; at least one.
    pub services: Vec<ServiceConfig>,
    /// Line of the `[Gateway]` header.
    pub line: usize,
}

/// One `[Service]`: a public name (or port) and the private backends behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// The name clients ask for (SNI or Host); a label only for `tcp`.
    pub name: NamePattern,
    /// How clients are told apart.
    pub mode: ServiceMode,
    /// Backend addresses, unique, 1..=[`MAX_SERVICE_BACKENDS`].
    pub backends: Vec<SocketAddr>,
    /// How connections are spread over healthy backends.
    pub balance: Balance,
    /// Send a PROXY protocol v2 header to the backends.
    pub proxy_protocol: bool,
    /// The active health check.
    pub health_check: HealthCheck,
    /// Milliseconds between checks (default 2000).
    pub check_interval_ms: u16,
    /// Milliseconds after which a check failed (default 1000).
    pub check_timeout_ms: u16,
    /// Good checks in a row that bring a backend back (default 2).
    pub rise: u8,
    /// Failed checks in a row that take a backend out (default 3).
    pub fall: u8,
    /// Line of the `[Service]` header.
    pub line: usize,
}

/// `Mode =` of a `[Service]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceMode {
    /// TLS passthrough chosen by SNI on the gateway's TLS port.
    Tls,
    /// HTTP/1.1 chosen by Host, per request, on the gateway's HTTP port.
    Http,
    /// Every connection to this public port.
    Tcp {
        /// The public port.
        port: u16,
    },
}

/// `HealthCheck =` of a `[Service]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// A TCP connect succeeds.
    Tcp,
    /// `GET path` answers 2xx or 3xx.
    Http {
        /// The path, starting with `/`.
        path: String,
    },
}

/// The `[Routing]` section: Babel over the tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingConfig {
    /// The VDC's address plan: routes outside these are ignored.
    pub networks: Vec<IpCidr>,
    /// Hello interval in milliseconds; `None` keeps the protocol's default.
    pub hello_interval_ms: Option<u16>,
    /// Line of the `[Routing]` header.
    pub line: usize,
}

/// The `[Metrics]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `Enabled = no` turns the service off.
    pub enabled: bool,
    /// `Listen` endpoints with the line of each; each address is one of the appliance's.
    /// Empty: the default endpoints.
    pub listen: Vec<((IpAddress, u16), usize)>,
    /// Line of the `[Metrics]` header.
    pub line: usize,
}

/// One `[Link]` section: the appliance's addresses on one NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// Bind to the NIC with this MAC; `None` takes the next NIC in PCI order.
    pub mac: Option<EthernetAddress>,
    /// The node's own addresses with their subnets' prefix lengths; never empty.
    pub addresses: Vec<IpCidr>,
    /// Default IPv4 route; inside one of `addresses`' IPv4 subnets.
    pub gateway_v4: Option<Ipv4Address>,
    /// Default IPv6 route; inside one of `addresses`' IPv6 subnets.
    pub gateway_v6: Option<Ipv6Address>,
    /// Link MTU; `None` keeps the NIC's own.
    pub mtu: Option<u16>,
    /// What the link is for.
    pub role: Role,
    /// `Egress = nat`: segments may reach this link's networks (and beyond its gateway),
    /// masqueraded as its IPv4 address.
    pub egress_nat: bool,
    /// The DHCPv4 server of a segment, when it runs one.
    pub dhcp: Option<DhcpSettings>,
    /// Whether a segment sends IPv6 router advertisements.
    pub send_ra: bool,
    /// `Planetary = yes`: the segment gets the Mycelium node's /64 and 400::/7.
    pub planetary: bool,
    /// Line of the `[Link]` header, for messages about this link later on.
    pub line: usize,
}

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The network the appliance itself lives on (WAN): only the appliance's own traffic
    /// and the tunnel's datagrams use it; nothing is forwarded to or from it unless another
    /// link's traffic leaves through it with `Egress = nat`.
    Underlay,
    /// A VDC segment: the workloads behind this appliance, routed to every other segment
    /// over the tunnel.
    Segment,
}

/// A segment's DHCPv4 server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpSettings {
    /// Lease time in seconds.
    pub lease_secs: u32,
    /// Fixed addresses by MAC; inside the link's IPv4 subnets.
    pub static_leases: Vec<(EthernetAddress, Ipv4Address)>,
}

/// The `[Interface]` section: our end of the WireGuard tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// Our static private key.
    pub private_key: SecretKey,
    /// UDP port the tunnel listens on ([`DEFAULT_LISTEN_PORT`] unless given).
    pub listen_port: u16,
    /// The node's addresses inside the tunnel; may be empty.
    pub addresses: Vec<IpCidr>,
    /// Tunnel MTU; `None` lets the appliance derive it from the links.
    pub mtu: Option<u16>,
    /// Line of the `[Interface]` header.
    pub line: usize,
}

/// One `[Peer]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's static public key; unique among peers.
    pub public_key: PublicKey,
    /// Optional extra symmetric key mixed into the handshake.
    pub preshared_key: Option<SecretKey>,
    /// Where to send the first handshake; learned from the peer's packets if `None`.
    pub endpoint: Option<(IpAddress, u16)>,
    /// Inner source addresses accepted from, and routed to, this peer. Network prefixes
    /// (no host bits set); no prefix belongs to two peers.
    pub allowed_ips: Vec<IpCidr>,
    /// Keepalive interval in seconds; `None` when off.
    pub persistent_keepalive: Option<u16>,
    /// Line of the `[Peer]` header.
    pub line: usize,
}

/// Parses a node file, returning every error found (in line order) if there is any.
///
/// Never panics, whatever the bytes.
pub fn parse(text: &[u8]) -> Result<Config, Vec<ConfigError>> {
    parser::parse(text)
}

/// The built-in configuration as node-file text; parses to [`Config::default_config`].
pub const DEFAULT_CONFIG_TEXT: &str = "\
# Built-in default: QEMU user-mode networking (slirp).
[Link]
Address = 10.0.2.15/24, fec0::15/64
Gateway = 10.0.2.2, fec0::2
";

/// Line of the `[Link]` header in [`DEFAULT_CONFIG_TEXT`].
const DEFAULT_LINK_LINE: usize = 2;

impl Config {
    /// The configuration used when the VM boots without a node file: one link on QEMU's
    /// user-mode network (10.0.2.15/24 and fec0::15/64, routers 10.0.2.2 and fec0::2), no
    /// tunnel. Identical to parsing [`DEFAULT_CONFIG_TEXT`].
    pub fn default_config() -> Config {
        Config {
            links: vec![LinkConfig {
                mac: None,
                addresses: vec![
                    IpCidr::Ipv4(Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 15), 24)),
                    IpCidr::Ipv6(Ipv6Cidr::new(
                        Ipv6Address::new(0xfec0, 0, 0, 0, 0, 0, 0, 0x15),
                        64,
                    )),
                ],
                gateway_v4: Some(Ipv4Address::new(10, 0, 2, 2)),
                gateway_v6: Some(Ipv6Address::new(0xfec0, 0, 0, 0, 0, 0, 0, 2)),
                mtu: None,
                role: Role::Underlay,
                egress_nat: false,
                dhcp: None,
                send_ra: false,
                planetary: false,
                line: DEFAULT_LINK_LINE,
            }],
            interface: None,
            peers: Vec::new(),
            routing: None,
            gateway: None,
            metrics: None,
            dns: None,
            mycelium: None,
        }
    }

    /// Where the metrics service listens: the `[Metrics]` `Listen` endpoints if given;
    /// otherwise (also without a `[Metrics]` section) port [`DEFAULT_METRICS_PORT`] on
    /// every segment address and every `[Interface]` address, never on an underlay
    /// address; nothing with `Enabled = no`. IPv6 link-local addresses are not served.
    pub fn metrics_listen(&self) -> Vec<(IpAddress, u16)> {
        match &self.metrics {
            Some(m) if !m.enabled => Vec::new(),
            Some(m) if !m.listen.is_empty() => m.listen.iter().map(|(e, _)| *e).collect(),
            _ => self
                .inner_addresses()
                .iter()
                .map(|c| (c.address(), DEFAULT_METRICS_PORT))
                .collect(),
        }
    }

    /// The appliance's addresses inside the VDC: its segments' and its `[Interface]`'s,
    /// without IPv6 link-local ones. The gateway dials backends from these.
    pub fn inner_addresses(&self) -> Vec<IpCidr> {
        self.links
            .iter()
            .filter(|l| l.role == Role::Segment)
            .flat_map(|l| l.addresses.iter())
            .chain(self.interface.iter().flat_map(|i| i.addresses.iter()))
            .filter(|c| !matches!(c.address(), IpAddress::Ipv6(v6) if v6.is_unicast_link_local()))
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn default_config_text_parses_to_default_config() {
        assert_eq!(
            parse(DEFAULT_CONFIG_TEXT.as_bytes()),
            Ok(Config::default_config())
        );
    }

    #[test]
    fn error_display_names_the_line() {
        let e = ConfigError {
            line: 7,
            message: "Gateway 10.9.9.1 is not inside any IPv4 subnet of this [Link]".into(),
        };
        assert_eq!(
            format!("{e}"),
            "line 7: Gateway 10.9.9.1 is not inside any IPv4 subnet of this [Link]"
        );
        let whole = ConfigError {
            line: 0,
            message: "no [Link] section".into(),
        };
        assert_eq!(format!("{whole}"), "no [Link] section");
    }
}
