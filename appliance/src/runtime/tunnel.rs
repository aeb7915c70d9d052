//! Builds the WireGuard [`Device`] from the `[Interface]` and `[Peer]` sections.

use crate::config::{ConfigError, InterfaceConfig, LinkConfig, PeerConfig as PeerSection};
use crate::router::{TunnelPort, TUNNEL_OVERHEAD};
use crate::tunnel::{
    AllowedIp, Device, DeviceConfig, DeviceError, PeerConfig, PresharedKey, PrivateKey, PublicKey,
};
use alloc::format;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};
use rand_core::CryptoRngCore;
use smoltcp::wire::IpAddress;

fn to_core(a: IpAddress) -> IpAddr {
    match a {
        IpAddress::Ipv4(a) => IpAddr::V4(a),
        IpAddress::Ipv6(a) => IpAddr::V6(a),
    }
}

/// The tunnel's MTU: the `[Interface]` MTU if given, else the smallest underlay link MTU
/// minus WireGuard's overhead over IPv6 (1420 on a 1500-byte link), as wg-quick does.
pub fn tunnel_mtu(iface: &InterfaceConfig, underlay_mtus: impl Iterator<Item = usize>) -> usize {
    match iface.mtu {
        Some(m) => usize::from(m),
        None => underlay_mtus
            .min()
            .unwrap_or(1500)
            .saturating_sub(TUNNEL_OVERHEAD),
    }
}

/// The tunnel port from the config; errors name their line.
pub fn build<R: CryptoRngCore>(
    iface: &InterfaceConfig,
    peers: &[PeerSection],
    links: &[&LinkConfig],
    link_mtus: &[usize],
    rng: R,
) -> Result<TunnelPort<R>, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let allowed_total: usize = peers.iter().map(|p| p.allowed_ips.len()).sum();
    let config = DeviceConfig {
        max_peers: peers.len().max(1),
        max_allowed_ips: allowed_total.max(1),
        ..DeviceConfig::default()
    };
    let mut device = Device::new(PrivateKey::from_bytes(iface.private_key.0), config, rng);
    for p in peers {
        let cfg = PeerConfig {
            public_key: PublicKey(p.public_key.0),
            preshared_key: p
                .preshared_key
                .as_ref()
                .map(|k| PresharedKey::from_bytes(k.0)),
            endpoint: p
                .endpoint
                .map(|(a, port)| SocketAddr::new(to_core(a), port)),
            persistent_keepalive: p.persistent_keepalive,
        };
        let allowed: Vec<AllowedIp> = p
            .allowed_ips
            .iter()
            .filter_map(|c| AllowedIp::new(to_core(c.address()), c.prefix_len()))
            .collect();
        if let Err(e) = device.add_peer(cfg, &allowed) {
            let message = match e {
                DeviceError::OwnKey => {
                    "this [Peer]'s PublicKey is the [Interface]'s own key".into()
                }
                DeviceError::DuplicatePeer => "this [Peer]'s PublicKey appears twice".into(),
                other => format!("cannot add this [Peer]: {other:?}"),
            };
            errors.push(ConfigError {
                line: p.line,
                message,
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let underlay = links
        .iter()
        .zip(link_mtus)
        .filter(|(l, _)| l.role == crate::config::Role::Underlay)
        .map(|(_, m)| *m);
    let mtu = tunnel_mtu(iface, underlay);
    Ok(TunnelPort::new(device, iface.listen_port, mtu))
}
