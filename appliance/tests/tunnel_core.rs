//! Two instances of our tunnel core talking in memory, under simulated time.
//!
//! Each test drives `Device`s (or `Tunnel`s) by hand: what one returns as `WriteToNetwork`
//! is fed to the other's `decapsulate`, and time only moves when the test says so.

use std::net::SocketAddr;

use rand_core::OsRng;
use smoltcp::time::{Duration, Instant};
use vdcnet_appliance::tunnel::timers::{
    KEEPALIVE_TIMEOUT, REJECT_AFTER_TIME, REKEY_AFTER_TIME, REKEY_ATTEMPT_TIME, REKEY_TIMEOUT,
    ZERO_KEYS_AFTER,
};
use vdcnet_appliance::tunnel::{
    AllowedIp, Device, DeviceConfig, DeviceResult, DropReason, Now, PeerConfig, PeerId, PrivateKey,
    Tunnel, TunnelResult,
};

const A_ADDR: &str = "192.0.2.1:51820";
const B_ADDR: &str = "198.51.100.2:51820";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn prefix(s: &str, len: u8) -> AllowedIp {
    AllowedIp::new(s.parse().unwrap(), len).unwrap()
}

/// An IPv4/UDP packet with a correct header checksum.
fn ipv4_udp(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    let mut sum = 0u32;
    for i in (0..20).step_by(2) {
        sum += u32::from(u16::from_be_bytes([p[i], p[i + 1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p[20..22].copy_from_slice(&4000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5000u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

/// An IPv6/UDP packet.
fn ipv6_udp(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let src: std::net::Ipv6Addr = src.parse().unwrap();
    let dst: std::net::Ipv6Addr = dst.parse().unwrap();
    let mut p = vec![0u8; 48 + payload.len()];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p[40..42].copy_from_slice(&4000u16.to_be_bytes());
    p[42..44].copy_from_slice(&5000u16.to_be_bytes());
    p[44..46].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[48..].copy_from_slice(payload);
    p
}

/// Simulated clocks: monotonic microseconds and wall nanoseconds move together.
struct Clock {
    us: i64,
}

impl Clock {
    fn new() -> Self {
        Self { us: 1_000_000 }
    }
    fn now(&self) -> Now {
        Now::new(
            Instant::from_micros(self.us),
            1_700_000_000_000_000_000 + self.us as u64 * 1000,
        )
    }
    fn instant(&self) -> Instant {
        Instant::from_micros(self.us)
    }
    fn advance(&mut self, d: Duration) {
        self.us += d.total_micros() as i64;
    }
}

/// An owned copy of a [`DeviceResult`].
#[derive(Debug, PartialEq)]
enum Got {
    Done,
    Net(SocketAddr, Vec<u8>),
    V4(PeerId, Vec<u8>),
    V6(PeerId, Vec<u8>),
    Err(DropReason),
}

fn own(r: DeviceResult<'_>) -> Got {
    match r {
        DeviceResult::Done => Got::Done,
        DeviceResult::WriteToNetwork { to, datagram, .. } => Got::Net(to, datagram.to_vec()),
        DeviceResult::WriteToTunnelV4 { peer, packet, .. } => Got::V4(peer, packet.to_vec()),
        DeviceResult::WriteToTunnelV6 { peer, packet, .. } => Got::V6(peer, packet.to_vec()),
        DeviceResult::Err(e) => Got::Err(e),
    }
}

fn net(g: Got) -> (SocketAddr, Vec<u8>) {
    match g {
        Got::Net(to, d) => (to, d),
        other => panic!("expected a datagram, got {other:?}"),
    }
}

struct Pair {
    clock: Clock,
    a: Device<OsRng>,
    b: Device<OsRng>,
    /// B as seen by A.
    ab: PeerId,
    /// A as seen by B.
    ba: PeerId,
    buf: Vec<u8>,
}

impl Pair {
    fn new(keepalive_a: Option<u16>) -> Self {
        let ka = PrivateKey::generate(&mut OsRng);
        let kb = PrivateKey::generate(&mut OsRng);
        let mut a = Device::new(ka.clone(), DeviceConfig::default(), OsRng);
        let mut b = Device::new(kb.clone(), DeviceConfig::default(), OsRng);
        let mut cfg_b = PeerConfig::new(kb.public_key(), Some(sa(B_ADDR)));
        cfg_b.persistent_keepalive = keepalive_a;
        let ab = a
            .add_peer(cfg_b, &[prefix("10.0.0.2", 32), prefix("fd00::2", 128)])
            .unwrap();
        let ba = b
            .add_peer(
                PeerConfig::new(ka.public_key(), None),
                &[prefix("10.0.0.1", 32), prefix("fd00::1", 128)],
            )
            .unwrap();
        Self {
            clock: Clock::new(),
            a,
            b,
            ab,
            ba,
            buf: vec![0; 4096],
        }
    }

    fn a_send(&mut self, packet: &[u8]) -> Got {
        own(self.a.encapsulate(self.clock.now(), packet, &mut self.buf))
    }
    fn b_send(&mut self, packet: &[u8]) -> Got {
        own(self.b.encapsulate(self.clock.now(), packet, &mut self.buf))
    }
    fn deliver_a(&mut self, datagram: &[u8]) -> Got {
        own(self
            .a
            .decapsulate(self.clock.instant(), sa(B_ADDR), datagram, &mut self.buf))
    }
    fn deliver_b(&mut self, datagram: &[u8]) -> Got {
        own(self
            .b
            .decapsulate(self.clock.instant(), sa(A_ADDR), datagram, &mut self.buf))
    }
    fn a_timers(&mut self) -> Got {
        own(self.a.update_timers(self.clock.now(), &mut self.buf))
    }
    fn b_timers(&mut self) -> Got {
        own(self.b.update_timers(self.clock.now(), &mut self.buf))
    }

    /// A sends `first` to B, which triggers the handshake; returns what B delivers.
    fn handshake_with(&mut self, first: &[u8]) -> Got {
        let (to, init) = net(self.a_send(first));
        assert_eq!(to, sa(B_ADDR));
        assert_eq!(init.len(), 148);
        let (to, resp) = net(self.deliver_b(&init));
        assert_eq!(to, sa(A_ADDR));
        assert_eq!(resp.len(), 92);
        let (_, data) = net(self.deliver_a(&resp));
        self.deliver_b(&data)
    }
}

fn a_to_b_v4(payload: &[u8]) -> Vec<u8> {
    ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], payload)
}
fn b_to_a_v4(payload: &[u8]) -> Vec<u8> {
    ipv4_udp([10, 0, 0, 2], [10, 0, 0, 1], payload)
}

#[test]
fn first_packet_waits_for_handshake_then_arrives() {
    let mut p = Pair::new(None);
    let pkt = a_to_b_v4(b"hello");
    assert_eq!(p.handshake_with(&pkt), Got::V4(p.ba, pkt));
    let c = p.a.counters();
    assert_eq!(
        (c.queued, c.tx_initiation, c.handshakes_completed),
        (1, 1, 1)
    );
    assert_eq!(p.b.counters().handshakes_completed, 1);
}

#[test]
fn ipv4_and_ipv6_data_flow_both_ways_after_handshake() {
    let mut p = Pair::new(None);
    p.handshake_with(&a_to_b_v4(b"start"));
    for i in 0..10u8 {
        let v4 = b_to_a_v4(&[i; 100]);
        let (to, d) = net(p.b_send(&v4));
        assert_eq!(to, sa(A_ADDR), "B learned A's endpoint from the handshake");
        assert_eq!(p.deliver_a(&d), Got::V4(p.ab, v4));
        let v6 = ipv6_udp("fd00::1", "fd00::2", &[i; 1200]);
        let (_, d) = net(p.a_send(&v6));
        assert_eq!(p.deliver_b(&d), Got::V6(p.ba, v6));
    }
    assert_eq!(p.a.counters().drops.total(), 0);
    assert_eq!(p.b.counters().drops.total(), 0);
}

#[test]
fn replayed_data_message_is_dropped_and_counted() {
    let mut p = Pair::new(None);
    p.handshake_with(&a_to_b_v4(b"start"));
    let (_, d) = net(p.a_send(&a_to_b_v4(b"once")));
    assert!(matches!(p.deliver_b(&d), Got::V4(..)));
    assert_eq!(p.deliver_b(&d), Got::Err(DropReason::Replay));
    assert_eq!(p.b.counters().drops.replay, 1);
}

#[test]
fn reordered_data_within_the_window_is_accepted() {
    let mut p = Pair::new(None);
    p.handshake_with(&a_to_b_v4(b"start"));
    let msgs: Vec<_> = (0..100u8)
        .map(|i| net(p.a_send(&a_to_b_v4(&[i]))).1)
        .collect();
    for m in msgs.iter().rev() {
        assert!(matches!(p.deliver_b(m), Got::V4(..)));
    }
}

#[test]
fn tampered_data_message_fails_decryption_and_is_counted() {
    let mut p = Pair::new(None);
    p.handshake_with(&a_to_b_v4(b"start"));
    let (_, mut d) = net(p.a_send(&a_to_b_v4(b"x")));
    let last = d.len() - 1;
    d[last] ^= 0x80;
    assert_eq!(p.deliver_b(&d), Got::Err(DropReason::DecryptFailed));
    assert_eq!(p.b.counters().drops.decrypt_failed, 1);
}

#[test]
fn data_after_reject_after_time_is_dropped() {
    let mut p = Pair::new(None);
    p.handshake_with(&a_to_b_v4(b"start"));
    let (_, late) = net(p.a_send(&a_to_b_v4(b"late")));
    p.clock.advance(REJECT_AFTER_TIME);
    assert_eq!(p.deliver_b(&late), Got::Err(DropReason::ExpiredKey));
    assert_eq!(p.b.counters().drops.expired_key, 1);
    // And the sender does not use the expired keypair either: it queues and rehandshakes.
    let (_, d) = net(p.a_send(&a_to_b_v4(b"new")));
    assert_eq!(d.len(), 148, "expired keypair triggers a new initiation");
}

#[test]
fn initiator_rekeys_after_rekey_after_time_and_data_keeps_flowing() {
    let mut p = Pair::new(None);
    p.handshake_with(&a_to_b_v4(b"start"));
    p.clock.advance(REKEY_AFTER_TIME + Duration::from_secs(1));
    // Sending on the old keypair still works and arms the rekey.
    let (_, d) = net(p.a_send(&a_to_b_v4(b"old key")));
    assert!(matches!(p.deliver_b(&d), Got::V4(..)));
    let (_, init) = net(p.a_timers());
    assert_eq!(init.len(), 148);
    let (_, resp) = net(p.deliver_b(&init));
    // The initiator confirms with a keepalive (nothing queued).
    let (_, keepalive) = net(p.deliver_a(&resp));
    assert_eq!(keepalive.len(), 32);
    assert_eq!(p.deliver_b(&keepalive), Got::Done);
    assert_eq!(p.a.counters().handshakes_completed, 2);
    assert_eq!(p.b.counters().handshakes_completed, 2);
    // Both directions use the new keypair; the counter restarted.
    let pkt = b_to_a_v4(b"new key");
    let (_, d) = net(p.b_send(&pkt));
    assert_eq!(u64::from_le_bytes(d[8..16].try_into().unwrap()), 0);
    assert_eq!(p.deliver_a(&d), Got::V4(p.ab, pkt));
    // A message still in flight on the previous keypair is accepted.
    p.clock.advance(Duration::from_secs(70));
    let pkt = a_to_b_v4(b"after");
    let (_, d) = net(p.a_send(&pkt));
    assert_eq!(p.deliver_b(&d), Got::V4(p.ba, pkt));
}

#[test]
fn responder_does_not_send_on_new_keypair_until_initiator_confirms() {
    let mut p = Pair::new(None);
    let (_, init) = net(p.a_send(&a_to_b_v4(b"q")));
    let (_, resp) = net(p.deliver_b(&init));
    // B has no confirmed keypair: its packet is queued and it may initiate itself.
    assert!(!p.b.peer(p.ba).unwrap().has_session(p.clock.instant()));
    let (_, data) = net(p.deliver_a(&resp));
    assert!(matches!(p.deliver_b(&data), Got::V4(..)));
    assert!(p.b.peer(p.ba).unwrap().has_session(p.clock.instant()));
}

#[test]
fn packet_from_source_outside_allowed_ips_is_dropped_and_counted() {
    let mut p = Pair::new(None);
    p.handshake_with(&a_to_b_v4(b"start"));
    // A routes 10.0.0.2 to B, but forges an inner source B does not allow for A.
    let spoofed = ipv4_udp([10, 9, 9, 9], [10, 0, 0, 2], b"spoof");
    let (_, d) = net(p.a_send(&spoofed));
    assert_eq!(p.deliver_b(&d), Got::Err(DropReason::AllowedIpsMismatch));
    assert_eq!(p.b.counters().drops.allowed_ips_mismatch, 1);
}

#[test]
fn outbound_packet_without_a_route_is_dropped_and_counted() {
    let mut p = Pair::new(None);
    let pkt = ipv4_udp([10, 0, 0, 1], [172, 16, 0, 1], b"nowhere");
    assert_eq!(p.a_send(&pkt), Got::Err(DropReason::NoRoute));
    assert_eq!(p.a_send(&[0x45; 10]), Got::Err(DropReason::BadInnerPacket));
    let c = p.a.counters();
    assert_eq!((c.drops.no_route, c.drops.bad_inner_packet), (1, 1));
}

#[test]
fn outbound_routing_uses_the_longest_prefix() {
    let mut clock = Clock::new();
    let ka = PrivateKey::generate(&mut OsRng);
    let mut a = Device::new(ka, DeviceConfig::default(), OsRng);
    let wide = PrivateKey::generate(&mut OsRng).public_key();
    let narrow = PrivateKey::generate(&mut OsRng).public_key();
    let w = a
        .add_peer(
            PeerConfig::new(wide, Some(sa("203.0.113.1:1"))),
            &[prefix("10.0.0.0", 8)],
        )
        .unwrap();
    let n = a
        .add_peer(
            PeerConfig::new(narrow, Some(sa("203.0.113.2:2"))),
            &[prefix("10.1.0.0", 16)],
        )
        .unwrap();
    assert_eq!(a.route("10.1.2.3".parse().unwrap()), Some(n));
    assert_eq!(a.route("10.2.2.3".parse().unwrap()), Some(w));
    let mut buf = vec![0; 2048];
    let (to, _) = net(own(a.encapsulate(
        clock.now(),
        &ipv4_udp([10, 0, 0, 1], [10, 1, 2, 3], b"x"),
        &mut buf,
    )));
    assert_eq!(to, sa("203.0.113.2:2"));
    clock.advance(Duration::from_secs(1));
    let (to, _) = net(own(a.encapsulate(
        clock.now(),
        &ipv4_udp([10, 0, 0, 1], [10, 2, 2, 3], b"x"),
        &mut buf,
    )));
    assert_eq!(to, sa("203.0.113.1:1"));
}

#[test]
fn unknown_receiver_index_and_garbage_are_counted() {
    let mut p = Pair::new(None);
    p.handshake_with(&a_to_b_v4(b"start"));
    let (_, mut d) = net(p.a_send(&a_to_b_v4(b"x")));
    d[4] ^= 0xff;
    d[5] ^= 0xff;
    d[6] ^= 0xff;
    d[7] ^= 0xff;
    assert_eq!(p.deliver_b(&d), Got::Err(DropReason::UnknownReceiver));
    assert_eq!(
        p.deliver_b(&[9, 0, 0, 0, 1, 2]),
        Got::Err(DropReason::Malformed)
    );
    let c = p.b.counters();
    assert_eq!((c.drops.unknown_receiver, c.drops.malformed), (1, 1));
}

#[test]
fn initiation_with_bad_mac1_is_dropped() {
    let mut p = Pair::new(None);
    let (_, mut init) = net(p.a_send(&a_to_b_v4(b"x")));
    init[20] ^= 1;
    assert_eq!(p.deliver_b(&init), Got::Err(DropReason::BadMac1));
    assert_eq!(p.b.counters().drops.bad_mac1, 1);
}

#[test]
fn initiation_from_unknown_key_is_dropped() {
    let mut p = Pair::new(None);
    let stranger = PrivateKey::generate(&mut OsRng);
    let mut t = Tunnel::new(
        stranger,
        PeerConfig::new(p.b.public_key(), Some(sa(B_ADDR))),
        OsRng,
    )
    .expect("a tunnel to another key");
    let mut buf = vec![0; 2048];
    let TunnelResult::WriteToNetwork(init) =
        t.encapsulate(p.clock.now(), &a_to_b_v4(b"x"), &mut buf)
    else {
        panic!()
    };
    let init = init.to_vec();
    assert_eq!(p.deliver_b(&init), Got::Err(DropReason::UnknownPeer));
}

#[test]
fn replayed_initiation_is_rejected_by_its_timestamp() {
    let mut p = Pair::new(None);
    let (_, init) = net(p.a_send(&a_to_b_v4(b"x")));
    assert_eq!(net(p.deliver_b(&init)).1.len(), 92);
    p.clock.advance(Duration::from_secs(1));
    assert_eq!(p.deliver_b(&init), Got::Err(DropReason::StaleTimestamp));
}

#[test]
fn under_load_initiation_gets_cookie_reply_and_retry_with_mac2_succeeds() {
    let mut p = Pair::new(None);
    p.b.set_under_load(true);
    let pkt = a_to_b_v4(b"under load");
    let (_, init) = net(p.a_send(&pkt));
    let (to, cookie) = net(p.deliver_b(&init));
    assert_eq!(to, sa(A_ADDR));
    assert_eq!(cookie.len(), 64);
    assert_eq!(p.deliver_a(&cookie), Got::Done);
    assert!(p.a.peer(p.ab).unwrap().has_cookie(p.clock.instant()));
    // The retry after REKEY_TIMEOUT carries mac2 and is answered.
    p.clock.advance(REKEY_TIMEOUT + Duration::from_millis(400));
    let (_, retry) = net(p.a_timers());
    assert_eq!(retry.len(), 148);
    assert_ne!(&retry[132..148], &[0u8; 16]);
    let (_, resp) = net(p.deliver_b(&retry));
    assert_eq!(resp.len(), 92);
    let (_, data) = net(p.deliver_a(&resp));
    assert_eq!(p.deliver_b(&data), Got::V4(p.ba, pkt));
    assert_eq!(p.b.counters().tx_cookie_reply, 1);
    assert_eq!(p.a.counters().rx_cookie_reply, 1);
}

#[test]
fn load_is_detected_from_the_handshake_rate() {
    let ka = PrivateKey::generate(&mut OsRng);
    let kb = PrivateKey::generate(&mut OsRng);
    let config = DeviceConfig {
        handshakes_per_second: 2,
        ..DeviceConfig::default()
    };
    let mut b = Device::new(kb.clone(), config, OsRng);
    b.add_peer(PeerConfig::new(ka.public_key(), None), &[])
        .unwrap();
    let mut a = Tunnel::new(
        ka,
        PeerConfig::new(kb.public_key(), Some(sa(B_ADDR))),
        OsRng,
    )
    .expect("a tunnel to another key");
    let mut clock = Clock::new();
    let mut buf = vec![0; 2048];
    let mut out = vec![0; 2048];
    let mut lens = vec![];
    for round in 0..4 {
        let r = if round == 0 {
            a.encapsulate(clock.now(), &[], &mut buf)
        } else {
            // Unanswered (we drop B's responses): A retries after REKEY_TIMEOUT + jitter.
            clock.advance(REKEY_TIMEOUT + Duration::from_millis(400));
            a.update_timers(clock.now(), &mut buf)
        };
        let TunnelResult::WriteToNetwork(init) = r else {
            panic!("round {round}: {r:?}")
        };
        let init = init.to_vec();
        let (_, reply) = net(own(b.decapsulate(
            clock.instant(),
            sa(A_ADDR),
            &init,
            &mut out,
        )));
        lens.push(reply.len());
    }
    // Spread over 16 s the rate stays low: all are answered with responses.
    assert_eq!(lens, vec![92, 92, 92, 92]);
    // Three within one second exceed 2/s: the third gets a cookie reply.
    let mut got = vec![];
    for _ in 0..3 {
        clock.advance(Duration::from_millis(30));
        let mut t = Tunnel::new(
            PrivateKey::generate(&mut OsRng),
            PeerConfig::new(b.public_key(), Some(sa(B_ADDR))),
            OsRng,
        )
        .expect("a tunnel to another key");
        let TunnelResult::WriteToNetwork(init) = t.encapsulate(clock.now(), &[], &mut buf) else {
            panic!()
        };
        let init = init.to_vec();
        got.push(own(b.decapsulate(
            clock.instant(),
            sa(A_ADDR),
            &init,
            &mut out,
        )));
    }
    assert_eq!(got[0], Got::Err(DropReason::UnknownPeer));
    assert!(matches!(&got[2], Got::Net(_, d) if d.len() == 64));
}

#[test]
fn endpoint_roams_to_the_source_of_the_last_authenticated_packet() {
    let mut p = Pair::new(None);
    p.handshake_with(&a_to_b_v4(b"start"));
    let roamed = sa("203.0.113.77:40000");
    let (_, d) = net(p.a_send(&a_to_b_v4(b"from new address")));
    let mut buf = vec![0; 2048];
    assert!(matches!(
        own(p.b.decapsulate(p.clock.instant(), roamed, &d, &mut buf)),
        Got::V4(..)
    ));
    assert_eq!(p.b.peer(p.ba).unwrap().endpoint(), Some(roamed));
    let (to, _) = net(p.b_send(&b_to_a_v4(b"reply")));
    assert_eq!(to, roamed);
    // A forged packet from elsewhere does not move the endpoint.
    let mut forged = d.clone();
    forged[20] ^= 1;
    let elsewhere = sa("203.0.113.99:1");
    let _ = own(p
        .b
        .decapsulate(p.clock.instant(), elsewhere, &forged, &mut buf));
    assert_eq!(p.b.peer(p.ba).unwrap().endpoint(), Some(roamed));
}

#[test]
fn unanswered_initiation_is_retried_then_abandoned_after_rekey_attempt_time() {
    let mut p = Pair::new(None);
    let (_, first) = net(p.a_send(&a_to_b_v4(b"lost")));
    assert_eq!(first.len(), 148);
    // No retry before REKEY_TIMEOUT.
    p.clock.advance(REKEY_TIMEOUT - Duration::from_millis(1));
    assert_eq!(p.a_timers(), Got::Done);
    let mut retries = 0;
    let start = p.clock.instant();
    while p.clock.instant() < start + REKEY_ATTEMPT_TIME + REKEY_TIMEOUT * 2 {
        p.clock.advance(Duration::from_millis(100));
        if let Got::Net(_, d) = p.a_timers() {
            assert_eq!(d.len(), 148);
            retries += 1;
        }
    }
    // 90 s of attempts at 5 s (+ jitter) intervals: the first plus 16 or 17 retries.
    assert!((16..=17).contains(&retries), "{retries} retries");
    let c = p.a.counters();
    assert_eq!(
        c.drops.handshake_timeout, 1,
        "the queued packet was dropped"
    );
    assert!(!p.a.peer(p.ab).unwrap().handshake_pending());
}

#[test]
fn passive_keepalive_is_sent_after_keepalive_timeout_of_silence() {
    let mut p = Pair::new(None);
    p.handshake_with(&a_to_b_v4(b"start"));
    p.clock
        .advance(KEEPALIVE_TIMEOUT - Duration::from_millis(1));
    assert_eq!(p.b_timers(), Got::Done);
    p.clock.advance(Duration::from_millis(1));
    let (to, ka) = net(p.b_timers());
    assert_eq!((to, ka.len()), (sa(A_ADDR), 32));
    assert_eq!(p.b_timers(), Got::Done, "only one keepalive");
    assert_eq!(p.deliver_a(&ka), Got::Done);
    assert_eq!(p.a.counters().rx_keepalive, 1);
}

#[test]
fn persistent_keepalive_is_sent_every_interval_of_silence() {
    let mut p = Pair::new(Some(25));
    // Starts a handshake right away.
    let (_, init) = net(p.a_timers());
    assert_eq!(init.len(), 148);
    let (_, resp) = net(p.deliver_b(&init));
    let (_, ka) = net(p.deliver_a(&resp));
    assert_eq!(p.deliver_b(&ka), Got::Done);
    let mut keepalives = 0;
    for _ in 0..100 {
        p.clock.advance(Duration::from_secs(1));
        while let Got::Net(_, d) = p.a_timers() {
            assert_eq!(d.len(), 32);
            keepalives += 1;
        }
    }
    assert_eq!(keepalives, 4);
}

#[test]
fn all_keys_are_erased_after_three_times_reject_after_time() {
    let mut p = Pair::new(None);
    p.handshake_with(&a_to_b_v4(b"start"));
    p.clock.advance(ZERO_KEYS_AFTER - Duration::from_secs(1));
    let _ = p.a_timers();
    assert_eq!(p.a.counters().keys_zeroed, 0);
    p.clock.advance(Duration::from_secs(1));
    while p.a_timers() != Got::Done {}
    assert_eq!(p.a.counters().keys_zeroed, 1);
    assert!(p.a.peer(p.ab).unwrap().current_send_counter().is_none());
}

#[test]
fn queued_packets_beyond_the_first_are_flushed_by_dequeue() {
    let mut p = Pair::new(None);
    let (_, init) = net(p.a_send(&a_to_b_v4(b"0")));
    for i in 1..3u8 {
        assert_eq!(
            p.a_send(&a_to_b_v4(&[i])),
            Got::Done,
            "queued, handshake pending"
        );
    }
    let (_, resp) = net(p.deliver_b(&init));
    let (_, first) = net(p.deliver_a(&resp));
    assert!(matches!(p.deliver_b(&first), Got::V4(..)));
    let mut n = 0;
    loop {
        let g = own(p.a.dequeue(p.clock.instant(), &mut p.buf));
        let Got::Net(_, d) = g else { break };
        assert!(matches!(p.deliver_b(&d), Got::V4(..)));
        n += 1;
    }
    assert_eq!(n, 2);
}

#[test]
fn poll_at_reports_the_next_timer() {
    let mut p = Pair::new(None);
    assert_eq!(p.a.poll_at(p.clock.instant()), None);
    let _ = p.a_send(&a_to_b_v4(b"x"));
    let at = p.a.poll_at(p.clock.instant()).unwrap();
    assert!(at >= p.clock.instant() + REKEY_TIMEOUT);
    assert!(at < p.clock.instant() + REKEY_TIMEOUT + Duration::from_millis(334));
}

#[test]
fn removed_peer_no_longer_routes_or_receives() {
    let mut p = Pair::new(None);
    p.handshake_with(&a_to_b_v4(b"start"));
    let (_, d) = net(p.a_send(&a_to_b_v4(b"x")));
    p.b.remove_peer(p.ba).unwrap();
    assert_eq!(p.deliver_b(&d), Got::Err(DropReason::UnknownReceiver));
    assert_eq!(p.b_send(&b_to_a_v4(b"y")), Got::Err(DropReason::NoRoute));
}

#[test]
fn point_to_point_tunnels_complete_a_handshake_and_exchange_data() {
    let ka = PrivateKey::generate(&mut OsRng);
    let kb = PrivateKey::generate(&mut OsRng);
    let mut a = Tunnel::new(
        ka.clone(),
        PeerConfig::new(kb.public_key(), Some(sa(B_ADDR))),
        OsRng,
    )
    .expect("a tunnel to another key");
    let mut b = Tunnel::new(kb, PeerConfig::new(ka.public_key(), None), OsRng)
        .expect("a tunnel to another key");
    let clock = Clock::new();
    let (mut x, mut y) = (vec![0; 2048], vec![0; 2048]);
    let pkt = ipv6_udp("fd00::1", "fd00::2", b"p2p");
    let TunnelResult::WriteToNetwork(init) = a.encapsulate(clock.now(), &pkt, &mut x) else {
        panic!()
    };
    let TunnelResult::WriteToNetwork(resp) =
        b.decapsulate(clock.instant(), sa(A_ADDR), init, &mut y)
    else {
        panic!()
    };
    let TunnelResult::WriteToNetwork(data) =
        a.decapsulate(clock.instant(), sa(B_ADDR), resp, &mut x)
    else {
        panic!()
    };
    let TunnelResult::WriteToTunnelV6(got, src) =
        b.decapsulate(clock.instant(), sa(A_ADDR), data, &mut y)
    else {
        panic!()
    };
    assert_eq!(got, &pkt[..]);
    assert_eq!(src, "fd00::1".parse::<std::net::Ipv6Addr>().unwrap());
}
