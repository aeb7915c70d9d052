//! The appliance at run time: the [`router`](crate::router) over every NIC and the
//! tunnel, and the local stack, one smoltcp interface on the router's local port holding
//! all of the appliance's addresses, with its [`services`] (TCP echo on port 7, the
//! `vdcnet.ping=` prober) and the [`metrics`](crate::metrics) service.
//!
//! Sans-I/O in the sense that matters: the caller passes `now`, wall time, the devices, the
//! RNG and the console; nothing here reads a clock or touches hardware.

mod dns;
mod gateway;
mod mycelium;
mod routing;
mod services;
mod tunnel;

pub use crate::router::{Counters as RouterCounters, Discard, LinkCounters, ALL_DROPS};
pub use gateway::RuntimeCounters as GatewayRuntimeCounters;
pub use services::{ECHO_PORT, ECHO_SOCKETS};

use crate::config::{Config, ConfigError, LinkConfig};
use crate::metrics::MetricsServer;
use crate::router::packet::ETH_HEADER;
use crate::router::{Link, Router, MAX_FRAME};
use crate::tunnel::Counters as TunnelCounters;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use rand_core::CryptoRngCore;
use services::Services;
use smoltcp::iface::{Config as IfaceConfig, Interface};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use vdcnet_hal::net::NetDevice;

/// Addresses the local stack holds, over all links and the tunnel.
pub const MAX_LOCAL_ADDRESSES: usize = 8;

/// What the boot code hands the appliance besides the config.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Seed for smoltcp (TCP initial sequence numbers, ports) and the masquerade.
    pub seed: u64,
    /// Addresses to ping once a second (`vdcnet.ping=`).
    pub ping: Vec<IpAddress>,
    /// Print the counters on the console this often (`vdcnet.stats=`).
    pub stats_secs: Option<u32>,
    /// The heap's size, when known: the gateway holds no more connections than fit in it.
    pub heap_bytes: Option<usize>,
}

/// The running appliance.
pub struct Appliance<D, R> {
    router: Router<D, R>,
    iface: Interface,
    services: Services,
    /// The routing protocol, when the config has `[Routing]`.
    routing: Option<routing::Routing>,
    metrics: MetricsServer,
    /// The web gateway, when the config has `[Gateway]`.
    gateway: Option<gateway::GatewayService>,
    /// Its authoritative DNS, when the config has `[DNS]`.
    dns: Option<dns::DnsService>,
    /// The Mycelium node, when the config has `[Mycelium]`.
    mycelium: Option<mycelium::MyceliumService>,
    /// When the appliance started (the metrics' uptime).
    started: Instant,
    /// The time of the latest poll.
    now: Instant,
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
        mut rng: Option<R>,
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
            let max = slots[*i]
                .as_ref()
                .map_or(MAX_FRAME, |d| d.max_frame_len())
                .min(MAX_FRAME)
                - ETH_HEADER;
            if let Some(mtu) = link.mtu.filter(|&m| m as usize > max) {
                errors.push(err(
                    link.line,
                    format!("MTU {mtu} is larger than this NIC carries ({max})"),
                ));
            }
        }
        let total: usize = config
            .links
            .iter()
            .map(|l| l.addresses.len())
            .sum::<usize>()
            + config.interface.as_ref().map_or(0, |i| i.addresses.len());
        if total > MAX_LOCAL_ADDRESSES {
            errors.push(err(
                0,
                format!(
                    "the [Link] and [Interface] sections give {total} addresses; the appliance holds at most {MAX_LOCAL_ADDRESSES}"
                ),
            ));
        }
        chosen.sort_by_key(|c| c.1.line);
        let mtus: Vec<usize> = chosen
            .iter()
            .map(|(i, l)| {
                let max = slots[*i]
                    .as_ref()
                    .map_or(MAX_FRAME, |d| d.max_frame_len())
                    .min(MAX_FRAME)
                    - ETH_HEADER;
                l.mtu.map_or(max, |m| usize::from(m).min(max))
            })
            .collect();
        let link_cfgs: Vec<&LinkConfig> = chosen.iter().map(|c| c.1).collect();
        let mycelium_seed = mycelium::seed(config, rng.as_mut(), &mut errors);
        let tunnel = match (&config.interface, rng) {
            (None, _) => None,
            (Some(i), None) => {
                errors.push(err(
                    i.line,
                    "[Interface] needs a hardware random number generator for its keys, and this machine has none".into(),
                ));
                None
            }
            (Some(i), Some(rng)) => match tunnel::build(i, &config.peers, &link_cfgs, &mtus, rng) {
                Ok(t) => Some(t),
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
        let mut links = Vec::new();
        for (k, (i, link)) in chosen.into_iter().enumerate() {
            let Some(dev) = slots[i].take() else { continue };
            let seed = opts.seed ^ (k as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            links.push(Link::new(
                dev,
                &mycelium::link_config(config, link),
                seed,
                now,
            ));
        }
        let tunnel_addrs = config
            .interface
            .as_ref()
            .map(|i| i.addresses.clone())
            .unwrap_or_default();
        let mut router = Router::new(links, tunnel, tunnel_addrs, now);
        if let Some(m) = &config.mycelium {
            router.attach_mycelium(mycelium::node_address(m));
        }
        let mut cfg = IfaceConfig::new(HardwareAddress::Ip);
        cfg.random_seed = opts.seed;
        let mut iface = Interface::new(cfg, &mut router.local, now);
        let addrs = router.local_addresses();
        iface.update_ip_addrs(|a| {
            for c in &addrs {
                let _ = a.push(*c);
            }
        });
        // The router picks the real next hop; on an IP-medium interface a default route
        // only tells smoltcp that every destination is reachable through the router.
        if let Some(v4) = addrs.iter().find_map(|c| match c {
            IpCidr::Ipv4(c) => Some(c.address()),
            IpCidr::Ipv6(_) => None,
        }) {
            let _ = iface.routes_mut().add_default_ipv4_route(v4);
        }
        if let Some(v6) = addrs.iter().find_map(|c| match c {
            IpCidr::Ipv6(c) => Some(c.address()),
            IpCidr::Ipv4(_) => None,
        }) {
            let _ = iface.routes_mut().add_default_ipv6_route(v6);
        }
        // The gateway's connections bounded by the heap, and the socket set sized for
        // them once (growing it by doubling would want a second, larger copy at once).
        let gateway_config = config.gateway.as_ref().map(|g| {
            let mut g = g.clone();
            if let Some(heap) = opts.heap_bytes {
                let fit = gateway::connections_that_fit(heap);
                g.max_connections = g.max_connections.min(fit);
            }
            g
        });
        let sockets = 64 + gateway_config.as_ref().map_or(0, gateway::sockets_needed);
        let mut services = Services::with_capacity(sockets);
        for target in &opts.ping {
            if !router.has_route(*target) {
                return Err(alloc::vec![err(
                    0,
                    format!("vdcnet.ping={target}: no link reaches it")
                )]);
            }
            services.add_probe(*target, now);
        }
        let routing = config
            .routing
            .as_ref()
            .and_then(|r| routing::Routing::start(r, config, &mut router, opts.seed, now));
        let metrics = MetricsServer::new(&config.metrics_listen(), &mut services.sockets);
        let gateway = gateway_config.as_ref().map(|g| {
            gateway::GatewayService::new(
                g,
                mycelium::gateway_sources(config),
                &mut services.sockets,
                opts.seed,
                now,
            )
        });
        let dns = match config
            .dns
            .as_ref()
            .map(|d| dns::DnsService::new(d, &mut services.sockets, now))
        {
            Some(Err(e)) => {
                let line = config.dns.as_ref().map_or(0, |d| d.line);
                return Err(alloc::vec![err(line, format!("[DNS]: {e}"))]);
            }
            Some(Ok(d)) => Some(d),
            None => None,
        };
        let mycelium = match (&config.mycelium, mycelium_seed) {
            (Some(m), Some(seed)) => Some(mycelium::MyceliumService::new(
                config,
                m,
                seed,
                &mut services.sockets,
                opts.seed,
                now,
            )),
            _ => None,
        };
        let stats = opts.stats_secs.map(|s| {
            let every = Duration::from_secs(s as u64);
            (every, now + every)
        });
        Ok(Appliance {
            router,
            iface,
            services,
            routing,
            metrics,
            gateway,
            dns,
            mycelium,
            started: now,
            now,
            stats,
        })
    }

    /// Number of links up.
    pub fn links(&self) -> usize {
        self.router.links.len()
    }

    /// Writes one line per link (name, role, MAC, addresses) and one for the tunnel.
    pub fn describe(&self, out: &mut dyn Write) {
        for (n, l) in self.router.links.iter().enumerate() {
            let m = l.mac.0;
            let role = match l.role {
                crate::config::Role::Underlay => "underlay",
                crate::config::Role::Segment => "segment",
            };
            let _ = write!(
                out,
                "vdcnet: link{n} {role} {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} mtu {}",
                m[0], m[1], m[2], m[3], m[4], m[5], l.mtu
            );
            for a in &l.addrs {
                let _ = write!(out, " {a}");
            }
            if l.dhcp.is_some() {
                let _ = write!(out, " dhcp");
            }
            if l.nat.is_some() {
                let _ = write!(out, " egress=nat");
            }
            let _ = writeln!(out);
        }
        if let Some(t) = &self.router.tunnel {
            let _ = write!(
                out,
                "vdcnet: wg0 port {} key {} peers {} mtu {}",
                t.listen_port,
                crate::config::PublicKey(t.device.public_key().0),
                t.device.peers().count(),
                t.mtu
            );
            for a in self.iface.ip_addrs() {
                let _ = write!(out, " {a}");
            }
            let _ = writeln!(out);
            for (id, p) in t.device.peers() {
                let _ = write!(
                    out,
                    "vdcnet: peer{} {}",
                    id.0,
                    crate::config::PublicKey(p.public_key().0)
                );
                match p.endpoint() {
                    Some(e) => {
                        let _ = write!(out, " endpoint {e}");
                    }
                    None => {
                        let _ = write!(out, " endpoint none");
                    }
                }
                let _ = writeln!(out);
            }
        }
        if let Some(m) = &self.mycelium {
            m.describe(self.router.mycelium.as_ref().and_then(|p| p.segment), out);
        }
        if let Some(g) = &self.gateway {
            g.describe(out);
        }
    }

    /// Re-arms every NIC's interrupt before the CPU sleeps; `true` if a frame arrived
    /// meanwhile (poll again instead of sleeping).
    pub fn arm_interrupts(&mut self) -> bool {
        let mut pending = false;
        for l in &mut self.router.links {
            pending |= l.dev.arm_interrupt();
        }
        pending
    }

    /// Counters of every link, in link order.
    pub fn counters(&self) -> Vec<LinkCounters> {
        self.router.links.iter().map(|l| l.counters).collect()
    }

    /// The router's counters.
    pub fn router_counters(&self) -> RouterCounters {
        self.router.counters()
    }

    /// The tunnel's counters, if there is a tunnel.
    pub fn tunnel_counters(&self) -> Option<TunnelCounters> {
        self.router.tunnel.as_ref().map(|t| t.device.counters())
    }

    /// Does all the work there is at `now_us` (`wall_ns`: wall clock for the tunnel's
    /// handshake timestamps): frames in and out, the tunnel, services, probes. Returns
    /// whether anything happened (the caller polls again at once instead of sleeping).
    pub fn poll(&mut self, now_us: u64, wall_ns: u64, console: &mut dyn Write) -> bool {
        let now = Instant::from_micros(now_us as i64);
        self.now = now;
        let mut busy = self.router.poll(now, wall_ns);
        if let Some(r) = self.routing.as_mut() {
            busy |= r.poll(&mut self.router, now);
        }
        self.iface
            .poll(now, &mut self.router.local, &mut self.services.sockets);
        busy |= self.services.run(&self.iface, now, console);
        let (router, started, routing, gw, dns, myc) = (
            &self.router,
            self.started,
            &self.routing,
            &self.gateway,
            &self.dns,
            &self.mycelium,
        );
        busy |= self
            .metrics
            .run(&mut self.services.sockets, now, &mut |out, service| {
                let mut snap = crate::metrics::collect(router, started, now, wall_ns, service);
                snap.babel = routing.as_ref().map(|r| r.stats(router));
                snap.gateway = gw.as_ref().map(|g| g.stats(now));
                snap.mycelium = myc.as_ref().map(|m| m.stats(router));
                snap.dns = dns.as_ref().map(|d| crate::metrics::DnsStats {
                    counters: d.counters(),
                    not_listening: d.not_listening,
                });
                let _ = snap.render(out);
            });
        if let Some(g) = self.gateway.as_mut() {
            busy |= g.run(&mut self.iface, &mut self.services.sockets, now);
            if let Some(d) = self.dns.as_mut() {
                busy |= d.run(&mut self.services.sockets, now, &|s| g.serving(s, now));
            }
        }
        if let Some(m) = self.mycelium.as_mut() {
            busy |= m.run(
                &mut self.router,
                &mut self.iface,
                &mut self.services.sockets,
                now,
            );
        }
        self.iface
            .poll(now, &mut self.router.local, &mut self.services.sockets);
        busy |= self.router.drain_local();
        if let Some((every, next)) = self.stats {
            if now >= next {
                self.stats = Some((every, now + every));
                self.write_stats(console);
            }
        }
        busy
    }

    /// One console line with every counter that matters: frames per link, the router's
    /// work and drops by reason, and the tunnel's traffic and drops by reason (last, so
    /// that everything after ` wg0 ` is the tunnel's).
    pub fn write_stats(&self, out: &mut dyn Write) {
        let _ = write!(out, "vdcnet: stats");
        for (n, c) in self.counters().iter().enumerate() {
            let _ = write!(
                out,
                " link{n} rx={} tx={} txdrop={} malformed={};",
                c.rx_frames, c.tx_frames, c.tx_dropped, c.malformed
            );
        }
        let r = self.router.counters();
        let _ = write!(
            out,
            " router fwd={} local_in={} local_out={} icmp_err={} dhcp={} ra={} probes={} probes_limited={} drops={}",
            r.forwarded,
            r.local_in,
            r.local_out,
            r.icmp_errors,
            r.dhcp_replies,
            r.router_adverts,
            r.neighbor_probes,
            r.probes_suppressed,
            r.total_drops()
        );
        for d in ALL_DROPS {
            let n = r.drop_count(d);
            if n > 0 {
                let _ = write!(out, " {d:?}={n}");
            }
        }
        let _ = write!(out, ";");
        if let Some(v) = self.router.visitor_counters() {
            let _ = write!(
                out,
                " visitors arrived={} left={} silent={} probes={}",
                v.arrived, v.left, v.silent, v.probes
            );
            for h in self.router.visiting_hosts() {
                let _ = write!(out, " here={}", h.address());
            }
            let _ = write!(out, ";");
        }
        if let Some(r) = &self.routing {
            r.write_status(self.router.routes().ways_back(), out);
        }
        if let Some(g) = &self.gateway {
            g.write_status(self.now, out);
        }
        if let Some(d) = &self.dns {
            d.write_status(out);
        }
        if let Some(m) = &self.mycelium {
            m.write_status(&self.router, out);
        }
        if let Some(t) = self.tunnel_counters() {
            let _ = write!(
                out,
                " wg0 rx={} tx={} handshakes={} drops={}",
                t.rx_data,
                t.tx_data,
                t.handshakes_completed,
                t.drops.total()
            );
            for reason in crate::tunnel::counters::ALL_DROP_REASONS {
                let n = t.drops.get(reason);
                if n > 0 {
                    let _ = write!(out, " {reason:?}={n}");
                }
            }
        }
        let _ = writeln!(out);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod gateway_tests;
#[cfg(test)]
mod mesh_tests;
#[cfg(test)]
mod metrics_tests;
#[cfg(test)]
mod neigh_tests;
#[cfg(test)]
mod routing_tests;
#[cfg(test)]
mod test_host;
#[cfg(test)]
mod test_nic;
