//! What the Mycelium node received, sent and refused, by reason ([`Counters`]).
//!
//! Every refusal path in the node bumps exactly one of these before returning, so bad
//! input and full tables are visible without the caller's help.

/// Event and drop counters, a plain struct the caller can copy out and print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Octets handed to `receive`.
    pub rx_bytes: u64,
    /// Peers dropped because their stream lost its framing (garbage, oversized or unknown
    /// packets).
    pub peers_rejected: u64,
    /// Peers dropped because no IHU came for the dead interval.
    pub peers_dead: u64,
    /// Peers refused at `add_peer` (table full).
    pub peers_full: u64,

    /// Control packets received.
    pub control_rx: u64,
    /// Control packets whose TLV was malformed (framing intact: skipped).
    pub malformed_tlvs: u64,
    /// TLVs in an address encoding Mycelium does not use (IPv4, link-local, wildcard).
    pub unsupported_ae: u64,
    /// TLVs in an address encoding Babel does not define.
    pub unknown_ae: u64,
    /// TLVs of an unknown type.
    pub unknown_tlvs: u64,
    pub hellos_rx: u64,
    pub ihus_rx: u64,
    /// Link-cost samples taken (an IHU answering one of our Hellos).
    pub rtt_samples: u64,
    pub updates_rx: u64,
    /// Updates refused by the filters: outside 400::/7, shorter than /64, or a prefix
    /// the router-id's key does not own.
    pub updates_filtered: u64,
    /// Updates for our own /64.
    pub updates_own: u64,
    /// Updates that failed the feasibility condition.
    pub updates_unfeasible: u64,
    pub route_requests_rx: u64,
    /// Route requests forwarded for others.
    pub route_requests_forwarded: u64,
    /// Route requests dropped: too many generations, or for prefixes outside 400::/7.
    pub route_requests_dropped: u64,
    pub seqno_requests_rx: u64,
    /// Seqno requests forwarded towards the source.
    pub seqno_requests_forwarded: u64,
    /// Seqno requests answered by bumping our own seqno.
    pub seqno_bumps: u64,
    /// Seqno requests not acted on (duplicates, no hops left, nowhere to send them).
    pub seqno_requests_unhandled: u64,

    pub hellos_tx: u64,
    pub ihus_tx: u64,
    pub updates_tx: u64,
    pub route_requests_tx: u64,
    pub seqno_requests_tx: u64,

    /// Routes refused because the route table was full.
    pub routes_full: u64,
    /// Updates not sent because the source table was full.
    pub sources_full: u64,
    /// Route requests marked queried beyond the query table's bound (sent, not tracked).
    pub queries_full: u64,
    /// Routes that expired.
    pub routes_expired: u64,
    /// Cached ciphers evicted to make room.
    pub secrets_evicted: u64,

    /// Data packets received from peers.
    pub data_rx: u64,
    /// IPv6 packets opened and delivered.
    pub delivered: u64,
    /// Data packets forwarded to another peer.
    pub forwarded: u64,
    /// IPv6 packets sealed and sent (first hop ours).
    pub sealed: u64,
    /// Packets that arrived or were sent with a hop limit below 2.
    pub hop_limit: u64,
    /// Data for us from a source we have no route (hence no key) for.
    pub no_key: u64,
    /// Data for us that did not authenticate.
    pub decrypt_failed: u64,
    /// Opened packets that were not a well-formed IPv6 packet.
    pub bad_inner: u64,
    /// Opened packets whose inner addresses differ from the outer ones.
    pub spoofed: u64,
    /// Opened message-API fragments and out-of-band ICMPs (not supported here).
    pub unsupported_inner: u64,
    /// Packets to or from a remote whose public key is a low-order point.
    pub weak_key: u64,
    /// Data packets with no selected route to forward them on.
    pub no_route: u64,
    /// Data packets whose route leads back to the peer they came from.
    pub loops: u64,
    /// Data packets to addresses outside 400::/7.
    pub not_overlay: u64,
    /// Outbound packets queued while their route was being resolved.
    pub queued: u64,
    /// Queued packets whose route did not come in time, or that found the queue full.
    pub queue_dropped: u64,
    /// Packets (control or data) not written because the peer's send buffer was full.
    pub tx_full: u64,
}
