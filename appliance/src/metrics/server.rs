//! The metrics service on the local stack: [`SOCKETS_PER_LISTEN`] TCP sockets on each
//! listen endpoint (an address of ours and a port; never the wildcard address, so only
//! the addresses named are served), each carrying one request at a time through a
//! [`Conn`].
//!
//! The body is rendered at most once per poll, when some connection's head was judged,
//! and shared by the connections answered in that poll; it is bounded by the tables it
//! reports (links, peers, routes), not by anything a client sends. A client's head is
//! read into at most [`MAX_HEAD`](super::http::MAX_HEAD) bytes. Slow clients are cut off
//! by the [`Conn`] timeouts; a connection whose client never finishes closing is
//! aborted after [`LINGER`].

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpAddress, IpListenEndpoint};

use super::http::{Answer, Conn};
use super::snapshot::{ServiceCounters, RESPONSE_CODES};

/// Concurrent connections per listen endpoint.
pub const SOCKETS_PER_LISTEN: usize = 4;
/// How long a connection we closed may take to finish closing.
pub const LINGER: Duration = Duration::from_secs(5);
const RX_BUF: usize = 1024;
const TX_BUF: usize = 8192;
/// Bytes moved from a socket per read.
const CHUNK: usize = 512;

/// The bytes of one answer, sent in order as the socket makes room.
struct Outgoing {
    head: Vec<u8>,
    body: Body,
    sent: usize,
}

enum Body {
    Rendered(Rc<[u8]>),
    Static(&'static str),
    Nothing,
}

impl Outgoing {
    fn body(&self) -> &[u8] {
        match &self.body {
            Body::Rendered(b) => b,
            Body::Static(s) => s.as_bytes(),
            Body::Nothing => &[],
        }
    }

    fn len(&self) -> usize {
        self.head.len() + self.body().len()
    }

    /// The next bytes to send (at most up to the end of the head or of the body).
    fn pending(&self) -> &[u8] {
        match self.head.get(self.sent..) {
            Some(rest) if !rest.is_empty() => rest,
            _ => self
                .body()
                .get(self.sent - self.head.len()..)
                .unwrap_or(&[]),
        }
    }
}

struct Slot {
    handle: SocketHandle,
    endpoint: IpListenEndpoint,
    conn: Option<Conn>,
    out: Option<Outgoing>,
    closing_since: Option<Instant>,
}

impl Slot {
    fn reset(&mut self) {
        self.conn = None;
        self.out = None;
        self.closing_since = None;
    }
}

/// The sockets of the metrics service and its counters.
pub struct MetricsServer {
    slots: Vec<Slot>,
    counters: ServiceCounters,
}

impl MetricsServer {
    /// Adds the listening sockets of every endpoint to `sockets`.
    pub fn new(listen: &[(IpAddress, u16)], sockets: &mut SocketSet<'static>) -> MetricsServer {
        let mut slots = Vec::new();
        for &(addr, port) in listen {
            let endpoint = IpListenEndpoint {
                addr: Some(addr),
                port,
            };
            for _ in 0..SOCKETS_PER_LISTEN {
                let mut s = tcp::Socket::new(
                    tcp::SocketBuffer::new(vec![0; RX_BUF]),
                    tcp::SocketBuffer::new(vec![0; TX_BUF]),
                );
                let _ = s.listen(endpoint);
                slots.push(Slot {
                    handle: sockets.add(s),
                    endpoint,
                    conn: None,
                    out: None,
                    closing_since: None,
                });
            }
        }
        MetricsServer {
            slots,
            counters: ServiceCounters::default(),
        }
    }

    /// The service's own counters.
    pub fn counters(&self) -> ServiceCounters {
        self.counters
    }

    /// Serves every connection after the interface was polled at `now`; `render` writes
    /// the metrics body (given the service's counters so far). `true` if anything was
    /// queued or closed (poll the interface again).
    pub fn run(
        &mut self,
        sockets: &mut SocketSet<'static>,
        now: Instant,
        render: &mut dyn FnMut(&mut String, ServiceCounters),
    ) -> bool {
        let mut busy = false;
        let mut body: Option<Rc<[u8]>> = None;
        for slot in &mut self.slots {
            let s = sockets.get_mut::<tcp::Socket>(slot.handle);
            if !s.is_open() {
                // Closed or in TIME-WAIT: free for the next client.
                slot.reset();
                let _ = s.listen(slot.endpoint);
                continue;
            }
            if s.state() == tcp::State::Listen {
                continue;
            }
            let conn = slot.conn.get_or_insert_with(|| Conn::new(now));
            if slot.out.is_none() {
                let mut buf = [0u8; CHUNK];
                while s.can_recv() && conn.room() > 0 {
                    let want = conn.room().min(CHUNK);
                    let n = match s.recv_slice(&mut buf[..want]) {
                        Ok(n) if n > 0 => n,
                        _ => break,
                    };
                    busy = true;
                    let Some(answer) = conn.received(&buf[..n], now) else {
                        continue;
                    };
                    let code = answer.code();
                    if let Some(i) = RESPONSE_CODES.iter().position(|c| *c == code) {
                        self.counters.responses[i] += 1;
                    }
                    let out = match answer {
                        Answer::Metrics { head_only } => {
                            let counters = self.counters;
                            let b = body
                                .get_or_insert_with(|| {
                                    let mut text = String::new();
                                    render(&mut text, counters);
                                    Rc::from(text.into_bytes())
                                })
                                .clone();
                            Outgoing {
                                head: answer.head(b.len()),
                                body: if head_only {
                                    Body::Nothing
                                } else {
                                    Body::Rendered(b)
                                },
                                sent: 0,
                            }
                        }
                        _ => Outgoing {
                            head: answer.head(answer.error_body().len()),
                            body: Body::Static(answer.error_body()),
                            sent: 0,
                        },
                    };
                    slot.out = Some(out);
                    break;
                }
                // The client closed its side before its head was complete.
                let gave_up = s.state() == tcp::State::CloseWait && s.recv_queue() == 0;
                if slot.out.is_none() && gave_up && slot.closing_since.is_none() {
                    s.close();
                    slot.closing_since = Some(now);
                    busy = true;
                }
            }
            if let Some(out) = &mut slot.out {
                while out.sent < out.len() && s.can_send() {
                    let n = s.send_slice(out.pending()).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    out.sent += n;
                    conn.sent(now);
                    busy = true;
                }
                if out.sent == out.len() && slot.closing_since.is_none() {
                    s.close();
                    slot.closing_since = Some(now);
                    busy = true;
                }
            }
            let lingered = slot.closing_since.is_some_and(|t| now >= t + LINGER);
            let slow = slot.closing_since.is_none() && conn.timed_out(now);
            if lingered || slow {
                if slow {
                    self.counters.timeouts += 1;
                }
                s.abort();
                slot.reset();
                busy = true;
            }
        }
        busy
    }
}
