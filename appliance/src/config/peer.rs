//! `[Peer]`: one WireGuard peer, its endpoint and the prefixes routed to it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::wire::{IpAddress, IpCidr};

use super::keys::{PublicKey, SecretKey};
use super::shared::{bad_key, lookup, unknown_key, Seen, Single};
use super::values::{self, BareAddress};
use super::{PeerConfig, MAX_ALLOWED_IPS};

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

pub(super) struct PeerBuilder {
    header: usize,
    keep: bool,
    /// A line of this section could not be read; don't report missing keys.
    pub(super) damaged: bool,
    public_key: Single<PublicKey>,
    preshared_key: Single<SecretKey>,
    endpoint: Single<(IpAddress, u16)>,
    allowed_ips: Vec<IpCidr>,
    allowed_ips_over_limit: bool,
    keepalive: Single<Option<u16>>,
}

impl PeerBuilder {
    pub(super) fn new(header: usize, keep: bool) -> PeerBuilder {
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

    pub(super) fn entry(&mut self, seen: &mut Seen, line: usize, key: &str, value: &str) {
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

    pub(super) fn finish(self, seen: &mut Seen) -> Option<PeerConfig> {
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
