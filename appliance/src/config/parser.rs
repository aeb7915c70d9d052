//! Sections, keys and the checks that span lines: duplicates, limits, gateways inside
//! subnets, MTU against IPv6, unique MACs, addresses, peer keys and AllowedIPs.
//!
//! One pass over the lines. Each section is collected by a builder; when the next header
//! (or the end of the file) closes it, the builder checks what needs the whole section
//! and yields its config. Checks across sections use maps kept in [`Seen`]. Errors are
//! collected, never returned early, so one run reports everything.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr, Ipv4Address, Ipv6Address};

use super::keys::{PublicKey, SecretKey, KEY_BASE64_LEN};
use super::lines::{lines, BadLine, Line};
use super::values::{self, BareAddress};
use super::{
    Config, ConfigError, InterfaceConfig, LinkConfig, PeerConfig, DEFAULT_LISTEN_PORT,
    IPV6_MIN_MTU, MAX_ADDRESSES, MAX_ALLOWED_IPS, MAX_CONFIG_LEN, MAX_ERRORS, MAX_LINKS, MAX_PEERS,
    MTU_RANGE,
};

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

/// Errors so far, capped at [`MAX_ERRORS`] so garbage input can't exhaust the heap.
#[derive(Default)]
struct Errors {
    list: Vec<ConfigError>,
    dropped: usize,
}

impl Errors {
    fn push(&mut self, line: usize, message: String) {
        if self.list.len() < MAX_ERRORS {
            self.list.push(ConfigError { line, message });
        } else {
            self.dropped += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.list.is_empty() && self.dropped == 0
    }

    /// In line order (section-level errors are found late but belong to their header).
    fn into_sorted(mut self) -> Vec<ConfigError> {
        self.list.sort_by_key(|e| e.line); // stable: same-line errors keep their order
        if self.dropped > 0 {
            self.list.push(ConfigError {
                line: 0,
                message: format!("... and {} more errors", self.dropped),
            });
        }
        self.list
    }
}

/// Everything shared between sections: the errors, and what was already claimed where.
#[derive(Default)]
struct Seen {
    errors: Errors,
    /// MAC → line of the `MACAddress` that bound it.
    macs: BTreeMap<EthernetAddress, usize>,
    /// Own address (link or tunnel) → line that assigned it.
    addresses: BTreeMap<IpAddress, usize>,
    /// Peer public key → line of its `[Peer]` header.
    peer_keys: BTreeMap<PublicKey, usize>,
    /// AllowedIPs prefix → line of the `[Peer]` header it belongs to.
    allowed_ips: BTreeMap<IpCidr, usize>,
}

impl Seen {
    fn error(&mut self, line: usize, message: String) {
        self.errors.push(line, message);
    }
}

#[derive(Default)]
enum Section {
    /// Before the first header.
    #[default]
    None,
    /// Inside an unknown section: its lines are ignored (the header is the error).
    Skip,
    Link(LinkBuilder),
    Interface(InterfaceBuilder),
    Peer(PeerBuilder),
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
    interface_header: Option<usize>,
    interface: Option<InterfaceConfig>,
    peer_headers: usize,
    first_peer_header: Option<usize>,
    peers: Vec<PeerConfig>,
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
                Section::None | Section::Skip => {}
                Section::Link(link) => link.damaged = true,
                Section::Interface(interface) => interface.damaged = true,
                Section::Peer(peer) => peer.damaged = true,
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
        } else {
            self.seen.error(
                line,
                format!("unknown section [{name}]; expected [Link], [Interface] or [Peer]"),
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
        }
    }

    fn close_section(&mut self) {
        match core::mem::take(&mut self.section) {
            Section::None | Section::Skip => {}
            Section::Link(link) => {
                if let Some(link) = link.finish(&mut self.seen) {
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
        if !self.seen.errors.is_empty() {
            return Err(self.seen.errors.into_sorted());
        }
        Ok(Config {
            links: self.links,
            interface: self.interface,
            peers: self.peers,
        })
    }
}

/// Finds `key` (any case) in `table`, giving its canonical spelling and meaning.
fn lookup<K: Copy>(key: &str, table: &[(&'static str, K)]) -> Option<(&'static str, K)> {
    table
        .iter()
        .find(|(name, _)| key.eq_ignore_ascii_case(name))
        .copied()
}

/// The error for a key that is not in `section`'s table.
fn unknown_key(seen: &mut Seen, line: usize, key: &str, section: &str) {
    const UNSUPPORTED: &[&str] = &[
        "DNS",
        "Table",
        "PreUp",
        "PostUp",
        "PreDown",
        "PostDown",
        "SaveConfig",
        "FwMark",
    ];
    let message = match UNSUPPORTED.iter().find(|k| key.eq_ignore_ascii_case(k)) {
        Some(name) => format!("{name} is a wg-quick setting that vdcnet does not support"),
        None => format!("unknown key {key:?} in {section}"),
    };
    seen.error(line, message);
}

/// A key that may be given once per section: remembers where, and the value if it parsed.
struct Single<T> {
    line: Option<usize>,
    value: Option<T>,
}

impl<T> Default for Single<T> {
    fn default() -> Self {
        Single {
            line: None,
            value: None,
        }
    }
}

impl<T> Single<T> {
    /// Records `key` at `line` and parses it, unless it was already given.
    fn set(
        &mut self,
        seen: &mut Seen,
        key: &str,
        line: usize,
        parsed: impl FnOnce(&mut Seen) -> Result<T, String>,
    ) {
        if let Some(first) = self.line {
            seen.error(
                line,
                format!("duplicate {key}; it is already set at line {first}"),
            );
            return;
        }
        self.line = Some(line);
        match parsed(seen) {
            Ok(value) => self.value = Some(value),
            Err(message) => seen.error(line, message),
        }
    }
}

/// `Address =` lines of a `[Link]` or `[Interface]`.
#[derive(Default)]
struct Addresses {
    list: Vec<(IpCidr, usize)>,
    given: bool,
    had_error: bool,
    over_limit: bool,
}

impl Addresses {
    fn add(&mut self, seen: &mut Seen, line: usize, value: &str, bare: BareAddress, section: &str) {
        self.given = true;
        for item in values::list_items(value) {
            match self.check(seen, item, bare, section) {
                Ok(Some(cidr)) => self.list.push((cidr, line)),
                Ok(None) => {}
                Err(message) => {
                    self.had_error = true;
                    seen.error(line, message);
                }
            }
        }
    }

    fn check(
        &mut self,
        seen: &mut Seen,
        item: &str,
        bare: BareAddress,
        section: &str,
    ) -> Result<Option<IpCidr>, String> {
        if item.is_empty() {
            return Err(String::from("empty item in the Address list"));
        }
        let cidr = values::cidr("Address", item, bare)?;
        values::check_own_address("Address", cidr)?;
        if let Some(first) = seen.addresses.get(&cidr.address()) {
            return Err(format!(
                "Address {} is already assigned at line {first}",
                cidr.address()
            ));
        }
        if self.list.len() >= MAX_ADDRESSES {
            if self.over_limit {
                return Ok(None);
            }
            self.over_limit = true;
            return Err(format!(
                "more than {MAX_ADDRESSES} addresses in this {section}"
            ));
        }
        Ok(Some(cidr))
    }

    /// Records the accepted addresses as taken, for the next sections' duplicate check.
    fn claim(&self, seen: &mut Seen) {
        for (cidr, line) in &self.list {
            seen.addresses.entry(cidr.address()).or_insert(*line);
        }
    }

    fn has_v6(&self) -> bool {
        self.list.iter().any(|(c, _)| matches!(c, IpCidr::Ipv6(_)))
    }

    fn cidrs(&self) -> Vec<IpCidr> {
        self.list.iter().map(|(c, _)| *c).collect()
    }
}

/// Reports an MTU below [`IPV6_MIN_MTU`] in a section that has an IPv6 address.
fn check_mtu_for_ipv6(seen: &mut Seen, mtu: &Single<u16>, addresses: &Addresses, section: &str) {
    if let (Some(value), Some(line)) = (mtu.value, mtu.line) {
        if value < IPV6_MIN_MTU && addresses.has_v6() {
            seen.error(
                line,
                format!("MTU {value} is below {IPV6_MIN_MTU}, the minimum for IPv6, and this {section} has an IPv6 Address"),
            );
        }
    }
}

fn mtu(text: &str) -> Result<u16, String> {
    values::number("MTU", text, MTU_RANGE)
}

// ---------------------------------------------------------------------------------------
// [Link]

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

struct LinkBuilder {
    header: usize,
    keep: bool,
    /// A line of this section could not be read; don't report missing keys.
    damaged: bool,
    mac: Single<EthernetAddress>,
    addresses: Addresses,
    gateway_v4: Option<(Ipv4Address, usize)>,
    gateway_v6: Option<(Ipv6Address, usize)>,
    mtu: Single<u16>,
}

impl LinkBuilder {
    fn new(header: usize, keep: bool) -> LinkBuilder {
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

    fn entry(&mut self, seen: &mut Seen, line: usize, key: &str, value: &str) {
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

    fn finish(self, seen: &mut Seen) -> Option<LinkConfig> {
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

// ---------------------------------------------------------------------------------------
// [Interface]

#[derive(Clone, Copy)]
enum InterfaceKey {
    PrivateKey,
    ListenPort,
    Address,
    Mtu,
}

const INTERFACE_KEYS: &[(&str, InterfaceKey)] = &[
    ("PrivateKey", InterfaceKey::PrivateKey),
    ("ListenPort", InterfaceKey::ListenPort),
    ("Address", InterfaceKey::Address),
    ("MTU", InterfaceKey::Mtu),
];

struct InterfaceBuilder {
    header: usize,
    keep: bool,
    /// A line of this section could not be read; don't report missing keys.
    damaged: bool,
    private_key: Single<SecretKey>,
    listen_port: Single<u16>,
    addresses: Addresses,
    mtu: Single<u16>,
}

impl InterfaceBuilder {
    fn new(header: usize, keep: bool) -> InterfaceBuilder {
        InterfaceBuilder {
            header,
            keep,
            damaged: false,
            private_key: Single::default(),
            listen_port: Single::default(),
            addresses: Addresses::default(),
            mtu: Single::default(),
        }
    }

    fn entry(&mut self, seen: &mut Seen, line: usize, key: &str, value: &str) {
        let Some((name, key)) = lookup(key, INTERFACE_KEYS) else {
            return unknown_key(seen, line, key, "[Interface]");
        };
        if value.is_empty() {
            return seen.error(line, format!("{name} has no value"));
        }
        match key {
            InterfaceKey::PrivateKey => self.private_key.set(seen, name, line, |_| {
                SecretKey::from_base64(value).ok_or_else(|| bad_key(name))
            }),
            InterfaceKey::ListenPort => self.listen_port.set(seen, name, line, |_| {
                values::number(name, value, 1..=u16::MAX)
            }),
            InterfaceKey::Address => {
                // A bare address is a /32 or /128, as in wg-quick.
                self.addresses
                    .add(seen, line, value, BareAddress::Host, "[Interface]")
            }
            InterfaceKey::Mtu => self.mtu.set(seen, name, line, |_| mtu(value)),
        }
    }

    fn finish(self, seen: &mut Seen) -> Option<InterfaceConfig> {
        self.addresses.claim(seen);
        if !self.addresses.had_error {
            check_mtu_for_ipv6(seen, &self.mtu, &self.addresses, "[Interface]");
        }
        let private_key = match (self.private_key.value, self.private_key.line) {
            (Some(key), _) => key,
            // A bad key line was reported already; a damaged section may have lost its key.
            (None, Some(_)) => return None,
            (None, None) if self.damaged => return None,
            (None, None) => {
                seen.error(
                    self.header,
                    String::from("[Interface] has no PrivateKey (make one with `wg genkey`)"),
                );
                return None;
            }
        };
        self.keep.then(|| InterfaceConfig {
            private_key,
            listen_port: self.listen_port.value.unwrap_or(DEFAULT_LISTEN_PORT),
            addresses: self.addresses.cidrs(),
            mtu: self.mtu.value,
            line: self.header,
        })
    }
}

fn bad_key(name: &str) -> String {
    format!(
        "{name} is not a WireGuard key: expected {KEY_BASE64_LEN} characters of base64 encoding 32 bytes, as printed by `wg genkey` / `wg pubkey`"
    )
}

// ---------------------------------------------------------------------------------------
// [Peer]

#[derive(Clone, Copy)]
enum PeerKey {
    PublicKey,
    PresharedKey,
    Endpoint,
    AllowedIps,
    PersistentKeepalive,
}

const PEER_KEYS: &[(&str, PeerKey)] = &[
    ("PublicKey", PeerKey::PublicKey),
    ("PresharedKey", PeerKey::PresharedKey),
    ("Endpoint", PeerKey::Endpoint),
    ("AllowedIPs", PeerKey::AllowedIps),
    ("PersistentKeepalive", PeerKey::PersistentKeepalive),
];

struct PeerBuilder {
    header: usize,
    keep: bool,
    /// A line of this section could not be read; don't report missing keys.
    damaged: bool,
    public_key: Single<PublicKey>,
    preshared_key: Single<SecretKey>,
    endpoint: Single<(IpAddress, u16)>,
    allowed_ips: Vec<IpCidr>,
    allowed_ips_over_limit: bool,
    keepalive: Single<Option<u16>>,
}

impl PeerBuilder {
    fn new(header: usize, keep: bool) -> PeerBuilder {
        PeerBuilder {
            header,
            keep,
            damaged: false,
            public_key: Single::default(),
            preshared_key: Single::default(),
            endpoint: Single::default(),
            allowed_ips: Vec::new(),
            allowed_ips_over_limit: false,
            keepalive: Single::default(),
        }
    }

    fn entry(&mut self, seen: &mut Seen, line: usize, key: &str, value: &str) {
        let Some((name, key)) = lookup(key, PEER_KEYS) else {
            return unknown_key(seen, line, key, "[Peer]");
        };
        if value.is_empty() {
            return seen.error(line, format!("{name} has no value"));
        }
        let header = self.header;
        match key {
            PeerKey::PublicKey => self.public_key.set(seen, name, line, |seen| {
                let key = PublicKey::from_base64(value).ok_or_else(|| bad_key(name))?;
                match seen.peer_keys.get(&key) {
                    Some(first) => Err(format!(
                        "PublicKey {key} is already used by the [Peer] at line {first}"
                    )),
                    None => {
                        seen.peer_keys.insert(key, header);
                        Ok(key)
                    }
                }
            }),
            PeerKey::PresharedKey => self.preshared_key.set(seen, name, line, |_| {
                SecretKey::from_base64(value).ok_or_else(|| bad_key(name))
            }),
            PeerKey::Endpoint => self
                .endpoint
                .set(seen, name, line, |_| values::endpoint(value)),
            PeerKey::AllowedIps => {
                for item in values::list_items(value) {
                    if let Err(message) = self.allowed_ip(seen, item) {
                        seen.error(line, message);
                    }
                }
            }
            PeerKey::PersistentKeepalive => self
                .keepalive
                .set(seen, name, line, |_| values::keepalive(value)),
        }
    }

    fn allowed_ip(&mut self, seen: &mut Seen, item: &str) -> Result<(), String> {
        if item.is_empty() {
            return Err(String::from("empty item in the AllowedIPs list"));
        }
        // A bare address is a single host, as `wg` reads it.
        let cidr = values::cidr("AllowedIPs", item, BareAddress::Host)?;
        let network = values::network(cidr);
        if network != cidr {
            return Err(format!(
                "AllowedIPs {cidr} has host bits set; did you mean {network}?"
            ));
        }
        match seen.allowed_ips.get(&cidr) {
            Some(&peer) if peer == self.header => {
                return Err(format!("AllowedIPs {cidr} is listed twice in this [Peer]"));
            }
            Some(peer) => {
                return Err(format!(
                    "AllowedIPs {cidr} is already routed to the [Peer] at line {peer}"
                ));
            }
            None => {}
        }
        if self.allowed_ips.len() >= MAX_ALLOWED_IPS {
            if self.allowed_ips_over_limit {
                return Ok(());
            }
            self.allowed_ips_over_limit = true;
            return Err(format!(
                "more than {MAX_ALLOWED_IPS} AllowedIPs in this [Peer]"
            ));
        }
        seen.allowed_ips.insert(cidr, self.header);
        self.allowed_ips.push(cidr);
        Ok(())
    }

    fn finish(self, seen: &mut Seen) -> Option<PeerConfig> {
        let public_key = match (self.public_key.value, self.public_key.line) {
            (Some(key), _) => key,
            // A bad key line was reported already; a damaged section may have lost its key.
            (None, Some(_)) => return None,
            (None, None) if self.damaged => return None,
            (None, None) => {
                seen.error(self.header, String::from("[Peer] has no PublicKey"));
                return None;
            }
        };
        self.keep.then(|| PeerConfig {
            public_key,
            preshared_key: self.preshared_key.value,
            endpoint: self.endpoint.value,
            allowed_ips: self.allowed_ips,
            persistent_keepalive: self.keepalive.value.flatten(),
            line: self.header,
        })
    }
}
