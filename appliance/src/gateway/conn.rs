//! One client connection through the gateway: its state machine.
//!
//! ```text
//! accepted ─┬─ tls:  sniffing the ClientHello ─┐
//!           ├─ http: reading a request head ───┼─ connecting to a backend ─┬─ streaming (tls, tcp, upgraded)
//!           └─ tcp ────────────────────────────┘   (next one on failure)   └─ exchange (one HTTP request) ─→ reading a head …
//! ```
//!
//! A [`Conn`] never touches a socket: the gateway hands it events (client bytes, backend
//! connected or failed, backend bytes, either side's end of stream, the time) and it
//! pushes [`Action`]s for the caller to carry out. Every state has a deadline: the head
//! timeout while sniffing or reading a head (a slowloris client is closed), the connect
//! timeout while connecting, the idle timeout while streaming.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::SocketAddr;

use smoltcp::time::Instant;

use super::http::{self, BodyReader, Forwarded, RequestHead, Status, MAX_HEAD};
use super::sni::{SniReader, Sniff};
use super::{Action, Shared};

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listener {
    Http,
    Tls,
    Tcp(usize),
}

/// The backend connection of a client connection.
#[derive(Debug, Clone, Copy)]
struct Link {
    service: usize,
    backend: usize,
    connected: bool,
    bytes_to: u64,
    bytes_from: u64,
}

/// What a connection does once its backend is connected.
#[derive(Debug)]
enum After {
    Stream,
    Exchange(Box<Exchange>),
}

/// One HTTP request and its response.
#[derive(Debug)]
struct Exchange {
    req: RequestHead,
    req_body: BodyReader,
    /// The response head as it arrives, until it parses.
    resp_head: Vec<u8>,
    /// Set once the response head is through.
    resp: Option<(BodyReader, bool)>,
    /// Client bytes after this request (a pipelined next request, or data after an
    /// upgrade request), at most [`MAX_HEAD`].
    next: Vec<u8>,
    /// Some response byte reached the client.
    answered: bool,
}

#[derive(Debug)]
enum State {
    Sniff(SniReader),
    Head(Vec<u8>),
    Connecting {
        tried: Vec<usize>,
        pending: Vec<u8>,
        then: After,
    },
    Stream {
        client_eof: bool,
        backend_eof: bool,
    },
    Exchange(Exchange),
    Closed,
}

/// Why a deadline is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Head,
    Connect,
    Idle,
}

#[derive(Debug)]
pub(super) struct Conn {
    client: SocketAddr,
    local: SocketAddr,
    state: State,
    link: Option<Link>,
    deadline: Instant,
    timer: Timer,
}

type Out<'a> = &'a mut Vec<Action>;

impl Conn {
    pub(super) fn new(
        shared: &mut Shared,
        listener: Listener,
        client: SocketAddr,
        local: SocketAddr,
        now: Instant,
        out: Out,
    ) -> Conn {
        let state = match listener {
            Listener::Http => State::Head(Vec::new()),
            Listener::Tls => State::Sniff(SniReader::new()),
            Listener::Tcp(_) => State::Closed, // replaced by connect() below
        };
        let mut conn = Conn {
            client,
            local,
            state,
            link: None,
            deadline: now + shared.limits.head_timeout,
            timer: Timer::Head,
        };
        if let Listener::Tcp(service) = listener {
            shared.services[service].counters.connections += 1;
            conn.connect(shared, service, Vec::new(), After::Stream, now, out);
        }
        conn
    }

    pub(super) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    fn idle(&mut self, shared: &Shared, now: Instant) {
        self.deadline = now + shared.limits.idle_timeout;
        self.timer = Timer::Idle;
    }

    /// Closes everything after the writes already pushed.
    fn close(&mut self, shared: &mut Shared, out: Out) {
        self.drop_link(shared, out, false);
        self.state = State::Closed;
        out.push(Action::Close);
    }

    fn reply(&mut self, shared: &mut Shared, status: Status, out: Out) {
        shared.counters.count_status(status);
        if let Some(link) = self.link {
            shared.services[link.service].counters.count_status(status);
        }
        out.push(Action::ToClient(http::canned(status)));
        self.close(shared, out);
    }

    /// Forgets the backend connection; `tell` asks the caller to close it (when the
    /// client connection goes on without it).
    fn drop_link(&mut self, shared: &mut Shared, out: Out, tell: bool) {
        if let Some(link) = self.link.take() {
            if link.connected {
                shared.services[link.service].pool.closed(
                    link.backend,
                    link.bytes_to,
                    link.bytes_from,
                );
            }
            if tell {
                out.push(Action::CloseBackend);
            }
        }
    }

    fn send_backend(&mut self, shared: &mut Shared, bytes: &[u8], out: Out) {
        if bytes.is_empty() {
            return;
        }
        if let Some(link) = &mut self.link {
            link.bytes_to += bytes.len() as u64;
            shared.services[link.service].counters.bytes_from_clients += bytes.len() as u64;
        }
        out.push(Action::ToBackend(bytes.to_vec()));
    }

    fn send_client(&mut self, shared: &mut Shared, bytes: &[u8], out: Out) {
        if bytes.is_empty() {
            return;
        }
        if let Some(link) = &mut self.link {
            link.bytes_from += bytes.len() as u64;
            shared.services[link.service].counters.bytes_to_clients += bytes.len() as u64;
        }
        out.push(Action::ToClient(bytes.to_vec()));
    }

    /// Picks a backend of `service` not in `tried` and asks for a connection; `pending`
    /// goes to it once connected. With none left: 503 (nothing was healthy) or 502 (every
    /// connect failed) for HTTP, a close otherwise.
    fn connect(
        &mut self,
        shared: &mut Shared,
        service: usize,
        mut tried: Vec<usize>,
        then: After,
        now: Instant,
        out: Out,
    ) {
        let svc = &mut shared.services[service];
        let Some(backend) = svc.pool.pick(&tried) else {
            svc.counters.no_backend += 1;
            let status = if tried.is_empty() {
                Status::Unavailable
            } else {
                Status::BadGateway
            };
            return match then {
                After::Exchange(_) => {
                    self.link = Some(Link {
                        service,
                        backend: 0,
                        connected: false,
                        bytes_to: 0,
                        bytes_from: 0,
                    });
                    self.reply(shared, status, out)
                }
                After::Stream => self.close(shared, out),
            };
        };
        let Some(addr) = svc.pool.addr(backend) else {
            return self.close(shared, out);
        };
        let mut pending = Vec::new();
        if svc.proxy_protocol {
            pending.extend_from_slice(super::proxy::header(self.client, self.local).as_bytes());
        }
        tried.push(backend);
        self.link = Some(Link {
            service,
            backend,
            connected: false,
            bytes_to: 0,
            bytes_from: 0,
        });
        out.push(Action::Connect { addr });
        self.deadline = now + shared.limits.connect_timeout;
        self.timer = Timer::Connect;
        // The bytes for the backend: PROXY header first, then what the client sent (a
        // retry keeps what the first attempt had).
        match core::mem::replace(&mut self.state, State::Closed) {
            State::Sniff(reader) => pending.extend_from_slice(reader.buffered()),
            State::Connecting {
                pending: earlier, ..
            } => pending = earlier,
            _ => {}
        }
        self.state = State::Connecting {
            tried,
            pending,
            then,
        };
    }

    /// Adds client bytes meant for the backend while still connecting.
    fn queue_pending(&mut self, bytes: &[u8]) {
        if let State::Connecting { pending, .. } = &mut self.state {
            pending.extend_from_slice(bytes);
        }
    }

    pub(super) fn client_data(
        &mut self,
        shared: &mut Shared,
        bytes: &[u8],
        now: Instant,
        out: Out,
    ) {
        match &mut self.state {
            State::Closed => {}
            State::Sniff(reader) => {
                let answer = reader.feed(bytes);
                self.sniffed(shared, answer, now, out);
            }
            State::Head(buf) => {
                // Never more than MAX_HEAD plus one read: a longer head is refused below
                // as soon as it is over; what follows a complete head is body.
                buf.extend_from_slice(bytes);
                self.head(shared, now, out);
            }
            State::Connecting { then, .. } => match then {
                After::Stream => self.queue_pending(bytes),
                After::Exchange(_) => self.exchange_client_bytes(shared, bytes, out),
            },
            State::Stream { .. } => {
                self.idle(shared, now);
                self.send_backend(shared, bytes, out);
            }
            State::Exchange(_) => {
                self.idle(shared, now);
                self.exchange_client_bytes(shared, bytes, out);
            }
        }
    }

    /// Client bytes during an exchange: the rest of the request body goes to the backend
    /// (or waits for the connect), anything after it is kept for later.
    fn exchange_client_bytes(&mut self, shared: &mut Shared, bytes: &[u8], out: Out) {
        let ex = match &mut self.state {
            State::Exchange(ex) => ex,
            State::Connecting {
                then: After::Exchange(ex),
                ..
            } => &mut **ex,
            _ => return,
        };
        let body = if ex.req_body.is_done() {
            Ok(0)
        } else {
            ex.req_body.feed(bytes)
        };
        let Ok(n) = body else {
            shared.counters.bad_request_bodies += 1;
            return self.close(shared, out);
        };
        if ex.next.len() + (bytes.len() - n) > MAX_HEAD {
            shared.counters.pipeline_overflows += 1;
            return self.close(shared, out);
        }
        ex.next.extend_from_slice(&bytes[n..]);
        if matches!(self.state, State::Connecting { .. }) {
            self.queue_pending(&bytes[..n]);
        } else {
            self.send_backend(shared, &bytes[..n], out);
        }
    }

    fn sniffed(&mut self, shared: &mut Shared, answer: Sniff, now: Instant, out: Out) {
        let c = &mut shared.counters;
        let service = match &answer {
            Sniff::NeedMore => return,
            Sniff::Sni(name) => match shared.tls_names.lookup(name) {
                Some(service) => service,
                None => {
                    c.unknown_name += 1;
                    return self.refuse_tls(shared, &answer, out);
                }
            },
            Sniff::NoSni => {
                c.no_sni += 1;
                return self.refuse_tls(shared, &answer, out);
            }
            Sniff::NotTls => {
                c.not_tls += 1;
                return self.close(shared, out);
            }
            Sniff::TooLarge => {
                c.hello_too_large += 1;
                return self.refuse_tls(shared, &answer, out);
            }
            Sniff::Malformed => {
                c.hello_malformed += 1;
                return self.refuse_tls(shared, &answer, out);
            }
        };
        shared.services[service].counters.connections += 1;
        self.connect(shared, service, Vec::new(), After::Stream, now, out);
    }

    fn refuse_tls(&mut self, shared: &mut Shared, answer: &Sniff, out: Out) {
        if let Some(alert) = answer.alert() {
            out.push(Action::ToClient(alert.to_vec()));
        }
        self.close(shared, out);
    }

    /// A request head may be complete in the buffer: route it.
    fn head(&mut self, shared: &mut Shared, now: Instant, out: Out) {
        let State::Head(buf) = &mut self.state else {
            return;
        };
        if !buf.is_empty() && self.timer == Timer::Idle {
            // A keep-alive connection's next request started: it has the head timeout.
            self.deadline = now + shared.limits.head_timeout;
            self.timer = Timer::Head;
        }
        let req = match http::parse_request(buf) {
            Ok(None) => return,
            Ok(Some(req)) => req,
            Err(status) => return self.reply(shared, status, out),
        };
        let buf = core::mem::take(buf);
        let Some(name) = &req.host else {
            return self.reply(shared, Status::NotFound, out);
        };
        let Some(service) = shared.http_names.lookup(name) else {
            let status = if shared.tls_names.lookup(name).is_some() {
                Status::MisdirectedRequest
            } else {
                Status::NotFound
            };
            return self.reply(shared, status, out);
        };
        shared.counters.requests += 1;
        let svc = &mut shared.services[service];
        svc.counters.requests += 1;
        let mut backend_head = Vec::with_capacity(req.len + 128);
        let fwd = Forwarded {
            client: self.client.ip(),
            proto: "http",
        };
        http::write_backend_head(&buf[..req.len], &req, fwd, &mut backend_head);
        let mut req_body = BodyReader::new(req.body);
        let rest = &buf[req.len..];
        let Ok(n) = req_body.feed(rest) else {
            shared.counters.bad_request_bodies += 1;
            return self.close(shared, out);
        };
        let ex = Exchange {
            req,
            req_body,
            resp_head: Vec::new(),
            resp: None,
            next: rest[n..].to_vec(),
            answered: false,
        };
        let reuse = self.link.is_some_and(|l| {
            l.service == service && l.connected && shared.services[service].pool.is_up(l.backend)
        });
        if reuse {
            self.state = State::Exchange(ex);
            self.idle(shared, now);
            self.send_backend(shared, &backend_head, out);
            self.send_backend(shared, &rest[..n], out);
            return;
        }
        self.drop_link(shared, out, true);
        self.state = State::Head(Vec::new());
        self.connect(
            shared,
            service,
            Vec::new(),
            After::Exchange(Box::new(ex)),
            now,
            out,
        );
        if let State::Connecting { pending, .. } = &mut self.state {
            pending.extend_from_slice(&backend_head);
            pending.extend_from_slice(&rest[..n]);
        }
    }

    pub(super) fn backend_connected(&mut self, shared: &mut Shared, now: Instant, out: Out) {
        let State::Connecting { .. } = self.state else {
            return;
        };
        let State::Connecting { pending, then, .. } =
            core::mem::replace(&mut self.state, State::Closed)
        else {
            return;
        };
        if let Some(link) = &mut self.link {
            link.connected = true;
            shared.services[link.service].pool.connected(link.backend);
        }
        self.state = match then {
            After::Stream => State::Stream {
                client_eof: false,
                backend_eof: false,
            },
            After::Exchange(ex) => State::Exchange(*ex),
        };
        self.idle(shared, now);
        self.send_backend(shared, &pending, out);
    }

    /// The connect failed (refused, unreachable, or timed out: `timeout`): the backend
    /// leaves the rotation and the next one is tried; nothing reached the client yet.
    pub(super) fn backend_failed(
        &mut self,
        shared: &mut Shared,
        timeout: bool,
        now: Instant,
        out: Out,
    ) {
        match self.state {
            State::Connecting { .. } => {}
            // Broken after connecting: nothing to retry. An exchange answers 502 if it
            // can; an idle kept backend just goes.
            State::Exchange(_) => return self.backend_closed(shared, now, out),
            State::Head(_) => return self.drop_link(shared, out, false),
            _ => return self.close(shared, out),
        }
        let Some(link) = self.link.take() else {
            return self.close(shared, out);
        };
        let svc = &mut shared.services[link.service];
        svc.pool.connect_failed(link.backend, now);
        svc.counters.connect_failures += 1;
        if timeout {
            svc.counters.connect_timeouts += 1;
        }
        let State::Connecting {
            tried,
            pending,
            then,
        } = core::mem::replace(&mut self.state, State::Closed)
        else {
            return;
        };
        let exhausted = !shared.services[link.service].pool.available(&tried);
        if exhausted && timeout {
            if let After::Exchange(_) = then {
                self.link = Some(link);
                return self.reply(shared, Status::GatewayTimeout, out);
            }
        }
        self.state = State::Connecting {
            tried: tried.clone(),
            pending,
            then: After::Stream,
        };
        out.push(Action::CloseBackend);
        self.connect(shared, link.service, tried, then, now, out);
    }

    pub(super) fn backend_data(
        &mut self,
        shared: &mut Shared,
        bytes: &[u8],
        now: Instant,
        out: Out,
    ) {
        match &mut self.state {
            State::Stream { .. } => {
                self.idle(shared, now);
                self.send_client(shared, bytes, out);
            }
            State::Exchange(_) => {
                self.idle(shared, now);
                self.response_bytes(shared, bytes, now, out);
            }
            // Between requests a backend has nothing to say: drop it.
            State::Head(_) => {
                shared.counters.stray_backend_bytes += 1;
                self.drop_link(shared, out, true);
            }
            _ => {}
        }
    }

    fn response_bytes(&mut self, shared: &mut Shared, bytes: &[u8], now: Instant, out: Out) {
        let State::Exchange(ex) = &mut self.state else {
            return;
        };
        if let Some((body, _)) = &mut ex.resp {
            let n = match body.feed(bytes) {
                Ok(n) => n,
                Err(_) => {
                    shared.counters.bad_responses += 1;
                    return self.close(shared, out);
                }
            };
            let done = body.is_done();
            self.send_client(shared, &bytes[..n], out);
            if done {
                self.exchange_done(shared, n < bytes.len(), now, out);
            }
            return;
        }
        // As for request heads: at most MAX_HEAD plus one read before it parses or fails.
        ex.resp_head.extend_from_slice(bytes);
        loop {
            let State::Exchange(ex) = &mut self.state else {
                return;
            };
            let head = match http::parse_response(&ex.resp_head, ex.req.is_head, ex.req.upgrade) {
                Ok(None) => return,
                Ok(Some(head)) => head,
                Err(()) => {
                    shared.counters.bad_responses += 1;
                    if ex.answered {
                        return self.close(shared, out);
                    }
                    return self.reply(shared, Status::BadGateway, out);
                }
            };
            ex.answered = true;
            let buffered = core::mem::take(&mut ex.resp_head);
            let (head_bytes, rest) = buffered.split_at(head.len);
            if head.interim {
                let rest = rest.to_vec();
                self.send_client(shared, head_bytes, out);
                if let State::Exchange(ex) = &mut self.state {
                    ex.resp_head = rest;
                }
                continue;
            }
            if head.upgraded {
                let next = core::mem::take(&mut ex.next);
                shared.counters.upgrades += 1;
                self.send_client(shared, &buffered, out);
                self.state = State::Stream {
                    client_eof: false,
                    backend_eof: false,
                };
                self.send_backend(shared, &next, out);
                return;
            }
            let mut body = BodyReader::new(head.body);
            let n = match body.feed(rest) {
                Ok(n) => n,
                Err(_) => {
                    shared.counters.bad_responses += 1;
                    self.send_client(shared, head_bytes, out);
                    return self.close(shared, out);
                }
            };
            let done = body.is_done();
            ex.resp = Some((body, head.keep_alive));
            self.send_client(shared, &buffered[..head.len + n], out);
            if done {
                self.exchange_done(shared, n < rest.len(), now, out);
            }
            return;
        }
    }

    /// The response is complete: keep-alive goes back to reading a head (the backend
    /// connection kept for the next request if it stays usable), else the end.
    fn exchange_done(
        &mut self,
        shared: &mut Shared,
        extra_from_backend: bool,
        now: Instant,
        out: Out,
    ) {
        let State::Exchange(ex) = core::mem::replace(&mut self.state, State::Closed) else {
            return;
        };
        let backend_reusable =
            ex.resp.is_some_and(|(_, keep)| keep) && ex.req_body.is_done() && !extra_from_backend;
        if !backend_reusable {
            if extra_from_backend {
                shared.counters.stray_backend_bytes += 1;
            }
            self.drop_link(shared, out, true);
        }
        if !ex.req.keep_alive || !ex.req_body.is_done() {
            return self.close(shared, out);
        }
        self.state = State::Head(ex.next);
        self.idle(shared, now);
        self.head(shared, now, out);
    }

    pub(super) fn client_closed(&mut self, shared: &mut Shared, out: Out) {
        match &mut self.state {
            State::Stream {
                client_eof,
                backend_eof,
            } => {
                *client_eof = true;
                if *backend_eof {
                    self.close(shared, out);
                } else {
                    out.push(Action::ShutdownBackend);
                }
            }
            State::Closed => {}
            _ => self.close(shared, out),
        }
    }

    pub(super) fn backend_closed(&mut self, shared: &mut Shared, now: Instant, out: Out) {
        match &mut self.state {
            State::Stream {
                client_eof,
                backend_eof,
            } => {
                *backend_eof = true;
                if *client_eof {
                    self.close(shared, out);
                } else {
                    out.push(Action::ShutdownClient);
                }
            }
            State::Connecting { .. } => self.backend_failed(shared, false, now, out),
            State::Exchange(ex) => match ex.resp {
                Some((BodyReader::UntilClose, _)) => self.close(shared, out),
                _ if ex.answered => {
                    shared.counters.bad_responses += 1;
                    self.close(shared, out)
                }
                _ => {
                    shared.counters.bad_responses += 1;
                    self.reply(shared, Status::BadGateway, out)
                }
            },
            State::Head(_) => self.drop_link(shared, out, false),
            State::Sniff(_) | State::Closed => {}
        }
    }

    /// Deadlines: a slow head, a slow connect, an idle connection.
    pub(super) fn poll(&mut self, shared: &mut Shared, now: Instant, out: Out) {
        if now < self.deadline || self.is_closed() {
            return;
        }
        match self.timer {
            Timer::Connect => self.backend_failed(shared, true, now, out),
            Timer::Head => {
                shared.counters.head_timeouts += 1;
                self.close(shared, out);
            }
            Timer::Idle => {
                let waiting = match &self.state {
                    State::Exchange(ex) => !ex.answered,
                    _ => false,
                };
                if waiting {
                    if let Some(link) = self.link {
                        shared.services[link.service].counters.response_timeouts += 1;
                    }
                    self.reply(shared, Status::GatewayTimeout, out);
                } else {
                    shared.counters.idle_timeouts += 1;
                    self.close(shared, out);
                }
            }
        }
    }
}
