//! Host tests of the web gateway on the local stack: a smoltcp client on the underlay NIC
//! and a smoltcp host with the backends on the segment NIC open real TCP connections
//! through the whole appliance, with `now` advanced by the test.

use super::test_host::Client;
use super::test_nic::MockNic;
use super::*;
use crate::config;
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};
use std::string::String;

type App = Appliance<MockNic, rand_core::OsRng>;

const WALL: u64 = 1_700_000_000_000_000_000;
const OPENSSL: &[u8] = include_bytes!("../gateway/fixtures/openssl_shop.bin");

/// Backends on the segment host: 10.20.1.10 serves, 10.20.1.11 has nothing listening.
const LIVE: &str = "10.20.1.10";
const DEAD: &str = "10.20.1.11";

/// What a backend socket does with what it receives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Serve {
    /// Answers each request head with 200 and a body naming the port.
    Http,
    /// Sends back everything.
    Echo,
}

struct Backend {
    handle: SocketHandle,
    endpoint: IpListenEndpoint,
    serve: Serve,
    buf: Vec<u8>,
}

struct Bench {
    app: App,
    t_us: u64,
    console: String,
    client: Client,
    host: Client,
    backends: Vec<Backend>,
    /// Every request head the backends received, with the connection's source.
    seen: Vec<(IpEndpoint, String)>,
}

impl Bench {
    fn new(services: &str, gateway_keys: &str) -> Bench {
        let text = format!(
            "[Link]\nAddress = 203.0.113.10/24\n\
             [Link]\nRole = segment\nAddress = 10.20.1.1/24\n\
             [Gateway]\nListen = 203.0.113.10\n{gateway_keys}\n{services}"
        );
        let cfg = config::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e:#?}"));
        let (n1, q1) = MockNic::new([0x52, 0x54, 0, 0, 0, 1]);
        let (n2, q2) = MockNic::new([0x52, 0x54, 0, 0, 0, 2]);
        let opts = Options {
            seed: 7,
            ..Options::default()
        };
        let app = App::new(&cfg, vec![n1, n2], opts, None, 0).unwrap();
        let now = Instant::from_micros(0);
        let client = Client::with_mac(
            q1,
            [2, 0, 0, 0, 0, 0x50],
            "203.0.113.50/24",
            "203.0.113.10",
            now,
        );
        let mut host =
            Client::with_mac(q2, [2, 0, 0, 0, 0, 0x10], "10.20.1.10/24", "10.20.1.1", now);
        host.iface
            .update_ip_addrs(|a| a.push(format!("{DEAD}/24").parse().unwrap()).unwrap());
        Bench {
            app,
            t_us: 0,
            console: String::new(),
            client,
            host,
            backends: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// `n` sockets on the live backend's `port`.
    fn serve(&mut self, port: u16, serve: Serve, n: usize) {
        for _ in 0..n {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; 16384]),
                tcp::SocketBuffer::new(vec![0; 16384]),
            );
            let endpoint = IpListenEndpoint {
                addr: Some(LIVE.parse().unwrap()),
                port,
            };
            s.listen(endpoint).unwrap();
            let handle = self.host.sockets.add(s);
            self.backends.push(Backend {
                handle,
                endpoint,
                serve,
                buf: Vec::new(),
            });
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.t_us as i64)
    }

    /// Runs everything for `ms` simulated milliseconds.
    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.t_us += 1000;
            let now = self.now();
            let c = &mut self.client;
            c.iface.poll(now, &mut c.wire, &mut c.sockets);
            let h = &mut self.host;
            h.iface.poll(now, &mut h.wire, &mut h.sockets);
            self.run_backends();
            self.app
                .poll(self.t_us, WALL + self.t_us * 1000, &mut self.console);
        }
    }

    fn run_backends(&mut self) {
        for b in &mut self.backends {
            let s = self.host.sockets.get_mut::<tcp::Socket>(b.handle);
            if !s.is_open() {
                b.buf.clear();
                let _ = s.listen(b.endpoint);
                continue;
            }
            if matches!(s.state(), tcp::State::Listen | tcp::State::SynReceived) {
                continue;
            }
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = s.recv_slice(&mut chunk) {
                b.buf.extend_from_slice(&chunk[..n]);
            }
            match b.serve {
                Serve::Echo => {
                    let n = s.send_slice(&b.buf).unwrap_or(0);
                    b.buf.drain(..n);
                    if !s.may_recv() && b.buf.is_empty() {
                        s.close();
                    }
                }
                Serve::Http => {
                    while let Some(end) = b.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head: Vec<u8> = b.buf.drain(..end + 4).collect();
                        let head = String::from_utf8_lossy(&head).into_owned();
                        let body = format!("port {}", b.endpoint.port);
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = s.send_slice(answer.as_bytes());
                        self.seen.push((s.remote_endpoint().unwrap(), head));
                    }
                    if !s.may_recv() {
                        s.close();
                    }
                }
            }
        }
    }

    fn connect(&mut self, port: u16, local_port: u16) -> SocketHandle {
        self.client.connect("203.0.113.10", port, local_port)
    }

    fn send(&mut self, h: SocketHandle, bytes: &[u8]) {
        let n = self.client.socket(h).send_slice(bytes).unwrap();
        assert_eq!(n, bytes.len());
    }

    /// Reads what the client socket has, running up to `ms` until `done` says enough.
    fn read_until(&mut self, h: SocketHandle, ms: u64, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let mut got = Vec::new();
        for _ in 0..ms {
            self.run(1);
            let s = self.client.socket(h);
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = s.recv_slice(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
            if done(&got) || !s.may_recv() && s.state() != tcp::State::SynSent {
                break;
            }
        }
        got
    }

    fn gateway(&self) -> &gateway::GatewayService {
        self.app.gateway.as_ref().expect("a gateway")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn responses(n: usize) -> impl Fn(&[u8]) -> bool {
    move |b: &[u8]| text(b).matches("HTTP/1.1 200").count() >= n && text(b).ends_with("port 8080")
}

const HTTP_SHOP: &str =
    "[Service]\nName = shop.example.org\nMode = http\nBackend = 10.20.1.10:8080\n";

#[test]
fn keep_alive_requests_by_host_reach_the_backend_from_the_segment_address_with_forwarded_headers() {
    let mut b = Bench::new(HTTP_SHOP, "");
    b.serve(8080, Serve::Http, 2);
    let h = b.connect(80, 40000);
    b.run(5);
    let req = "GET /a HTTP/1.1\r\nHost: SHOP.example.org:80\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
    b.send(h, req.as_bytes());
    let got = b.read_until(h, 500, responses(1));
    assert!(text(&got).starts_with("HTTP/1.1 200 OK"), "{}", text(&got));
    b.send(h, b"GET /b HTTP/1.1\r\nHost: shop.example.org\r\n\r\n");
    let got = b.read_until(h, 500, responses(1));
    assert!(text(&got).ends_with("port 8080"), "{}", text(&got));
    assert_eq!(b.seen.len(), 2, "both requests reached the backend");
    let (from, head) = &b.seen[0];
    assert_eq!(
        from.addr,
        "10.20.1.1".parse().unwrap(),
        "dialled from the segment address"
    );
    assert!(head.starts_with("GET /a HTTP/1.1\r\n"), "{head}");
    assert!(head.contains("X-Forwarded-For: 203.0.113.50\r\n"), "{head}");
    assert!(
        !head.contains("6.6.6.6"),
        "the client's own X-Forwarded-For is replaced: {head}"
    );
    assert_eq!(
        b.seen[1].0, *from,
        "the backend connection is kept for the next request"
    );
    let c = b.gateway().core().counters();
    assert_eq!((c.accepted, c.requests), (1, 2));
}

#[test]
fn a_dead_backend_is_retried_on_the_next_then_taken_out_by_its_checks() {
    let services = "[Service]\nName = shop.example.org\nMode = http\n\
                    Backend = 10.20.1.11:8080, 10.20.1.10:8080\nCheckInterval = 500\nCheckTimeout = 300\n";
    let mut b = Bench::new(services, "");
    b.serve(8080, Serve::Http, 4);
    for i in 0..3 {
        let h = b.connect(80, 40100 + i);
        b.run(5);
        b.send(
            h,
            b"GET / HTTP/1.1\r\nHost: shop.example.org\r\nConnection: close\r\n\r\n",
        );
        let got = b.read_until(h, 1000, responses(1));
        assert!(
            text(&got).starts_with("HTTP/1.1 200"),
            "request {i}: {}",
            text(&got)
        );
    }
    b.run(3000);
    let (_, counters, pool) = b.gateway().core().service(0).unwrap();
    assert!(!pool.is_up(0), "the dead backend is out of the rotation");
    assert!(pool.is_up(1), "the live one stays in");
    assert!(
        counters.connect_failures >= 1,
        "the first request's connect failed over"
    );
    assert_eq!(counters.requests, 3);
    assert!(pool.counters(0).unwrap().check_failures >= 3);
    // The same, as a scrape shows it.
    let mut snap = crate::metrics::collect(
        &b.app.router,
        Instant::ZERO,
        b.now(),
        WALL,
        Default::default(),
    );
    snap.gateway = Some(b.gateway().stats(b.now()));
    let mut body = String::new();
    snap.render(&mut body).unwrap();
    for line in [
        "vdcnet_gateway_backend_up{service=\"shop.example.org\",backend=\"10.20.1.11:8080\"} 0",
        "vdcnet_gateway_backend_up{service=\"shop.example.org\",backend=\"10.20.1.10:8080\"} 1",
        "vdcnet_gateway_service_requests_total{service=\"shop.example.org\"} 3",
        "vdcnet_gateway_service_serving_addresses{service=\"shop.example.org\"} 1",
    ] {
        assert!(body.lines().any(|l| l == line), "no {line:?} in\n{body}");
    }
}

#[test]
fn tls_is_passed_through_by_sni_byte_for_byte() {
    let services = "[Service]\nName = shop.example.org\nMode = tls\nBackend = 10.20.1.10:8443\n";
    let mut b = Bench::new(services, "");
    b.serve(8443, Serve::Echo, 1);
    let h = b.connect(443, 40200);
    b.run(5);
    // Two writes, as a client splitting its ClientHello over segments would.
    let (first, rest) = OPENSSL.split_at(200);
    b.send(h, first);
    b.run(20);
    b.send(h, rest);
    let got = b.read_until(h, 2000, |g| g.len() >= OPENSSL.len());
    assert_eq!(got, OPENSSL, "the backend got the ClientHello unchanged");
    let (_, counters, _) = b.gateway().core().service(0).unwrap();
    assert_eq!(counters.connections, 1);
}

#[test]
fn the_connection_limit_resets_the_next_client_and_slow_heads_are_closed() {
    let mut b = Bench::new(HTTP_SHOP, "MaxConnections = 2\nHeadTimeout = 2\n");
    b.serve(8080, Serve::Http, 2);
    let first = b.connect(80, 40300);
    let second = b.connect(80, 40301);
    b.run(20);
    b.send(first, b"GET / HTTP/1.1\r\nHo");
    let third = b.connect(80, 40302);
    b.run(20);
    assert!(
        !b.client.socket(third).is_open(),
        "the third client was reset"
    );
    assert!(b.client.socket(first).may_send(), "the first is still open");
    assert_eq!(b.gateway().counters().refused, 1);
    assert_eq!(b.gateway().core().counters().refused_full, 1);
    // Neither finishes its head within HeadTimeout: both are closed.
    b.run(2500);
    for h in [first, second] {
        let s = b.client.socket(h);
        assert!(!s.may_recv(), "a slow head is closed ({:?})", s.state());
    }
    assert_eq!(b.gateway().core().counters().head_timeouts, 2);
    assert_eq!(b.gateway().core().open_connections(), 0);
}

#[test]
fn closed_connections_give_their_sockets_back() {
    let mut b = Bench::new(HTTP_SHOP, "");
    b.serve(8080, Serve::Http, 2);
    b.run(10);
    let baseline = b.app.services.sockets.iter().count();
    for i in 0..20 {
        let h = b.connect(80, 40400 + i);
        b.run(3);
        b.send(
            h,
            b"GET / HTTP/1.1\r\nHost: shop.example.org\r\nConnection: close\r\n\r\n",
        );
        let got = b.read_until(h, 1000, responses(1));
        assert!(text(&got).ends_with("port 8080"), "{}", text(&got));
        b.client.socket(h).close();
    }
    // Closing sockets linger at most LINGER; health checks come and go meanwhile.
    b.run(2 * LINGER_MS);
    let now = b.app.services.sockets.iter().count();
    assert!(
        now <= baseline + 1,
        "sockets before: {baseline}, after 20 connections: {now}"
    );
    assert_eq!(b.gateway().core().open_connections(), 0);
}

const LINGER_MS: u64 = gateway::LINGER.total_millis();

#[test]
fn gateways_tell_each_other_what_they_serve_over_the_mesh_only() {
    use crate::gateway::peers::{REQUEST, STATUS_PORT};
    use smoltcp::socket::udp;
    // The segment host plays a peer gateway at 10.20.1.10.
    let mut b = Bench::new(HTTP_SHOP, "Peer = 10.20.1.10\n");
    b.serve(8080, Serve::Http, 1);
    let udp_socket = |c: &mut Client| {
        let mut s = udp::Socket::new(
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 4096]),
            udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 4096]),
        );
        s.bind(STATUS_PORT).unwrap();
        c.sockets.add(s)
    };
    let peer = udp_socket(&mut b.host);
    let stranger = udp_socket(&mut b.client);
    // Our gateway asks the peer; the peer answers with its own public address.
    let mut asked = false;
    for _ in 0..2000 {
        b.run(1);
        let s = b.host.sockets.get_mut::<udp::Socket>(peer);
        if let Ok((n, meta)) = s.recv_slice(&mut [0u8; 64]) {
            assert_eq!(n, REQUEST.len());
            let answer = b"vdcnet-gw 1\npublic 198.51.100.7\nservice shop.example.org up\n";
            s.send_slice(answer, meta.endpoint).unwrap();
            asked = true;
            break;
        }
    }
    assert!(asked, "the gateway asks its peer within two seconds");
    b.run(20);
    let both: Vec<std::net::IpAddr> = vec![
        "203.0.113.10".parse().unwrap(),
        "198.51.100.7".parse().unwrap(),
    ];
    assert_eq!(b.gateway().serving(0, b.now()), both);
    // It asks us too: our answer names our public address and the service's health.
    let s = b.host.sockets.get_mut::<udp::Socket>(peer);
    s.send_slice(
        REQUEST,
        IpEndpoint::new("10.20.1.1".parse().unwrap(), STATUS_PORT),
    )
    .unwrap();
    let mut answer = Vec::new();
    for _ in 0..100 {
        b.run(1);
        let s = b.host.sockets.get_mut::<udp::Socket>(peer);
        let mut buf = [0u8; 1500];
        if let Ok((n, _)) = s.recv_slice(&mut buf) {
            if buf.starts_with(b"vdcnet-gw 1\n") {
                answer = buf[..n].to_vec();
                break;
            }
        }
    }
    assert_eq!(
        text(&answer),
        "vdcnet-gw 1\npublic 203.0.113.10\nservice shop.example.org up\n"
    );
    // The underlay gets nothing, even on the gateway's public address.
    let s = b.client.sockets.get_mut::<udp::Socket>(stranger);
    s.send_slice(
        REQUEST,
        IpEndpoint::new("203.0.113.10".parse().unwrap(), STATUS_PORT),
    )
    .unwrap();
    b.run(50);
    let s = b.client.sockets.get_mut::<udp::Socket>(stranger);
    assert!(
        s.recv_slice(&mut [0u8; 1500]).is_err(),
        "the underlay got a status answer"
    );
    assert_eq!(b.gateway().counters().status_refused, 1);
    // The peer falls silent: after DEAD_AFTER only our own address is left.
    b.run(4000);
    assert_eq!(b.gateway().serving(0, b.now()), both[..1].to_vec());
}

/// A DNS query for `name`'s A records, id 0x1234, no EDNS.
fn dns_query(name: &str) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

#[test]
fn the_gateway_answers_dns_for_its_names_with_itself_while_a_backend_is_up() {
    use smoltcp::socket::udp;
    let dns = "[DNS]\nZone = example.org\nNameServer = ns1.example.org, 203.0.113.10\nTTL = 5\n";
    let services = format!(
        "{HTTP_SHOP}HealthCheck = http /health\nCheckInterval = 500\nCheckTimeout = 300\n{dns}"
    );
    let mut b = Bench::new(&services, "");
    b.serve(8080, Serve::Http, 2);
    let mut s = udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 4096]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 4], vec![0; 4096]),
    );
    s.bind(5353).unwrap();
    let h = b.client.sockets.add(s);
    let ask = |b: &mut Bench, name: &str| -> Vec<u8> {
        let to = IpEndpoint::new("203.0.113.10".parse().unwrap(), 53);
        b.client
            .sockets
            .get_mut::<udp::Socket>(h)
            .send_slice(&dns_query(name), to)
            .unwrap();
        for _ in 0..200 {
            b.run(1);
            let mut buf = [0u8; 1500];
            if let Ok((n, _)) = b
                .client
                .sockets
                .get_mut::<udp::Socket>(h)
                .recv_slice(&mut buf)
            {
                return buf[..n].to_vec();
            }
        }
        panic!("no DNS answer for {name}");
    };
    b.run(300);
    let a = ask(&mut b, "shop.example.org");
    assert_eq!(&a[..2], &[0x12, 0x34]);
    assert_eq!(a[3] & 0x0f, 0, "NOERROR");
    assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1, "one answer");
    assert!(
        a.ends_with(&[203, 0, 113, 10]),
        "the gateway's own address: {a:?}"
    );
    let nx = ask(&mut b, "nope.example.org");
    assert_eq!(nx[3] & 0x0f, 3, "NXDOMAIN");
    let refused = ask(&mut b, "www.example.com");
    assert_eq!(refused[3] & 0x0f, 5, "REFUSED");
    // The only backend goes away: the gateway stops listing itself (NODATA).
    for backend in &b.backends {
        b.host
            .sockets
            .get_mut::<tcp::Socket>(backend.handle)
            .abort();
    }
    b.backends.clear();
    b.run(4000);
    let a = ask(&mut b, "shop.example.org");
    assert_eq!(
        (a[3] & 0x0f, u16::from_be_bytes([a[6], a[7]])),
        (0, 0),
        "NODATA once no backend is healthy"
    );
    let mut line = String::new();
    b.app.write_stats(&mut line);
    assert!(line.contains(" dns udp=4 "), "{line}");
}

#[test]
fn the_connection_limit_is_cut_to_what_the_heap_holds() {
    assert_eq!(gateway::connections_that_fit(1 << 20), 22);
    assert_eq!(gateway::connections_that_fit(64 << 20), 1445);
    assert_eq!(gateway::connections_that_fit(0), 16);
    let text = format!(
        "[Link]\nAddress = 203.0.113.10/24\n[Link]\nRole = segment\nAddress = 10.20.1.1/24\n\
         [Gateway]\nListen = 203.0.113.10\n{HTTP_SHOP}"
    );
    let cfg = config::parse(text.as_bytes()).unwrap();
    let (n1, _) = MockNic::new([0x52, 0x54, 0, 0, 0, 1]);
    let (n2, _) = MockNic::new([0x52, 0x54, 0, 0, 0, 2]);
    let opts = Options {
        heap_bytes: Some(8 << 20),
        ..Options::default()
    };
    let app = App::new(&cfg, vec![n1, n2], opts, None, 0).unwrap();
    let mut line = String::new();
    app.describe(&mut line);
    let limit = gateway::connections_that_fit(8 << 20);
    assert!(limit < 1024);
    assert!(
        line.contains(&format!(
            "vdcnet: gateway 203.0.113.10:80 services 1 max_connections {limit}\n"
        )),
        "{line}"
    );
}
