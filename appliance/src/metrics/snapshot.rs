//! What one scrape reports ([`Snapshot`], plain data copied out of the router and the
//! tunnel) and its rendering as the exposition body ([`Snapshot::render`]).
//!
//! The families, all prefixed `vdcnet_`, in base units, counters ending in `_total`:
//! links (`link_*{link,role}`), the router's work and drops by reason (`router_*`),
//! segments' DHCP leases and the masquerade's table (`dhcp_*`, `nat_*{link}`), the tunnel
//! (`tunnel_*`) and each peer (`peer_*{peer}`: endpoint, handshake, bytes, packets), the
//! route table (`route_info`), and the metrics service itself (`metrics_*`).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Debug, Display, Write};

use smoltcp::wire::IpCidr;

use super::dns::DnsStats;
use super::exposition::{Exposition, Kind};
use super::gateway::GatewayStats;
use super::mycelium::MyceliumStats;
use crate::router::nat::NatCounters;
use crate::router::visitors::VisitorCounters;
use crate::router::{Counters as RouterCounters, LinkCounters, ALL_DROPS};
use crate::tunnel::counters::ALL_DROP_REASONS;
use crate::tunnel::Counters as TunnelCounters;

/// One NIC.
#[derive(Clone, Debug)]
pub struct LinkStats {
    /// `underlay` or `segment`.
    pub role: &'static str,
    pub mac: [u8; 6],
    pub mtu: usize,
    pub counters: LinkCounters,
    /// Leases not yet expired, when the link runs a DHCP server.
    pub dhcp_leases: Option<usize>,
    /// The masquerade's table, when the link has `Egress = nat`.
    pub nat: Option<NatStats>,
    /// Visitors present now and what they did, when the segment has visiting leases.
    pub visitors: Option<(usize, VisitorCounters)>,
}

/// The masquerade of one egress link.
#[derive(Clone, Copy, Debug)]
pub struct NatStats {
    pub connections: usize,
    pub capacity: usize,
    pub counters: NatCounters,
}

/// The WireGuard tunnel.
#[derive(Clone, Debug, PartialEq)]
pub struct TunnelStats {
    /// Our public key, base64.
    pub public_key: String,
    pub listen_port: u16,
    pub mtu: usize,
    /// The whole device's counters (the peers' and those of no peer).
    pub counters: TunnelCounters,
    pub peers: Vec<PeerStats>,
}

/// One peer.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerStats {
    /// The peer's public key, base64.
    pub public_key: String,
    /// Where its datagrams go, `ADDR:PORT`, once known.
    pub endpoint: Option<String>,
    /// Seconds since the last completed handshake, and that time as Unix time (seconds).
    pub last_handshake: Option<(f64, f64)>,
    /// A session is ready to send on.
    pub session: bool,
    pub counters: TunnelCounters,
    pub allowed_ips: Vec<IpCidr>,
}

/// One route the router holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteStats {
    pub prefix: IpCidr,
    /// `linkN` or `wg0`.
    pub target: String,
    /// The gateway, or the peer's public key; empty for a subnet on the link.
    pub via: String,
    /// Who wrote it: `connected`, `static`, `babel` or `allowed_ips`.
    pub origin: &'static str,
    /// The routing protocol's metric (0 for the other origins).
    pub metric: u16,
}

/// The metrics service's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceCounters {
    /// Responses by status code, in [`RESPONSE_CODES`] order.
    pub responses: [u64; RESPONSE_CODES.len()],
    /// Connections closed for being too slow (head or idle timeout).
    pub timeouts: u64,
}

/// The status codes the service answers with.
pub const RESPONSE_CODES: [u16; 5] = [200, 400, 404, 405, 431];

/// Everything one scrape reports.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Seconds since the appliance started.
    pub uptime: f64,
    /// In link order (`link="0"` is the first `[Link]`).
    pub links: Vec<LinkStats>,
    pub router: RouterCounters,
    pub tunnel: Option<TunnelStats>,
    pub routes: Vec<RouteStats>,
    /// The routing protocol, when the node runs it.
    pub babel: Option<BabelStats>,
    /// The web gateway, when the node is one.
    pub gateway: Option<GatewayStats>,
    /// Its authoritative DNS, when it runs one.
    pub dns: Option<DnsStats>,
    /// The Mycelium node, when the appliance is one.
    pub mycelium: Option<MyceliumStats>,
    pub service: ServiceCounters,
}

/// One Babel neighbour (a tunnel peer).
#[derive(Clone, Debug)]
pub struct BabelNeighbourStats {
    /// The peer's public key (base64).
    pub peer: String,
    /// Both directions work.
    pub reachable: bool,
    /// The link cost used in metrics (65535 when unreachable).
    pub cost: u16,
    /// Smoothed round-trip time, once measured.
    pub rtt_secs: Option<f64>,
    /// Babel bytes sent to it.
    pub tx_bytes: u64,
}

/// The routing protocol's state and traffic.
#[derive(Clone, Debug, Default)]
pub struct BabelStats {
    pub neighbours: Vec<BabelNeighbourStats>,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Refusals by reason: malformed, out_of_plan, unfeasible, table_full.
    pub refused: [(&'static str, u64); 4],
}

/// A counter family read from one field of `C`: name, help, the field.
type Family<C> = (&'static str, &'static str, fn(&C) -> u64);

/// `CamelCase` Debug names as `snake_case` label values.
struct Snake<T>(T);

impl<T: Debug> Display for Snake<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Out<'a, 'b>(&'a mut fmt::Formatter<'b>, bool);
        impl Write for Out<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                for c in s.chars() {
                    if c.is_ascii_uppercase() {
                        if self.1 {
                            self.0.write_char('_')?;
                        }
                        self.0.write_char(c.to_ascii_lowercase())?;
                    } else {
                        self.0.write_char(c)?;
                    }
                    self.1 = true;
                }
                Ok(())
            }
        }
        write!(Out(f, false), "{:?}", self.0)
    }
}

struct Mac([u8; 6]);

impl Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl Snapshot {
    /// Writes the exposition body.
    pub fn render(&self, out: &mut dyn Write) -> fmt::Result {
        let mut e = Exposition::new(out);
        e.single(
            "vdcnet_uptime_seconds",
            Kind::Gauge,
            "Seconds since the appliance started.",
            self.uptime,
        );
        self.render_links(&mut e);
        self.render_router(&mut e);
        self.render_leases_and_nat(&mut e);
        if let Some(t) = &self.tunnel {
            render_tunnel(&mut e, t);
        }
        self.render_routes(&mut e);
        if let Some(b) = &self.babel {
            render_babel(&mut e, b);
        }
        if let Some(g) = &self.gateway {
            g.render(&mut e);
        }
        if let Some(d) = &self.dns {
            d.render(&mut e);
        }
        if let Some(m) = &self.mycelium {
            m.render(&mut e);
        }
        self.render_service(&mut e);
        e.finish()
    }

    fn render_links(&self, e: &mut Exposition) {
        e.family(
            "vdcnet_link_info",
            Kind::Gauge,
            "One per link: its role and MAC address.",
        );
        for (n, l) in self.links.iter().enumerate() {
            e.sample(
                &[("link", &n), ("role", &l.role), ("mac", &Mac(l.mac))],
                1u64,
            );
        }
        e.family(
            "vdcnet_link_mtu_bytes",
            Kind::Gauge,
            "Largest IP packet the link carries.",
        );
        for (n, l) in self.links.iter().enumerate() {
            e.sample(&[("link", &n), ("role", &l.role)], l.mtu);
        }
        let families: [Family<LinkCounters>; 4] = [
            ("vdcnet_link_rx_frames_total", "Frames received.", |c| {
                c.rx_frames
            }),
            ("vdcnet_link_tx_frames_total", "Frames sent.", |c| {
                c.tx_frames
            }),
            (
                "vdcnet_link_tx_dropped_frames_total",
                "Frames not sent because the NIC's transmit ring was full.",
                |c| c.tx_dropped,
            ),
            (
                "vdcnet_link_malformed_frames_total",
                "Frames received and dropped as malformed.",
                |c| c.malformed,
            ),
        ];
        for (name, help, get) in families {
            e.family(name, Kind::Counter, help);
            for (n, l) in self.links.iter().enumerate() {
                e.sample(&[("link", &n), ("role", &l.role)], get(&l.counters));
            }
        }
    }

    fn render_router(&self, e: &mut Exposition) {
        let r = &self.router;
        e.single(
            "vdcnet_router_forwarded_packets_total",
            Kind::Counter,
            "Packets forwarded between ports (each fragment counts).",
            r.forwarded,
        );
        e.family(
            "vdcnet_router_tunnel_packets_total",
            Kind::Counter,
            "Packets handed to the tunnel (out) and received from it (in).",
        );
        e.sample(&[("direction", &"out")], r.to_tunnel);
        e.sample(&[("direction", &"in")], r.from_tunnel);
        e.family(
            "vdcnet_router_local_packets_total",
            Kind::Counter,
            "Packets delivered to the appliance's own stack (in) and sent by it (out).",
        );
        e.sample(&[("direction", &"in")], r.local_in);
        e.sample(&[("direction", &"out")], r.local_out);
        e.single(
            "vdcnet_router_icmp_errors_total",
            Kind::Counter,
            "ICMP errors sent.",
            r.icmp_errors,
        );
        e.single(
            "vdcnet_router_icmp_errors_suppressed_total",
            Kind::Counter,
            "ICMP errors the rate limit suppressed.",
            r.icmp_suppressed,
        );
        e.single(
            "vdcnet_router_dhcp_replies_total",
            Kind::Counter,
            "DHCP replies sent.",
            r.dhcp_replies,
        );
        e.single(
            "vdcnet_router_router_adverts_total",
            Kind::Counter,
            "IPv6 router advertisements sent.",
            r.router_adverts,
        );
        e.family(
            "vdcnet_router_drops_total",
            Kind::Counter,
            "Packets the router dropped, by reason.",
        );
        for d in ALL_DROPS {
            e.sample(&[("reason", &Snake(d))], r.drop_count(d));
        }
    }

    fn render_leases_and_nat(&self, e: &mut Exposition) {
        e.family(
            "vdcnet_dhcp_leases",
            Kind::Gauge,
            "DHCP leases not yet expired, per segment with a DHCP server.",
        );
        for (n, l) in self.links.iter().enumerate() {
            if let Some(leases) = l.dhcp_leases {
                e.sample(&[("link", &n)], leases);
            }
        }
        let visited = || {
            self.links
                .iter()
                .enumerate()
                .filter_map(|(n, l)| l.visitors.map(|v| (n, v)))
        };
        if visited().next().is_some() {
            e.family(
                "vdcnet_visitors",
                Kind::Gauge,
                "Workloads of other segments visiting this one now (their /32 announced).",
            );
            for (n, (present, _)) in visited() {
                e.sample(&[("link", &n)], present);
            }
            e.family(
                "vdcnet_visitor_events_total",
                Kind::Counter,
                "Visitors that arrived, and that left (silent: gone after unanswered ARP probes).",
            );
            for (n, (_, c)) in visited() {
                e.sample(&[("link", &n), ("event", &"arrived")], c.arrived);
                e.sample(&[("link", &n), ("event", &"left")], c.left);
                e.sample(&[("link", &n), ("event", &"silent")], c.silent);
            }
            e.family(
                "vdcnet_visitor_probes_total",
                Kind::Counter,
                "ARP probes sent to silent visitors.",
            );
            for (n, (_, c)) in visited() {
                e.sample(&[("link", &n)], c.probes);
            }
        }
        let nats = || {
            self.links
                .iter()
                .enumerate()
                .filter_map(|(n, l)| l.nat.map(|x| (n, x)))
        };
        e.family(
            "vdcnet_nat_connections",
            Kind::Gauge,
            "Connections in the masquerade's table, per egress link.",
        );
        for (n, x) in nats() {
            e.sample(&[("link", &n)], x.connections);
        }
        e.family(
            "vdcnet_nat_connections_max",
            Kind::Gauge,
            "Size of the masquerade's table, per egress link.",
        );
        for (n, x) in nats() {
            e.sample(&[("link", &n)], x.capacity);
        }
        let families: [Family<NatCounters>; 3] = [
            (
                "vdcnet_nat_connections_created_total",
                "Connections added to the masquerade's table.",
                |c| c.created,
            ),
            (
                "vdcnet_nat_connections_expired_total",
                "Connections that timed out of the table.",
                |c| c.expired,
            ),
            (
                "vdcnet_nat_connections_evicted_total",
                "Connections evicted to make room for new ones.",
                |c| c.evicted,
            ),
        ];
        for (name, help, get) in families {
            e.family(name, Kind::Counter, help);
            for (n, x) in nats() {
                e.sample(&[("link", &n)], get(&x.counters));
            }
        }
    }

    fn render_routes(&self, e: &mut Exposition) {
        e.family(
            "vdcnet_route_info",
            Kind::Gauge,
            "One per route in use: prefix, where it leads (linkN or wg0), via what (gateway or peer key; empty on link), who wrote it and its metric.",
        );
        for r in &self.routes {
            e.sample(
                &[
                    ("prefix", &r.prefix),
                    ("target", &r.target),
                    ("via", &r.via),
                    ("origin", &r.origin),
                    ("metric", &r.metric),
                ],
                1u64,
            );
        }
    }

    fn render_service(&self, e: &mut Exposition) {
        e.family(
            "vdcnet_metrics_responses_total",
            Kind::Counter,
            "HTTP responses of the metrics service, by status code.",
        );
        for (code, n) in RESPONSE_CODES.iter().zip(self.service.responses) {
            e.sample(&[("code", code)], n);
        }
        e.single(
            "vdcnet_metrics_timeouts_total",
            Kind::Counter,
            "Metrics connections closed for sending their request or reading the answer too slowly.",
            self.service.timeouts,
        );
    }
}

fn render_tunnel(e: &mut Exposition, t: &TunnelStats) {
    e.family(
        "vdcnet_tunnel_info",
        Kind::Gauge,
        "The WireGuard interface: its public key and UDP listen port.",
    );
    e.sample(
        &[
            ("interface", &"wg0"),
            ("public_key", &t.public_key),
            ("listen_port", &t.listen_port),
        ],
        1u64,
    );
    e.single(
        "vdcnet_tunnel_mtu_bytes",
        Kind::Gauge,
        "Largest inner packet the tunnel carries.",
        t.mtu,
    );
    e.single(
        "vdcnet_tunnel_peers",
        Kind::Gauge,
        "Configured peers.",
        t.peers.len(),
    );
    let c = &t.counters;
    let totals: [(&'static str, &str, u64); 5] = [
        (
            "vdcnet_tunnel_rx_packets_total",
            "Data packets decrypted (keepalives excluded).",
            c.rx_data,
        ),
        (
            "vdcnet_tunnel_tx_packets_total",
            "Data packets encrypted (keepalives excluded).",
            c.tx_data,
        ),
        (
            "vdcnet_tunnel_rx_bytes_total",
            "Inner bytes decrypted.",
            c.rx_bytes,
        ),
        (
            "vdcnet_tunnel_tx_bytes_total",
            "Inner bytes encrypted.",
            c.tx_bytes,
        ),
        (
            "vdcnet_tunnel_handshakes_total",
            "Handshakes completed.",
            c.handshakes_completed,
        ),
    ];
    for (name, help, v) in totals {
        e.single(name, Kind::Counter, help, v);
    }
    e.family(
        "vdcnet_tunnel_drops_total",
        Kind::Counter,
        "Datagrams and packets the tunnel dropped, by reason.",
    );
    for reason in ALL_DROP_REASONS {
        e.sample(&[("reason", &Snake(reason))], c.drops.get(reason));
    }
    e.family(
        "vdcnet_peer_endpoint_info",
        Kind::Gauge,
        "One per peer with a known endpoint: where its datagrams go.",
    );
    for p in &t.peers {
        if let Some(ep) = &p.endpoint {
            e.sample(&[("peer", &p.public_key), ("endpoint", ep)], 1u64);
        }
    }
    e.family(
        "vdcnet_peer_allowed_ip_info",
        Kind::Gauge,
        "One per prefix routed to a peer (its AllowedIPs).",
    );
    for p in &t.peers {
        for a in &p.allowed_ips {
            e.sample(&[("peer", &p.public_key), ("prefix", a)], 1u64);
        }
    }
    e.family(
        "vdcnet_peer_last_handshake_seconds",
        Kind::Gauge,
        "Unix time of the peer's last completed handshake (absent before the first).",
    );
    for p in &t.peers {
        if let Some((_, unix)) = p.last_handshake {
            e.sample(&[("peer", &p.public_key)], unix);
        }
    }
    e.family(
        "vdcnet_peer_last_handshake_age_seconds",
        Kind::Gauge,
        "Seconds since the peer's last completed handshake (absent before the first).",
    );
    for p in &t.peers {
        if let Some((age, _)) = p.last_handshake {
            e.sample(&[("peer", &p.public_key)], age);
        }
    }
    e.family(
        "vdcnet_peer_session_up",
        Kind::Gauge,
        "1 when a session with the peer is ready to send on.",
    );
    for p in &t.peers {
        e.sample(&[("peer", &p.public_key)], u64::from(p.session));
    }
    let per_peer: [Family<TunnelCounters>; 5] = [
        (
            "vdcnet_peer_rx_bytes_total",
            "Inner bytes received from the peer.",
            |c| c.rx_bytes,
        ),
        (
            "vdcnet_peer_tx_bytes_total",
            "Inner bytes sent to the peer.",
            |c| c.tx_bytes,
        ),
        (
            "vdcnet_peer_rx_packets_total",
            "Data packets received from the peer.",
            |c| c.rx_data,
        ),
        (
            "vdcnet_peer_tx_packets_total",
            "Data packets sent to the peer.",
            |c| c.tx_data,
        ),
        (
            "vdcnet_peer_handshakes_total",
            "Handshakes completed with the peer.",
            |c| c.handshakes_completed,
        ),
    ];
    for (name, help, get) in per_peer {
        e.family(name, Kind::Counter, help);
        for p in &t.peers {
            e.sample(&[("peer", &p.public_key)], get(&p.counters));
        }
    }
}

fn render_babel(e: &mut Exposition, b: &BabelStats) {
    e.family(
        "vdcnet_babel_neighbour_reachable",
        Kind::Gauge,
        "1 when Hellos and IHUs pass both ways with this peer, else 0.",
    );
    for n in &b.neighbours {
        e.sample(&[("peer", &n.peer)], u64::from(n.reachable));
    }
    e.family(
        "vdcnet_babel_neighbour_cost",
        Kind::Gauge,
        "The link cost to this peer (loss and RTT; 65535 when unreachable).",
    );
    for n in &b.neighbours {
        e.sample(&[("peer", &n.peer)], u64::from(n.cost));
    }
    e.family(
        "vdcnet_babel_neighbour_rtt_seconds",
        Kind::Gauge,
        "Smoothed round-trip time to this peer (RFC 9616 timestamps), once measured.",
    );
    for n in &b.neighbours {
        if let Some(rtt) = n.rtt_secs {
            e.sample(&[("peer", &n.peer)], rtt);
        }
    }
    e.family(
        "vdcnet_babel_neighbour_tx_bytes_total",
        Kind::Counter,
        "Bytes of Babel packets sent to this peer.",
    );
    for n in &b.neighbours {
        e.sample(&[("peer", &n.peer)], n.tx_bytes);
    }
    e.family(
        "vdcnet_babel_packets_total",
        Kind::Counter,
        "Babel packets received and sent.",
    );
    e.sample(&[("direction", &"rx")], b.rx_packets);
    e.sample(&[("direction", &"tx")], b.tx_packets);
    e.family(
        "vdcnet_babel_bytes_total",
        Kind::Counter,
        "Bytes of Babel packets received and sent.",
    );
    e.sample(&[("direction", &"rx")], b.rx_bytes);
    e.sample(&[("direction", &"tx")], b.tx_bytes);
    e.family(
        "vdcnet_babel_refused_total",
        Kind::Counter,
        "Babel input refused, by reason.",
    );
    for (reason, n) in b.refused {
        e.sample(&[("reason", &reason)], n);
    }
}
