//! Differential tests: our tunnel core against boringtun (0.7, the reference `Tunn`).
//!
//! Our side runs on simulated time passed in; boringtun is built with its `mock-instant`
//! feature, so its clock is `mock_instant::MockClock` (thread-local: each test has its own),
//! which the tests advance together with ours.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Tunn, TunnResult as BtResult};
use boringtun::x25519;
use mock_instant::MockClock;
use rand_core::OsRng;
use smoltcp::time::{Duration, Instant};
use vdcnet_appliance::tunnel::timers::{REJECT_AFTER_TIME, REKEY_AFTER_TIME, REKEY_TIMEOUT};
use vdcnet_appliance::tunnel::{DropReason, Now, PeerConfig, PrivateKey, Tunnel, TunnelResult};

const OURS: &str = "192.0.2.1:51820";
const THEIRS: &str = "198.51.100.2:51820";

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ipv4_udp(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = 28 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
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
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

fn ipv6_udp(payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 48 + payload.len()];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8] = 0xfd;
    p[23] = 1;
    p[24] = 0xfd;
    p[39] = 2;
    p[44..46].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[48..].copy_from_slice(payload);
    p
}

/// Owned results of either implementation.
#[derive(Debug, PartialEq)]
enum Got {
    Done,
    Net(Vec<u8>),
    Tun(Vec<u8>),
    Err(String),
}

fn ours_got(r: TunnelResult<'_>) -> Got {
    match r {
        TunnelResult::Done => Got::Done,
        TunnelResult::WriteToNetwork(d) => Got::Net(d.to_vec()),
        TunnelResult::WriteToTunnelV4(p, _) | TunnelResult::WriteToTunnelV6(p, _) => {
            Got::Tun(p.to_vec())
        }
        TunnelResult::Err(e) => Got::Err(format!("{e:?}")),
    }
}

fn bt_got(r: BtResult<'_>) -> Got {
    match r {
        BtResult::Done => Got::Done,
        BtResult::WriteToNetwork(d) => Got::Net(d.to_vec()),
        BtResult::WriteToTunnelV4(p, _) | BtResult::WriteToTunnelV6(p, _) => Got::Tun(p.to_vec()),
        BtResult::Err(e) => Got::Err(format!("{e:?}")),
    }
}

fn net(g: Got) -> Vec<u8> {
    match g {
        Got::Net(d) => d,
        other => panic!("expected a datagram, got {other:?}"),
    }
}

struct Pair {
    us: i64,
    ours: Tunnel<OsRng>,
    bt: Tunn,
    buf: Vec<u8>,
}

impl Pair {
    /// `bt_limit`: boringtun's handshake rate limit (0 = always under load).
    fn new(bt_limit: Option<u64>) -> Self {
        let our_key = PrivateKey::generate(&mut OsRng);
        let bt_secret = x25519::StaticSecret::random_from_rng(OsRng);
        let bt_public = x25519::PublicKey::from(&bt_secret);
        let our_public = x25519::PublicKey::from(our_key.public_key().0);
        let limiter = bt_limit.map(|l| Arc::new(RateLimiter::new(&bt_public, l)));
        let bt = Tunn::new(bt_secret, our_public, None, None, 77, limiter);
        let ours = Tunnel::new(
            our_key,
            PeerConfig::new(
                vdcnet_appliance::tunnel::PublicKey(bt_public.to_bytes()),
                Some(sa(THEIRS)),
            ),
            OsRng,
        )
        .expect("a tunnel to another key");
        Self {
            us: 1_000_000,
            ours,
            bt,
            buf: vec![0; 4096],
        }
    }

    fn now(&self) -> Now {
        Now::new(
            Instant::from_micros(self.us),
            1_700_000_000_000_000_000 + self.us as u64 * 1000,
        )
    }

    /// Advances both clocks.
    fn advance(&mut self, d: Duration) {
        self.us += d.total_micros() as i64;
        MockClock::advance(StdDuration::from_micros(d.total_micros()));
    }

    fn ours_send(&mut self, p: &[u8]) -> Got {
        ours_got(self.ours.encapsulate(self.now(), p, &mut self.buf))
    }
    fn deliver_ours(&mut self, d: &[u8]) -> Got {
        let now = Instant::from_micros(self.us);
        ours_got(self.ours.decapsulate(now, sa(THEIRS), d, &mut self.buf))
    }
    fn ours_timers(&mut self) -> Got {
        ours_got(self.ours.update_timers(self.now(), &mut self.buf))
    }
    fn bt_send(&mut self, p: &[u8]) -> Got {
        bt_got(self.bt.encapsulate(p, &mut self.buf))
    }
    fn deliver_bt(&mut self, d: &[u8]) -> Got {
        let src: IpAddr = sa(OURS).ip();
        bt_got(self.bt.decapsulate(Some(src), d, &mut self.buf))
    }
    /// boringtun's "call again with an empty datagram" to flush its queue.
    fn bt_flush(&mut self) -> Got {
        bt_got(self.bt.decapsulate(None, &[], &mut self.buf))
    }

    /// We initiate; returns what boringtun delivers from our first packet.
    fn handshake_from_ours(&mut self, first: &[u8]) -> Got {
        let init = net(self.ours_send(first));
        assert_eq!(init.len(), 148);
        let resp = net(self.deliver_bt(&init));
        assert_eq!(resp.len(), 92);
        let data = net(self.deliver_ours(&resp));
        self.deliver_bt(&data)
    }
}

fn exchange_data_both_ways(p: &mut Pair) {
    for i in 0..5u8 {
        for pkt in [
            ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], &[i; 64]),
            ipv6_udp(&[i; 1300]),
        ] {
            let d = net(p.ours_send(&pkt));
            assert_eq!(p.deliver_bt(&d), Got::Tun(pkt.clone()), "ours -> boringtun");
            let d = net(p.bt_send(&pkt));
            assert_eq!(p.deliver_ours(&d), Got::Tun(pkt), "boringtun -> ours");
        }
    }
}

#[test]
fn handshake_initiated_by_us_completes_with_boringtun_and_data_flows_both_ways() {
    let mut p = Pair::new(None);
    let first = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], b"first");
    assert_eq!(p.handshake_from_ours(&first), Got::Tun(first));
    exchange_data_both_ways(&mut p);
    assert_eq!(p.ours.counters().drops.total(), 0);
}

#[test]
fn handshake_initiated_by_boringtun_completes_with_us_and_data_flows_both_ways() {
    let mut p = Pair::new(None);
    let first = ipv6_udp(b"queued in boringtun");
    let init = net(p.bt_send(&first));
    assert_eq!(init.len(), 148);
    let resp = net(p.deliver_ours(&init));
    assert_eq!(resp.len(), 92);
    // boringtun answers the response with a keepalive, then flushes its queue.
    let keepalive = net(p.deliver_bt(&resp));
    assert_eq!(p.deliver_ours(&keepalive), Got::Done);
    let data = net(p.bt_flush());
    assert_eq!(p.deliver_ours(&data), Got::Tun(first));
    exchange_data_both_ways(&mut p);
    assert_eq!(p.ours.counters().handshakes_completed, 1);
}

#[test]
fn our_core_rekeys_with_boringtun_after_rekey_after_time_and_data_still_flows() {
    let mut p = Pair::new(None);
    p.handshake_from_ours(&ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], b"x"));
    p.advance(REKEY_AFTER_TIME + Duration::from_secs(1));
    // Sending on the old keypair arms the rekey; the next timer run initiates.
    let pkt = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], b"old keypair");
    let d = net(p.ours_send(&pkt));
    assert_eq!(p.deliver_bt(&d), Got::Tun(pkt));
    let init = net(p.ours_timers());
    assert_eq!(init.len(), 148);
    let resp = net(p.deliver_bt(&init));
    let keepalive = net(p.deliver_ours(&resp));
    assert_eq!(keepalive.len(), 32);
    assert_eq!(p.deliver_bt(&keepalive), Got::Done);
    assert_eq!(p.ours.counters().handshakes_completed, 2);
    let d = net(p.ours_send(&ipv6_udp(b"new keypair")));
    assert_eq!(
        u64::from_le_bytes(d[8..16].try_into().unwrap()),
        1,
        "counter restarted"
    );
    assert_eq!(p.deliver_bt(&d), Got::Tun(ipv6_udp(b"new keypair")));
    exchange_data_both_ways(&mut p);
}

#[test]
fn replayed_packet_from_boringtun_is_dropped_by_us() {
    let mut p = Pair::new(None);
    p.handshake_from_ours(&ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], b"x"));
    let pkt = ipv4_udp([10, 0, 0, 2], [10, 0, 0, 1], b"once");
    let d = net(p.bt_send(&pkt));
    assert_eq!(p.deliver_ours(&d), Got::Tun(pkt));
    assert_eq!(
        p.deliver_ours(&d),
        Got::Err(format!("{:?}", DropReason::Replay))
    );
    assert_eq!(p.ours.counters().drops.replay, 1);
}

#[test]
fn replayed_packet_from_us_is_dropped_by_boringtun() {
    let mut p = Pair::new(None);
    p.handshake_from_ours(&ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], b"x"));
    let pkt = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], b"once");
    let d = net(p.ours_send(&pkt));
    assert_eq!(p.deliver_bt(&d), Got::Tun(pkt));
    assert!(matches!(p.deliver_bt(&d), Got::Err(e) if e.contains("Duplicate")));
}

#[test]
fn packet_from_boringtun_after_reject_after_time_is_dropped_by_us() {
    let mut p = Pair::new(None);
    p.handshake_from_ours(&ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], b"x"));
    let d = net(p.bt_send(&ipv4_udp([10, 0, 0, 2], [10, 0, 0, 1], b"late")));
    p.advance(REJECT_AFTER_TIME);
    assert_eq!(
        p.deliver_ours(&d),
        Got::Err(format!("{:?}", DropReason::ExpiredKey))
    );
    // We do not send on the expired keypair either: a new handshake starts instead.
    assert_eq!(net(p.ours_send(&ipv6_udp(b"new"))).len(), 148);
}

#[test]
fn cookie_reply_from_our_core_under_load_is_honoured_by_boringtun() {
    let mut p = Pair::new(None);
    p.ours.set_under_load(true);
    let first = ipv4_udp([10, 0, 0, 2], [10, 0, 0, 1], b"through the cookie");
    let init = net(p.bt_send(&first));
    let cookie = net(p.deliver_ours(&init));
    assert_eq!(cookie.len(), 64, "cookie reply instead of a response");
    assert_eq!(p.deliver_bt(&cookie), Got::Done);
    // boringtun retries after REKEY_TIMEOUT, now with mac2.
    p.advance(REKEY_TIMEOUT + Duration::from_secs(1));
    let retry = net(bt_got(p.bt.update_timers(&mut p.buf)));
    assert_eq!(retry.len(), 148);
    let resp = net(p.deliver_ours(&retry));
    assert_eq!(resp.len(), 92, "mac2 accepted: a response");
    let keepalive = net(p.deliver_bt(&resp));
    assert_eq!(p.deliver_ours(&keepalive), Got::Done);
    let data = net(p.bt_flush());
    assert_eq!(p.deliver_ours(&data), Got::Tun(first));
    assert_eq!(p.ours.counters().tx_cookie_reply, 1);
}

#[test]
fn cookie_reply_from_boringtun_under_load_is_honoured_by_us() {
    let mut p = Pair::new(Some(0));
    let first = ipv4_udp([10, 0, 0, 1], [10, 0, 0, 2], b"through the cookie");
    let init = net(p.ours_send(&first));
    let cookie = net(p.deliver_bt(&init));
    assert_eq!(cookie.len(), 64, "boringtun is under load");
    assert_eq!(p.deliver_ours(&cookie), Got::Done);
    assert_eq!(p.ours.counters().rx_cookie_reply, 1);
    p.advance(REKEY_TIMEOUT + Duration::from_millis(400));
    let retry = net(p.ours_timers());
    assert_eq!(retry.len(), 148);
    let resp = net(p.deliver_bt(&retry));
    assert_eq!(resp.len(), 92, "our mac2 accepted by boringtun");
    let data = net(p.deliver_ours(&resp));
    assert_eq!(p.deliver_bt(&data), Got::Tun(first));
}
