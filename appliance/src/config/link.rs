//! `[Link]`: the appliance's addresses on one NIC, its default gateways and MTU.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Address, Ipv6Address};

use super::shared::{check_mtu_for_ipv6, lookup, mtu, unknown_key, Addresses, Seen, Single};
use super::values::{self, BareAddress};
use super::LinkConfig;

#[derive(Clone, Copy)]
enum LinkKey {
    Mac,
    Address,
    Gateway,
    Mtu,
}

const LINK_KEYS: &[(&str, LinkKey)] = &[
    ("MACAddress", LinkKey::Mac),
    ("Address", LinkKey::Address),
    ("Gateway", LinkKey::Gateway),
    ("MTU", LinkKey::Mtu),
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
        }
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

    pub(super) fn finish(self, seen: &mut Seen) -> Option<LinkConfig> {
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
        self.keep.then(|| LinkConfig {
            mac: self.mac.value,
            addresses: self.addresses.cidrs(),
            gateway_v4: self.gateway_v4.map(|(gw, _)| gw),
            gateway_v6: self.gateway_v6.map(|(gw, _)| gw),
            mtu: self.mtu.value,
            line: self.header,
        })
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
