//! The gateway's authoritative DNS on the local stack: the sans-I/O [`dns`](crate::dns)
//! server behind a UDP socket and [`TCP_PER_ADDRESS`] TCP sockets per `Listen` address,
//! port 53.
//!
//! Each service name answers with the public addresses that serve it now (this gateway's
//! while one of the name's services has a healthy backend, and those of the live peer
//! gateways that say the same of theirs: `runtime::gateway`), refreshed every
//! [`REFRESH`]. Queries that reach port 53 on any other address of ours are dropped and
//! counted; TCP connections idle for [`TCP_IDLE`] are closed (RFC 7766 §6.2.3).

use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;
use core::net::IpAddr;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::{tcp, udp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpListenEndpoint};

use crate::config::DnsConfig;
use crate::dns::{DnsCounters, DnsServer, Reply, TcpQueries, TcpReply, DNS_PORT};
use crate::dns::{TCP_RESPONSE, UDP_PAYLOAD};

/// TCP connections at once per `Listen` address.
pub const TCP_PER_ADDRESS: usize = 4;
/// A TCP connection with nothing to do this long is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// How often the answers' addresses are brought up to date.
pub const REFRESH: Duration = Duration::from_millis(250);
/// Queries waiting to be read, and answers waiting to be sent.
const UDP_RX_SLOTS: usize = 128;
const UDP_TX_SLOTS: usize = 64;

struct TcpSlot {
    handle: SocketHandle,
    endpoint: IpListenEndpoint,
    queries: TcpQueries,
    active_at: Instant,
}

/// The DNS service.
pub(crate) struct DnsService {
    server: DnsServer,
    /// Per name (its index in the server): the `[Service]`s that carry it.
    names: Vec<Vec<usize>>,
    listen: Vec<IpAddress>,
    udp: SocketHandle,
    tcp: Vec<TcpSlot>,
    buf: Vec<u8>,
    next_refresh: Instant,
    /// UDP queries to port 53 of an address that is not a `Listen` one.
    pub not_listening: u64,
}

impl DnsService {
    /// The server of `config`, its sockets added to `sockets`; `Err` with the reason if
    /// the core refuses the zones (the config parser rules that out).
    pub fn new(
        config: &DnsConfig,
        sockets: &mut SocketSet<'static>,
        now: Instant,
    ) -> Result<DnsService, alloc::string::String> {
        let server = DnsServer::new(&config.server_spec())?;
        let mut udp = udp::Socket::new(
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_RX_SLOTS],
                vec![0; UDP_RX_SLOTS * 512],
            ),
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_TX_SLOTS],
                vec![0; UDP_TX_SLOTS * usize::from(UDP_PAYLOAD)],
            ),
        );
        let _ = udp.bind(DNS_PORT);
        let mut tcp = Vec::new();
        for &addr in &config.listen {
            let endpoint = IpListenEndpoint {
                addr: Some(addr),
                port: DNS_PORT,
            };
            for _ in 0..TCP_PER_ADDRESS {
                let mut s = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; 2048]),
                    tcp::SocketBuffer::new(vec![0; 2 * (TCP_RESPONSE + 2)]),
                );
                let _ = s.listen(endpoint);
                tcp.push(TcpSlot {
                    handle: sockets.add(s),
                    endpoint,
                    queries: TcpQueries::new(),
                    active_at: now,
                });
            }
        }
        Ok(DnsService {
            server,
            names: config.names.iter().map(|n| n.services.clone()).collect(),
            listen: config.listen.clone(),
            udp: sockets.add(udp),
            tcp,
            buf: vec![0; TCP_RESPONSE + 2],
            next_refresh: now,
            not_listening: 0,
        })
    }

    /// The server's counters.
    pub fn counters(&self) -> DnsCounters {
        self.server.counters()
    }

    /// Answers what came in; `serving(service)` gives the public addresses serving a
    /// `[Service]` now. `true` if anything happened.
    pub fn run(
        &mut self,
        sockets: &mut SocketSet<'static>,
        now: Instant,
        serving: &dyn Fn(usize) -> Vec<IpAddr>,
    ) -> bool {
        if now >= self.next_refresh {
            self.next_refresh = now + REFRESH;
            let mut addrs: Vec<IpAddr> = Vec::new();
            for (i, services) in self.names.iter().enumerate() {
                addrs.clear();
                for &s in services {
                    addrs.extend(serving(s));
                }
                let _ = self.server.set_addresses(i, &addrs);
            }
        }
        let mut busy = self.run_udp(sockets, now);
        busy |= self.run_tcp(sockets, now);
        busy
    }

    fn run_udp(&mut self, sockets: &mut SocketSet<'static>, now: Instant) -> bool {
        let mut busy = false;
        let mut query = [0u8; 512];
        let s = sockets.get_mut::<udp::Socket>(self.udp);
        while s.can_send() {
            let Ok((n, meta)) = s.recv_slice(&mut query) else {
                break;
            };
            busy = true;
            if !meta.local_address.is_some_and(|a| self.listen.contains(&a)) {
                self.not_listening += 1;
                continue;
            }
            let client = match meta.endpoint.addr {
                IpAddress::Ipv4(a) => IpAddr::V4(a),
                IpAddress::Ipv6(a) => IpAddr::V6(a),
            };
            let out = &mut self.buf[..usize::from(UDP_PAYLOAD)];
            if let Reply::Send(len) = self.server.answer_udp(now, client, &query[..n], out) {
                let reply = udp::UdpMetadata {
                    endpoint: meta.endpoint,
                    local_address: meta.local_address,
                    meta: Default::default(),
                };
                let _ = s.send_slice(&out[..len], reply);
            }
        }
        busy
    }

    fn run_tcp(&mut self, sockets: &mut SocketSet<'static>, now: Instant) -> bool {
        let mut busy = false;
        for slot in &mut self.tcp {
            let s = sockets.get_mut::<tcp::Socket>(slot.handle);
            if !s.is_open() {
                slot.queries = TcpQueries::new();
                let _ = s.listen(slot.endpoint);
                continue;
            }
            if matches!(s.state(), tcp::State::Listen | tcp::State::SynReceived) {
                slot.active_at = now;
                continue;
            }
            if s.can_recv() {
                let queries = &mut slot.queries;
                if let Ok(n @ 1..) = s.recv(|data| {
                    let n = queries.receive(data);
                    (n, n)
                }) {
                    slot.active_at = now;
                    busy = n > 0;
                }
            }
            // Answer while the whole largest answer fits the send buffer.
            while s.may_send() && s.send_capacity() - s.send_queue() >= TCP_RESPONSE + 2 {
                match self.server.answer_tcp(&mut slot.queries, &mut self.buf) {
                    TcpReply::Send(n) => {
                        let _ = s.send_slice(&self.buf[..n]);
                        slot.active_at = now;
                        busy = true;
                    }
                    TcpReply::Wait => break,
                    TcpReply::Close => {
                        s.close();
                        busy = true;
                        break;
                    }
                }
            }
            let client_done = !s.may_recv() && s.recv_queue() == 0;
            let idle = now >= slot.active_at + TCP_IDLE;
            let open = matches!(s.state(), tcp::State::Established | tcp::State::CloseWait);
            if open && (client_done || idle) && s.send_queue() == 0 {
                if idle && !client_done {
                    s.abort();
                } else {
                    s.close();
                }
                busy = true;
            }
        }
        busy
    }

    /// The DNS part of the stats line.
    pub fn write_status(&self, out: &mut dyn Write) {
        let c = self.server.counters();
        let _ = write!(
            out,
            " dns udp={} tcp={} answers={} nodata={} nxdomain={} refused={} formerr={} truncated={} limited={} not_listening={};",
            c.udp_queries,
            c.tcp_queries,
            c.answers,
            c.nodata,
            c.nxdomain,
            c.refused,
            c.formerr,
            c.truncated,
            c.rate_limited_dropped + c.rate_limited_slipped,
            self.not_listening
        );
    }
}
