//! Host tests of the runtime over in-memory NICs.

use super::*;
use crate::config;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol,
    Ipv4Address, Ipv4Packet, Ipv4Repr,
};
use smoltcp::wire::{EthernetAddress, Icmpv4Packet, Icmpv4Repr};
use std::cell::RefCell;
use std::rc::Rc;

use super::test_nic::{MockNic, Queues};

const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];

fn nic(last: u8) -> (MockNic, Rc<RefCell<Queues>>) {
    MockNic::new([0x52, 0x54, 0, 0, 0, last])
}

type App = Appliance<MockNic, rand_core::OsRng>;

fn boot(text: &str, nics: Vec<MockNic>) -> Result<App, Vec<ConfigError>> {
    let cfg = config::parse(text.as_bytes()).expect("test config parses");
    let opts = Options {
        seed: 1,
        ..Options::default()
    };
    Appliance::new(&cfg, nics, opts, Some(rand_core::OsRng), 0)
}

fn ethernet(
    dst: [u8; 6],
    proto: EthernetProtocol,
    payload_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let repr = EthernetRepr {
        src_addr: EthernetAddress(PEER_MAC),
        dst_addr: EthernetAddress(dst),
        ethertype: proto,
    };
    let mut buf = vec![0u8; repr.buffer_len() + payload_len];
    let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
    repr.emit(&mut frame);
    fill(frame.payload_mut());
    buf
}

fn arp_request(target: Ipv4Address) -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(PEER_MAC),
        source_protocol_addr: Ipv4Address::new(10, 0, 2, 2),
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    ethernet([0xff; 6], EthernetProtocol::Arp, arp.buffer_len(), |p| {
        arp.emit(&mut ArpPacket::new_unchecked(p))
    })
}

fn echo_request(dst_mac: [u8; 6], dst: Ipv4Address) -> Vec<u8> {
    let icmp = Icmpv4Repr::EchoRequest {
        ident: 7,
        seq_no: 3,
        data: b"hello",
    };
    let ip = Ipv4Repr {
        src_addr: Ipv4Address::new(10, 0, 2, 2),
        dst_addr: dst,
        next_header: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
    };
    let caps = ChecksumCapabilities::default();
    ethernet(
        dst_mac,
        EthernetProtocol::Ipv4,
        ip.buffer_len() + icmp.buffer_len(),
        |p| {
            let mut pkt = Ipv4Packet::new_unchecked(p);
            ip.emit(&mut pkt, &caps);
            icmp.emit(&mut Icmpv4Packet::new_unchecked(pkt.payload_mut()), &caps);
        },
    )
}

fn run(app: &mut App, from_us: u64) {
    let mut out = String::new();
    for t in 0..20 {
        app.poll(from_us + t * 1000, 1_700_000_000_000_000_000, &mut out);
    }
}

#[test]
fn arp_request_for_our_address_gets_a_reply_with_our_mac() {
    let (n, q) = nic(1);
    let mut app = boot("[Link]\nAddress = 10.0.2.15/24\n", vec![n]).unwrap();
    q.borrow_mut()
        .rx
        .push_back(arp_request(Ipv4Address::new(10, 0, 2, 15)));
    run(&mut app, 0);
    let tx = &q.borrow().tx;
    let reply = tx
        .iter()
        .filter_map(|f| EthernetFrame::new_checked(&f[..]).ok())
        .filter(|f| f.ethertype() == EthernetProtocol::Arp)
        .filter_map(|f| ArpRepr::parse(&ArpPacket::new_checked(f.payload()).ok()?).ok())
        .find(|a| {
            matches!(
                a,
                ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Reply,
                    ..
                }
            )
        });
    match reply {
        Some(ArpRepr::EthernetIpv4 {
            source_hardware_addr,
            source_protocol_addr,
            ..
        }) => {
            assert_eq!(source_hardware_addr.0, [0x52, 0x54, 0, 0, 0, 1]);
            assert_eq!(source_protocol_addr, Ipv4Address::new(10, 0, 2, 15));
        }
        other => panic!("no ARP reply; got {other:?} among {} frames", tx.len()),
    }
}

#[test]
fn icmp_echo_request_gets_an_echo_reply_with_the_same_data() {
    let (n, q) = nic(1);
    let mut app = boot("[Link]\nAddress = 10.0.2.15/24\n", vec![n]).unwrap();
    // Teach it the peer's MAC first so the reply needs no ARP round.
    q.borrow_mut()
        .rx
        .push_back(arp_request(Ipv4Address::new(10, 0, 2, 15)));
    q.borrow_mut().rx.push_back(echo_request(
        [0x52, 0x54, 0, 0, 0, 1],
        Ipv4Address::new(10, 0, 2, 15),
    ));
    run(&mut app, 0);
    let caps = ChecksumCapabilities::default();
    let found = q.borrow().tx.iter().any(|f| {
        let Ok(eth) = EthernetFrame::new_checked(&f[..]) else {
            return false;
        };
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
            return false;
        };
        let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
            return false;
        };
        matches!(Icmpv4Repr::parse(&icmp, &caps),
                Ok(Icmpv4Repr::EchoReply { ident: 7, seq_no: 3, data }) if data == b"hello")
            && eth.dst_addr().0 == PEER_MAC
    });
    assert!(found, "no echo reply among {} frames", q.borrow().tx.len());
}

#[test]
fn echo_request_for_another_address_is_not_answered() {
    let (n, q) = nic(1);
    let mut app = boot("[Link]\nAddress = 10.0.2.15/24\n", vec![n]).unwrap();
    q.borrow_mut().rx.push_back(echo_request(
        [0x52, 0x54, 0, 0, 0, 1],
        Ipv4Address::new(10, 0, 2, 99),
    ));
    run(&mut app, 0);
    assert!(q
        .borrow()
        .tx
        .iter()
        .all(|f| EthernetFrame::new_checked(&f[..])
            .map(|e| e.ethertype() != EthernetProtocol::Ipv4)
            .unwrap_or(true)));
    assert_eq!(app.counters()[0].rx_frames, 1);
}

#[test]
fn garbage_frames_are_received_and_dropped_without_panic() {
    let (n, q) = nic(1);
    let mut app = boot("[Link]\nAddress = 10.0.2.15/24\n", vec![n]).unwrap();
    let mut seed = 0x1234_5678_u64;
    for len in [0usize, 1, 13, 14, 15, 60, 100, 1514] {
        let mut f = vec![0u8; len];
        for b in f.iter_mut() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            *b = (seed >> 33) as u8;
        }
        if len >= 14 {
            f[12..14].copy_from_slice(&[0x08, 0x00]); // claim IPv4
        }
        q.borrow_mut().rx.push_back(f);
    }
    run(&mut app, 0);
    assert_eq!(app.counters()[0].rx_frames, 8);
}

#[test]
fn links_bind_by_mac_first_then_in_nic_order() {
    let (a, _) = nic(1);
    let (b, _) = nic(2);
    let (c, _) = nic(3);
    let app = boot(
            "[Link]\nAddress = 10.0.1.1/24\n[Link]\nMACAddress = 52:54:00:00:00:01\nAddress = 10.0.2.1/24\n[Link]\nAddress = 10.0.3.1/24\n",
            vec![a, b, c],
        )
        .unwrap();
    let mut out = String::new();
    app.describe(&mut out);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("52:54:00:00:00:02") && lines[0].contains("10.0.1.1/24"),
        "{out}"
    );
    assert!(
        lines[1].contains("52:54:00:00:00:01") && lines[1].contains("10.0.2.1/24"),
        "{out}"
    );
    assert!(
        lines[2].contains("52:54:00:00:00:03") && lines[2].contains("10.0.3.1/24"),
        "{out}"
    );
}

#[test]
fn more_links_than_nics_is_an_error_naming_each_unbound_link() {
    let (a, _) = nic(1);
    let errors = boot(
            "[Link]\nAddress = 10.0.1.1/24\n[Link]\nAddress = 10.0.2.1/24\n[Link]\nMACAddress = 52:54:00:00:00:09\nAddress = 10.0.3.1/24\n",
            vec![a],
        )
        .err()
        .expect("must fail");
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3, 5]);
    assert!(errors[1].message.contains("MACAddress"), "{:?}", errors);
}

#[test]
fn an_mtu_above_what_the_nic_carries_is_an_error() {
    let (a, _) = nic(1);
    let errors = boot("[Link]\nAddress = 10.0.1.1/24\nMTU = 9000\n", vec![a])
        .err()
        .expect("must fail");
    assert_eq!(errors[0].line, 1);
    assert!(errors[0].message.contains("MTU 9000"));
}

mod tunnel {
    use super::*;
    use crate::tunnel::PrivateKey;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    fn keypair() -> (String, String) {
        let k = PrivateKey::generate(&mut rand_core::OsRng);
        let public = crate::config::PublicKey(k.public_key().0).to_string();
        (STANDARD.encode(*k.to_bytes()), public)
    }

    fn node(me: u8, other: u8, private: &str, peer_public: &str, endpoint: bool) -> String {
        let endpoint = if endpoint {
            format!("Endpoint = 192.168.0.{other}:51820\n")
        } else {
            String::new()
        };
        format!(
            "[Link]\nAddress = 192.168.0.{me}/24\n\
             [Interface]\nPrivateKey = {private}\nListenPort = 51820\nAddress = 10.20.{me}.1/24, fd20:{me}::1/64\n\
             [Peer]\nPublicKey = {peer_public}\n{endpoint}AllowedIPs = 10.20.{other}.0/24, fd20:{other}::/64\n"
        )
    }

    /// Two appliances whose NICs are wired back to back.
    struct Pair {
        a: App,
        b: App,
        qa: Rc<RefCell<Queues>>,
        qb: Rc<RefCell<Queues>>,
        out_a: String,
        t: u64,
    }

    impl Pair {
        fn new(ping_from_a: &[&str], b_knows_endpoint: bool) -> Pair {
            let (ka, pa) = keypair();
            let (kb, pb) = keypair();
            let (na, qa) = nic(1);
            let (nb, qb) = nic(2);
            let cfg_a = config::parse(node(1, 2, &ka, &pb, true).as_bytes()).unwrap();
            let cfg_b = config::parse(node(2, 1, &kb, &pa, b_knows_endpoint).as_bytes()).unwrap();
            let ping = ping_from_a.iter().map(|s| s.parse().unwrap()).collect();
            let a = Appliance::new(
                &cfg_a,
                vec![na],
                Options {
                    seed: 1,
                    ping,
                    ..Options::default()
                },
                Some(rand_core::OsRng),
                0,
            )
            .unwrap();
            let b = Appliance::new(
                &cfg_b,
                vec![nb],
                Options {
                    seed: 2,
                    ..Options::default()
                },
                Some(rand_core::OsRng),
                0,
            )
            .unwrap();
            Pair {
                a,
                b,
                qa,
                qb,
                out_a: String::new(),
                t: 0,
            }
        }

        /// Runs both for `ms` simulated milliseconds, moving frames across the wire.
        fn run(&mut self, ms: u64) {
            let mut out_b = String::new();
            for _ in 0..ms {
                self.t += 1000;
                let wall = 1_700_000_000_000_000_000 + self.t * 1000;
                self.a.poll(self.t, wall, &mut self.out_a);
                self.b.poll(self.t, wall, &mut out_b);
                let from_a: Vec<_> = self.qa.borrow_mut().tx.drain(..).collect();
                self.qb.borrow_mut().rx.extend(from_a);
                let from_b: Vec<_> = self.qb.borrow_mut().tx.drain(..).collect();
                self.qa.borrow_mut().rx.extend(from_b);
            }
        }
    }

    #[test]
    fn overlay_addresses_answer_ping_through_the_tunnel_v4_and_v6() {
        let mut p = Pair::new(&["10.20.2.1", "fd20:2::1"], true);
        p.run(3000);
        assert!(
            p.out_a.contains("vdcnet: ping 10.20.2.1 seq="),
            "console: {}",
            p.out_a
        );
        assert!(
            p.out_a.contains("vdcnet: ping fd20:2::1 seq="),
            "console: {}",
            p.out_a
        );
        let ta = p.a.tunnel_counters().unwrap();
        let tb = p.b.tunnel_counters().unwrap();
        assert!(ta.handshakes_completed >= 1 && tb.handshakes_completed >= 1);
        assert!(ta.rx_data > 0 && tb.rx_data > 0);
    }

    #[test]
    fn underlay_frames_carry_no_inner_packet_in_clear() {
        let mut p = Pair::new(&["10.20.2.1"], true);
        let mut seen = Vec::new();
        for _ in 0..2000 {
            p.run(1);
            seen.extend(p.qb.borrow().rx.iter().cloned());
        }
        assert!(p.out_a.contains("reply"), "console: {}", p.out_a);
        let payload = b"vdcnet ping";
        for f in &seen {
            assert!(
                !f.windows(payload.len()).any(|w| w == payload),
                "clear ICMP payload on the underlay"
            );
        }
    }

    #[test]
    fn a_peer_without_endpoint_is_reached_after_it_initiates() {
        // B does not know A's endpoint; A initiates, B learns it by roaming and answers.
        let mut p = Pair::new(&["10.20.2.1"], false);
        p.run(3000);
        assert!(
            p.out_a.contains("vdcnet: ping 10.20.2.1 seq="),
            "console: {}",
            p.out_a
        );
    }

    #[test]
    fn a_peer_public_key_equal_to_our_own_is_a_config_error() {
        let (k, p) = keypair();
        let text = node(1, 2, &k, &p, true);
        let (n, _) = nic(1);
        let cfg = config::parse(text.as_bytes()).unwrap();
        let errors = match App::new(&cfg, vec![n], Options::default(), Some(rand_core::OsRng), 0) {
            Err(e) => e,
            Ok(_) => panic!("must fail"),
        };
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 7, "{errors:?}");
    }

    #[test]
    fn a_tunnel_without_an_rng_is_refused() {
        let (k, _) = keypair();
        let (_, p) = keypair();
        let cfg = config::parse(node(1, 2, &k, &p, true).as_bytes()).unwrap();
        let (n, _) = nic(1);
        let errors = match App::new(&cfg, vec![n], Options::default(), None, 0) {
            Err(e) => e,
            Ok(_) => panic!("must fail"),
        };
        assert_eq!(errors[0].line, 3);
    }
}

#[test]
fn stats_line_reports_frames_per_link_every_interval() {
    let (n, q) = nic(1);
    let cfg = config::parse(b"[Link]\nAddress = 10.0.2.15/24\n").unwrap();
    let opts = Options {
        seed: 1,
        stats_secs: Some(1),
        ..Options::default()
    };
    let mut app: App = Appliance::new(&cfg, vec![n], opts, None, 0).unwrap();
    q.borrow_mut()
        .rx
        .push_back(arp_request(Ipv4Address::new(10, 0, 2, 15)));
    let mut out = String::new();
    for ms in 0..2500u64 {
        app.poll(ms * 1000, 0, &mut out);
    }
    let lines: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("vdcnet: stats"))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[1].contains("link0 rx=1 tx=1 txdrop=0 malformed=0;"),
        "{out}"
    );
}
