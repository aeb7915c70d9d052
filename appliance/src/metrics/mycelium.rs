//! The Mycelium node's part of a scrape: its peer connections, selected routes, the
//! data it sealed, delivered and relayed, and what the router kept from it.

use super::exposition::{Exposition, Kind};

/// The Mycelium node at the time of a scrape.
#[derive(Clone, Copy, Debug, Default)]
pub struct MyceliumStats {
    /// Peer connections configured (and accepted), and of those up now.
    pub peers: usize,
    pub peers_up: usize,
    /// Routes selected now.
    pub routes: usize,
    pub rx_bytes: u64,
    pub sealed: u64,
    pub delivered: u64,
    pub relayed: u64,
    pub no_route: u64,
    pub connects: u64,
    pub connect_failures: u64,
    pub closed: u64,
    pub framing: u64,
    pub dead: u64,
    /// Packets the router refused to hand to or take from the node (privacy).
    pub refused: u64,
}

impl MyceliumStats {
    pub(super) fn render(&self, e: &mut Exposition) {
        e.family(
            "vdcnet_mycelium_peers",
            Kind::Gauge,
            "Mycelium peer connections, by state.",
        );
        e.sample(&[("state", &"configured")], self.peers);
        e.sample(&[("state", &"up")], self.peers_up);
        e.single(
            "vdcnet_mycelium_routes_selected",
            Kind::Gauge,
            "Routes to other Mycelium subnets selected now.",
            self.routes,
        );
        e.single(
            "vdcnet_mycelium_rx_bytes_total",
            Kind::Counter,
            "Bytes read from Mycelium peers.",
            self.rx_bytes,
        );
        e.family(
            "vdcnet_mycelium_packets_total",
            Kind::Counter,
            "Data packets through the node, by what became of them.",
        );
        for (what, n) in [
            ("sealed", self.sealed),
            ("delivered", self.delivered),
            ("relayed", self.relayed),
            ("no_route", self.no_route),
            ("refused", self.refused),
        ] {
            e.sample(&[("what", &what)], n);
        }
        e.family(
            "vdcnet_mycelium_connection_events_total",
            Kind::Counter,
            "Peer connection events: connects, failed connects, closes, framing errors, dead peers.",
        );
        for (event, n) in [
            ("connect", self.connects),
            ("connect_failure", self.connect_failures),
            ("closed", self.closed),
            ("framing", self.framing),
            ("dead", self.dead),
        ] {
            e.sample(&[("event", &event)], n);
        }
    }
}
