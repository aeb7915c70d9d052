//! `[Routing]`: the routing protocol (Babel) between appliances over the tunnel.
//!
//! ```text
//! [Routing]
//! Networks = 10.20.0.0/16, fd20:ab:cd::/48   # the VDC's address plan (required)
//! HelloInterval = 400                         # optional, milliseconds
//! ```
//!
//! With the section, every peer is a Babel neighbour; the appliance announces its segments
//! and `[Interface]` addresses that lie inside `Networks`, and ignores (and counts) routes
//! to anything outside them.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::wire::IpCidr;

use super::shared::{lookup, unknown_key, Seen, Single};
use super::values::{self, BareAddress};
use super::{RoutingConfig, HELLO_INTERVAL_MS, MAX_NETWORKS};

#[derive(Clone, Copy)]
enum RoutingKey {
    Networks,
    HelloInterval,
}

const ROUTING_KEYS: &[(&str, RoutingKey)] = &[
    ("Networks", RoutingKey::Networks),
    ("HelloInterval", RoutingKey::HelloInterval),
];

pub(super) struct RoutingBuilder {
    header: usize,
    keep: bool,
    /// A line of this section could not be read; don't report missing keys.
    pub(super) damaged: bool,
    networks: Vec<IpCidr>,
    network_line: Option<usize>,
    hello_ms: Single<u16>,
}

impl RoutingBuilder {
    pub(super) fn new(header: usize, keep: bool) -> RoutingBuilder {
        RoutingBuilder {
            header,
            keep,
            damaged: false,
            networks: Vec::new(),
            network_line: None,
            hello_ms: Single::default(),
        }
    }

    pub(super) fn entry(&mut self, seen: &mut Seen, line: usize, key: &str, value: &str) {
        let Some((name, key)) = lookup(key, ROUTING_KEYS) else {
            return unknown_key(seen, line, key, "[Routing]");
        };
        if value.is_empty() {
            return seen.error(line, format!("{name} has no value"));
        }
        match key {
            RoutingKey::Networks => {
                self.network_line.get_or_insert(line);
                for item in values::list_items(value) {
                    if let Err(message) = self.network(item) {
                        seen.error(line, message);
                    }
                }
            }
            RoutingKey::HelloInterval => self.hello_ms.set(seen, name, line, |_| {
                values::number(name, value, HELLO_INTERVAL_MS)
            }),
        }
    }

    fn network(&mut self, item: &str) -> Result<(), String> {
        if item.is_empty() {
            return Err(String::from("empty item in the Networks list"));
        }
        let cidr = values::cidr("Networks", item, BareAddress::Reject)?;
        let network = values::network(cidr);
        if network != cidr {
            return Err(format!(
                "Networks {cidr} has host bits set; did you mean {network}?"
            ));
        }
        if cidr.prefix_len() == 0 {
            return Err(format!(
                "Networks {cidr} is everything; name the VDC's own address plan"
            ));
        }
        if self.networks.contains(&cidr) {
            return Err(format!("Networks {cidr} is listed twice"));
        }
        if self.networks.len() >= MAX_NETWORKS {
            return Err(format!("more than {MAX_NETWORKS} Networks"));
        }
        self.networks.push(cidr);
        Ok(())
    }

    pub(super) fn finish(self, seen: &mut Seen) -> Option<RoutingConfig> {
        if self.networks.is_empty() {
            if self.network_line.is_none() && !self.damaged {
                seen.error(
                    self.header,
                    String::from(
                        "[Routing] has no Networks (the VDC's address plan, e.g. 10.20.0.0/16, fd20:ab:cd::/48)",
                    ),
                );
            }
            return None;
        }
        self.keep.then_some(RoutingConfig {
            networks: self.networks,
            hello_interval_ms: self.hello_ms.value,
            line: self.header,
        })
    }
}
