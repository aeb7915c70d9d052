//! `[Service]`: one public name (or port) of the gateway and its private backends.
//!
//! ```text
//! [Service]
//! Name = shop.example.org        # required: exact, or *.example.org; a label for tcp
//! Mode = tls                     # required: tls | http | tcp
//! Port = 2222                    # tcp only, required there: the public port
//! Backend = 10.20.1.10:443, [fd20:ab:cd:2::10]:443   # required, repeatable
//! Balance = roundrobin           # optional: roundrobin | leastconn
//! ProxyProtocol = v2             # optional: v2 | off
//! HealthCheck = http /healthz    # optional: tcp (default) | http PATH (Mode = http)
//! CheckInterval = 2000           # optional, ms
//! CheckTimeout = 1000            # optional, ms
//! Rise = 2                       # optional: good checks to come back
//! Fall = 3                       # optional: failed checks to leave
//! ```
//!
//! Checks across services (one name per mode, one service per tcp port) are made here
//! against what earlier `[Service]` sections claimed; checks against `[Gateway]` are made
//! by the parser at the end of the file.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use smoltcp::wire::IpAddress;

use super::shared::{lookup, unknown_key, Seen, Single};
use super::values;
use super::{
    Balance, HealthCheck, NamePattern, ServiceConfig, ServiceMode, CHECK_MS, CHECK_STREAK,
    MAX_CHECK_PATH, MAX_SERVICE_BACKENDS,
};

#[derive(Clone, Copy)]
enum ServiceKey {
    Name,
    Mode,
    Port,
    Backend,
    Balance,
    ProxyProtocol,
    HealthCheck,
    CheckInterval,
    CheckTimeout,
    Rise,
    Fall,
}

const SERVICE_KEYS: &[(&str, ServiceKey)] = &[
    ("Name", ServiceKey::Name),
    ("Mode", ServiceKey::Mode),
    ("Port", ServiceKey::Port),
    ("Backend", ServiceKey::Backend),
    ("Balance", ServiceKey::Balance),
    ("ProxyProtocol", ServiceKey::ProxyProtocol),
    ("HealthCheck", ServiceKey::HealthCheck),
    ("CheckInterval", ServiceKey::CheckInterval),
    ("CheckTimeout", ServiceKey::CheckTimeout),
    ("Rise", ServiceKey::Rise),
    ("Fall", ServiceKey::Fall),
];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ModeKind {
    Tls,
    Http,
    Tcp,
}

/// What earlier `[Service]` sections claimed.
#[derive(Default)]
pub(super) struct Claimed {
    /// (mode, name) → line of its `Name`.
    names: BTreeMap<(ModeKind, NamePattern), usize>,
    /// tcp port → line of its `Port`.
    ports: BTreeMap<u16, usize>,
}

pub(super) struct ServiceBuilder {
    header: usize,
    keep: bool,
    /// A line of this section could not be read; don't report missing keys.
    pub(super) damaged: bool,
    name: Single<NamePattern>,
    mode: Single<ModeKind>,
    port: Single<u16>,
    backends: Vec<SocketAddr>,
    backend_line: Option<usize>,
    backend_error: bool,
    balance: Single<Balance>,
    proxy_protocol: Single<bool>,
    health_check: Single<HealthCheck>,
    check_interval: Single<u16>,
    check_timeout: Single<u16>,
    rise: Single<u16>,
    fall: Single<u16>,
}

impl ServiceBuilder {
    pub(super) fn new(header: usize, keep: bool) -> ServiceBuilder {
        ServiceBuilder {
            header,
            keep,
            damaged: false,
            name: Single::default(),
            mode: Single::default(),
            port: Single::default(),
            backends: Vec::new(),
            backend_line: None,
            backend_error: false,
            balance: Single::default(),
            proxy_protocol: Single::default(),
            health_check: Single::default(),
            check_interval: Single::default(),
            check_timeout: Single::default(),
            rise: Single::default(),
            fall: Single::default(),
        }
    }

    pub(super) fn entry(&mut self, seen: &mut Seen, line: usize, key: &str, value: &str) {
        let Some((name, key)) = lookup(key, SERVICE_KEYS) else {
            return unknown_key(seen, line, key, "[Service]");
        };
        if value.is_empty() {
            return seen.error(line, format!("{name} has no value"));
        }
        let ms = |_: &mut Seen| values::number(name, value, CHECK_MS);
        let streak = |_: &mut Seen| values::number(name, value, CHECK_STREAK);
        match key {
            ServiceKey::Name => self
                .name
                .set(seen, name, line, |_| NamePattern::parse(value)),
            ServiceKey::Mode => self.mode.set(seen, name, line, |_| mode(value)),
            ServiceKey::Port => self.port.set(seen, name, line, |_| {
                values::number(name, value, 1..=u16::MAX)
            }),
            ServiceKey::Backend => {
                self.backend_line.get_or_insert(line);
                for item in values::list_items(value) {
                    if let Err(message) = self.backend(item) {
                        self.backend_error = true;
                        seen.error(line, message);
                    }
                }
            }
            ServiceKey::Balance => self.balance.set(seen, name, line, |_| balance(value)),
            ServiceKey::ProxyProtocol => self
                .proxy_protocol
                .set(seen, name, line, |_| proxy_protocol(value)),
            ServiceKey::HealthCheck => self
                .health_check
                .set(seen, name, line, |_| health_check(value)),
            ServiceKey::CheckInterval => self.check_interval.set(seen, name, line, ms),
            ServiceKey::CheckTimeout => self.check_timeout.set(seen, name, line, ms),
            ServiceKey::Rise => self.rise.set(seen, name, line, streak),
            ServiceKey::Fall => self.fall.set(seen, name, line, streak),
        }
    }

    fn backend(&mut self, item: &str) -> Result<(), String> {
        if item.is_empty() {
            return Err(String::from("empty item in the Backend list"));
        }
        let backend = backend_addr(item)?;
        if self.backends.contains(&backend) {
            return Err(format!("Backend {backend} is listed twice"));
        }
        if self.backends.len() >= MAX_SERVICE_BACKENDS {
            return Err(format!(
                "more than {MAX_SERVICE_BACKENDS} Backend addresses in this [Service]"
            ));
        }
        self.backends.push(backend);
        Ok(())
    }

    pub(super) fn finish(self, seen: &mut Seen, claimed: &mut Claimed) -> Option<ServiceConfig> {
        let complete = !self.damaged;
        if self.name.line.is_none() && complete {
            seen.error(
                self.header,
                String::from("[Service] has no Name (e.g. Name = shop.example.org)"),
            );
        }
        if self.mode.line.is_none() && complete {
            seen.error(
                self.header,
                String::from("[Service] has no Mode (tls, http or tcp)"),
            );
        }
        if self.backend_line.is_none() && complete {
            seen.error(
                self.header,
                String::from("[Service] has no Backend (e.g. Backend = 10.20.1.10:443)"),
            );
        }
        let mode = match (self.mode.value, self.port.value, self.port.line) {
            (Some(ModeKind::Tcp), Some(port), _) => Some(ServiceMode::Tcp { port }),
            (Some(ModeKind::Tcp), None, None) => {
                seen.error(
                    self.mode.line.unwrap_or(self.header),
                    String::from("Mode = tcp needs a Port (the public port to forward)"),
                );
                None
            }
            (Some(ModeKind::Tcp), None, Some(_)) => None, // the bad Port is the error
            (Some(kind), _, Some(line)) => {
                seen.error(
                    line,
                    format!(
                        "Port is only for Mode = tcp; Mode = {} uses the [Gateway]'s {}",
                        if kind == ModeKind::Tls { "tls" } else { "http" },
                        if kind == ModeKind::Tls {
                            "TlsPort"
                        } else {
                            "HttpPort"
                        }
                    ),
                );
                None
            }
            (Some(ModeKind::Tls), _, None) => Some(ServiceMode::Tls),
            (Some(ModeKind::Http), _, None) => Some(ServiceMode::Http),
            (None, _, _) => None,
        };
        let health_check = self.health_check.value.unwrap_or(HealthCheck::Tcp);
        if let (HealthCheck::Http { .. }, Some(line), Some(kind)) =
            (&health_check, self.health_check.line, self.mode.value)
        {
            if kind != ModeKind::Http {
                seen.error(
                    line,
                    String::from("HealthCheck = http needs Mode = http (the backends speak plain HTTP); use HealthCheck = tcp"),
                );
            }
        }
        let check_interval_ms = self.check_interval.value.unwrap_or(2000);
        let check_timeout_ms = self.check_timeout.value.unwrap_or(1000);
        if let (Some(line), true) = (
            self.check_timeout.line.or(self.check_interval.line),
            check_timeout_ms > check_interval_ms,
        ) {
            seen.error(
                line,
                format!("CheckTimeout {check_timeout_ms} ms is longer than CheckInterval {check_interval_ms} ms"),
            );
        }
        if let (Some(name), Some(kind), Some(line)) =
            (&self.name.value, self.mode.value, self.name.line)
        {
            match claimed.names.get(&(kind, name.clone())) {
                Some(first) => seen.error(
                    line,
                    format!(
                        "Name {name} already has a [Service] of this Mode (Name at line {first})"
                    ),
                ),
                None => {
                    claimed.names.insert((kind, name.clone()), line);
                }
            }
        }
        if let (Some(ServiceMode::Tcp { port }), Some(line)) = (mode, self.port.line) {
            match claimed.ports.get(&port) {
                Some(first) => seen.error(
                    line,
                    format!(
                        "Port {port} already belongs to the [Service] with Port at line {first}"
                    ),
                ),
                None => {
                    claimed.ports.insert(port, line);
                }
            }
        }
        let (Some(name), Some(mode)) = (self.name.value, mode) else {
            return None;
        };
        if self.backends.is_empty() || !self.keep {
            return None;
        }
        Some(ServiceConfig {
            name,
            mode,
            backends: self.backends,
            balance: self.balance.value.unwrap_or_default(),
            proxy_protocol: self.proxy_protocol.value.unwrap_or(false),
            health_check,
            check_interval_ms,
            check_timeout_ms,
            rise: self.rise.value.map_or(2, |v| v as u8),
            fall: self.fall.value.map_or(3, |v| v as u8),
            line: self.header,
        })
    }
}

/// `10.20.1.10:443` or `[fd20:ab:cd:2::10]:443`: a unicast address and a port.
fn backend_addr(text: &str) -> Result<SocketAddr, String> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => rest
            .split_once("]:")
            .ok_or_else(|| format!("Backend {text:?} is not [IPv6 address]:port"))?,
        None => text
            .rsplit_once(':')
            .filter(|(h, _)| !h.contains(':'))
            .ok_or_else(|| {
                format!("Backend {text:?} needs a port, like 10.20.1.10:443 or [fd20::10]:443")
            })?,
    };
    let addr = values::ip(host).ok_or_else(|| {
        if host.bytes().any(|b| b.is_ascii_alphabetic()) && !host.contains(':') {
            format!("Backend {text:?}: {host:?} is a host name; DNS names are not supported, give an IP address")
        } else {
            format!("Backend {text:?}: {host:?} is not an IP address")
        }
    })?;
    if text.starts_with('[') != matches!(addr, IpAddress::Ipv6(_)) {
        return Err(format!(
            "Backend {text:?}: write IPv6 in brackets and IPv4 without, like [fd20::10]:443"
        ));
    }
    if let Some(kind) = values::non_unicast_kind(addr) {
        return Err(format!("Backend {text:?}: {host} is {kind}"));
    }
    let port = values::number("Backend port", port, 1..=u16::MAX)?;
    Ok(SocketAddr::new(ip(addr), port))
}

fn ip(addr: IpAddress) -> IpAddr {
    match addr {
        IpAddress::Ipv4(a) => IpAddr::V4(a),
        IpAddress::Ipv6(a) => IpAddr::V6(a),
    }
}

fn mode(value: &str) -> Result<ModeKind, String> {
    match value.to_ascii_lowercase().as_str() {
        "tls" => Ok(ModeKind::Tls),
        "http" => Ok(ModeKind::Http),
        "tcp" => Ok(ModeKind::Tcp),
        _ => Err(format!("Mode {value:?} is not tls, http or tcp")),
    }
}

fn balance(value: &str) -> Result<Balance, String> {
    match value.to_ascii_lowercase().as_str() {
        "roundrobin" => Ok(Balance::RoundRobin),
        "leastconn" => Ok(Balance::LeastConnections),
        _ => Err(format!("Balance {value:?} is not roundrobin or leastconn")),
    }
}

fn proxy_protocol(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "v2" => Ok(true),
        "off" => Ok(false),
        "v1" => Err(String::from(
            "ProxyProtocol v1 (the text header) is not supported; use v2",
        )),
        _ => Err(format!("ProxyProtocol {value:?} is not v2 or off")),
    }
}

fn health_check(value: &str) -> Result<HealthCheck, String> {
    let mut words = value.split_ascii_whitespace();
    let kind = words.next().unwrap_or("");
    let path = words.next();
    if words.next().is_some() {
        return Err(format!(
            "HealthCheck {value:?} has too many words; expected tcp or http /path"
        ));
    }
    match (kind.to_ascii_lowercase().as_str(), path) {
        ("tcp", None) => Ok(HealthCheck::Tcp),
        ("tcp", Some(_)) => Err(String::from("HealthCheck = tcp takes no path")),
        ("http", None) => Err(String::from(
            "HealthCheck = http needs a path, like HealthCheck = http /healthz",
        )),
        ("http", Some(path)) => {
            if !path.starts_with('/') || path.len() > MAX_CHECK_PATH {
                return Err(format!(
                    "HealthCheck path {path:?} must start with '/' and be at most {MAX_CHECK_PATH} characters"
                ));
            }
            if !path.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "HealthCheck path {path:?} has characters that are not printable ASCII"
                ));
            }
            Ok(HealthCheck::Http {
                path: String::from(path),
            })
        }
        _ => Err(format!("HealthCheck {value:?} is not tcp or http /path")),
    }
}
