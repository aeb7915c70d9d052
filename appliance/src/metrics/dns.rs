//! The authoritative DNS's part of a scrape: queries by transport, answers by outcome,
//! what was dropped and why.

use super::exposition::{Exposition, Kind};
use crate::dns::DnsCounters;

/// The DNS server at the time of a scrape.
#[derive(Clone, Copy, Debug, Default)]
pub struct DnsStats {
    pub counters: DnsCounters,
    /// UDP queries to port 53 of an address that is not a `Listen` one.
    pub not_listening: u64,
}

impl DnsStats {
    pub(super) fn render(&self, e: &mut Exposition) {
        let c = &self.counters;
        e.family(
            "vdcnet_dns_queries_total",
            Kind::Counter,
            "Queries received, by transport.",
        );
        e.sample(&[("transport", &"udp")], c.udp_queries);
        e.sample(&[("transport", &"tcp")], c.tcp_queries);
        e.family(
            "vdcnet_dns_responses_total",
            Kind::Counter,
            "Responses sent, by outcome.",
        );
        for (outcome, n) in [
            ("answer", c.answers),
            ("nodata", c.nodata),
            ("nxdomain", c.nxdomain),
            ("refused", c.refused),
            ("formerr", c.formerr),
            ("notimp", c.notimp),
            ("badvers", c.badvers),
            ("truncated", c.truncated),
            ("rate_limit_slip", c.rate_limited_slipped),
        ] {
            e.sample(&[("outcome", &outcome)], n);
        }
        e.family(
            "vdcnet_dns_dropped_total",
            Kind::Counter,
            "Queries answered with nothing, by reason.",
        );
        for (reason, n) in [
            ("short", c.dropped_short),
            ("response", c.dropped_responses),
            ("no_room", c.dropped_no_room),
            ("rate_limit", c.rate_limited_dropped),
            ("not_listening", self.not_listening),
        ] {
            e.sample(&[("reason", &reason)], n);
        }
        e.single(
            "vdcnet_dns_tcp_closed_total",
            Kind::Counter,
            "TCP connections closed for bad framing or a query not worth an answer.",
            c.tcp_closed,
        );
    }
}
