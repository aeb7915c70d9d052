//! What the server answers: its zones, the names in them, and where each name lives.
//!
//! Names are kept in wire form (length-prefixed labels, ending in the root's empty
//! label), lowercased, so that "is this name at or below that one" is a byte comparison
//! at a label boundary, and a question's name is lowercased once into a stack buffer.
//!
//! Which name answers a question follows the web gateway's rule
//! ([`NameTable`](crate::gateway::names::NameTable)), not RFC 4592's closest encloser: an
//! exact name first, else the wildcard with the longest suffix. DNS then sends clients to
//! exactly the gateways that would serve them, even for `x.shop.example.org` when only
//! `www.shop.example.org` and `*.example.org` are configured (RFC 4592 would say
//! NXDOMAIN there, and the gateway would still serve it).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use domain::base::Name;

use crate::gateway::names::NamePattern;

/// The longest name in wire form (RFC 1035 §2.3.4).
pub(super) const MAX_WIRE_NAME: usize = 255;

/// One zone as the caller describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSpec {
    /// The zone's apex, e.g. `example.org` (any case, a trailing dot ignored).
    pub apex: String,
    /// The SOA RNAME as a name: `hostmaster.example.org` for hostmaster@example.org.
    pub hostmaster: String,
    /// The SOA serial.
    pub serial: u32,
    /// SOA refresh, retry and expire, in seconds (for secondaries; the gateways have none).
    pub refresh: u32,
    /// See `refresh`.
    pub retry: u32,
    /// See `refresh`.
    pub expire: u32,
    /// SOA MINIMUM: how long resolvers cache a negative answer (RFC 2308), capped by
    /// the SOA's own TTL.
    pub minimum: u32,
    /// The zone's name servers, the first being the SOA MNAME, each with its glue
    /// addresses (required for a name inside the zone, else empty).
    pub name_servers: Vec<(String, Vec<IpAddr>)>,
}

/// Everything [`DnsServer::new`](super::DnsServer::new) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    /// The zones served, at least one.
    pub zones: Vec<ZoneSpec>,
    /// TTL of the A/AAAA answers for service names, in seconds.
    pub ttl: u32,
    /// TTL of the SOA and NS records and their glue, in seconds.
    pub zone_ttl: u32,
    /// The service names; a name's position here is its `name_index` for
    /// [`set_addresses`](super::DnsServer::set_addresses). A name outside every zone is
    /// accepted and never answered.
    pub names: Vec<NamePattern>,
    /// Responses per second to one client network (/24 or /56) over UDP; 0: no limit.
    pub rate_limit: u16,
}

/// A zone, ready to answer.
pub(super) struct Zone {
    pub(super) apex: Name<Vec<u8>>,
    pub(super) hostmaster: Name<Vec<u8>>,
    pub(super) serial: u32,
    pub(super) refresh: u32,
    pub(super) retry: u32,
    pub(super) expire: u32,
    pub(super) minimum: u32,
    pub(super) name_servers: Vec<Name<Vec<u8>>>,
}

/// What a node is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum NodeKind {
    /// A service name (its index in [`ServerSpec::names`]); addresses set by the caller.
    Service,
    /// A name server's name with its glue addresses (fixed).
    Glue,
}

/// A name with addresses.
pub(super) struct Node {
    /// Lowercase wire form; for a wildcard, the suffix after `*.`.
    pub(super) wire: Vec<u8>,
    pub(super) wildcard: bool,
    /// Index into the zones; `None` outside every zone (never answered).
    pub(super) zone: Option<usize>,
    pub(super) kind: NodeKind,
    pub(super) v4: Vec<Ipv4Addr>,
    pub(super) v6: Vec<Ipv6Addr>,
    /// Where the next answer's rotation starts.
    pub(super) turn: u32,
}

/// Where a question's name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    /// In none of the zones: REFUSED.
    Outside,
    /// In zone `zone`; `node` is the node that answers it, if any.
    Inside {
        zone: usize,
        apex: bool,
        node: Option<usize>,
        /// The name exists: the apex, a node, or an empty non-terminal above one.
        exists: bool,
    },
}

/// `name` (dotted text, any case, trailing dot optional) in lowercase wire form.
pub(super) fn wire(text: &str) -> Result<Vec<u8>, String> {
    let text = text.strip_suffix('.').unwrap_or(text);
    let mut out = Vec::with_capacity(text.len() + 2);
    if !text.is_empty() {
        for label in text.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(format!("{text:?} has an empty label or one over 63 bytes"));
            }
            out.push(label.len() as u8);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.push(0);
    if out.len() > MAX_WIRE_NAME {
        return Err(format!("{text:?} is longer than {MAX_WIRE_NAME} bytes"));
    }
    Ok(out)
}

/// `text` as a `domain` name (lowercase).
pub(super) fn name(text: &str) -> Result<Name<Vec<u8>>, String> {
    Name::from_octets(wire(text)?).map_err(|_| format!("{text:?} is not a domain name"))
}

/// Whether `name` is `suffix` or below it; both lowercase wire form, `name` well formed.
pub(super) fn at_or_below(name: &[u8], suffix: &[u8]) -> bool {
    let mut pos = 0;
    loop {
        let Some(rest) = name.get(pos..) else {
            return false;
        };
        if rest == suffix {
            return true;
        }
        match rest.first() {
            Some(&len) if len != 0 => pos += 1 + usize::from(len),
            _ => return false,
        }
    }
}

/// Whether `name` is strictly below `suffix`.
fn below(name: &[u8], suffix: &[u8]) -> bool {
    name.len() > suffix.len() && at_or_below(name, suffix)
}

/// Zones and nodes built from a [`ServerSpec`].
pub(super) struct Data {
    pub(super) zones: Vec<Zone>,
    /// Lowercase wire form of each zone's apex.
    zone_wire: Vec<Vec<u8>>,
    /// The service names first, in [`ServerSpec::names`] order, then the glue names.
    pub(super) nodes: Vec<Node>,
    pub(super) services: usize,
}

impl Data {
    pub(super) fn new(spec: &ServerSpec) -> Result<Data, String> {
        let mut zones = Vec::new();
        let mut zone_wire = Vec::new();
        for z in &spec.zones {
            let apex_wire = wire(&z.apex)?;
            if zone_wire.contains(&apex_wire) {
                return Err(format!("zone {} is given twice", z.apex));
            }
            if z.name_servers.is_empty() {
                return Err(format!("zone {} has no name server", z.apex));
            }
            zones.push(Zone {
                apex: name(&z.apex)?,
                hostmaster: name(&z.hostmaster)?,
                serial: z.serial,
                refresh: z.refresh,
                retry: z.retry,
                expire: z.expire,
                minimum: z.minimum,
                name_servers: z
                    .name_servers
                    .iter()
                    .map(|(n, _)| name(n))
                    .collect::<Result<_, _>>()?,
            });
            zone_wire.push(apex_wire);
        }
        let mut data = Data {
            zones,
            zone_wire,
            nodes: Vec::new(),
            services: spec.names.len(),
        };
        for pattern in &spec.names {
            let (text, wildcard) = match pattern {
                NamePattern::Exact(n) => (n, false),
                NamePattern::Wildcard(s) => (s, true),
            };
            let wire = wire(text)?;
            let zone = data.zone_of(&wire);
            data.nodes.push(Node {
                wire,
                wildcard,
                zone,
                kind: NodeKind::Service,
                v4: Vec::new(),
                v6: Vec::new(),
                turn: 0,
            });
        }
        for z in &spec.zones {
            for (ns, glue) in &z.name_servers {
                let wire = wire(ns)?;
                if data.nodes.iter().any(|n| n.wire == wire && !n.wildcard) {
                    // The same name server serves two zones: one node is enough.
                    continue;
                }
                let zone = data.zone_of(&wire);
                data.nodes.push(Node {
                    wire,
                    wildcard: false,
                    zone,
                    kind: NodeKind::Glue,
                    v4: glue
                        .iter()
                        .filter_map(|a| match a {
                            IpAddr::V4(v4) => Some(*v4),
                            IpAddr::V6(_) => None,
                        })
                        .collect(),
                    v6: glue
                        .iter()
                        .filter_map(|a| match a {
                            IpAddr::V6(v6) => Some(*v6),
                            IpAddr::V4(_) => None,
                        })
                        .collect(),
                    turn: 0,
                });
            }
        }
        Ok(data)
    }

    /// The zone with the longest apex at or above `name`.
    fn zone_of(&self, name: &[u8]) -> Option<usize> {
        self.zone_wire
            .iter()
            .enumerate()
            .filter(|(_, apex)| at_or_below(name, apex))
            .max_by_key(|(_, apex)| apex.len())
            .map(|(i, _)| i)
    }

    /// Where `name` (lowercase wire form) is.
    pub(super) fn place(&self, name: &[u8]) -> Place {
        let Some(zone) = self.zone_of(name) else {
            return Place::Outside;
        };
        let apex = self.zone_wire[zone] == name;
        let in_zone = |n: &&Node| n.zone == Some(zone);
        let exact = self
            .nodes
            .iter()
            .position(|n| n.zone == Some(zone) && !n.wildcard && n.wire == name);
        let node = exact.or_else(|| {
            self.nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.zone == Some(zone) && n.wildcard && below(name, &n.wire))
                .max_by_key(|(_, n)| n.wire.len())
                .map(|(i, _)| i)
        });
        // An empty non-terminal: a name with nothing of its own above a node (a wildcard's
        // owner `*.suffix` is below `suffix`, so `suffix` exists too).
        let exists = apex
            || node.is_some()
            || self.nodes.iter().filter(in_zone).any(|n| {
                if n.wildcard {
                    at_or_below(&n.wire, name)
                } else {
                    below(&n.wire, name)
                }
            });
        Place::Inside {
            zone,
            apex,
            node,
            exists,
        }
    }

    /// The glue node of a name server's name.
    pub(super) fn glue(&self, ns: &[u8]) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| n.kind == NodeKind::Glue && n.wire == ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn wire_form_is_lowercase_labels_and_checks_lengths() {
        assert_eq!(wire("Ab.c").unwrap(), b"\x02ab\x01c\x00");
        assert_eq!(wire("ab.c.").unwrap(), b"\x02ab\x01c\x00");
        assert_eq!(wire("").unwrap(), b"\x00");
        assert!(wire("a..b").is_err());
        assert!(wire(&"a".repeat(64)).is_err());
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(wire(&long).is_err());
    }

    #[test]
    fn at_or_below_compares_at_label_boundaries() {
        let org = wire("example.org").unwrap();
        assert!(at_or_below(&wire("example.org").unwrap(), &org));
        assert!(at_or_below(&wire("www.example.org").unwrap(), &org));
        assert!(!at_or_below(&wire("badexample.org").unwrap(), &org));
        assert!(!at_or_below(&wire("org").unwrap(), &org));
        // A label whose bytes look like the suffix is not a boundary.
        assert!(!at_or_below(b"\x04\x01x\x01y\x00", b"\x01x\x01y\x00"));
        assert!(at_or_below(b"\x00", b"\x00"));
    }
}
