//! The appliance at run time.
//!
//! - one [`port`] per NIC: a smoltcp interface holding the link's addresses, answering
//!   ARP/NDP and ICMP echo (v4 and v6), with the [`services`] (TCP echo on port 7, the
//!   `vdcnet.ping=` prober);
//! - with an `[Interface]` in the config, the [`overlay`]: the WireGuard tunnel, its UDP
//!   socket on every link, and an interface holding the overlay addresses with the same
//!   services, reached through the tunnel.
//!
//! Sans-I/O in the sense that matters: the caller passes `now`, wall time, the devices, the
//! RNG and the console; nothing here reads a clock or touches hardware.

mod overlay;
mod port;
mod services;
mod wire;

pub use services::{ECHO_PORT, ECHO_SOCKETS};

use crate::config::{Config, ConfigError, LinkConfig};
use crate::tunnel::{Counters as TunnelCounters, DeviceResult, Now};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use overlay::{endpoint_to_socket, socket_to_endpoint, Overlay};
use port::Port;
use rand_core::CryptoRngCore;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpEndpoint};
use vdcnet_hal::net::NetDevice;
use wire::{ETH_HEADER, MAX_FRAME};

/// What the boot code hands the appliance besides the config.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Seed for smoltcp (TCP initial sequence numbers, ports).
    pub seed: u64,
    /// Addresses to ping once a second (`vdcnet.ping=`).
    pub ping: Vec<IpAddress>,
    /// Print the counters on the console this often (`vdcnet.stats=`).
    pub stats_secs: Option<u32>,
}

/// Frames a port passed or could not pass on.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortCounters {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Frames smoltcp produced when the NIC had no room (it was told there was).
    pub tx_dropped: u64,
}

/// What the glue between the tunnel and the links dropped, by reason (the tunnel counts
/// its own drops in [`TunnelCounters`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct OverlayCounters {
    /// Decrypted packets dropped because the overlay interface's inbound ring was full.
    pub rx_ring_full: u64,
    /// Datagrams to an endpoint no link reaches.
    pub no_link_for_endpoint: u64,
    /// Datagrams dropped because the link's UDP socket buffer was full.
    pub udp_send_full: u64,
    /// Packets the overlay interface sent while the ring to the tunnel was full.
    pub tx_ring_full: u64,
}

/// The running appliance.
pub struct Appliance<D, R> {
    ports: Vec<Port<D>>,
    overlay: Option<Overlay<R>>,
    /// Interval and next time of the console stats line.
    stats: Option<(Duration, Instant)>,
}

fn err(line: usize, message: String) -> ConfigError {
    ConfigError { line, message }
}

impl<D: NetDevice, R: CryptoRngCore> Appliance<D, R> {
    /// Binds each `[Link]` to a NIC (by `MACAddress`, else in order among the NICs left),
    /// brings it up, and builds the tunnel if the config has one (`rng` is required then).
    /// Errors name the config line; all are reported together.
    pub fn new(
        config: &Config,
        nics: Vec<D>,
        opts: Options,
        rng: Option<R>,
        now_us: u64,
    ) -> Result<Self, Vec<ConfigError>> {
        let now = Instant::from_micros(now_us as i64);
        let mut errors = Vec::new();
        let n_nics = nics.len();
        let mut slots: Vec<Option<D>> = nics.into_iter().map(Some).collect();
        let mut chosen: Vec<(usize, &LinkConfig)> = Vec::new();
        // Links pinned by MAC first, then the rest in order.
        for link in config.links.iter().filter(|l| l.mac.is_some()) {
            let want = link.mac.map(|m| m.0);
            let found = slots
                .iter()
                .position(|s| s.as_ref().map(|d| Some(d.mac_address())) == Some(want));
            match found {
                Some(i) => chosen.push((i, link)),
                None => errors.push(err(
                    link.line,
                    format!(
                        "no NIC has MACAddress {} (the VM has {n_nics} NIC(s))",
                        link.mac.unwrap_or_default()
                    ),
                )),
            }
        }
        let mut taken: Vec<usize> = chosen.iter().map(|c| c.0).collect();
        for link in config.links.iter().filter(|l| l.mac.is_none()) {
            match (0..slots.len()).find(|i| !taken.contains(i)) {
                Some(i) => {
                    taken.push(i);
                    chosen.push((i, link));
                }
                None => errors.push(err(
                    link.line,
                    format!("this [Link] has no NIC left to bind to (the VM has {n_nics} NIC(s))"),
                )),
            }
        }
        for (i, link) in &chosen {
            let max = slots[*i].as_ref().map_or(MAX_FRAME, |d| d.max_frame_len()) - ETH_HEADER;
            if let Some(mtu) = link.mtu.filter(|&m| m as usize > max) {
                errors.push(err(
                    link.line,
                    format!("MTU {mtu} is larger than this NIC carries ({max})"),
                ));
            }
        }
        let overlay = match (&config.interface, rng) {
            (None, _) => None,
            (Some(i), None) => {
                errors.push(err(
                    i.line,
                    "[Interface] needs a hardware random number generator for its keys, and this machine has none".into(),
                ));
                None
            }
            (Some(i), Some(rng)) => match Overlay::new(i, &config.peers, rng, opts.seed, now) {
                Ok(o) => Some(o),
                Err(mut e) => {
                    errors.append(&mut e);
                    None
                }
            },
        };
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.line);
            return Err(errors);
        }
        chosen.sort_by_key(|c| c.1.line);
        let mut ports = Vec::new();
        for (k, (i, link)) in chosen.into_iter().enumerate() {
            let Some(dev) = slots[i].take() else { continue };
            let mut port = Port::new(k, dev, link, opts.seed, now);
            if let Some(o) = &overlay {
                port.open_udp(o.listen_port);
            }
            ports.push(port);
        }
        let stats = opts.stats_secs.map(|s| {
            let every = Duration::from_secs(s as u64);
            (every, now + every)
        });
        let mut app = Appliance {
            ports,
            overlay,
            stats,
        };
        // Each ping target goes to the overlay if one of its subnets or peers covers it,
        // else to the link whose subnet holds it, else to one with a gateway of its family.
        for target in &opts.ping {
            if let Some(o) = &mut app.overlay {
                let ip = match target {
                    IpAddress::Ipv4(a) => core::net::IpAddr::V4(*a),
                    IpAddress::Ipv6(a) => core::net::IpAddr::V6(*a),
                };
                let covered = o.iface.ip_addrs().iter().any(|c| c.contains_addr(target))
                    || o.device.route(ip).is_some();
                if covered {
                    o.services.add_probe(*target, now);
                    continue;
                }
            }
            let on_link = app.ports.iter().position(|p| p.on_link(target));
            let via_gw = app.ports.iter().position(|p| p.has_gateway_for(target));
            match on_link.or(via_gw) {
                Some(i) => app.ports[i].services.add_probe(*target, now),
                None => {
                    return Err(alloc::vec![err(
                        0,
                        format!("vdcnet.ping={target}: no link reaches it")
                    )])
                }
            }
        }
        Ok(app)
    }

    /// Number of links up.
    pub fn links(&self) -> usize {
        self.ports.len()
    }

    /// Writes one line per link (name, MAC, addresses) and one for the tunnel.
    pub fn describe(&self, out: &mut dyn Write) {
        for p in &self.ports {
            let m = p.wire.dev.mac_address();
            let _ = write!(
                out,
                "vdcnet: link{} {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                p.name, m[0], m[1], m[2], m[3], m[4], m[5]
            );
            for a in p.iface.ip_addrs() {
                let _ = write!(out, " {a}");
            }
            let _ = writeln!(out);
        }
        if let Some(o) = &self.overlay {
            let _ = write!(
                out,
                "vdcnet: wg0 port {} key {} peers {}",
                o.listen_port,
                crate::config::PublicKey(o.device.public_key().0),
                o.device.peers().count()
            );
            for a in o.iface.ip_addrs() {
                let _ = write!(out, " {a}");
            }
            let _ = writeln!(out);
        }
    }

    /// Re-arms every NIC's interrupt before the CPU sleeps; `true` if a frame arrived
    /// meanwhile (poll again instead of sleeping).
    pub fn arm_interrupts(&mut self) -> bool {
        let mut pending = false;
        for p in &mut self.ports {
            pending |= p.wire.dev.arm_interrupt();
        }
        pending
    }

    /// Counters of every port, in link order.
    pub fn counters(&self) -> Vec<PortCounters> {
        self.ports.iter().map(|p| p.wire.counters).collect()
    }

    /// The tunnel's counters and the glue's, if there is a tunnel.
    pub fn tunnel_counters(&self) -> Option<(TunnelCounters, OverlayCounters)> {
        self.overlay.as_ref().map(|o| {
            let mut c = o.counters;
            c.tx_ring_full = o.tx_ring_dropped();
            (o.device.counters(), c)
        })
    }

    /// Does all the work there is at `now_us` (`wall_ns`: wall clock for the tunnel's
    /// handshake timestamps): frames in and out, the tunnel, services, probes. Returns
    /// whether anything happened (the caller polls again at once instead of sleeping).
    pub fn poll(&mut self, now_us: u64, wall_ns: u64, console: &mut dyn Write) -> bool {
        let now = Instant::from_micros(now_us as i64);
        let mut busy = false;
        for p in &mut self.ports {
            busy |= p.poll(now, console);
        }
        if let Some(o) = &mut self.overlay {
            let wnow = Now {
                instant: now,
                wall_ns,
            };
            busy |= run_overlay(o, &mut self.ports, now, wnow, console);
        }
        if let Some((every, next)) = self.stats {
            if now >= next {
                self.stats = Some((every, now + every));
                self.write_stats(console);
            }
        }
        busy
    }

    /// One console line with every counter that matters: frames per link, and the
    /// tunnel's traffic and drops by reason.
    pub fn write_stats(&self, out: &mut dyn Write) {
        let _ = write!(out, "vdcnet: stats");
        for (p, c) in self.ports.iter().zip(self.counters()) {
            let _ = write!(
                out,
                " link{} rx={} tx={} txdrop={};",
                p.name, c.rx_frames, c.tx_frames, c.tx_dropped
            );
        }
        if let Some((t, g)) = self.tunnel_counters() {
            let glue = g.rx_ring_full + g.tx_ring_full + g.no_link_for_endpoint + g.udp_send_full;
            let _ = write!(
                out,
                " wg0 rx={} tx={} handshakes={} drops={}",
                t.rx_data,
                t.tx_data,
                t.handshakes_completed,
                t.drops.total() + glue
            );
            for r in crate::tunnel::counters::ALL_DROP_REASONS {
                let n = t.drops.get(r);
                if n > 0 {
                    let _ = write!(out, " {r:?}={n}");
                }
            }
            for (name, n) in [
                ("RxRingFull", g.rx_ring_full),
                ("TxRingFull", g.tx_ring_full),
                ("NoLinkForEndpoint", g.no_link_for_endpoint),
                ("UdpSendFull", g.udp_send_full),
            ] {
                if n > 0 {
                    let _ = write!(out, " {name}={n}");
                }
            }
        }
        let _ = writeln!(out);
    }
}

/// Sends a datagram from the link that reaches `to`: on-link first, else one with a
/// gateway of its family.
fn send_underlay<D: NetDevice>(
    ports: &mut [Port<D>],
    to: IpEndpoint,
    data: &[u8],
    c: &mut OverlayCounters,
) -> bool {
    let i = ports
        .iter()
        .position(|p| p.on_link(&to.addr))
        .or_else(|| ports.iter().position(|p| p.has_gateway_for(&to.addr)));
    match i {
        Some(i) => {
            if !ports[i].send_udp(to, data) {
                c.udp_send_full += 1;
            }
            true
        }
        None => {
            c.no_link_for_endpoint += 1;
            false
        }
    }
}

/// Acts on one tunnel result: send a datagram, or deliver a packet to the overlay.
fn act<D: NetDevice, R: CryptoRngCore>(
    o: &mut Overlay<R>,
    ports: &mut [Port<D>],
    r: Outcome,
) -> bool {
    match r {
        Outcome::Send(to, n) => {
            send_underlay(
                ports,
                socket_to_endpoint(to),
                &o.outbuf[..n],
                &mut o.counters,
            );
            true
        }
        Outcome::Deliver(n) => {
            o.deliver(n);
            true
        }
        Outcome::Nothing => false,
    }
}

/// A [`DeviceResult`] without its borrow of the output buffer.
enum Outcome {
    Send(core::net::SocketAddr, usize),
    Deliver(usize),
    Nothing,
}

fn outcome(r: DeviceResult<'_>) -> Outcome {
    match r {
        DeviceResult::WriteToNetwork { to, datagram, .. } => Outcome::Send(to, datagram.len()),
        DeviceResult::WriteToTunnelV4 { packet, .. }
        | DeviceResult::WriteToTunnelV6 { packet, .. } => Outcome::Deliver(packet.len()),
        DeviceResult::Done | DeviceResult::Err(_) => Outcome::Nothing,
    }
}

/// Most results taken from one tunnel call site per poll, so a misbehaving peer cannot
/// keep the loop from sleeping forever.
const MAX_BURST: usize = 64;

fn run_overlay<D: NetDevice, R: CryptoRngCore>(
    o: &mut Overlay<R>,
    ports: &mut [Port<D>],
    now: Instant,
    wnow: Now,
    console: &mut dyn Write,
) -> bool {
    let mut busy = false;
    // 1. Datagrams from the links into the tunnel.
    for i in 0..ports.len() {
        for _ in 0..MAX_BURST {
            let Some((n, src)) = ports[i].recv_udp(&mut o.inbuf[..]) else {
                break;
            };
            busy = true;
            let r = outcome(o.device.decapsulate(
                now,
                endpoint_to_socket(src),
                &o.inbuf[..n],
                &mut o.outbuf[..],
            ));
            act(o, ports, r);
            // A completed handshake releases packets that waited for it.
            for _ in 0..MAX_BURST {
                let r = outcome(o.device.dequeue(now, &mut o.outbuf[..]));
                if !act(o, ports, r) {
                    break;
                }
            }
        }
    }
    // 2. The overlay interface and its services.
    let before = o.counters_snapshot();
    o.iface.poll(now, &mut o.tun, &mut o.services.sockets);
    if o.services.run(&o.iface, now, console) {
        o.iface.poll(now, &mut o.tun, &mut o.services.sockets);
        busy = true;
    }
    // 3. What the overlay sent: encrypt and send.
    for _ in 0..MAX_BURST {
        let Some(n) = o.next_outbound() else { break };
        busy = true;
        let r = outcome(o.device.encapsulate(wnow, &o.inbuf[..n], &mut o.outbuf[..]));
        act(o, ports, r);
    }
    // 4. Timers: handshakes, retries, keepalives.
    for _ in 0..MAX_BURST {
        let r = o.device.update_timers(wnow, &mut o.outbuf[..]);
        if matches!(r, DeviceResult::Done) {
            break;
        }
        let r = outcome(r);
        busy |= act(o, ports, r);
    }
    busy |= before != o.counters_snapshot();
    // Send what the tunnel queued on the links' sockets.
    for p in ports.iter_mut() {
        p.flush(now);
    }
    busy
}

impl<R: CryptoRngCore> Overlay<R> {
    fn counters_snapshot(&self) -> (u64, u64) {
        let c = self.device.counters();
        (c.rx_data, c.tx_data)
    }
}

#[cfg(test)]
mod tests;
