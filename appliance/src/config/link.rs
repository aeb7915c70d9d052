//! `[Link]`: the appliance's addresses on one NIC, its default gateways and MTU, its role
//! (underlay or segment), and a segment's own services (DHCPv4, router advertisements).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Address, Ipv6Address};

use super::shared::{check_mtu_for_ipv6, lookup, mtu, unknown_key, Addresses, Seen, Single};
use super::values::{self, BareAddress};
use super::{
    DhcpSettings, LinkConfig, Role, DEFAULT_LEASE_SECS, LEASE_SECS_RANGE, MAX_STATIC_LEASES,
};

#[derive(Clone, Copy)]
enum LinkKey {
    Mac,
    Address,
    Gateway,
    Mtu,
    Role,
    Egress,
    DhcpServer,
    LeaseTime,
    StaticLease,
    SendRa,
    Planetary,
}

const LINK_KEYS: &[(&str, LinkKey)] = &[
    ("MACAddress", LinkKey::Mac),
    ("Address", LinkKey::Address),
    ("Gateway", LinkKey::Gateway),
    ("MTU", LinkKey::Mtu),
    ("Role", LinkKey::Role),
    ("Egress", LinkKey::Egress),
    ("DHCPServer", LinkKey::DhcpServer),
    ("LeaseTime", LinkKey::LeaseTime),
    ("StaticLease", LinkKey::StaticLease),
    ("SendRA", LinkKey::SendRa),
    ("Planetary", LinkKey::Planetary),
];

pub(super) struct LinkBuilder {
    header: usize,
    keep: bool,
    /// A line of this section could not be read; don't report missing keys.
    pub(super) damaged: bool,
    mac: Single<EthernetAddress>,
    addresses: Addresses,
    gateway_v4: Option<(Ipv4Address, usize)>,
    gateway_v6: Option<(Ipv6Address, usize)>,
    mtu: Single<u16>,
    role: Single<Role>,
    egress_nat: Single<bool>,
    dhcp_server: Single<bool>,
    lease_time: Single<u32>,
    /// `(mac, address, line)` of every `StaticLease`.
    static_leases: Vec<(EthernetAddress, Ipv4Address, usize)>,
    send_ra: Single<bool>,
    planetary: Single<bool>,
}

impl LinkBuilder {
    pub(super) fn new(header: usize, keep: bool) -> LinkBuilder {
        LinkBuilder {
            header,
            keep,
            damaged: false,
            mac: Single::default(),
            addresses: Addresses::default(),
            gateway_v4: None,
            gateway_v6: None,
            mtu: Single::default(),
            role: Single::default(),
            egress_nat: Single::default(),
            dhcp_server: Single::default(),
            lease_time: Single::default(),
            static_leases: Vec::new(),
            send_ra: Single::default(),
            planetary: Single::default(),
        }
    }

    pub(super) fn entry(&mut self, seen: &mut Seen, line: usize, key: &str, value: &str) {
        let Some((name, key)) = lookup(key, LINK_KEYS) else {
            return unknown_key(seen, line, key, "[Link]");
        };
        if value.is_empty() {
            return seen.error(line, format!("{name} has no value"));
        }
        match key {
            LinkKey::Mac => self.mac.set(seen, name, line, |seen| {
                let mac = values::mac(value)?;
                match seen.macs.get(&mac) {
                    Some(first) => Err(format!(
                        "MACAddress {mac} is already bound to the [Link] with MACAddress at line {first}"
                    )),
                    None => {
                        seen.macs.insert(mac, line);
                        Ok(mac)
                    }
                }
            }),
            LinkKey::Address => {
                self.addresses
                    .add(seen, line, value, BareAddress::Reject, "[Link]")
            }
            LinkKey::Gateway => {
                for item in values::list_items(value) {
                    if let Err(message) = self.gateway(line, item) {
                        seen.error(line, message);
                    }
                }
            }
            LinkKey::Mtu => self.mtu.set(seen, name, line, |_| mtu(value)),
            LinkKey::Role => self.role.set(seen, name, line, |_| {
                match value.to_ascii_lowercase().as_str() {
                    "underlay" => Ok(Role::Underlay),
                    "segment" => Ok(Role::Segment),
                    _ => Err(format!("Role {value:?} is not one of: underlay, segment")),
                }
            }),
            LinkKey::Egress => self.egress_nat.set(seen, name, line, |_| {
                match value.to_ascii_lowercase().as_str() {
                    "nat" => Ok(true),
                    "none" => Ok(false),
                    _ => Err(format!("Egress {value:?} is not one of: nat, none")),
                }
            }),
            LinkKey::DhcpServer => self.dhcp_server.set(seen, name, line, |_| yes_no(name, value)),
            LinkKey::SendRa => self.send_ra.set(seen, name, line, |_| yes_no(name, value)),
            LinkKey::Planetary => self.planetary.set(seen, name, line, |_| yes_no(name, value)),
            LinkKey::LeaseTime => self.lease_time.set(seen, name, line, |_| lease_time(value)),
            LinkKey::StaticLease => {
                if let Err(message) = self.static_lease(line, value) {
                    seen.error(line, message);
                }
            }
        }
    }

    fn static_lease(&mut self, line: usize, value: &str) -> Result<(), String> {
        let usage = "StaticLease is a MAC and an IPv4 address, like 52:54:00:aa:bb:01, 10.20.1.10";
        let mut items = values::list_items(value);
        let (Some(mac), Some(ip), None) = (items.next(), items.next(), items.next()) else {
            return Err(String::from(usage));
        };
        let mac = values::mac(mac).map_err(|e| format!("StaticLease: {e}"))?;
        let ip = values::ip(ip)
            .and_then(values::as_v4)
            .ok_or_else(|| format!("StaticLease address {ip:?} is not an IPv4 address"))?;
        if let Some(&(_, _, first)) = self.static_leases.iter().find(|l| l.0 == mac) {
            return Err(format!(
                "StaticLease for {mac} is already given at line {first}"
            ));
        }
        if let Some(&(_, _, first)) = self.static_leases.iter().find(|l| l.1 == ip) {
            return Err(format!(
                "StaticLease address {ip} is already given at line {first}"
            ));
        }
        if self.static_leases.len() == MAX_STATIC_LEASES {
            return Err(format!("more than {MAX_STATIC_LEASES} StaticLease lines"));
        }
        self.static_leases.push((mac, ip, line));
        Ok(())
    }

    fn gateway(&mut self, line: usize, item: &str) -> Result<(), String> {
        if item.is_empty() {
            return Err(String::from("empty item in the Gateway list"));
        }
        let Some(addr) = values::ip(item) else {
            return Err(if item.contains('/') {
                format!("Gateway {item:?} must be a plain address, without a prefix length")
            } else {
                format!("Gateway {item:?} is not an IP address")
            });
        };
        if let Some(kind) = values::non_unicast_kind(addr) {
            return Err(format!("Gateway {addr} is {kind}"));
        }
        let (first, family) = match addr {
            IpAddress::Ipv4(a) => (set_once(&mut self.gateway_v4, (a, line)), "IPv4"),
            IpAddress::Ipv6(a) => (set_once(&mut self.gateway_v6, (a, line)), "IPv6"),
        };
        match first {
            Some(first) => Err(format!(
                "more than one {family} Gateway; the first is at line {first}"
            )),
            None => Ok(()),
        }
    }

    /// The link's config; a `StaticLease` outside its subnets (a visiting workload's) goes
    /// to `visiting` with its line, for the checks that need the whole file.
    pub(super) fn finish(
        self,
        seen: &mut Seen,
        visiting: &mut Vec<(Ipv4Address, usize)>,
    ) -> Option<LinkConfig> {
        if !self.addresses.given && !self.damaged {
            seen.error(
                self.header,
                String::from(
                    "[Link] has no Address; give at least one, like Address = 10.0.2.15/24",
                ),
            );
        }
        self.addresses.claim(seen);
        // With a broken Address line, "gateway outside every subnet" would only repeat it.
        if !self.addresses.had_error {
            if let Some((gw, line)) = self.gateway_v4 {
                check_gateway(seen, &self.addresses, IpAddress::Ipv4(gw), line, "IPv4");
            }
            if let Some((gw, line)) = self.gateway_v6 {
                check_gateway(seen, &self.addresses, IpAddress::Ipv6(gw), line, "IPv6");
            }
            check_mtu_for_ipv6(seen, &self.mtu, &self.addresses, "[Link]");
        }
        let role = self.role.value.unwrap_or(Role::Underlay);
        let v4: Vec<IpCidr> = self
            .addresses
            .cidrs()
            .into_iter()
            .filter(|c| matches!(c, IpCidr::Ipv4(_)))
            .collect();
        let segment_only = [
            ("DHCPServer", self.dhcp_server.line),
            ("LeaseTime", self.lease_time.line),
            ("StaticLease", self.static_leases.first().map(|l| l.2)),
            ("SendRA", self.send_ra.line),
            ("Planetary", self.planetary.line),
        ];
        let mut dhcp = None;
        match role {
            Role::Underlay => {
                for (key, line) in segment_only {
                    if let Some(line) = line {
                        seen.error(
                            line,
                            format!("{key} is only for a [Link] with Role = segment"),
                        );
                    }
                }
            }
            Role::Segment => {
                if let Some(line) = self.egress_nat.line {
                    seen.error(
                        line,
                        String::from("Egress is set on the underlay [Link] the segment leaves through, not on the segment"),
                    );
                }
                let wanted = self.dhcp_server.value.unwrap_or(true);
                if wanted && v4.is_empty() && !self.addresses.had_error {
                    if let Some(line) = self.dhcp_server.line {
                        seen.error(
                            line,
                            String::from("DHCPServer = yes needs an IPv4 Address on this [Link]"),
                        );
                    }
                }
                if wanted && !v4.is_empty() {
                    for &(mac, ip, line) in &self.static_leases {
                        let addr = IpAddress::Ipv4(ip);
                        if !v4.iter().any(|c| c.contains_addr(&addr)) {
                            visiting.push((ip, line));
                        } else if let Some(message) = check_lease(&v4, ip) {
                            seen.error(line, format!("StaticLease {mac} {ip}: {message}"));
                        }
                    }
                    dhcp = Some(DhcpSettings {
                        lease_secs: self.lease_time.value.unwrap_or(DEFAULT_LEASE_SECS),
                        static_leases: self.static_leases.iter().map(|l| (l.0, l.1)).collect(),
                    });
                } else if let Some(&(_, _, line)) = self.static_leases.first() {
                    seen.error(line, String::from("StaticLease needs the DHCP server (DHCPServer = yes and an IPv4 Address)"));
                }
            }
        }
        if self.egress_nat.value == Some(true) && v4.is_empty() && !self.addresses.had_error {
            if let Some(line) = self.egress_nat.line {
                seen.error(
                    line,
                    String::from(
                        "Egress = nat needs an IPv4 Address on this [Link] to masquerade as",
                    ),
                );
            }
        }
        self.keep.then(|| LinkConfig {
            mac: self.mac.value,
            addresses: self.addresses.cidrs(),
            gateway_v4: self.gateway_v4.map(|(gw, _)| gw),
            gateway_v6: self.gateway_v6.map(|(gw, _)| gw),
            mtu: self.mtu.value,
            role,
            egress_nat: self.egress_nat.value == Some(true),
            dhcp,
            send_ra: role == Role::Segment && self.send_ra.value.unwrap_or(true),
            planetary: role == Role::Segment && self.planetary.value == Some(true),
            line: self.header,
        })
    }
}

/// `yes`/`no` (also `true`/`false`, `on`/`off`, `1`/`0`).
pub(super) fn yes_no(key: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("{key} {value:?} is not yes or no")),
    }
}

/// Seconds in [`LEASE_SECS_RANGE`].
fn lease_time(value: &str) -> Result<u32, String> {
    let range = LEASE_SECS_RANGE;
    let bad = || {
        format!(
            "LeaseTime {value:?} is not a number of seconds in {}..={}",
            range.start(),
            range.end()
        )
    };
    if value.is_empty() || value.len() > 9 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let secs = value
        .bytes()
        .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'));
    if range.contains(&secs) {
        Ok(secs)
    } else {
        Err(bad())
    }
}

/// Why a static lease's address cannot be handed out on a link with these IPv4 subnets.
fn check_lease(v4: &[IpCidr], ip: Ipv4Address) -> Option<&'static str> {
    let addr = IpAddress::Ipv4(ip);
    if v4.iter().any(|c| c.address() == addr) {
        Some("is this [Link]'s own address")
    } else if let Some(kind) = ipv4_subnet_edge(v4, addr) {
        Some(if kind == "network" {
            "is the network address of its subnet"
        } else {
            "is the broadcast address of its subnet"
        })
    } else {
        None
    }
}

/// Fills an empty `slot`; if it was already filled, returns the line that filled it.
fn set_once<T>(slot: &mut Option<(T, usize)>, value: (T, usize)) -> Option<usize> {
    match slot {
        Some((_, first)) => Some(*first),
        None => {
            *slot = Some(value);
            None
        }
    }
}

/// A gateway must be on-link: inside one of the link's subnets of its family, and not one
/// of the link's own addresses (or, for IPv4, a subnet's network or broadcast address).
fn check_gateway(seen: &mut Seen, addresses: &Addresses, gw: IpAddress, line: usize, family: &str) {
    let same_family: Vec<IpCidr> = addresses
        .list
        .iter()
        .map(|(c, _)| *c)
        .filter(|c| {
            matches!(
                (c, gw),
                (IpCidr::Ipv4(_), IpAddress::Ipv4(_)) | (IpCidr::Ipv6(_), IpAddress::Ipv6(_))
            )
        })
        .collect();
    let message = if same_family.is_empty() {
        format!("Gateway {gw} is {family} but this [Link] has no {family} Address")
    } else if same_family.iter().any(|c| c.address() == gw) {
        format!("Gateway {gw} is this [Link]'s own address")
    } else if !same_family.iter().any(|c| c.contains_addr(&gw)) {
        format!("Gateway {gw} is not inside any {family} subnet of this [Link]")
    } else if let Some(kind) = ipv4_subnet_edge(&same_family, gw) {
        format!("Gateway {gw} is the {kind} address of its subnet")
    } else {
        return;
    };
    seen.error(line, message);
}

/// "network" or "broadcast" if `gw` is that address of a containing IPv4 subnet (/30 or
/// wider; /31 and /32 have no such addresses).
fn ipv4_subnet_edge(subnets: &[IpCidr], gw: IpAddress) -> Option<&'static str> {
    let gw = values::as_v4(gw)?;
    subnets.iter().find_map(|c| match c {
        IpCidr::Ipv4(c) if c.prefix_len() <= 30 && c.contains_addr(&gw) => {
            if gw == c.network().address() {
                Some("network")
            } else if Some(gw) == c.broadcast() {
                Some("broadcast")
            } else {
                None
            }
        }
        _ => None,
    })
}
