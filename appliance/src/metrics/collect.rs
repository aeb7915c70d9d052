//! Copies a [`Snapshot`] out of the router and its tunnel at `now`: read-only, through
//! the accessors the rooms already have.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use rand_core::CryptoRngCore;
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpCidr};
use vdcnet_hal::net::NetDevice;

use super::snapshot::{
    LinkStats, NatStats, PeerStats, RouteStats, ServiceCounters, Snapshot, TunnelStats,
};
use crate::config::{PublicKey, Role};
use crate::router::{Hop, Origin, Router};

/// The snapshot at `now` (`started`: when the appliance started; `wall_ns`: Unix time in
/// nanoseconds, for handshake times).
pub fn collect<D: NetDevice, R: CryptoRngCore>(
    router: &Router<D, R>,
    started: Instant,
    now: Instant,
    wall_ns: u64,
    service: ServiceCounters,
) -> Snapshot {
    let now_secs = now.total_millis().max(0) as u64 / 1000;
    let links = router
        .links
        .iter()
        .map(|l| LinkStats {
            role: role_name(l.role),
            mac: l.mac.0,
            mtu: l.mtu,
            counters: l.counters,
            dhcp_leases: l
                .dhcp
                .as_ref()
                .map(|d| d.leases().filter(|(_, _, exp)| *exp > now_secs).count()),
            nat: l.nat.as_ref().map(|n| NatStats {
                connections: n.len(),
                capacity: n.capacity(),
                counters: n.counters(),
            }),
            visitors: (!l.visitors.is_empty())
                .then(|| (l.visitors.present().count(), l.visitors.counters)),
        })
        .collect();
    let tunnel = router.tunnel.as_ref().map(|t| {
        let peers = t
            .device
            .peers()
            .map(|(id, p)| PeerStats {
                public_key: PublicKey(p.public_key().0).to_string(),
                endpoint: p.endpoint().map(|e| e.to_string()),
                last_handshake: p.last_handshake().map(|at| {
                    let age = (now - at).total_micros() as f64 / 1e6;
                    let unix = (wall_ns as f64 / 1e9 - age).max(0.0);
                    (age, unix)
                }),
                session: p.has_session(now),
                counters: *p.counters(),
                allowed_ips: t
                    .device
                    .allowed_ips(id)
                    .map(|a| IpCidr::new(IpAddress::from(a.addr), a.prefix_len))
                    .collect(),
            })
            .collect();
        TunnelStats {
            public_key: PublicKey(t.device.public_key().0).to_string(),
            listen_port: t.listen_port,
            mtu: t.mtu,
            counters: t.device.counters(),
            peers,
        }
    });
    Snapshot {
        uptime: (now - started).total_micros() as f64 / 1e6,
        links,
        router: router.counters(),
        routes: routes(router),
        babel: None,
        gateway: None,
        dns: None,
        mycelium: None,
        tunnel,
        service,
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Underlay => "underlay",
        Role::Segment => "segment",
    }
}

/// The route table's preferred routes: where each prefix leads and who wrote it.
fn routes<D: NetDevice, R: CryptoRngCore>(router: &Router<D, R>) -> Vec<RouteStats> {
    let table = router.routes();
    table
        .iter()
        .filter(|r| table.is_preferred(r))
        .map(|r| {
            let (target, via) = match r.hop {
                Hop::OnLink(n) => (format!("link{n}"), String::new()),
                Hop::Via(n, gw) => (format!("link{n}"), gw.to_string()),
                Hop::Peer(id) => {
                    let key = router
                        .tunnel
                        .as_ref()
                        .and_then(|t| t.device.peer(id))
                        .map(|p| PublicKey(p.public_key().0).to_string())
                        .unwrap_or_default();
                    (String::from("wg0"), key)
                }
            };
            let origin = match r.origin {
                Origin::Connected => "connected",
                Origin::Visitor => "visitor",
                Origin::Static => "static",
                Origin::Routing => "babel",
                Origin::AllowedIps => "allowed_ips",
            };
            RouteStats {
                prefix: r.prefix,
                target,
                via,
                origin,
                metric: r.metric,
            }
        })
        .collect()
}
