//! What the Babel core received, sent and refused, by reason ([`Counters`]).
//!
//! Every refusal path in the core bumps exactly one of these before returning, so bad
//! input is visible without the caller's help.

/// Event and drop counters, a plain struct the caller can copy out and print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Packets handed to `receive`.
    pub rx_packets: u64,
    /// Octets handed to `receive`.
    pub rx_bytes: u64,
    /// Packets emitted by `poll`.
    pub tx_packets: u64,
    /// Octets emitted by `poll`.
    pub tx_bytes: u64,
    /// Packets from a neighbour id we do not know.
    pub unknown_neighbour: u64,
    /// Packets refused whole: bad magic, version or length.
    pub malformed_packets: u64,
    /// TLVs refused: truncated, or invalid contents.
    pub malformed_tlvs: u64,
    /// TLVs ignored because they carry an unknown mandatory sub-TLV.
    pub mandatory_subtlv: u64,
    /// TLVs ignored for an unknown address encoding.
    pub unknown_ae: u64,
    /// TLVs of an unknown type (skipped, as the RFC says).
    pub unknown_tlvs: u64,
    /// Updates and requests for prefixes outside the VDC's networks (ignored).
    pub out_of_plan: u64,
    /// Updates that failed the feasibility condition.
    pub unfeasible: u64,
    /// Updates for our own router-id or our own prefixes (ignored).
    pub own: u64,
    /// Routes refused because the route table was full.
    pub routes_full: u64,
    /// Advertisements skipped because the source table was full.
    pub sources_full: u64,
    /// Seqno requests that could not be queued (queue full).
    pub requests_full: u64,
    /// Hellos received.
    pub hellos_rx: u64,
    /// Hellos of the other kind (multicast vs unicast) than the neighbour's first ones.
    pub hellos_ignored: u64,
    /// IHUs received that were for us.
    pub ihus_rx: u64,
    /// Updates received.
    pub updates_rx: u64,
    /// Updates sent (retractions included).
    pub updates_tx: u64,
    /// Seqno requests received.
    pub seqno_requests_rx: u64,
    /// Seqno requests sent (originated or forwarded).
    pub seqno_requests_tx: u64,
    /// Route requests received.
    pub route_requests_rx: u64,
    /// RTT samples taken (RFC 9616).
    pub rtt_samples: u64,
}
