//! The gateway's connection state machine driven by simulated sockets in memory: a
//! client, backends that accept or refuse, and the clock, all in the test's hands.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::net::SocketAddr;

use smoltcp::time::{Duration, Instant};

use super::*;
use crate::config;

const OPENSSL: &[u8] = include_bytes!("fixtures/openssl_shop.bin");
const CURL: &[u8] = include_bytes!("fixtures/curl_www.bin");

/// The underlay address clients reach.
const PUBLIC: &str = "203.0.113.10";

fn node_file(services: &str, gateway_keys: &str) -> String {
    alloc::format!(
        "[Link]\nAddress = {PUBLIC}/24\n[Gateway]\nListen = {PUBLIC}\n{gateway_keys}{services}"
    )
}

fn gateway(services: &str, gateway_keys: &str) -> Gateway {
    let cfg = config::parse(node_file(services, gateway_keys).as_bytes())
        .unwrap_or_else(|e| panic!("{e:#?}"));
    Gateway::new(&cfg.gateway.expect("a gateway"), Instant::from_millis(0))
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// One simulated client connection and its backend side.
#[derive(Default, Debug)]
struct Socket {
    /// Everything written to the client.
    to_client: Vec<u8>,
    /// Everything written to the current backend connection.
    to_backend: Vec<u8>,
    /// Backends connected to, in order.
    connects: Vec<SocketAddr>,
    /// The backend connection is open.
    backend_open: bool,
    backend_closes: usize,
    client_shut: bool,
    backend_shut: bool,
    closed: bool,
}

/// The gateway with its sockets: backends in `refusing` refuse connects, those in
/// `silent` never answer the connect (it times out); all others accept at once.
struct Sim {
    gw: Gateway,
    now: Instant,
    sockets: BTreeMap<ConnId, Socket>,
    refusing: Vec<SocketAddr>,
    silent: Vec<SocketAddr>,
}

impl Sim {
    fn new(gw: Gateway) -> Sim {
        Sim {
            gw,
            now: Instant::from_millis(0),
            sockets: BTreeMap::new(),
            refusing: Vec::new(),
            silent: Vec::new(),
        }
    }

    fn accept_on(&mut self, client: &str, port: u16) -> Result<ConnId, Refused> {
        let mut out = Vec::new();
        let local = SocketAddr::new(PUBLIC.parse().unwrap(), port);
        let id = self.gw.accept(addr(client), local, self.now, &mut out)?;
        self.sockets.insert(id, Socket::default());
        self.run(out);
        Ok(id)
    }

    fn accept(&mut self, port: u16) -> ConnId {
        self.accept_on("198.51.100.7:40000", port)
            .expect("accepted")
    }

    /// Carries out actions, answering connects, until nothing is left.
    fn run(&mut self, mut actions: Vec<(ConnId, Action)>) {
        while !actions.is_empty() {
            let mut next = Vec::new();
            for (id, action) in actions {
                let s = self.sockets.get_mut(&id).expect("a known connection");
                assert!(!s.closed, "action {action:?} after Close");
                match action {
                    Action::Connect { addr } => {
                        assert!(!s.backend_open, "Connect while a backend is open");
                        s.connects.push(addr);
                        s.to_backend.clear();
                        if self.refusing.contains(&addr) {
                            self.gw.backend_failed(id, self.now, &mut next);
                        } else if !self.silent.contains(&addr) {
                            s.backend_open = true;
                            self.gw.backend_connected(id, self.now, &mut next);
                        }
                    }
                    Action::ToClient(b) => s.to_client.extend_from_slice(&b),
                    Action::ToBackend(b) => {
                        assert!(s.backend_open, "ToBackend without a connected backend");
                        s.to_backend.extend_from_slice(&b);
                    }
                    Action::ShutdownClient => s.client_shut = true,
                    Action::ShutdownBackend => s.backend_shut = true,
                    Action::CloseBackend => {
                        s.backend_open = false;
                        s.backend_closes += 1;
                    }
                    Action::Close => {
                        s.closed = true;
                        s.backend_open = false;
                    }
                }
            }
            actions = next;
        }
    }

    fn client_sends(&mut self, id: ConnId, bytes: &[u8]) {
        let mut out = Vec::new();
        self.gw.client_data(id, bytes, self.now, &mut out);
        self.run(out);
    }

    fn backend_sends(&mut self, id: ConnId, bytes: &[u8]) {
        let mut out = Vec::new();
        self.gw.backend_data(id, bytes, self.now, &mut out);
        self.run(out);
    }

    fn client_eof(&mut self, id: ConnId) {
        let mut out = Vec::new();
        self.gw.client_closed(id, &mut out);
        self.run(out);
    }

    fn backend_eof(&mut self, id: ConnId) {
        let mut out = Vec::new();
        self.gw.backend_closed(id, self.now, &mut out);
        self.run(out);
    }

    fn advance(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
        let mut out = Vec::new();
        self.gw.poll(self.now, &mut out);
        self.run(out);
    }

    fn socket(&self, id: ConnId) -> &Socket {
        &self.sockets[&id]
    }

    fn take_client(&mut self, id: ConnId) -> String {
        String::from_utf8_lossy(&core::mem::take(
            &mut self.sockets.get_mut(&id).unwrap().to_client,
        ))
        .into_owned()
    }

    fn take_backend(&mut self, id: ConnId) -> String {
        String::from_utf8_lossy(&core::mem::take(
            &mut self.sockets.get_mut(&id).unwrap().to_backend,
        ))
        .into_owned()
    }
}

const TLS_SHOP: &str =
    "[Service]\nName = shop.example.org\nMode = tls\nBackend = 10.20.1.10:443, 10.20.2.10:443\n";
const HTTP_AB: &str = "[Service]\nName = a.example.org\nMode = http\nBackend = 10.20.1.10:80\n\
     [Service]\nName = *.b.example.org\nMode = http\nBackend = 10.20.2.10:80\n";

#[test]
fn tls_passthrough_by_sni_forwards_every_byte_unchanged() {
    let mut sim = Sim::new(gateway(TLS_SHOP, ""));
    let id = sim.accept(443);
    let (a, b) = OPENSSL.split_at(100);
    sim.client_sends(id, a);
    assert!(sim.socket(id).connects.is_empty(), "no name yet");
    sim.client_sends(id, b);
    assert_eq!(sim.socket(id).connects, vec![addr("10.20.1.10:443")]);
    assert_eq!(sim.socket(id).to_backend, OPENSSL);
    sim.backend_sends(id, b"\x16\x03\x03server hello");
    assert_eq!(sim.socket(id).to_client, b"\x16\x03\x03server hello");
    sim.client_sends(id, b"\x17\x03\x03app");
    assert!(sim.socket(id).to_backend.ends_with(b"\x17\x03\x03app"));
    sim.client_eof(id);
    assert!(sim.socket(id).backend_shut && !sim.socket(id).closed);
    sim.backend_eof(id);
    assert!(sim.socket(id).closed);
    assert_eq!(sim.gw.open_connections(), 0);
    let (_, counters, pool) = sim.gw.service(0).unwrap();
    assert_eq!(counters.connections, 1);
    assert_eq!(counters.bytes_from_clients, (OPENSSL.len() + 6) as u64);
    let b = pool.counters(0).unwrap();
    assert_eq!((b.connections, b.bytes_from), (1, 15));
    assert_eq!(pool.active(0), 0);
}

#[test]
fn an_unknown_name_gets_an_unrecognized_name_alert_and_a_close() {
    let mut sim = Sim::new(gateway(TLS_SHOP, ""));
    let id = sim.accept(443);
    sim.client_sends(id, CURL); // www.example.org
    assert_eq!(sim.socket(id).to_client, [0x15, 3, 3, 0, 2, 2, 112]);
    assert!(sim.socket(id).closed);
    assert!(sim.socket(id).connects.is_empty());
    assert_eq!(sim.gw.counters().unknown_name, 1);
    let id = sim.accept(443);
    sim.client_sends(id, b"GET / HTTP/1.1\r\n");
    assert!(sim.socket(id).closed && sim.socket(id).to_client.is_empty());
    assert_eq!(sim.gw.counters().not_tls, 1);
}

#[test]
fn a_truncated_client_hello_is_closed_at_the_head_timeout() {
    let mut sim = Sim::new(gateway(TLS_SHOP, "HeadTimeout = 5\n"));
    let id = sim.accept(443);
    sim.client_sends(id, &OPENSSL[..50]);
    sim.advance(4_000);
    sim.client_sends(id, &OPENSSL[50..60]);
    assert!(!sim.socket(id).closed, "still within the head timeout");
    sim.advance(1_000);
    assert!(
        sim.socket(id).closed,
        "slow bytes do not extend the head timeout"
    );
    assert_eq!(sim.gw.counters().head_timeouts, 1);
    assert_eq!(sim.gw.open_connections(), 0);
}

#[test]
fn keep_alive_requests_for_two_names_reach_two_backends() {
    let mut sim = Sim::new(gateway(HTTP_AB, ""));
    let id = sim.accept(80);
    sim.client_sends(id, b"GET /one HTTP/1.1\r\nHost: A.example.org\r\n\r\n");
    assert_eq!(sim.socket(id).connects, vec![addr("10.20.1.10:80")]);
    let head = sim.take_backend(id);
    assert!(
        head.starts_with("GET /one HTTP/1.1\r\nHost: A.example.org\r\n"),
        "{head}"
    );
    assert!(
        head.contains("\r\nX-Forwarded-For: 198.51.100.7\r\n"),
        "{head}"
    );
    sim.backend_sends(id, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none");
    assert_eq!(
        sim.take_client(id),
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
    );
    sim.client_sends(id, b"GET /two HTTP/1.1\r\nHost: x.b.example.org:80\r\n\r\n");
    assert_eq!(
        sim.socket(id).connects,
        vec![addr("10.20.1.10:80"), addr("10.20.2.10:80")]
    );
    assert_eq!(
        sim.socket(id).backend_closes,
        1,
        "the first backend was let go"
    );
    assert!(sim.take_backend(id).starts_with("GET /two HTTP/1.1\r\n"));
    sim.backend_sends(
        id,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n",
    );
    assert!(sim.take_client(id).ends_with("3\r\ntwo\r\n0\r\n\r\n"));
    assert!(!sim.socket(id).closed);
    assert_eq!(sim.gw.counters().requests, 2);
}

#[test]
fn requests_to_the_same_service_reuse_the_backend_connection() {
    let mut sim = Sim::new(gateway(HTTP_AB, ""));
    let id = sim.accept(80);
    for path in ["/1", "/2", "/3"] {
        let req = alloc::format!("GET {path} HTTP/1.1\r\nHost: a.example.org\r\n\r\n");
        sim.client_sends(id, req.as_bytes());
        assert!(sim
            .take_backend(id)
            .starts_with(&alloc::format!("GET {path} ")));
        sim.backend_sends(id, b"HTTP/1.1 204 No Content\r\n\r\n");
        assert_eq!(sim.take_client(id), "HTTP/1.1 204 No Content\r\n\r\n");
    }
    assert_eq!(sim.socket(id).connects.len(), 1);
    let (_, counters, _) = sim.gw.service(0).unwrap();
    assert_eq!(counters.requests, 3);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut sim = Sim::new(gateway(HTTP_AB, ""));
    let id = sim.accept(80);
    sim.client_sends(
        id,
        b"GET /1 HTTP/1.1\r\nHost: a.example.org\r\n\r\nGET /2 HTTP/1.1\r\nHost: a.example.org\r\nConnection: close\r\n\r\n",
    );
    let first = sim.take_backend(id);
    assert!(
        first.starts_with("GET /1 ") && !first.contains("GET /2"),
        "{first}"
    );
    sim.backend_sends(id, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1");
    let second = sim.take_backend(id);
    assert!(
        second.starts_with("GET /2 ") && second.contains("Connection: close"),
        "{second}"
    );
    sim.backend_sends(id, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2");
    assert!(sim.take_client(id).ends_with("\r\n\r\n2"));
    assert!(sim.socket(id).closed, "the client asked to close after /2");
}

#[test]
fn request_bodies_are_streamed_as_they_arrive() {
    let mut sim = Sim::new(gateway(HTTP_AB, ""));
    let id = sim.accept(80);
    sim.client_sends(
        id,
        b"POST /up HTTP/1.1\r\nHost: a.example.org\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab",
    );
    assert!(sim.take_backend(id).ends_with("\r\n\r\n4\r\nab"));
    sim.client_sends(id, b"cd\r\n");
    assert_eq!(sim.take_backend(id), "cd\r\n");
    sim.client_sends(id, b"0\r\n\r\n");
    assert_eq!(sim.take_backend(id), "0\r\n\r\n");
    sim.backend_sends(id, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    assert!(sim.take_client(id).starts_with("HTTP/1.1 201"));
    // A Content-Length body in pieces, and the response body in pieces.
    sim.client_sends(
        id,
        b"PUT / HTTP/1.1\r\nHost: a.example.org\r\nContent-Length: 6\r\n\r\nabc",
    );
    assert!(sim.take_backend(id).ends_with("\r\n\r\nabc"));
    sim.client_sends(id, b"def");
    assert_eq!(sim.take_backend(id), "def");
    sim.backend_sends(id, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok");
    sim.backend_sends(id, b"!!");
    assert!(sim.take_client(id).ends_with("ok!!"));
    assert_eq!(sim.socket(id).connects.len(), 1);
}

#[test]
fn unknown_hosts_get_404_and_tls_only_names_421() {
    let mut sim = Sim::new(gateway(&alloc::format!("{HTTP_AB}{TLS_SHOP}"), ""));
    let id = sim.accept(80);
    sim.client_sends(id, b"GET / HTTP/1.1\r\nHost: nope.example.org\r\n\r\n");
    assert!(sim
        .take_client(id)
        .starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(sim.socket(id).closed);
    let id = sim.accept(80);
    sim.client_sends(id, b"GET / HTTP/1.1\r\nHost: shop.example.org\r\n\r\n");
    assert!(sim.take_client(id).starts_with("HTTP/1.1 421 "));
    let id = sim.accept(80);
    sim.client_sends(id, b"\x16\x03\x01\x00\x05hello");
    assert!(sim.take_client(id).starts_with("HTTP/1.1 400 "));
    let c = sim.gw.counters();
    assert_eq!((c.status_404, c.status_421, c.status_400), (1, 1, 1));
}

#[test]
fn an_oversized_head_gets_431() {
    let mut sim = Sim::new(gateway(HTTP_AB, ""));
    let id = sim.accept(80);
    sim.client_sends(id, b"GET / HTTP/1.1\r\nHost: a.example.org\r\nX-Big: ");
    for _ in 0..10 {
        if sim.socket(id).closed {
            break;
        }
        sim.client_sends(id, &[b'x'; 1000]);
    }
    assert!(sim.take_client(id).starts_with("HTTP/1.1 431 "));
    assert!(sim.socket(id).connects.is_empty());
}

#[test]
fn a_refused_connect_retries_the_next_backend_before_any_byte_reaches_the_client() {
    let mut sim = Sim::new(gateway(TLS_SHOP, ""));
    sim.refusing.push(addr("10.20.1.10:443"));
    let id = sim.accept(443);
    sim.client_sends(id, OPENSSL);
    assert_eq!(
        sim.socket(id).connects,
        vec![addr("10.20.1.10:443"), addr("10.20.2.10:443")]
    );
    assert_eq!(
        sim.socket(id).to_backend,
        OPENSSL,
        "the retry got the whole hello"
    );
    assert!(sim.socket(id).to_client.is_empty());
    let (_, counters, pool) = sim.gw.service(0).unwrap();
    assert_eq!(counters.connect_failures, 1);
    assert!(!pool.is_up(0), "the failed backend left the rotation");
    // The next client goes straight to the healthy one.
    let id = sim.accept(443);
    sim.client_sends(id, OPENSSL);
    assert_eq!(sim.socket(id).connects, vec![addr("10.20.2.10:443")]);
}

#[test]
fn every_backend_refusing_is_502_and_none_healthy_is_503() {
    let mut sim = Sim::new(gateway(HTTP_AB, ""));
    sim.refusing.push(addr("10.20.1.10:80"));
    let id = sim.accept(80);
    sim.client_sends(id, b"GET / HTTP/1.1\r\nHost: a.example.org\r\n\r\n");
    assert!(sim.take_client(id).starts_with("HTTP/1.1 502 "));
    let id = sim.accept(80);
    sim.client_sends(id, b"GET / HTTP/1.1\r\nHost: a.example.org\r\n\r\n");
    assert!(sim.take_client(id).starts_with("HTTP/1.1 503 "));
    assert_eq!(
        sim.socket(id).connects.len(),
        0,
        "no healthy backend to try"
    );
    let (_, counters, _) = sim.gw.service(0).unwrap();
    assert_eq!((counters.bad_gateway, counters.unavailable), (1, 1));
}

#[test]
fn a_connect_that_never_completes_is_504_after_the_connect_timeout() {
    let mut sim = Sim::new(gateway(HTTP_AB, "ConnectTimeout = 2\n"));
    sim.silent.push(addr("10.20.1.10:80"));
    let id = sim.accept(80);
    sim.client_sends(id, b"GET / HTTP/1.1\r\nHost: a.example.org\r\n\r\n");
    sim.advance(1_999);
    assert!(!sim.socket(id).closed);
    sim.advance(1);
    assert!(sim.take_client(id).starts_with("HTTP/1.1 504 "));
    let (_, counters, _) = sim.gw.service(0).unwrap();
    assert_eq!(counters.connect_timeouts, 1);
}

#[test]
fn a_response_that_never_starts_is_504_after_the_idle_timeout() {
    let mut sim = Sim::new(gateway(HTTP_AB, "IdleTimeout = 30\n"));
    let id = sim.accept(80);
    sim.client_sends(id, b"GET / HTTP/1.1\r\nHost: a.example.org\r\n\r\n");
    sim.advance(30_000);
    assert!(sim.take_client(id).starts_with("HTTP/1.1 504 "));
    assert!(sim.socket(id).closed);
}

#[test]
fn a_bad_backend_response_is_502() {
    let mut sim = Sim::new(gateway(HTTP_AB, ""));
    let id = sim.accept(80);
    sim.client_sends(id, b"GET / HTTP/1.1\r\nHost: a.example.org\r\n\r\n");
    sim.backend_sends(id, b"SSH-2.0-OpenSSH_9.2\r\n");
    assert!(sim.take_client(id).starts_with("HTTP/1.1 502 "));
    let id = sim.accept(80);
    sim.client_sends(id, b"GET / HTTP/1.1\r\nHost: a.example.org\r\n\r\n");
    sim.backend_eof(id);
    assert!(sim.take_client(id).starts_with("HTTP/1.1 502 "));
}

#[test]
fn an_upgrade_becomes_a_tunnel_after_101() {
    let mut sim = Sim::new(gateway(HTTP_AB, ""));
    let id = sim.accept(80);
    sim.client_sends(
        id,
        b"GET /ws HTTP/1.1\r\nHost: a.example.org\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    );
    let head = sim.take_backend(id);
    assert!(
        head.contains("\r\nUpgrade: websocket\r\n") && head.contains("\r\nConnection: upgrade\r\n")
    );
    sim.client_sends(id, b"early frame");
    assert_eq!(sim.take_backend(id), "", "held until the backend agrees");
    sim.backend_sends(id, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x01\x02hi");
    assert!(sim.take_client(id).ends_with("\r\n\r\n\x01\x02hi"));
    assert_eq!(sim.take_backend(id), "early frame");
    sim.client_sends(id, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(
        sim.take_backend(id),
        "GET / HTTP/1.1\r\n\r\n",
        "a tunnel: no parsing"
    );
    assert_eq!(sim.gw.counters().upgrades, 1);
}

#[test]
fn the_connection_limit_refuses_the_next_client_and_frees_slots() {
    let mut sim = Sim::new(gateway(HTTP_AB, "MaxConnections = 2\n"));
    let a = sim.accept(80);
    let _b = sim.accept(80);
    assert_eq!(sim.accept_on("198.51.100.8:1", 80), Err(Refused::Full));
    assert_eq!(sim.gw.counters().refused_full, 1);
    sim.client_eof(a);
    assert!(sim.socket(a).closed);
    let c = sim.accept(80);
    assert_ne!(c, a, "a reused slot gets a new id");
    // Events for the old id are ignored.
    let mut out = Vec::new();
    sim.gw
        .client_data(a, b"GET / HTTP/1.1\r\n\r\n", sim.now, &mut out);
    assert!(out.is_empty());
    assert_eq!(
        sim.accept_on("198.51.100.7:1", 8080),
        Err(Refused::NoListener)
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_and_a_slowloris_head_times_out() {
    let mut sim = Sim::new(gateway(HTTP_AB, "HeadTimeout = 10\nIdleTimeout = 60\n"));
    let id = sim.accept(80);
    sim.client_sends(id, b"GET / HTTP/1.1\r\nHost: a.example.org\r\n\r\n");
    sim.backend_sends(id, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    sim.advance(59_000);
    assert!(!sim.socket(id).closed);
    sim.advance(1_000);
    assert!(sim.socket(id).closed);
    assert_eq!(sim.gw.counters().idle_timeouts, 1);
    let slow = sim.accept(80);
    // 27 bytes, one every 400 ms: 10.8 s in all.
    for byte in b"GET / HTTP/1.1\r\nHost: a.exam" {
        sim.client_sends(slow, &[*byte]);
        sim.advance(400);
    }
    assert!(
        sim.socket(slow).closed,
        "closed at 10 s however slowly it trickles"
    );
    assert_eq!(sim.gw.counters().head_timeouts, 1);
}

#[test]
fn proxy_protocol_v2_goes_before_the_client_bytes() {
    let svc = "[Service]\nName = shop.example.org\nMode = tls\nBackend = 10.20.1.10:443\nProxyProtocol = v2\n";
    let mut sim = Sim::new(gateway(svc, ""));
    let id = sim.accept(443);
    sim.client_sends(id, OPENSSL);
    let sent = &sim.socket(id).to_backend;
    let header = proxy::parse(sent).unwrap();
    assert_eq!(
        header.addresses,
        Some((addr("198.51.100.7:40000"), addr("203.0.113.10:443")))
    );
    assert_eq!(&sent[header.len..], OPENSSL);
}

#[test]
fn a_tcp_service_connects_at_accept_and_streams_both_ways() {
    let svc = "[Service]\nName = ssh\nMode = tcp\nPort = 2222\nBackend = 10.20.1.10:22\n";
    let mut sim = Sim::new(gateway(svc, ""));
    assert_eq!(sim.gw.listeners(), vec![addr("203.0.113.10:2222")]);
    let id = sim.accept(2222);
    assert_eq!(sim.socket(id).connects, vec![addr("10.20.1.10:22")]);
    sim.backend_sends(id, b"SSH-2.0-x\r\n");
    sim.client_sends(id, b"SSH-2.0-y\r\n");
    assert_eq!(sim.take_client(id), "SSH-2.0-x\r\n");
    assert_eq!(sim.take_backend(id), "SSH-2.0-y\r\n");
    sim.backend_eof(id);
    assert!(sim.socket(id).client_shut);
    sim.client_eof(id);
    assert!(sim.socket(id).closed);
}

#[test]
fn health_checks_take_a_dead_backend_out_and_bring_it_back() {
    let mut sim = Sim::new(gateway(TLS_SHOP, ""));
    let dead = addr("10.20.1.10:443");
    let mut t = 0;
    let run_checks = |gw: &mut Gateway, t: u64, alive: bool| {
        let now = Instant::from_millis(t as i64);
        while let Some(job) = gw.next_check(now) {
            assert_eq!(job.kind, HealthCheck::Tcp);
            let ok = job.check.addr != dead || alive;
            gw.check_done(&job, ok, now);
        }
    };
    while t <= 6_000 {
        run_checks(&mut sim.gw, t, false);
        t += 100;
    }
    let (_, _, pool) = sim.gw.service(0).unwrap();
    assert!(!pool.is_up(0) && pool.is_up(1));
    sim.now = Instant::from_millis(t as i64);
    let id = sim.accept(443);
    sim.client_sends(id, OPENSSL);
    assert_eq!(sim.socket(id).connects, vec![addr("10.20.2.10:443")]);
    while t <= 10_000 {
        run_checks(&mut sim.gw, t, true);
        t += 100;
    }
    assert!(sim.gw.service(0).unwrap().2.is_up(0));
}

#[test]
fn http_checks_send_a_get_and_judge_the_status() {
    assert_eq!(
        http_check_request("/healthz", "10.20.1.10"),
        b"GET /healthz HTTP/1.1\r\nHost: 10.20.1.10\r\nUser-Agent: vdcnet-check\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(http_check_ok(b"HTTP/1.1 200 OK\r\n\r\n"), Some(true));
    assert_eq!(http_check_ok(b"HTTP/1.1 302 Found\r\n\r\n"), Some(true));
    assert_eq!(http_check_ok(b"HTTP/1.1 500 Oops\r\n\r\n"), Some(false));
    assert_eq!(http_check_ok(b"garbage\r\n\r\n"), Some(false));
    assert_eq!(http_check_ok(b"HTTP/1.1 200"), None);
}

#[test]
fn random_bytes_on_both_ports_never_panic_and_always_end() {
    let mut sim = Sim::new(gateway(&alloc::format!("{HTTP_AB}{TLS_SHOP}"), ""));
    let mut seed = 0x1234_5678_u32;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for round in 0..200 {
        let port = if round % 2 == 0 { 80 } else { 443 };
        let id = sim.accept(port);
        for _ in 0..8 {
            if sim.socket(id).closed {
                break;
            }
            let len = (rand() % 700) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rand() as u8).collect();
            sim.client_sends(id, &bytes);
        }
        sim.advance(11_000);
        assert!(
            sim.socket(id).closed,
            "round {round}: not closed by the head timeout"
        );
    }
    assert_eq!(sim.gw.open_connections(), 0);
}

#[test]
fn a_body_in_the_same_read_as_its_head_is_passed_on_whole() {
    let mut sim = Sim::new(gateway(HTTP_AB, ""));
    let id = sim.accept(80);
    let body = vec![b'q'; 20_000];
    let mut req =
        b"POST / HTTP/1.1\r\nHost: a.example.org\r\nContent-Length: 20000\r\n\r\n".to_vec();
    req.extend_from_slice(&body);
    sim.client_sends(id, &req);
    assert!(sim.socket(id).to_backend.ends_with(&body));
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n".to_vec();
    resp.extend_from_slice(&body);
    sim.backend_sends(id, &resp);
    assert_eq!(sim.socket(id).to_client, resp);
    assert!(!sim.socket(id).closed);
}

#[test]
fn a_backend_reset_mid_stream_closes_the_client() {
    let mut sim = Sim::new(gateway(TLS_SHOP, ""));
    let id = sim.accept(443);
    sim.client_sends(id, OPENSSL);
    let mut out = Vec::new();
    sim.gw.backend_failed(id, sim.now, &mut out);
    sim.run(out);
    assert!(sim.socket(id).closed);
    let (_, _, pool) = sim.gw.service(0).unwrap();
    assert!(
        pool.is_up(0),
        "a reset after connecting is not a failed connect"
    );
}
