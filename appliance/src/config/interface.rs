//! `[Interface]`: our end of the WireGuard tunnel.

use alloc::format;
use alloc::string::String;

use super::keys::SecretKey;
use super::shared::{
    bad_key, check_mtu_for_ipv6, lookup, mtu, unknown_key, Addresses, Seen, Single,
};
use super::values::{self, BareAddress};
use super::{InterfaceConfig, DEFAULT_LISTEN_PORT};

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

pub(super) struct InterfaceBuilder {
    header: usize,
    keep: bool,
    /// A line of this section could not be read; don't report missing keys.
    pub(super) damaged: bool,
    private_key: Single<SecretKey>,
    listen_port: Single<u16>,
    addresses: Addresses,
    mtu: Single<u16>,
}

impl InterfaceBuilder {
    pub(super) fn new(header: usize, keep: bool) -> InterfaceBuilder {
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

    pub(super) fn entry(&mut self, seen: &mut Seen, line: usize, key: &str, value: &str) {
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

    pub(super) fn finish(self, seen: &mut Seen) -> Option<InterfaceConfig> {
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
