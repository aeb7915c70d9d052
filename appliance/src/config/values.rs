//! Parsers for single values: numbers, MAC addresses, IP addresses and prefixes, endpoints.
//!
//! Each returns the value or a message that names what was wrong (the caller adds the
//! line number). None of them knows which section it is in.

use alloc::format;
use alloc::string::String;
use core::net::{Ipv4Addr, Ipv6Addr};
use core::ops::RangeInclusive;

use smoltcp::wire::{
    EthernetAddress, IpAddress, IpCidr, Ipv4Address, Ipv4Cidr, Ipv6Address, Ipv6Cidr,
};

/// The comma-separated items of a list value, each trimmed. Empty items are kept so the
/// caller can report them.
pub(super) fn list_items(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim)
}

/// A decimal number in `range`. Only ASCII digits are accepted (no sign, no hex).
pub(super) fn number(key: &str, text: &str, range: RangeInclusive<u16>) -> Result<u16, String> {
    let out_of_range = || {
        format!(
            "{key} {text:?} is out of range; expected {}..={}",
            range.start(),
            range.end()
        )
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{key} {text:?} is not a decimal number"));
    }
    // At most 5 significant digits fit a u16; more is out of range, not an overflow.
    let digits = text.trim_start_matches('0');
    if digits.len() > 5 {
        return Err(out_of_range());
    }
    let value: u32 = digits
        .bytes()
        .fold(0, |acc, b| acc * 10 + u32::from(b - b'0'));
    match u16::try_from(value) {
        Ok(value) if range.contains(&value) => Ok(value),
        _ => Err(out_of_range()),
    }
}

/// `52:54:00:12:34:56` (or with `-`): six two-digit hex octets of a unicast MAC.
pub(super) fn mac(text: &str) -> Result<EthernetAddress, String> {
    let invalid = || format!("MACAddress {text:?} is not a MAC address like 52:54:00:12:34:56");
    let separator = if text.contains('-') { '-' } else { ':' };
    let mut octets = [0u8; 6];
    let mut parts = text.split(separator);
    for octet in octets.iter_mut() {
        let part = parts.next().ok_or_else(invalid)?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid());
        }
        *octet = u8::from_str_radix(part, 16).map_err(|_| invalid())?;
    }
    if parts.next().is_some() {
        return Err(invalid());
    }
    let mac = EthernetAddress(octets);
    if !mac.is_unicast() {
        return Err(format!(
            "MACAddress {mac} is a multicast or broadcast address, not a NIC's address"
        ));
    }
    if octets == [0; 6] {
        return Err(format!("MACAddress {mac} is all zeros"));
    }
    Ok(mac)
}

/// An IPv4 or IPv6 address without a prefix.
pub(super) fn ip(text: &str) -> Option<IpAddress> {
    if let Ok(v4) = text.parse::<Ipv4Addr>() {
        return Some(IpAddress::Ipv4(v4));
    }
    text.parse::<Ipv6Addr>().ok().map(IpAddress::Ipv6)
}

/// What a bare address (no `/len`) means when parsing a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BareAddress {
    /// The prefix length is required (`[Link] Address`: a host route there is a mistake).
    Reject,
    /// A single host: /32 or /128, as `wg` reads `AllowedIPs` and `wg-quick` reads `Address`.
    Host,
}

/// `10.0.2.15/24` or `fd20:1::1/64`.
pub(super) fn cidr(key: &str, text: &str, bare: BareAddress) -> Result<IpCidr, String> {
    let (addr_text, prefix_text) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let addr = ip(addr_text).ok_or_else(|| {
        format!("{key} {text:?} is not an IP address with a prefix length, like 10.0.2.15/24")
    })?;
    let max = match addr {
        IpAddress::Ipv4(_) => 32u8,
        IpAddress::Ipv6(_) => 128u8,
    };
    let prefix = match (prefix_text, bare) {
        (Some(prefix), _) => {
            let bad = || format!("{key} {text:?} has an invalid prefix length; expected 0..={max}");
            if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(bad());
            }
            match prefix.parse::<u8>() {
                Ok(len) if len <= max => len,
                _ => return Err(bad()),
            }
        }
        (None, BareAddress::Host) => max,
        (None, BareAddress::Reject) => {
            let example = match addr {
                IpAddress::Ipv4(_) => "/24",
                IpAddress::Ipv6(_) => "/64",
            };
            return Err(format!(
                "{key} {addr} needs a prefix length, e.g. {addr}{example}"
            ));
        }
    };
    // The prefix was checked against the family's maximum above, so neither `new` panics.
    Ok(match addr {
        IpAddress::Ipv4(a) => IpCidr::Ipv4(Ipv4Cidr::new(a, prefix)),
        IpAddress::Ipv6(a) => IpCidr::Ipv6(Ipv6Cidr::new(a, prefix)),
    })
}

/// The prefix with its host bits cleared: `10.20.2.7/24` → `10.20.2.0/24`.
pub(super) fn network(cidr: IpCidr) -> IpCidr {
    match cidr {
        IpCidr::Ipv4(c) => IpCidr::Ipv4(c.network()),
        IpCidr::Ipv6(c) => {
            let bits = c.address().to_bits() & v6_mask(c.prefix_len());
            IpCidr::Ipv6(Ipv6Cidr::new(Ipv6Address::from_bits(bits), c.prefix_len()))
        }
    }
}

fn v6_mask(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128u32.saturating_sub(u32::from(prefix_len)))
        .unwrap_or(0)
}

/// Checks an address that this node itself will answer on (`Address =`).
pub(super) fn check_own_address(key: &str, cidr: IpCidr) -> Result<(), String> {
    if cidr.prefix_len() == 0 {
        return Err(format!(
            "{key} {cidr} has prefix length 0; give the subnet's real prefix length"
        ));
    }
    let addr = cidr.address();
    if let Some(kind) = non_unicast_kind(addr) {
        return Err(format!("{key} {cidr} is {kind}, not a host address"));
    }
    if let IpCidr::Ipv4(c) = cidr {
        if c.prefix_len() <= 30 {
            if c.address() == c.network().address() {
                return Err(format!(
                    "{key} {cidr} is the network address of its subnet, not a host address"
                ));
            }
            if Some(c.address()) == c.broadcast() {
                return Err(format!(
                    "{key} {cidr} is the broadcast address of its subnet, not a host address"
                ));
            }
        }
    }
    Ok(())
}

/// Why `addr` can't be a host's (or a gateway's, or an endpoint's) unicast address.
pub(super) fn non_unicast_kind(addr: IpAddress) -> Option<&'static str> {
    match addr {
        IpAddress::Ipv4(a) if a.is_unspecified() => Some("the unspecified address"),
        IpAddress::Ipv4(a) if a.is_broadcast() => Some("the broadcast address"),
        IpAddress::Ipv4(a) if a.is_multicast() => Some("a multicast address"),
        IpAddress::Ipv4(a) if a.is_loopback() => Some("a loopback address"),
        IpAddress::Ipv6(a) if a.is_unspecified() => Some("the unspecified address"),
        IpAddress::Ipv6(a) if a.is_multicast() => Some("a multicast address"),
        IpAddress::Ipv6(a) if a.is_loopback() => Some("the loopback address"),
        _ => None,
    }
}

/// `192.0.2.11:51820` or `[fd00::1]:51820`. Host names are refused: there is no resolver
/// at boot.
pub(super) fn endpoint(text: &str) -> Result<(IpAddress, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("Endpoint {text:?} is missing the closing ']'"))?;
        let port = after.strip_prefix(':').ok_or_else(|| {
            format!("Endpoint {text:?} needs a port after the address, like [{host}]:51820")
        })?;
        let addr = host
            .parse::<Ipv6Addr>()
            .map_err(|_| format!("Endpoint {text:?}: {host:?} is not an IPv6 address"))?;
        (IpAddress::Ipv6(addr), port)
    } else {
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(format!("Endpoint {text:?} needs a port, like {text}:51820"));
        };
        if host.contains(':') {
            return Err(format!(
                "Endpoint {text:?}: write an IPv6 endpoint in brackets, like [fd00::1]:51820"
            ));
        }
        let addr = match host.parse::<Ipv4Addr>() {
            Ok(addr) => addr,
            Err(_) if host.bytes().any(|b| b.is_ascii_alphabetic()) => {
                return Err(format!(
                    "Endpoint {text:?}: {host:?} is a host name; DNS names are not supported, \
                     give an IP address"
                ));
            }
            Err(_) => {
                return Err(format!(
                    "Endpoint {text:?}: {host:?} is not an IPv4 address"
                ))
            }
        };
        (IpAddress::Ipv4(addr), port)
    };
    if let Some(kind) = non_unicast_kind(host) {
        return Err(format!("Endpoint {text:?}: {host} is {kind}"));
    }
    let port = number("Endpoint port", port, 1..=u16::MAX)?;
    Ok((host, port))
}

/// `PersistentKeepalive`: seconds, or `off`. Zero also means off, as in `wg`.
pub(super) fn keepalive(text: &str) -> Result<Option<u16>, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let seconds = number("PersistentKeepalive", text, 0..=u16::MAX)?;
    Ok((seconds != 0).then_some(seconds))
}

/// The IPv4 address inside `addr`, if it is one.
pub(super) fn as_v4(addr: IpAddress) -> Option<Ipv4Address> {
    match addr {
        IpAddress::Ipv4(a) => Some(a),
        IpAddress::Ipv6(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_decimal_and_range_checked() {
        assert_eq!(number("MTU", "1500", 576..=9000), Ok(1500));
        assert_eq!(number("MTU", "0001500", 576..=9000), Ok(1500));
        assert!(number("MTU", "575", 576..=9000).is_err());
        assert!(number("MTU", "9001", 576..=9000).is_err());
        assert!(number("MTU", "+1500", 576..=9000).is_err());
        assert!(number("MTU", "0x5dc", 576..=9000).is_err());
        assert!(number("MTU", "", 576..=9000).is_err());
        assert!(number("X", "65536", 0..=u16::MAX).is_err());
        assert!(number("X", "99999999999999999999999", 0..=u16::MAX).is_err());
        assert_eq!(number("X", "65535", 0..=u16::MAX), Ok(65535));
        assert_eq!(number("X", "0", 0..=u16::MAX), Ok(0));
    }

    #[test]
    fn mac_addresses_parse_with_colons_or_dashes() {
        let want = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(mac("52:54:00:12:34:56"), Ok(want));
        assert_eq!(mac("52-54-00-12-34-56"), Ok(want));
        assert!(mac("52:54:00:12:34").is_err());
        assert!(mac("52:54:00:12:34:56:78").is_err());
        assert!(mac("52:54:00:12:34:5").is_err());
        assert!(mac("52:54:00:12:34:+5").is_err());
        assert!(mac("ff:ff:ff:ff:ff:ff").is_err());
        assert!(mac("01:00:5e:00:00:01").is_err());
        assert!(mac("00:00:00:00:00:00").is_err());
    }

    #[test]
    fn prefixes_parse_and_bare_addresses_follow_the_rule() {
        let c = cidr("Address", "10.0.2.15/24", BareAddress::Reject).unwrap();
        assert_eq!(
            c,
            IpCidr::Ipv4(Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 15), 24))
        );
        assert!(cidr("Address", "10.0.2.15", BareAddress::Reject).is_err());
        assert_eq!(
            cidr("AllowedIPs", "10.0.2.15", BareAddress::Host)
                .unwrap()
                .prefix_len(),
            32
        );
        assert_eq!(
            cidr("AllowedIPs", "fd00::1", BareAddress::Host)
                .unwrap()
                .prefix_len(),
            128
        );
        assert!(cidr("Address", "10.0.2.15/33", BareAddress::Host).is_err());
        assert!(cidr("Address", "fd00::1/129", BareAddress::Host).is_err());
        assert!(cidr("Address", "10.0.2.15/", BareAddress::Host).is_err());
        assert!(cidr("Address", "10.0.2.15/+4", BareAddress::Host).is_err());
        assert!(cidr("Address", "10.0.2.15/24/1", BareAddress::Host).is_err());
        assert!(cidr("Address", "10.0.2/24", BareAddress::Host).is_err());
        assert!(cidr("Address", "fd00::1/0064", BareAddress::Host).is_err());
    }

    #[test]
    fn network_clears_host_bits() {
        let c = cidr("x", "fd20:2::7/64", BareAddress::Reject).unwrap();
        assert_eq!(
            network(c),
            cidr("x", "fd20:2::/64", BareAddress::Reject).unwrap()
        );
        let c = cidr("x", "fd20:2::7/0", BareAddress::Reject).unwrap();
        assert_eq!(network(c), cidr("x", "::/0", BareAddress::Reject).unwrap());
        let c = cidr("x", "fd20:2::7/128", BareAddress::Reject).unwrap();
        assert_eq!(network(c), c);
    }

    #[test]
    fn own_addresses_must_be_unicast_hosts() {
        let check =
            |t| check_own_address("Address", cidr("Address", t, BareAddress::Reject).unwrap());
        assert!(check("10.0.2.15/24").is_ok());
        assert!(check("10.0.2.0/31").is_ok());
        assert!(check("10.0.2.0/24").is_err());
        assert!(check("10.0.2.255/24").is_err());
        assert!(check("0.0.0.0/8").is_err());
        assert!(check("224.0.0.1/4").is_err());
        assert!(check("127.0.0.1/8").is_err());
        assert!(check("10.0.2.15/0").is_err());
        assert!(check("ff02::1/64").is_err());
        assert!(check("fec0::15/64").is_ok());
    }

    #[test]
    fn endpoints_take_ipv4_or_bracketed_ipv6_and_refuse_names() {
        assert_eq!(
            endpoint("192.0.2.11:51820"),
            Ok((IpAddress::v4(192, 0, 2, 11), 51820))
        );
        assert_eq!(
            endpoint("[fd00::1]:51820"),
            Ok((IpAddress::v6(0xfd00, 0, 0, 0, 0, 0, 0, 1), 51820))
        );
        let err = endpoint("vpn.example.com:51820").unwrap_err();
        assert!(err.contains("DNS names are not supported"), "{err}");
        assert!(endpoint("fd00::1:51820").unwrap_err().contains("brackets"));
        assert!(endpoint("192.0.2.11").is_err());
        assert!(endpoint("192.0.2.11:0").is_err());
        assert!(endpoint("192.0.2.11:65536").is_err());
        assert!(endpoint("[fd00::1]").is_err());
        assert!(endpoint("[fd00::1:51820").is_err());
        assert!(endpoint("[192.0.2.11]:51820").is_err());
        assert!(endpoint("0.0.0.0:51820").is_err());
        assert!(endpoint("[ff02::1]:51820").is_err());
    }

    #[test]
    fn keepalive_accepts_seconds_zero_and_off() {
        assert_eq!(keepalive("25"), Ok(Some(25)));
        assert_eq!(keepalive("0"), Ok(None));
        assert_eq!(keepalive("off"), Ok(None));
        assert_eq!(keepalive("OFF"), Ok(None));
        assert_eq!(keepalive("65535"), Ok(Some(65535)));
        assert!(keepalive("65536").is_err());
        assert!(keepalive("-1").is_err());
    }
}
