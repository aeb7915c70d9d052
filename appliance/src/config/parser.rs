//! The driver: one pass over the lines, routing each entry to the builder of the section
//! it is in, and the checks on the file as a whole.
//!
//! Each section is collected by a builder (`link`, `interface`, `peer`); when the next
//! header (or the end of the file) closes it, the builder checks what needs the whole
//! section and yields its config. Checks across sections use the maps in
//! [`Seen`](super::shared::Seen). Errors are collected, never returned early, so one run
//! reports everything.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::dns::{self, DnsBuilder};
use super::gateway::GatewayBuilder;
use super::interface::InterfaceBuilder;
use super::lines::{lines, BadLine, Line};
use super::link::LinkBuilder;
use super::metrics::{self, MetricsBuilder};
use super::mycelium::{self, MyceliumBuilder};
use super::peer::PeerBuilder;
use super::routing::RoutingBuilder;
use super::service::{Claimed, ServiceBuilder};
use super::shared::Seen;
use super::{
    Config, ConfigError, InterfaceConfig, LinkConfig, MetricsConfig, PeerConfig, Role,
    RoutingConfig, ServiceConfig, MAX_CONFIG_LEN, MAX_LINKS, MAX_PEERS, MAX_SERVICES,
};
use smoltcp::wire::{IpAddress, Ipv4Address};

pub(super) fn parse(text: &[u8]) -> Result<Config, Vec<ConfigError>> {
    let mut parser = Parser::default();
    if text.len() > MAX_CONFIG_LEN {
        parser.seen.errors.push(
            0,
            format!(
                "config file is {} bytes; the limit is {MAX_CONFIG_LEN}",
                text.len()
            ),
        );
        return Err(parser.seen.errors.into_sorted());
    }
    for (line, item) in lines(text) {
        match item {
            Err(bad) => parser.unreadable(line, bad),
            Ok(Line::Blank) => {}
            Ok(Line::Section(name)) => parser.open_section(line, name),
            Ok(Line::Entry { key, value }) => parser.entry(line, key, value),
        }
    }
    parser.close_section();
    parser.finish()
}

#[derive(Default)]
enum Section {
    /// Before the first header.
    #[default]
    None,
    /// Inside an unknown section, or after an unreadable header: its lines are ignored
    /// (the header is the error).
    Skip,
    Link(LinkBuilder),
    Interface(InterfaceBuilder),
    Peer(PeerBuilder),
    Routing(RoutingBuilder),
    Metrics(MetricsBuilder),
    Gateway(GatewayBuilder),
    Service(ServiceBuilder),
    Dns(DnsBuilder),
    Mycelium(MyceliumBuilder),
}

#[derive(Default)]
struct Parser {
    seen: Seen,
    section: Section,
    /// Some line could not be read at all; checks that something is *missing* from the
    /// file would only echo that error, so they are skipped.
    unreadable_lines: bool,
    link_headers: usize,
    links: Vec<LinkConfig>,
    /// `StaticLease` addresses outside their segment's subnets, with their lines.
    visiting: Vec<(Ipv4Address, usize)>,
    interface_header: Option<usize>,
    interface: Option<InterfaceConfig>,
    peer_headers: usize,
    first_peer_header: Option<usize>,
    peers: Vec<PeerConfig>,
    routing_header: Option<usize>,
    routing: Option<RoutingConfig>,
    metrics_header: Option<usize>,
    metrics: Option<MetricsConfig>,
    gateway_header: Option<usize>,
    /// The `[Gateway]` section, finished at the end of the file with the services.
    gateway: Option<GatewayBuilder>,
    service_headers: usize,
    first_service_header: Option<usize>,
    claimed: Claimed,
    services: Vec<ServiceConfig>,
    /// The `[DNS]` section, finished at the end of the file with the gateway.
    dns: Option<DnsBuilder>,
    mycelium_header: Option<usize>,
    mycelium: Option<super::MyceliumConfig>,
}

impl Parser {
    /// A line that is not even `Key = value` or a header. If it looks like a broken header,
    /// the lines after it are skipped (they belong to a section we can't name); otherwise
    /// the current section is marked as missing something.
    fn unreadable(&mut self, line: usize, bad: BadLine) {
        self.seen.error(line, bad.message);
        self.unreadable_lines = true;
        if bad.header {
            self.close_section();
            self.section = Section::Skip;
        } else {
            match &mut self.section {
                Section::None | Section::Skip | Section::Metrics(_) => {}
                Section::Link(link) => link.damaged = true,
                Section::Interface(interface) => interface.damaged = true,
                Section::Peer(peer) => peer.damaged = true,
                Section::Routing(routing) => routing.damaged = true,
                Section::Gateway(gateway) => gateway.damaged = true,
                Section::Service(service) => service.damaged = true,
                Section::Dns(d) => d.damaged = true,
                Section::Mycelium(m) => m.damaged = true,
            }
        }
    }

    fn open_section(&mut self, line: usize, name: &str) {
        self.close_section();
        // A section over a limit is still parsed, so its own errors are reported too;
        // `keep` says whether its config makes it into the result.
        self.section = if name.eq_ignore_ascii_case("Link") {
            self.link_headers += 1;
            let keep = self.link_headers <= MAX_LINKS;
            if !keep {
                self.seen.error(
                    line,
                    format!("more than {MAX_LINKS} [Link] sections; the image drives at most {MAX_LINKS} NICs"),
                );
            }
            Section::Link(LinkBuilder::new(line, keep))
        } else if name.eq_ignore_ascii_case("Interface") {
            let keep = match self.interface_header {
                Some(first) => {
                    self.seen.error(
                        line,
                        format!("second [Interface] section; there can be only one (the first is at line {first})"),
                    );
                    false
                }
                None => {
                    self.interface_header = Some(line);
                    true
                }
            };
            Section::Interface(InterfaceBuilder::new(line, keep))
        } else if name.eq_ignore_ascii_case("Peer") {
            self.peer_headers += 1;
            self.first_peer_header.get_or_insert(line);
            let keep = self.peer_headers <= MAX_PEERS;
            if !keep {
                self.seen
                    .error(line, format!("more than {MAX_PEERS} [Peer] sections"));
            }
            Section::Peer(PeerBuilder::new(line, keep))
        } else if name.eq_ignore_ascii_case("Routing") {
            let keep = match self.routing_header {
                Some(first) => {
                    self.seen.error(
                        line,
                        format!("second [Routing] section; there can be only one (the first is at line {first})"),
                    );
                    false
                }
                None => {
                    self.routing_header = Some(line);
                    true
                }
            };
            Section::Routing(RoutingBuilder::new(line, keep))
        } else if name.eq_ignore_ascii_case("Gateway") {
            let keep = match self.gateway_header {
                Some(first) => {
                    self.seen.error(
                        line,
                        format!("second [Gateway] section; there can be only one (the first is at line {first})"),
                    );
                    false
                }
                None => {
                    self.gateway_header = Some(line);
                    true
                }
            };
            Section::Gateway(GatewayBuilder::new(line, keep))
        } else if name.eq_ignore_ascii_case("Service") {
            self.service_headers += 1;
            self.first_service_header.get_or_insert(line);
            let keep = self.service_headers <= MAX_SERVICES;
            if !keep {
                self.seen
                    .error(line, format!("more than {MAX_SERVICES} [Service] sections"));
            }
            Section::Service(ServiceBuilder::new(line, keep))
        } else if name.eq_ignore_ascii_case("Metrics") {
            let keep = match self.metrics_header {
                Some(first) => {
                    self.seen.error(
                        line,
                        format!("second [Metrics] section; there can be only one (the first is at line {first})"),
                    );
                    false
                }
                None => {
                    self.metrics_header = Some(line);
                    true
                }
            };
            Section::Metrics(MetricsBuilder::new(line, keep))
        } else if name.eq_ignore_ascii_case("DNS") {
            let first = self.dns.as_ref().map(DnsBuilder::header);
            if let Some(first) = first {
                self.seen.error(
                    line,
                    format!("second [DNS] section; there can be only one (the first is at line {first})"),
                );
            }
            Section::Dns(DnsBuilder::new(line, first.is_none()))
        } else if name.eq_ignore_ascii_case("Mycelium") {
            let keep = match self.mycelium_header {
                Some(first) => {
                    self.seen.error(
                        line,
                        format!("second [Mycelium] section; there can be only one (the first is at line {first})"),
                    );
                    false
                }
                None => {
                    self.mycelium_header = Some(line);
                    true
                }
            };
            Section::Mycelium(MyceliumBuilder::new(line, keep))
        } else {
            self.seen.error(
                line,
                format!(
                    "unknown section [{name}]; expected [Link], [Interface], [Peer], [Routing], [Metrics], [Gateway], [Service], [DNS] or [Mycelium]"
                ),
            );
            Section::Skip
        };
    }

    fn entry(&mut self, line: usize, key: &str, value: &str) {
        let seen = &mut self.seen;
        match &mut self.section {
            Section::None => seen.error(
                line,
                format!("{key:?} comes before any section; start with a [Link] header"),
            ),
            Section::Skip => {}
            Section::Link(link) => link.entry(seen, line, key, value),
            Section::Interface(interface) => interface.entry(seen, line, key, value),
            Section::Peer(peer) => peer.entry(seen, line, key, value),
            Section::Routing(routing) => routing.entry(seen, line, key, value),
            Section::Metrics(m) => m.entry(seen, line, key, value),
            Section::Gateway(gateway) => gateway.entry(seen, line, key, value),
            Section::Service(service) => service.entry(seen, line, key, value),
            Section::Dns(d) => d.entry(seen, line, key, value),
            Section::Mycelium(m) => m.entry(seen, line, key, value),
        }
    }

    fn close_section(&mut self) {
        match core::mem::take(&mut self.section) {
            Section::None | Section::Skip => {}
            Section::Link(link) => {
                if let Some(link) = link.finish(&mut self.seen, &mut self.visiting) {
                    self.links.push(link);
                }
            }
            Section::Interface(interface) => {
                if let Some(interface) = interface.finish(&mut self.seen) {
                    self.interface = Some(interface);
                }
            }
            Section::Peer(peer) => {
                if let Some(peer) = peer.finish(&mut self.seen) {
                    self.peers.push(peer);
                }
            }
            Section::Routing(routing) => {
                if let Some(routing) = routing.finish(&mut self.seen) {
                    self.routing = Some(routing);
                }
            }
            Section::Metrics(m) => {
                if let Some(m) = m.finish(&mut self.seen) {
                    self.metrics = Some(m);
                }
            }
            // Finished at the end of the file, when its services are known.
            Section::Gateway(gateway) => {
                if self.gateway.is_none() {
                    self.gateway = Some(gateway);
                } else {
                    // A second [Gateway]: its own errors are reported, nothing is kept.
                    let _ = gateway.finish(&mut self.seen, Vec::new());
                }
            }
            Section::Service(service) => {
                if let Some(service) = service.finish(&mut self.seen, &mut self.claimed) {
                    self.services.push(service);
                }
            }
            // Finished at the end of the file, with the gateway; a second one only
            // reports its own errors.
            Section::Dns(d) if self.dns.is_none() => self.dns = Some(d),
            Section::Dns(_) => {}
            Section::Mycelium(m) => {
                if let Some(m) = m.finish(&mut self.seen) {
                    self.mycelium = Some(m);
                }
            }
        }
    }

    fn finish(mut self) -> Result<Config, Vec<ConfigError>> {
        if self.link_headers == 0 && !self.unreadable_lines {
            self.seen.error(
                0,
                String::from("no [Link] section; the appliance needs at least one NIC address"),
            );
        }
        if let (Some(peer), None, false) = (
            self.first_peer_header,
            self.interface_header,
            self.unreadable_lines,
        ) {
            self.seen.error(
                peer,
                String::from("[Peer] without an [Interface] section to belong to"),
            );
        }
        if let (Some(routing), None, false) = (
            self.routing_header,
            self.interface_header,
            self.unreadable_lines,
        ) {
            self.seen.error(
                routing,
                String::from("[Routing] needs an [Interface]: the protocol runs inside the tunnel"),
            );
        }
        if let Some(m) = &self.metrics {
            metrics::check_addresses(&mut self.seen, m);
        }
        self.check_visiting();
        let gateway = self.finish_gateway();
        let dns = self.dns.take().and_then(|d| {
            let links_ok = self.link_headers == self.links.len();
            let has_gateway = self.gateway_header.is_some() || self.unreadable_lines;
            dns::finish(
                d,
                &mut self.seen,
                gateway.as_ref(),
                has_gateway,
                &self.links,
                links_ok,
            )
        });
        mycelium::check(
            &mut self.seen,
            self.mycelium.as_ref(),
            self.mycelium_header,
            &self.links,
        );
        if !self.seen.errors.is_empty() {
            return Err(self.seen.errors.into_sorted());
        }
        Ok(Config {
            links: self.links,
            interface: self.interface,
            peers: self.peers,
            routing: self.routing,
            metrics: self.metrics,
            gateway,
            dns,
            mycelium: self.mycelium,
        })
    }

    /// A static lease outside its segment's subnets is for a workload of another segment
    /// of the VDC that may visit this one: the routing protocol must announce its host
    /// route, so it needs `[Routing]` and an address inside its `Networks`, never one of
    /// the node's own.
    fn check_visiting(&mut self) {
        let own = |a: IpAddress| {
            self.links
                .iter()
                .flat_map(|l| l.addresses.iter())
                .chain(self.interface.iter().flat_map(|i| i.addresses.iter()))
                .any(|c| c.address() == a)
        };
        let mut errors = Vec::new();
        for &(ip, line) in &self.visiting {
            let a = IpAddress::Ipv4(ip);
            let message = if own(a) {
                format!("StaticLease address {ip} is one of this node's own addresses")
            } else if ip.is_multicast()
                || ip.is_broadcast()
                || ip.is_loopback()
                || ip.is_unspecified()
            {
                format!("StaticLease address {ip} is not a unicast host address")
            } else {
                match &self.routing {
                    None if self.routing_header.is_some() => continue,
                    None => format!(
                        "StaticLease address {ip} lies outside this segment's subnets: a workload visiting from another segment needs [Routing] to announce its host route"
                    ),
                    Some(r) if !r.networks.iter().any(|n| n.contains_addr(&a)) => format!(
                        "StaticLease address {ip} lies outside this segment's subnets and outside the VDC's Networks"
                    ),
                    Some(_) => continue,
                }
            };
            errors.push((line, message));
        }
        for (line, message) in errors {
            self.seen.error(line, message);
        }
    }

    /// `[Gateway]` with its `[Service]`s, and its `Listen` addresses checked against the
    /// underlay links.
    fn finish_gateway(&mut self) -> Option<super::GatewayConfig> {
        let Some(builder) = self.gateway.take() else {
            if let (Some(service), false) = (self.first_service_header, self.unreadable_lines) {
                self.seen.error(
                    service,
                    String::from("[Service] without a [Gateway] section to serve it"),
                );
            }
            return None;
        };
        if self.service_headers == 0 && !self.unreadable_lines {
            self.seen.error(
                builder.header(),
                String::from("[Gateway] has no [Service] sections; it would serve nothing"),
            );
        }
        for &(addr, line) in &builder.listen {
            let owner = self
                .links
                .iter()
                .find(|l| l.addresses.iter().any(|c| c.address() == addr));
            match owner {
                Some(link) if link.role == Role::Underlay => {}
                Some(link) => self.seen.error(
                    line,
                    format!("Listen {addr} belongs to the segment [Link] at line {}; the gateway listens on underlay links only", link.line),
                ),
                // A link with errors is not in `links`; don't pile on.
                None if self.link_headers > self.links.len() => {}
                None => self.seen.error(
                    line,
                    format!("Listen {addr} is not an Address of any [Link]"),
                ),
            }
        }
        let services = core::mem::take(&mut self.services);
        builder.finish(&mut self.seen, services)
    }
}
