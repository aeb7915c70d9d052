//! `[Mycelium]`: the appliance as a node of the Planetary Network (Mycelium 0.7.10), and
//! `Planetary = yes` on the segment that joins it.
//!
//! ```text
//! [Mycelium]
//! PrivateKey = 6f1c...e2                # 64 hex digits, or base64 (44 characters):
//!                                       # the 32 octets of mycelium's key file
//! Peer = tcp://203.0.113.7:9651         # repeatable, comma-separated lists too
//! Listen = yes                          # optional: no (default) | yes (port 9651) | PORT
//!
//! [Link]
//! Role = segment
//! Planetary = yes                       # this segment gets the node's /64 and 400::/7
//! ```
//!
//! The key is the one `mycelium --key-file` keeps (32 raw octets: `xxd -p -c 32 key.bin`
//! prints the hex form); the node's address and /64 follow from it (see
//! [`crate::mycelium::keys`]). Peers are IP addresses only (no DNS at boot) over TCP;
//! Mycelium's `quic://` peers are refused with a message. `Listen` accepts inbound peers
//! on the underlay links' addresses.
//!
//! At most one segment may say `Planetary = yes` (the node owns a single /64, and SLAAC
//! needs a whole /64 per link); that link gets one more address, the node's own, so it
//! may name at most [`MAX_ADDRESSES`](super::MAX_ADDRESSES) − 1 of its own. Checks that
//! need the whole file ([`check`]) run once it is read.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::wire::IpAddress;

use super::keys::SecretKey;
use super::link::yes_no;
use super::shared::{lookup, unknown_key, Seen, Single};
use super::values;
use super::{LinkConfig, Role, MAX_ADDRESSES};

/// `Peer` addresses per `[Mycelium]`.
pub const MAX_MYCELIUM_PEERS: usize = 16;

/// The `[Mycelium]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MyceliumConfig {
    /// The node's X25519 secret key (mycelium's key file, raw).
    pub private_key: SecretKey,
    /// Peers to keep a TCP connection to, in file order, unique.
    pub peers: Vec<(IpAddress, u16)>,
    /// The port inbound peers are accepted on (underlay addresses), if any.
    pub listen: Option<u16>,
    /// Line of the `[Mycelium]` header.
    pub line: usize,
}

#[derive(Clone, Copy)]
enum MyceliumKey {
    PrivateKey,
    Peer,
    Listen,
}

const KEYS: &[(&str, MyceliumKey)] = &[
    ("PrivateKey", MyceliumKey::PrivateKey),
    ("Peer", MyceliumKey::Peer),
    ("Listen", MyceliumKey::Listen),
];

pub(super) struct MyceliumBuilder {
    header: usize,
    keep: bool,
    pub(super) damaged: bool,
    private_key: Single<SecretKey>,
    peers: Vec<((IpAddress, u16), usize)>,
    listen: Single<Option<u16>>,
    over_limit: bool,
}

/// 64 hex digits or base64 of 32 octets.
/// Decoded straight into the key, so no stray copy of the secret is left behind.
fn private_key(value: &str) -> Result<SecretKey, String> {
    let bad =
        || String::from("PrivateKey is not 32 octets as 64 hex digits or base64 (44 characters)");
    if value.len() != 64 {
        return SecretKey::from_base64(value).ok_or_else(bad);
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut key = SecretKey([0; 32]);
    for (i, pair) in value.as_bytes().chunks_exact(2).enumerate() {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(h), Some(l)) => key.0[i] = (h << 4) | l,
            _ => return Err(bad()),
        }
    }
    Ok(key)
}

/// `tcp://192.0.2.7:9651`, `tcp://[2001:db8::7]:9651`, or the same without `tcp://`.
fn peer(text: &str) -> Result<(IpAddress, u16), String> {
    let (scheme, rest) = match text.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("tcp", text),
    };
    if !scheme.eq_ignore_ascii_case("tcp") {
        return Err(format!(
            "Peer {text:?}: only tcp:// peers are supported (not {scheme}://)"
        ));
    }
    values::endpoint(rest).map_err(|m| m.replacen("Endpoint", "Peer", 1))
}

impl MyceliumBuilder {
    pub(super) fn new(header: usize, keep: bool) -> MyceliumBuilder {
        MyceliumBuilder {
            header,
            keep,
            damaged: false,
            private_key: Single::default(),
            peers: Vec::new(),
            listen: Single::default(),
            over_limit: false,
        }
    }

    pub(super) fn entry(&mut self, seen: &mut Seen, line: usize, key: &str, value: &str) {
        let Some((name, key)) = lookup(key, KEYS) else {
            return unknown_key(seen, line, key, "[Mycelium]");
        };
        if value.is_empty() {
            return seen.error(line, format!("{name} has no value"));
        }
        match key {
            MyceliumKey::PrivateKey => self
                .private_key
                .set(seen, name, line, |_| private_key(value)),
            MyceliumKey::Peer => {
                for item in values::list_items(value) {
                    if let Err(message) = self.peer(item, line) {
                        seen.error(line, message);
                    }
                }
            }
            MyceliumKey::Listen => {
                self.listen
                    .set(seen, name, line, |_| match yes_no(name, value) {
                        Ok(true) => Ok(Some(crate::mycelium::PORT)),
                        Ok(false) => Ok(None),
                        Err(_) => values::number("Listen", value, 1..=u16::MAX)
                            .map(Some)
                            .map_err(|_| format!("Listen {value:?} is not yes, no or a port")),
                    })
            }
        }
    }

    fn peer(&mut self, item: &str, line: usize) -> Result<(), String> {
        let endpoint = peer(item)?;
        if let Some((_, first)) = self.peers.iter().find(|(e, _)| *e == endpoint) {
            return Err(format!("Peer {item} is already given at line {first}"));
        }
        if self.peers.len() >= MAX_MYCELIUM_PEERS {
            if self.over_limit {
                return Ok(());
            }
            self.over_limit = true;
            return Err(format!(
                "more than {MAX_MYCELIUM_PEERS} Peer addresses in [Mycelium]"
            ));
        }
        self.peers.push((endpoint, line));
        Ok(())
    }

    pub(super) fn finish(self, seen: &mut Seen) -> Option<MyceliumConfig> {
        if self.private_key.line.is_none() && !self.damaged {
            seen.error(
                self.header,
                String::from("[Mycelium] needs a PrivateKey (mycelium's key file: 32 octets in hex or base64)"),
            );
        }
        let key = self.private_key.value?;
        self.keep.then(|| MyceliumConfig {
            private_key: key,
            peers: self.peers.iter().map(|(e, _)| *e).collect(),
            listen: self.listen.value.flatten(),
            line: self.header,
        })
    }
}

/// Checks across sections: `Planetary = yes` needs a `[Mycelium]`, is given on one
/// segment at most, and leaves that segment room for the node's address.
pub(super) fn check(
    seen: &mut Seen,
    mycelium: Option<&MyceliumConfig>,
    mycelium_header: Option<usize>,
    links: &[LinkConfig],
) {
    let planetary: Vec<&LinkConfig> = links.iter().filter(|l| l.planetary).collect();
    if let Some(first) = planetary.first() {
        if mycelium_header.is_none() {
            seen.error(
                first.line,
                String::from("Planetary = yes needs a [Mycelium] section (the node whose /64 the segment gets)"),
            );
        }
    }
    for l in planetary.iter().skip(1) {
        seen.error(
            l.line,
            format!(
                "a second segment with Planetary = yes (the first is the [Link] at line {}); the node owns one /64, so one segment joins the Planetary Network",
                planetary[0].line
            ),
        );
    }
    for l in &planetary {
        if l.addresses.len() >= MAX_ADDRESSES {
            seen.error(
                l.line,
                format!("a Planetary segment holds the node's address too, so it may give at most {} Address(es) of its own", MAX_ADDRESSES - 1),
            );
        }
        if l.addresses.iter().any(|c| match c.address() {
            IpAddress::Ipv6(a) => crate::mycelium::global_subnet().contains(a),
            IpAddress::Ipv4(_) => false,
        }) {
            seen.error(
                l.line,
                String::from("a Planetary segment gets its 400::/7 address from the [Mycelium] key; do not give one in Address"),
            );
        }
    }
    if let Some(m) = mycelium {
        let total: usize = links.iter().map(|l| l.addresses.len()).sum();
        if total + 1 > crate::runtime::MAX_LOCAL_ADDRESSES {
            seen.error(
                m.line,
                format!(
                    "the node's Mycelium address would be address {} of the appliance; it holds at most {}",
                    total + 1,
                    crate::runtime::MAX_LOCAL_ADDRESSES
                ),
            );
        }
        let underlay_addrs = links.iter().any(|l| l.role == Role::Underlay);
        if (m.listen.is_some() || !m.peers.is_empty()) && !underlay_addrs {
            seen.error(
                m.line,
                String::from("[Mycelium] peers over an underlay [Link]; this file has none"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::parse;
    use alloc::string::ToString;
    use alloc::vec::Vec;

    const KEY: &str = "0101010101010101010101010101010101010101010101010101010101010101";

    fn errors(text: &str) -> Vec<(usize, alloc::string::String)> {
        match parse(text.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| (e.line, e.message)).collect(),
        }
    }

    #[test]
    fn a_planetary_segment_and_its_node_parse() {
        let text = alloc::format!(
            "[Link]\nAddress = 192.0.2.1/24\n[Link]\nRole = segment\nAddress = 10.20.1.1/24\nPlanetary = yes\n\
             [Mycelium]\nPrivateKey = {KEY}\nPeer = tcp://192.0.2.7:9651, [2001:db8::7]:9651\nListen = yes\n"
        );
        let c = parse(text.as_bytes()).unwrap();
        let m = c.mycelium.unwrap();
        assert_eq!(m.private_key.0, [1u8; 32]);
        assert_eq!(m.peers.len(), 2);
        assert_eq!(m.listen, Some(crate::mycelium::PORT));
        assert!(c.links[1].planetary && !c.links[0].planetary);
    }

    #[test]
    fn every_mistake_is_reported_with_its_line() {
        let text = "[Link]\nAddress = 192.0.2.1/24\nPlanetary = yes\n[Link]\nRole = segment\n\
                    Address = 10.20.1.1/24\nPlanetary = yes\n[Link]\nRole = segment\n\
                    Address = 10.20.2.1/24\nPlanetary = yes\n[Mycelium]\nPrivateKey = nope\n\
                    Peer = quic://192.0.2.7:9651\nPeer = tcp://host.example:9651\nListen = maybe\n";
        let e = errors(text);
        let lines: Vec<usize> = e.iter().map(|e| e.0).collect();
        for want in [3, 8, 13, 14, 15, 16] {
            assert!(lines.contains(&want), "no error at line {want}: {e:?}");
        }
        assert!(
            e.iter()
                .any(|(_, m)| m.contains("second segment with Planetary")),
            "{e:?}"
        );
    }

    #[test]
    fn planetary_needs_a_mycelium_section_and_the_section_a_key() {
        let e = errors("[Link]\nAddress = 192.0.2.1/24\n[Link]\nRole = segment\nAddress = 10.20.1.1/24\nPlanetary = yes\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, 3);
        let e = errors("[Link]\nAddress = 192.0.2.1/24\n[Mycelium]\nPeer = 192.0.2.7:9651\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].0, e[0].1.contains("PrivateKey")), (3, true));
    }

    #[test]
    fn base64_and_hex_keys_are_the_same_key() {
        let b64 = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
        let parse_key = |k: &str| {
            let t =
                alloc::format!("[Link]\nAddress = 192.0.2.1/24\n[Mycelium]\nPrivateKey = {k}\n");
            parse(t.as_bytes()).unwrap().mycelium.unwrap().private_key
        };
        assert_eq!(parse_key(b64), parse_key(KEY));
        assert_eq!(parse_key(&KEY.to_uppercase()), parse_key(KEY));
        let _ = KEY.to_string();
    }
}
