//! The authoritative DNS server of a gateway, sans-I/O: a query's bytes in, the answer's
//! bytes out, written into the caller's buffer.
//!
//! Every gateway answers for the zones it is configured with (`[DNS]`): the SOA and NS
//! records at each apex (with glue for in-zone name servers), and A/AAAA for each service
//! name — exact or wildcard — listing whatever addresses the caller last gave with
//! [`DnsServer::set_addresses`] (the public addresses of the live gateways that serve the
//! name), rotated on every answer so that clients spread over them. It never recurses,
//! and answers nothing outside its zones.
//!
//! What it answers (RFC 1034, 1035, 2308, 6891, 7766, 8482):
//!
//! | question | answer |
//! | --- | --- |
//! | A/AAAA of a name with addresses of the family | NOERROR, AA, the addresses, `TTL` |
//! | SOA or NS at an apex | NOERROR, AA; NS with its glue in the additional section |
//! | ANY | one RRset (RFC 8482): the SOA at an apex, else the A (else AAAA) RRset |
//! | an existing name, no data of the type (also a service name with no live gateway) | NODATA: NOERROR, AA, the SOA in authority with TTL min(SOA TTL, MINIMUM) |
//! | a name in a zone that does not exist | NXDOMAIN, AA, the SOA in authority |
//! | a name outside every zone, a class other than IN, AXFR/IXFR | REFUSED |
//! | an opcode other than QUERY | NOTIMP |
//! | QDCOUNT != 1, a bad question or record, two OPTs, OPT as the question type | FORMERR |
//! | EDNS version > 0 | BADVERS (with an OPT) |
//! | fewer than 12 bytes, or a response (QR=1) | nothing (counted) |
//!
//! The question is echoed as it was asked (case preserved: names match without regard
//! to case), answers reuse its name by compression. RA is never set. A query with an OPT
//! record gets one back; the UDP answer fits the requestor's payload size, capped at
//! [`UDP_PAYLOAD`] (512 bytes without EDNS); one that does not fit is sent with TC=1 and
//! the question only, never a partial RRset, and the client retries over TCP. Answers are
//! small by construction: at most [`MAX_ADDRESSES`] addresses per family and name.
//!
//! Over UDP a [`RateLimit`] caps responses per client network (see `rrl`); the first
//! responses past the rate alternate between a TC=1 *slip* and nothing.
//!
//! Files: `zone` (the zones and names, and where a question's name is), `answer`
//! (composing a response with `domain`), `target` (the caller's buffer as `domain`'s
//! composer), `rrl` (response rate limiting), `tcp` (length framing of one connection).
//!
//! # The wire format
//!
//! Parsing and composing use NLnet Labs' `domain` crate (0.12, its `base` and `rdata`
//! modules, without its default `std` and `rand` features; only `octseq`'s `alloc` is
//! on, for the zones' own names), which builds for `x86_64-unknown-none`: queries are
//! read with its checked `Message` view, answers composed with its `MessageBuilder` and
//! `StaticCompressor` straight into the caller's buffer (`target`). Nothing is
//! allocated per query. It costs the image about 31 KiB.
//!
//! # Wiring it (the runtime's part)
//!
//! ```text
//! // once, from the node file:
//! let dns = config.dns.as_ref().map(|d| DnsServer::new(&d.server_spec())).transpose()?;
//! // whenever the live gateways of a name change (i: its index in DnsConfig::names):
//! dns.set_addresses(i, &public_addresses_of_live_gateways_serving_it);
//! // a UDP datagram from `client` to port 53 of a Listen address:
//! match dns.answer_udp(now, client_ip, datagram, &mut buf /* UDP_PAYLOAD bytes */) {
//!     Reply::Send(n) => send_to(client, &buf[..n]),
//!     Reply::Drop => {}
//! }
//! // a TCP connection to port 53: one TcpQueries per connection
//! let taken = conn.queries.receive(received); // leave the rest in the socket
//! loop {
//!     match dns.answer_tcp(&mut conn.queries, &mut buf /* TCP_RESPONSE + 2 bytes */) {
//!         TcpReply::Send(n) => write(&buf[..n]), // length prefix included
//!         TcpReply::Wait => break,               // read more
//!         TcpReply::Close => { close(); break }  // counted
//!     }
//! }
//! ```
//!
//! Idle TCP connections are the runtime's to time out (RFC 7766 §6.2.3).

mod answer;
pub mod rrl;
mod target;
pub mod tcp;
#[cfg(test)]
mod tests;
mod zone;

use alloc::string::String;
use core::net::IpAddr;

use smoltcp::time::Instant;

pub use rrl::{RateLimit, Verdict};
pub use tcp::{TcpQueries, MAX_TCP_QUERY};
pub use zone::{ServerSpec, ZoneSpec};

use tcp::Front;
use zone::Data;

/// The largest UDP answer (RFC 9715's recommendation for avoiding fragmentation).
pub const UDP_PAYLOAD: u16 = 1232;
/// The largest TCP answer (without its length prefix); answers are far smaller.
pub const TCP_RESPONSE: usize = 4096;
/// Addresses per family kept for one name.
pub const MAX_ADDRESSES: usize = 32;
/// The DNS port.
pub const DNS_PORT: u16 = 53;

/// What to do with a UDP query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send the first `n` bytes of the buffer back to the client.
    Send(usize),
    /// Send nothing (counted).
    Drop,
}

/// What to do next on a TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpReply {
    /// Write the first `n` bytes of the buffer (length prefix included), then call again.
    Send(usize),
    /// No whole query yet: read more.
    Wait,
    /// Close the connection: bad framing, or a query not worth an answer (counted).
    Close,
}

/// Everything the server did, by outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DnsCounters {
    /// Queries received over UDP.
    pub udp_queries: u64,
    /// Queries received over TCP.
    pub tcp_queries: u64,
    /// NOERROR answers with records in the answer section.
    pub answers: u64,
    /// NOERROR answers without (NODATA).
    pub nodata: u64,
    /// NXDOMAIN answers.
    pub nxdomain: u64,
    /// REFUSED answers (outside the zones, another class, zone transfers).
    pub refused: u64,
    /// FORMERR answers.
    pub formerr: u64,
    /// NOTIMP answers.
    pub notimp: u64,
    /// BADVERS answers.
    pub badvers: u64,
    /// Answers sent with TC=1 because they did not fit (rate-limit slips not included).
    pub truncated: u64,
    /// Queries dropped: shorter than a header.
    pub dropped_short: u64,
    /// Queries dropped: they were responses (QR=1).
    pub dropped_responses: u64,
    /// Queries dropped: not even a header and question fit the buffer.
    pub dropped_no_room: u64,
    /// Responses replaced by a TC=1 slip by the rate limiter.
    pub rate_limited_slipped: u64,
    /// Responses dropped by the rate limiter.
    pub rate_limited_dropped: u64,
    /// Rate limiter buckets taken over from another network.
    pub rate_limit_evictions: u64,
    /// TCP connections closed for a zero or overlong length, or a dropped query.
    pub tcp_closed: u64,
}

/// The server; see the module doc.
pub struct DnsServer {
    data: Data,
    ttl: u32,
    zone_ttl: u32,
    limiter: Option<RateLimit>,
    counters: DnsCounters,
}

/// Why [`DnsServer::set_addresses`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetAddressesError {
    /// There is no service name with this index.
    NoSuchName,
}

impl DnsServer {
    /// A server for `spec`, with no addresses for any service name yet (they answer
    /// NODATA until [`set_addresses`](DnsServer::set_addresses)). Fails on a name that
    /// is not a domain name, a zone given twice or one without a name server (the config
    /// parser rules these out).
    pub fn new(spec: &ServerSpec) -> Result<DnsServer, String> {
        Ok(DnsServer {
            data: Data::new(spec)?,
            ttl: spec.ttl,
            zone_ttl: spec.zone_ttl,
            limiter: (spec.rate_limit > 0).then(|| RateLimit::new(spec.rate_limit)),
            counters: DnsCounters::default(),
        })
    }

    /// Sets the addresses answered for service name `name_index` (its position in
    /// [`ServerSpec::names`]): duplicates are dropped, at most [`MAX_ADDRESSES`] of each
    /// family kept, in the order given. An empty list makes the name answer NODATA.
    /// Allocates only when a list grows past any earlier size.
    pub fn set_addresses(
        &mut self,
        name_index: usize,
        addresses: &[IpAddr],
    ) -> Result<(), SetAddressesError> {
        if name_index >= self.data.services {
            return Err(SetAddressesError::NoSuchName);
        }
        let node = &mut self.data.nodes[name_index];
        node.v4.clear();
        node.v6.clear();
        for addr in addresses {
            match addr {
                IpAddr::V4(v4) if node.v4.len() < MAX_ADDRESSES && !node.v4.contains(v4) => {
                    node.v4.push(*v4)
                }
                IpAddr::V6(v6) if node.v6.len() < MAX_ADDRESSES && !node.v6.contains(v6) => {
                    node.v6.push(*v6)
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The counters so far.
    pub fn counters(&self) -> DnsCounters {
        let mut c = self.counters;
        c.rate_limit_evictions = self.limiter.as_ref().map_or(0, |l| l.evictions);
        c
    }

    /// Answers one UDP query from `client` into `out` (give it at least [`UDP_PAYLOAD`]
    /// bytes; a smaller buffer caps the answer).
    pub fn answer_udp(
        &mut self,
        now: Instant,
        client: IpAddr,
        query: &[u8],
        out: &mut [u8],
    ) -> Reply {
        self.counters.udp_queries += 1;
        let Some(header) = query.get(..12) else {
            self.counters.dropped_short += 1;
            return Reply::Drop;
        };
        if header[2] & 0x80 != 0 {
            self.counters.dropped_responses += 1;
            return Reply::Drop;
        }
        let slip = match self.limiter.as_mut().map(|l| l.check(now, client)) {
            None | Some(Verdict::Send) => false,
            Some(Verdict::Slip) => {
                self.counters.rate_limited_slipped += 1;
                true
            }
            Some(Verdict::Drop) => {
                self.counters.rate_limited_dropped += 1;
                return Reply::Drop;
            }
        };
        match answer::respond(self, query, answer::Transport::Udp, slip, out) {
            Some(n) => Reply::Send(n),
            None => Reply::Drop,
        }
    }

    /// Answers the next whole query of a TCP connection, if there is one, into `out` with
    /// its two-byte length first (give it [`TCP_RESPONSE`] + 2 bytes).
    pub fn answer_tcp(&mut self, conn: &mut TcpQueries, out: &mut [u8]) -> TcpReply {
        let query = match conn.front() {
            Front::Incomplete => return TcpReply::Wait,
            Front::Bad => {
                self.counters.tcp_closed += 1;
                return TcpReply::Close;
            }
            Front::Query(q) => q,
        };
        self.counters.tcp_queries += 1;
        let reply = self.answer_tcp_message(query, out);
        conn.consume();
        reply
    }

    fn answer_tcp_message(&mut self, query: &[u8], out: &mut [u8]) -> TcpReply {
        if query.len() < 12 {
            self.counters.dropped_short += 1;
            self.counters.tcp_closed += 1;
            return TcpReply::Close;
        }
        if query[2] & 0x80 != 0 {
            self.counters.dropped_responses += 1;
            self.counters.tcp_closed += 1;
            return TcpReply::Close;
        }
        let Some((prefix, body)) = out.split_first_chunk_mut::<2>() else {
            self.counters.dropped_no_room += 1;
            return TcpReply::Close;
        };
        let room = body.len().min(TCP_RESPONSE);
        match answer::respond(
            self,
            query,
            answer::Transport::Tcp,
            false,
            &mut body[..room],
        ) {
            Some(n) => {
                // `n` <= TCP_RESPONSE < 65536.
                *prefix = (n as u16).to_be_bytes();
                TcpReply::Send(n + 2)
            }
            None => {
                self.counters.tcp_closed += 1;
                TcpReply::Close
            }
        }
    }
}
