//! Host tests of the metrics service through the whole appliance: a smoltcp client on an
//! in-memory NIC opens real TCP connections to it, with `now` advanced by the test.

use super::test_host::Client;
use super::test_nic::{MockNic, Queues};
use super::*;
use crate::config;
use crate::tunnel::PrivateKey;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use smoltcp::socket::tcp;
use std::cell::RefCell;
use std::rc::Rc;

type App = Appliance<MockNic, rand_core::OsRng>;

const WALL: u64 = 1_700_000_000_000_000_000;

struct Bench {
    app: App,
    t_us: u64,
    console: String,
}

impl Bench {
    /// Runs the appliance and `client` for `ms` simulated milliseconds.
    fn run(&mut self, client: &mut Client, ms: u64) {
        for _ in 0..ms {
            self.t_us += 1000;
            let now = Instant::from_micros(self.t_us as i64);
            client
                .iface
                .poll(now, &mut client.wire, &mut client.sockets);
            self.app
                .poll(self.t_us, WALL + self.t_us * 1000, &mut self.console);
        }
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.t_us as i64)
    }

    /// Sends `request` on a new connection and reads until the server closes (or `ms`
    /// run out): everything received.
    fn exchange(&mut self, client: &mut Client, port: u16, request: &[u8], ms: u64) -> Vec<u8> {
        let h = client.connect("10.20.1.1", 9100, port);
        let mut sent = 0;
        let mut got = Vec::new();
        for _ in 0..ms {
            self.run(client, 1);
            let s = client.socket(h);
            if sent < request.len() && s.can_send() {
                sent += s.send_slice(&request[sent..]).unwrap();
            }
            let mut buf = [0u8; 4096];
            while s.can_recv() {
                let n = s.recv_slice(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            if !s.may_recv() && s.state() != tcp::State::SynSent {
                break;
            }
        }
        client.socket(h).abort();
        self.run(client, 2);
        got
    }
}

fn keypair() -> (String, String) {
    let k = PrivateKey::generate(&mut rand_core::OsRng);
    let public = crate::config::PublicKey(k.public_key().0).to_string();
    (STANDARD.encode(*k.to_bytes()), public)
}

/// An appliance with an underlay (NIC 1), a segment (NIC 2) and one peer; the queues of
/// both NICs and the peer's public key.
fn boot(metrics: &str) -> (Bench, Rc<RefCell<Queues>>, Rc<RefCell<Queues>>, String) {
    let (private, _) = keypair();
    let (_, peer) = keypair();
    let text = format!(
        "[Link]\nAddress = 192.168.100.1/24\n\
         [Link]\nRole = segment\nAddress = 10.20.1.1/24\n\
         [Interface]\nPrivateKey = {private}\n\
         [Peer]\nPublicKey = {peer}\nEndpoint = 192.168.100.2:51820\nAllowedIPs = 10.20.2.0/24\n\
         {metrics}"
    );
    let cfg = config::parse(text.as_bytes()).expect("test config parses");
    let (n1, q1) = MockNic::new([0x52, 0x54, 0, 0, 0, 1]);
    let (n2, q2) = MockNic::new([0x52, 0x54, 0, 0, 0, 2]);
    let opts = Options {
        seed: 1,
        ..Options::default()
    };
    let app = Appliance::new(&cfg, vec![n1, n2], opts, Some(rand_core::OsRng), 0).unwrap();
    let bench = Bench {
        app,
        t_us: 0,
        console: String::new(),
    };
    (bench, q1, q2, peer)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_segment_host_scrapes_metrics_with_the_peer_links_and_drops() {
    let (mut b, _, q2, peer) = boot("");
    let mut c = Client::new(q2, "10.20.1.50/24", "10.20.1.1", b.now());
    let r = text(&b.exchange(
        &mut c,
        40000,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
        3000,
    ));
    let (head, body) = r.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{r:?}"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(
        head.contains(&format!("Content-Length: {}\r\n", body.len())),
        "{head} vs {} body bytes",
        body.len()
    );
    for want in [
        format!(
            "vdcnet_peer_endpoint_info{{peer=\"{peer}\",endpoint=\"192.168.100.2:51820\"}} 1\n"
        ),
        format!("vdcnet_peer_rx_bytes_total{{peer=\"{peer}\"}} 0\n"),
        format!(
            "vdcnet_route_info{{prefix=\"10.20.2.0/24\",target=\"wg0\",via=\"{peer}\",origin=\"allowed_ips\",metric=\"0\"}} 1\n"
        ),
        String::from("# TYPE vdcnet_link_rx_frames_total counter\n"),
        String::from("vdcnet_link_info{link=\"1\",role=\"segment\",mac=\"52:54:00:00:00:02\"} 1\n"),
        String::from("vdcnet_router_drops_total{reason=\"no_route\"} 0\n"),
        String::from("vdcnet_tunnel_drops_total{reason=\"allowed_ips_mismatch\"} 0\n"),
        String::from("vdcnet_dhcp_leases{link=\"1\"} 0\n"),
    ] {
        assert!(body.contains(&want), "no {want:?} in\n{body}");
    }
    // The segment link counted the client's frames.
    let rx = body
        .lines()
        .find(|l| l.starts_with("vdcnet_link_rx_frames_total{link=\"1\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap();
    assert!(rx >= 3, "{rx} frames on the segment");
    // HEAD: the same headers, no body.
    let r = text(&b.exchange(&mut c, 40001, b"HEAD /metrics HTTP/1.0\r\n\r\n", 3000));
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.ends_with("\r\n\r\n"), "HEAD answered with a body: {r}");
}

#[test]
fn bad_requests_get_their_status_and_a_slowloris_is_cut_off() {
    let (mut b, _, q2, _) = boot("");
    let mut c = Client::new(q2, "10.20.1.50/24", "10.20.1.1", b.now());
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    huge.resize(6000, b'a');
    let cases: [(&[u8], &str); 5] = [
        (b"POST /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 405 "),
        (b"GET /admin HTTP/1.1\r\n\r\n", "HTTP/1.1 404 "),
        (b"\x00\xff\x13garbage\r\n\r\n", "HTTP/1.1 400 "),
        (&huge, "HTTP/1.1 431 "),
        (b"GET /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 200 "),
    ];
    for (i, (request, want)) in cases.iter().enumerate() {
        let r = text(&b.exchange(&mut c, 41000 + i as u16, request, 3000));
        assert!(r.starts_with(want), "{want:?} expected, got {r:?}");
    }
    // A slowloris: part of a head, then a byte a second. The server closes it once the
    // head timeout passes, and says so in its counters.
    let h = c.connect("10.20.1.1", 9100, 42000);
    b.run(&mut c, 200);
    assert_eq!(c.socket(h).state(), tcp::State::Established);
    c.socket(h)
        .send_slice(b"GET /metrics HTTP/1.1\r\n")
        .unwrap();
    let mut closed_after = None;
    for second in 0..30u64 {
        if c.socket(h).can_send() {
            let _ = c.socket(h).send_slice(b"X");
        }
        b.run(&mut c, 1000);
        let s = c.socket(h);
        if !s.is_active() || !s.may_recv() {
            closed_after = Some(second + 1);
            break;
        }
    }
    let secs = closed_after.expect("the slow client was never cut off");
    assert!((10..=12).contains(&secs), "cut off after {secs} s");
    let r = text(&b.exchange(&mut c, 42001, b"GET /metrics HTTP/1.1\r\n\r\n", 3000));
    assert!(r.contains("\nvdcnet_metrics_timeouts_total 1\n"), "{r}");
    assert!(
        r.contains("\nvdcnet_metrics_responses_total{code=\"405\"} 1\n")
            && r.contains("\nvdcnet_metrics_responses_total{code=\"431\"} 1\n"),
        "{r}"
    );
}

#[test]
fn at_most_four_connections_are_open_per_listen_address() {
    let (mut b, _, q2, _) = boot("");
    let mut c = Client::new(q2, "10.20.1.50/24", "10.20.1.1", b.now());
    let handles: Vec<_> = (0..5)
        .map(|i| c.connect("10.20.1.1", 9100, 43000 + i))
        .collect();
    b.run(&mut c, 500);
    let established = handles
        .iter()
        .filter(|h| c.socket(**h).state() == tcp::State::Established)
        .count();
    assert_eq!(established, crate::metrics::SOCKETS_PER_LISTEN);
}

#[test]
fn the_underlay_reaches_no_metrics_unless_the_config_names_its_address() {
    let (mut b, q1, _, _) = boot("");
    let mut c = Client::new(q1, "192.168.100.9/24", "192.168.100.1", b.now());
    for (addr, port) in [("10.20.1.1", 44000), ("192.168.100.1", 44001)] {
        let h = c.connect(addr, 9100, port);
        b.run(&mut c, 2000);
        let state = c.socket(h).state();
        assert_ne!(
            state,
            tcp::State::Established,
            "{addr}:9100 from the underlay"
        );
    }

    let (mut b, q1, _, _) = boot("[Metrics]\nListen = 192.168.100.1:9200\n");
    let mut c = Client::new(q1, "192.168.100.9/24", "192.168.100.1", b.now());
    let h = c.connect("192.168.100.1", 9200, 44002);
    b.run(&mut c, 500);
    assert_eq!(
        c.socket(h).state(),
        tcp::State::Established,
        "named underlay address"
    );
}
