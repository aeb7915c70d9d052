//! Pieces every section uses: the error list, what earlier sections already claimed,
//! key lookup, once-only keys and `Address` lists.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::wire::{EthernetAddress, IpAddress, IpCidr};

use super::keys::{PublicKey, KEY_BASE64_LEN};
use super::values::{self, BareAddress};
use super::{ConfigError, IPV6_MIN_MTU, MAX_ADDRESSES, MAX_ERRORS, MTU_RANGE};

/// Errors so far, capped at [`MAX_ERRORS`] so garbage input can't exhaust the heap.
#[derive(Default)]
pub(super) struct Errors {
    list: Vec<ConfigError>,
    dropped: usize,
}

impl Errors {
    pub(super) fn push(&mut self, line: usize, message: String) {
        if self.list.len() < MAX_ERRORS {
            self.list.push(ConfigError { line, message });
        } else {
            self.dropped += 1;
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.list.is_empty() && self.dropped == 0
    }

    /// In line order (section-level errors are found late but belong to their header).
    pub(super) fn into_sorted(mut self) -> Vec<ConfigError> {
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
pub(super) struct Seen {
    pub(super) errors: Errors,
    /// MAC → line of the `MACAddress` that bound it.
    pub(super) macs: BTreeMap<EthernetAddress, usize>,
    /// Own address (link or tunnel) → line that assigned it.
    pub(super) addresses: BTreeMap<IpAddress, usize>,
    /// Peer public key → line of its `[Peer]` header.
    pub(super) peer_keys: BTreeMap<PublicKey, usize>,
    /// AllowedIPs prefix → line of the `[Peer]` header it belongs to.
    pub(super) allowed_ips: BTreeMap<IpCidr, usize>,
}

impl Seen {
    pub(super) fn error(&mut self, line: usize, message: String) {
        self.errors.push(line, message);
    }
}

/// Finds `key` (any case) in `table`, giving its canonical spelling and meaning.
pub(super) fn lookup<K: Copy>(key: &str, table: &[(&'static str, K)]) -> Option<(&'static str, K)> {
    table
        .iter()
        .find(|(name, _)| key.eq_ignore_ascii_case(name))
        .copied()
}

/// The error for a key that is not in `section`'s table.
pub(super) fn unknown_key(seen: &mut Seen, line: usize, key: &str, section: &str) {
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
pub(super) struct Single<T> {
    pub(super) line: Option<usize>,
    pub(super) value: Option<T>,
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
    pub(super) fn set(
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
pub(super) struct Addresses {
    pub(super) list: Vec<(IpCidr, usize)>,
    pub(super) given: bool,
    pub(super) had_error: bool,
    over_limit: bool,
}

impl Addresses {
    pub(super) fn add(
        &mut self,
        seen: &mut Seen,
        line: usize,
        value: &str,
        bare: BareAddress,
        section: &str,
    ) {
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
    pub(super) fn claim(&self, seen: &mut Seen) {
        for (cidr, line) in &self.list {
            seen.addresses.entry(cidr.address()).or_insert(*line);
        }
    }

    pub(super) fn has_v6(&self) -> bool {
        self.list.iter().any(|(c, _)| matches!(c, IpCidr::Ipv6(_)))
    }

    pub(super) fn cidrs(&self) -> Vec<IpCidr> {
        self.list.iter().map(|(c, _)| *c).collect()
    }
}

/// Reports an MTU below [`IPV6_MIN_MTU`] in a section that has an IPv6 address.
pub(super) fn check_mtu_for_ipv6(
    seen: &mut Seen,
    mtu: &Single<u16>,
    addresses: &Addresses,
    section: &str,
) {
    if let (Some(value), Some(line)) = (mtu.value, mtu.line) {
        if value < IPV6_MIN_MTU && addresses.has_v6() {
            seen.error(
                line,
                format!("MTU {value} is below {IPV6_MIN_MTU}, the minimum for IPv6, and this {section} has an IPv6 Address"),
            );
        }
    }
}

/// `MTU =` in any section.
pub(super) fn mtu(text: &str) -> Result<u16, String> {
    values::number("MTU", text, MTU_RANGE)
}

/// The error for a key value that is not base64 of 32 bytes.
pub(super) fn bad_key(name: &str) -> String {
    format!(
        "{name} is not a WireGuard key: expected {KEY_BASE64_LEN} characters of base64 encoding 32 bytes, as printed by `wg genkey` / `wg pubkey`"
    )
}
