//! `[DNS]`: the gateway as the authoritative name server of its zones.
//!
//! ```text
//! [DNS]
//! Zone = example.org                     # required, repeatable (or a list), up to 4
//! NameServer = ns1.example.org, 203.0.113.10, 2001:db8::10
//!                                        # required, repeatable, up to 8: a name, then
//!                                        # its glue addresses (required for a name
//!                                        # inside a Zone, refused for one outside)
//! Hostmaster = hostmaster.example.org    # optional: the SOA's mailbox, as a name;
//!                                        # default hostmaster.<zone> for each zone
//! TTL = 30                               # optional, s, 1..=86400: of the A/AAAA answers,
//!                                        # and the negative-caching time (SOA MINIMUM)
//! Listen = 203.0.113.10                  # optional, repeatable: addresses of underlay
//!                                        # [Link]s; default the [Gateway] Listen ones
//! RateLimit = 100                        # optional: UDP responses/s per client /24 or
//!                                        # /56; 0 turns the limit off
//! ```
//!
//! The server answers UDP and TCP on port [`DNS_PORT`] of each `Listen` address. Every
//! `NameServer` is a name server of every `Zone` (the gateways are each other's
//! secondaries in the sense that they answer the same zones). The names answered are
//! those of the `[Service]` sections (`tls` and `http`; a `tcp` service's name is only a
//! label) that lie inside a zone, the apex included; a service name outside every zone
//! is served by the gateway and simply not answered in DNS. The SOA and NS records have
//! a TTL of [`DNS_ZONE_TTL`]; the SOA serial is 1 (the zone has no secondaries to
//! notify: every gateway is a primary of its own).
//!
//! A `[DNS]` needs a `[Gateway]` (its names are the services' names): the checks that
//! need the whole file are made by [`finish`] at its end.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::IpAddr;

use smoltcp::wire::IpAddress;

use super::shared::{lookup, unknown_key, Seen, Single};
use super::values;
use super::{GatewayConfig, LinkConfig, NamePattern, Role, ServiceMode};
use crate::dns::DNS_PORT;
use crate::dns::{ServerSpec, ZoneSpec};

/// `Zone`s in `[DNS]`.
pub const MAX_DNS_ZONES: usize = 4;
/// `NameServer`s in `[DNS]`.
pub const MAX_NAME_SERVERS: usize = 8;
/// Glue addresses per `NameServer`.
pub const MAX_GLUE: usize = 4;
/// `TTL` when `[DNS]` does not give one.
pub const DEFAULT_DNS_TTL: u32 = 30;
/// Accepted `TTL` values, in seconds.
pub const DNS_TTL_SECS: core::ops::RangeInclusive<u32> = 1..=86_400;
/// `RateLimit` when `[DNS]` does not give one.
pub const DEFAULT_DNS_RATE_LIMIT: u16 = 100;
/// The TTL of the SOA and NS records and the glue, in seconds.
pub const DNS_ZONE_TTL: u32 = 3600;

/// The `[DNS]` section, checked against the `[Gateway]` and its services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Zone apexes, lowercase, unique.
    pub zones: Vec<String>,
    /// Name servers (lowercase) with their glue addresses.
    pub name_servers: Vec<(String, Vec<IpAddress>)>,
    /// `Hostmaster`, if given (else `hostmaster.<zone>` per zone).
    pub hostmaster: Option<String>,
    /// TTL of the A/AAAA answers and of negative answers.
    pub ttl: u32,
    /// Addresses served on port [`DNS_PORT`], UDP and TCP.
    pub listen: Vec<IpAddress>,
    /// UDP responses per second per client network; 0 is no limit.
    pub rate_limit: u16,
    /// The names answered, each once, in `[Service]` order; a name's position here is its
    /// `name_index` for [`DnsServer::set_addresses`](crate::dns::DnsServer::set_addresses).
    pub names: Vec<DnsName>,
    /// Line of the `[DNS]` header.
    pub line: usize,
}

/// One name answered with A/AAAA records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsName {
    /// The name, exact or wildcard.
    pub pattern: NamePattern,
    /// The `[Service]`s with this name (indices into [`GatewayConfig::services`]): the
    /// gateways that serve one of them healthily are the addresses to answer.
    pub services: Vec<usize>,
}

impl DnsConfig {
    /// What the DNS core needs to start.
    pub fn server_spec(&self) -> ServerSpec {
        ServerSpec {
            zones: self
                .zones
                .iter()
                .map(|apex| ZoneSpec {
                    apex: apex.clone(),
                    hostmaster: self
                        .hostmaster
                        .clone()
                        .unwrap_or_else(|| format!("hostmaster.{apex}")),
                    serial: 1,
                    refresh: DNS_ZONE_TTL,
                    retry: 600,
                    expire: 604_800,
                    minimum: self.ttl,
                    name_servers: self
                        .name_servers
                        .iter()
                        .map(|(name, glue)| {
                            let inside = in_zone(name, apex);
                            let glue = glue.iter().map(|a| IpAddr::from(*a));
                            (
                                name.clone(),
                                if inside { glue.collect() } else { Vec::new() },
                            )
                        })
                        .collect(),
                })
                .collect(),
            ttl: self.ttl,
            zone_ttl: DNS_ZONE_TTL,
            names: self.names.iter().map(|n| n.pattern.clone()).collect(),
            rate_limit: self.rate_limit,
        }
    }
}

/// Whether `name` is `apex` or below it (both lowercase, no trailing dot).
fn in_zone(name: &str, apex: &str) -> bool {
    name == apex
        || name
            .strip_suffix(apex)
            .is_some_and(|head| head.ends_with('.'))
}

#[derive(Clone, Copy)]
enum DnsKey {
    Zone,
    NameServer,
    Hostmaster,
    Ttl,
    Listen,
    RateLimit,
}

const DNS_KEYS: &[(&str, DnsKey)] = &[
    ("Zone", DnsKey::Zone),
    ("NameServer", DnsKey::NameServer),
    ("Hostmaster", DnsKey::Hostmaster),
    ("TTL", DnsKey::Ttl),
    ("Listen", DnsKey::Listen),
    ("RateLimit", DnsKey::RateLimit),
];

pub(super) struct DnsBuilder {
    header: usize,
    keep: bool,
    /// A line of this section could not be read; don't report missing keys.
    pub(super) damaged: bool,
    zones: Vec<(String, usize)>,
    name_servers: Vec<(String, Vec<IpAddress>, usize)>,
    hostmaster: Single<String>,
    ttl: Single<u32>,
    listen: Vec<(IpAddress, usize)>,
    rate_limit: Single<u16>,
}

/// A DNS name given as a value: lowercase, no trailing dot.
fn dns_name(key: &str, text: &str) -> Result<String, String> {
    match NamePattern::parse(text) {
        Ok(NamePattern::Exact(name)) => Ok(name),
        _ => Err(format!(
            "{key} {text:?} is not a DNS name (letters, digits, '-', '_' and dots; labels up to 63 characters)"
        )),
    }
}

/// Seconds in [`DNS_TTL_SECS`].
fn ttl(text: &str) -> Result<u32, String> {
    let range = DNS_TTL_SECS;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("TTL {text:?} is not a decimal number"));
    }
    text.parse::<u32>()
        .ok()
        .filter(|v| range.contains(v))
        .ok_or_else(|| {
            format!(
                "TTL {text:?} is out of range; expected {}..={} seconds",
                range.start(),
                range.end()
            )
        })
}

impl DnsBuilder {
    pub(super) fn new(header: usize, keep: bool) -> DnsBuilder {
        DnsBuilder {
            header,
            keep,
            damaged: false,
            zones: Vec::new(),
            name_servers: Vec::new(),
            hostmaster: Single::default(),
            ttl: Single::default(),
            listen: Vec::new(),
            rate_limit: Single::default(),
        }
    }

    pub(super) fn entry(&mut self, seen: &mut Seen, line: usize, key: &str, value: &str) {
        let Some((name, key)) = lookup(key, DNS_KEYS) else {
            return unknown_key(seen, line, key, "[DNS]");
        };
        if value.is_empty() {
            return seen.error(line, format!("{name} has no value"));
        }
        match key {
            DnsKey::Zone => values::list_items(value)
                .map(|item| self.zone(item, line))
                .filter_map(Result::err)
                .for_each(|message| seen.error(line, message)),
            DnsKey::NameServer => {
                if let Err(message) = self.name_server(value, line) {
                    seen.error(line, message);
                }
            }
            DnsKey::Hostmaster => self
                .hostmaster
                .set(seen, name, line, |_| dns_name(name, value)),
            DnsKey::Ttl => self.ttl.set(seen, name, line, |_| ttl(value)),
            DnsKey::Listen => values::list_items(value)
                .map(|item| self.listen(item, line))
                .filter_map(Result::err)
                .for_each(|message| seen.error(line, message)),
            DnsKey::RateLimit => self.rate_limit.set(seen, name, line, |_| {
                values::number(name, value, 0..=u16::MAX)
            }),
        }
    }

    fn zone(&mut self, item: &str, line: usize) -> Result<(), String> {
        let zone = dns_name("Zone", item)?;
        if let Some((_, first)) = self.zones.iter().find(|(z, _)| *z == zone) {
            return Err(format!("Zone {zone} is already given at line {first}"));
        }
        if self.zones.len() >= MAX_DNS_ZONES {
            return Err(format!("more than {MAX_DNS_ZONES} Zones"));
        }
        self.zones.push((zone, line));
        Ok(())
    }

    fn name_server(&mut self, value: &str, line: usize) -> Result<(), String> {
        let mut items = values::list_items(value);
        let name = dns_name("NameServer", items.next().unwrap_or(""))?;
        if let Some((_, _, first)) = self.name_servers.iter().find(|(n, _, _)| *n == name) {
            return Err(format!(
                "NameServer {name} is already given at line {first}"
            ));
        }
        let mut glue = Vec::new();
        for item in items {
            let Some(addr) = values::ip(item) else {
                return Err(format!(
                    "NameServer {name}: {item:?} is not an IP address (give the name, then its addresses)"
                ));
            };
            if let Some(kind) = values::non_unicast_kind(addr) {
                return Err(format!("NameServer {name}: {addr} is {kind}"));
            }
            if glue.contains(&addr) {
                return Err(format!("NameServer {name}: {addr} is given twice"));
            }
            if glue.len() >= MAX_GLUE {
                return Err(format!("NameServer {name}: more than {MAX_GLUE} addresses"));
            }
            glue.push(addr);
        }
        if self.name_servers.len() >= MAX_NAME_SERVERS {
            return Err(format!("more than {MAX_NAME_SERVERS} NameServers"));
        }
        self.name_servers.push((name, glue, line));
        Ok(())
    }

    fn listen(&mut self, item: &str, line: usize) -> Result<(), String> {
        let Some(addr) = values::ip(item) else {
            return Err(format!(
                "Listen {item:?} is not an IP address (no port: DNS is on port {DNS_PORT})"
            ));
        };
        if let Some((_, first)) = self.listen.iter().find(|(a, _)| *a == addr) {
            return Err(format!("Listen {addr} is already given at line {first}"));
        }
        if self.listen.len() >= super::MAX_LISTEN {
            return Err(format!("more than {} Listen addresses", super::MAX_LISTEN));
        }
        self.listen.push((addr, line));
        Ok(())
    }

    /// Line of the `[DNS]` header.
    pub(super) fn header(&self) -> usize {
        self.header
    }
}

/// Closes `[DNS]` once the whole file is read: it needs the `[Gateway]` (and its
/// services) and the links. `gateway_header` says whether the file has a `[Gateway]` at
/// all (one with errors yields no `gateway`, and is not reported again here); `links_ok`
/// is false when some `[Link]` had errors (a `Listen` address may belong to it).
pub(super) fn finish(
    builder: DnsBuilder,
    seen: &mut Seen,
    gateway: Option<&GatewayConfig>,
    gateway_header: bool,
    links: &[LinkConfig],
    links_ok: bool,
) -> Option<DnsConfig> {
    let header = builder.header;
    if !gateway_header {
        seen.error(
            header,
            String::from("[DNS] needs a [Gateway]: it answers for the gateway's service names, with the gateway's public addresses"),
        );
    }
    if builder.zones.is_empty() && !builder.damaged {
        seen.error(
            header,
            String::from("[DNS] has no Zone (e.g. Zone = example.org)"),
        );
    }
    if builder.name_servers.is_empty() && !builder.damaged {
        seen.error(
            header,
            String::from(
                "[DNS] has no NameServer (e.g. NameServer = ns1.example.org, 203.0.113.10)",
            ),
        );
    }
    let zones: Vec<String> = builder.zones.iter().map(|(z, _)| z.clone()).collect();
    for (name, glue, line) in &builder.name_servers {
        let inside = zones.iter().any(|z| in_zone(name, z));
        if inside && glue.is_empty() {
            seen.error(
                *line,
                format!("NameServer {name} is inside a Zone: give its addresses (glue), e.g. NameServer = {name}, 203.0.113.10"),
            );
        }
        if !inside && !glue.is_empty() && !zones.is_empty() {
            seen.error(
                *line,
                format!("NameServer {name} is outside every Zone: its addresses are another zone's to give; name it alone"),
            );
        }
    }
    for &(addr, line) in &builder.listen {
        match links.iter().find(|l| l.addresses.iter().any(|c| c.address() == addr)) {
            Some(link) if link.role == Role::Underlay => {}
            Some(link) => seen.error(
                line,
                format!("Listen {addr} belongs to the segment [Link] at line {}; DNS listens on underlay links only", link.line),
            ),
            None if !links_ok => {}
            None => seen.error(line, format!("Listen {addr} is not an Address of any [Link]")),
        }
    }
    let gateway = gateway?;
    let mut names: Vec<DnsName> = Vec::new();
    for (index, service) in gateway.services.iter().enumerate() {
        if matches!(service.mode, ServiceMode::Tcp { .. }) {
            continue;
        }
        let suffix = match &service.name {
            NamePattern::Exact(n) | NamePattern::Wildcard(n) => n,
        };
        if !zones.iter().any(|z| in_zone(suffix, z)) {
            continue;
        }
        if let Some(name) = names.iter_mut().find(|n| n.pattern == service.name) {
            name.services.push(index);
            continue;
        }
        if let Some((ns, _, line)) = builder
            .name_servers
            .iter()
            .find(|(n, _, _)| service.name == NamePattern::Exact(n.clone()))
        {
            seen.error(
                *line,
                format!("NameServer {ns} is also the name of the [Service] at line {}; give the name server a name of its own", service.line),
            );
        }
        names.push(DnsName {
            pattern: service.name.clone(),
            services: alloc::vec![index],
        });
    }
    if builder.zones.is_empty() || builder.name_servers.is_empty() || !builder.keep {
        return None;
    }
    let listen = if builder.listen.is_empty() {
        gateway.listen.clone()
    } else {
        builder.listen.iter().map(|(a, _)| *a).collect()
    };
    Some(DnsConfig {
        zones,
        name_servers: builder
            .name_servers
            .into_iter()
            .map(|(n, g, _)| (n, g))
            .collect(),
        hostmaster: builder.hostmaster.value,
        ttl: builder.ttl.value.unwrap_or(DEFAULT_DNS_TTL),
        listen,
        rate_limit: builder.rate_limit.value.unwrap_or(DEFAULT_DNS_RATE_LIMIT),
        names,
        line: header,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Config, ConfigError};
    use super::*;
    use crate::dns::{DnsServer, Reply};
    use alloc::vec;

    /// Lines 1..=32: links, a gateway and six services (the fifth at line 24).
    const BASE: &str = "\
[Link]
Address = 203.0.113.10/24, 2001:db8::10/64
[Link]
Role = segment
Address = 10.20.1.1/24
[Gateway]
Listen = 203.0.113.10, 2001:db8::10
[Service]
Name = www.example.org
Mode = http
Backend = 10.20.1.10:80
[Service]
Name = www.example.org
Mode = tls
Backend = 10.20.1.10:443
[Service]
Name = *.apps.example.org
Mode = http
Backend = 10.20.1.11:80
[Service]
Name = other.test
Mode = http
Backend = 10.20.1.12:80
[Service]
Name = example.org
Mode = http
Backend = 10.20.1.13:80
[Service]
Name = ssh
Mode = tcp
Port = 2222
Backend = 10.20.1.14:22
";

    fn ok(text: &str) -> Config {
        parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e:#?}"))
    }

    fn errors(text: &str) -> Vec<ConfigError> {
        parse(text.as_bytes()).expect_err("expected errors")
    }

    fn ip(s: &str) -> IpAddress {
        values::ip(s).unwrap()
    }

    #[test]
    fn the_names_answered_are_the_services_inside_a_zone_each_once() {
        let c = ok(&format!(
            "{BASE}[DNS]\nZone = Example.org.\nNameServer = ns1.example.org, 203.0.113.10, 2001:db8::10\nNameServer = ns.other.net\n"
        ));
        let d = c.dns.expect("a [DNS]");
        assert_eq!(d.zones, ["example.org"]);
        assert_eq!(d.ttl, DEFAULT_DNS_TTL);
        assert_eq!(d.rate_limit, DEFAULT_DNS_RATE_LIMIT);
        assert_eq!(
            d.listen,
            [ip("203.0.113.10"), ip("2001:db8::10")],
            "the gateway's"
        );
        let names: Vec<(String, Vec<usize>)> = d
            .names
            .iter()
            .map(|n| (n.pattern.to_string(), n.services.clone()))
            .collect();
        assert_eq!(
            names,
            [
                ("www.example.org".into(), vec![0, 1]),
                ("*.apps.example.org".into(), vec![2]),
                ("example.org".into(), vec![4]),
            ]
        );
        let spec = d.server_spec();
        assert_eq!(spec.zones[0].hostmaster, "hostmaster.example.org");
        assert_eq!(spec.zones[0].minimum, 30);
        assert_eq!(spec.zones[0].name_servers[0].1.len(), 2);
        assert_eq!(
            spec.zones[0].name_servers[1],
            ("ns.other.net".into(), vec![])
        );
        // The spec starts a server that answers the names.
        let mut server = DnsServer::new(&spec).unwrap();
        server
            .set_addresses(0, &["192.0.2.1".parse().unwrap()])
            .unwrap();
        let q = b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03org\x00\x00\x01\x00\x01";
        let mut out = [0u8; 512];
        let now = smoltcp::time::Instant::from_millis(0);
        let Reply::Send(n) = server.answer_udp(now, "192.0.2.9".parse().unwrap(), q, &mut out)
        else {
            panic!("an answer")
        };
        assert_eq!(&out[n - 4..n], &[192, 0, 2, 1]);
    }

    #[test]
    fn every_key_with_its_value() {
        let c = ok(&format!(
            "{BASE}[dns]\nzone = example.org, example.net\nZone = apps.example.org\n\
             NameServer = ns1.example.net, 203.0.113.10\nHostmaster = ops.example.net\n\
             TTL = 86400\nListen = 203.0.113.10\nRateLimit = 0\n"
        ));
        let d = c.dns.unwrap();
        assert_eq!(d.zones, ["example.org", "example.net", "apps.example.org"]);
        assert_eq!(d.hostmaster.as_deref(), Some("ops.example.net"));
        assert_eq!((d.ttl, d.rate_limit), (86_400, 0));
        assert_eq!(d.listen, [ip("203.0.113.10")]);
        let spec = d.server_spec();
        assert_eq!(spec.zones[1].hostmaster, "ops.example.net");
        // The glue goes only with the zone the name is in.
        assert!(spec.zones[0].name_servers[0].1.is_empty());
        assert_eq!(spec.zones[1].name_servers[0].1.len(), 1);
        assert!(DnsServer::new(&spec).is_ok());
    }

    #[test]
    fn dns_without_a_gateway_is_an_error_at_its_header() {
        let e = errors("[Link]\nAddress = 203.0.113.10/24\n[DNS]\nZone = example.org\nNameServer = ns.other.net\n");
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(e[0].line, 3);
        assert!(e[0].message.contains("needs a [Gateway]"), "{e:#?}");
    }

    #[test]
    fn every_bad_line_is_reported_with_its_line() {
        // [DNS] is line 33.
        let e = errors(&format!(
            "{BASE}[DNS]\nZone = bad..name\nZone = *.example.org\nZone = example.org, example.org\n\
             NameServer = ns1.example.org\nNameServer = ns.other.net, 192.0.2.1\n\
             NameServer = ns2.example.org, nope\nNameServer = ns3.example.org, 224.0.0.1\n\
             TTL = 0\nTTL = 30\nListen = 10.20.1.1\nListen = 192.0.2.99\nListen = 203.0.113.10:53\n\
             RateLimit = -1\nPort = 53\nNameServer = www.example.org, 203.0.113.10\n[DNS]\n"
        ));
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(
            lines,
            [34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49],
            "{e:#?}"
        );
        let has = |i: usize, text: &str| {
            assert!(e[i].message.contains(text), "{i}: {text:?} in {:#?}", e[i])
        };
        has(0, "not a DNS name");
        has(1, "not a DNS name");
        has(2, "already given at line 36");
        has(3, "give its addresses (glue)");
        has(4, "outside every Zone");
        has(5, "not an IP address");
        has(6, "multicast");
        has(7, "out of range");
        has(8, "duplicate TTL");
        has(9, "segment");
        has(10, "not an Address of any [Link]");
        has(11, "no port");
        has(12, "not a decimal number");
        has(13, "unknown key");
        has(14, "also the name of the [Service] at line 8");
        has(15, "second [DNS]");
    }

    #[test]
    fn a_dns_section_needs_a_zone_and_a_name_server() {
        let e = errors(&format!("{BASE}[DNS]\nTTL = 30\n"));
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, [33, 33], "{e:#?}");
        assert!(e[0].message.contains("no Zone"));
        assert!(e[1].message.contains("no NameServer"));
    }

    #[test]
    fn limits_are_errors() {
        let zones: String = (0..=MAX_DNS_ZONES)
            .map(|i| format!("Zone = z{i}.test\n"))
            .collect();
        let e = errors(&format!("{BASE}[DNS]\n{zones}NameServer = ns.other.net\n"));
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(e[0].message.contains("more than 4 Zones"));
        let ns: String = (0..=MAX_NAME_SERVERS)
            .map(|i| format!("NameServer = ns{i}.other.net\n"))
            .collect();
        let e = errors(&format!("{BASE}[DNS]\nZone = example.org\n{ns}"));
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(e[0].message.contains("more than 8 NameServers"));
    }
}
