//! Copies a [`Snapshot`] out of the router and its tunnel at `now`: read-only, through
//! the accessors the rooms already have.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use rand_core::CryptoRngCore;
use smoltcp::time::Instant;
use smoltcp::wire::{IpAddress, IpCidr, Ipv4Address, Ipv6Address};
use vdcnet_hal::net::NetDevice;

use super::snapshot::{
    LinkStats, NatStats, PeerStats, RouteStats, ServiceCounters, Snapshot, TunnelStats,
};
use crate::config::{PublicKey, Role};
use crate::router::Router;

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
        routes: routes(router, tunnel.as_ref()),
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

/// The routes the router was built with (see `Router::new`): each link's subnets, the
/// default route of each family through the first link with a gateway of it, and every
/// peer's AllowedIPs.
fn routes<D: NetDevice, R: CryptoRngCore>(
    router: &Router<D, R>,
    tunnel: Option<&TunnelStats>,
) -> Vec<RouteStats> {
    let mut out = Vec::new();
    for (n, l) in router.links.iter().enumerate() {
        for c in &l.addrs {
            let net = match c {
                IpCidr::Ipv4(v4) => IpCidr::Ipv4(v4.network()),
                IpCidr::Ipv6(v6) => {
                    let bits = u128::from_be_bytes(v6.address().octets());
                    let mask = u128::MAX
                        .checked_shl(128 - u32::from(v6.prefix_len()))
                        .unwrap_or(0);
                    IpCidr::new(
                        IpAddress::Ipv6(Ipv6Address::from_bits(bits & mask)),
                        v6.prefix_len(),
                    )
                }
            };
            out.push(RouteStats {
                prefix: net,
                target: format!("link{n}"),
                via: String::new(),
            });
        }
    }
    let v4 = router
        .links
        .iter()
        .enumerate()
        .find_map(|(n, l)| l.gateway_v4.map(|g| (n, IpAddress::Ipv4(g))));
    let v6 = router
        .links
        .iter()
        .enumerate()
        .find_map(|(n, l)| l.gateway_v6.map(|g| (n, IpAddress::Ipv6(g))));
    for (default, gw) in [
        (IpAddress::Ipv4(Ipv4Address::UNSPECIFIED), v4),
        (IpAddress::Ipv6(Ipv6Address::UNSPECIFIED), v6),
    ] {
        if let Some((n, gw)) = gw {
            out.push(RouteStats {
                prefix: IpCidr::new(default, 0),
                target: format!("link{n}"),
                via: gw.to_string(),
            });
        }
    }
    if let Some(t) = tunnel {
        for p in &t.peers {
            for a in &p.allowed_ips {
                out.push(RouteStats {
                    prefix: *a,
                    target: String::from("wg0"),
                    via: p.public_key.clone(),
                });
            }
        }
    }
    out
}
