//! Raw bytes into a `Device` with a configured peer, before and after a completed handshake.
//!
//! The first byte picks the scenario:
//! - 0: the bytes as a datagram to a device that has a peer but no session;
//! - 1: the bytes as a datagram after a completed handshake (sessions exist);
//! - 2: the bytes as the *plaintext* of a genuine data message (reaches the inner-packet
//!   and AllowedIPs checks, which forged ciphertext never does);
//! - 3: a script of steps (datagram / time advance / timers / send) after a handshake.
//!
//! Randomness is a fixed-seed generator so every crash reproduces. The two device pairs
//! (fresh, and after the handshake) are built once and cloned for every input, so each
//! input starts from the same state without paying for the handshake's X25519 (about 14 of
//! them, most of the time per input under ASan). `Device` is `Clone` in builds with debug
//! assertions, which `cargo fuzz run` has on by default.
#![no_main]

use std::cell::RefCell;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rand_core::{CryptoRng, RngCore};
use smoltcp::time::Instant;
use vdcnet_appliance::tunnel::{
    AllowedIp, Device, DeviceConfig, DeviceResult, Now, PeerConfig, PrivateKey,
};

/// SplitMix64: deterministic, not secure (fine for fuzzing).
#[derive(Clone)]
struct TestRng(u64);

impl RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for TestRng {}

const A: &str = "192.0.2.1:51820";
const B: &str = "198.51.100.2:51820";

fn now(us: i64) -> Now {
    Now::new(
        Instant::from_micros(us),
        1_700_000_000_000_000_000 + us as u64 * 1000,
    )
}

fn devices() -> (Device<TestRng>, Device<TestRng>) {
    let ka = PrivateKey::from_bytes([0x11; 32]);
    let kb = PrivateKey::from_bytes([0x22; 32]);
    let mut a = Device::new(ka.clone(), DeviceConfig::default(), TestRng(1));
    let mut b = Device::new(kb.clone(), DeviceConfig::default(), TestRng(2));
    let p = |s: &str, l| AllowedIp::new(s.parse().unwrap(), l).unwrap();
    a.add_peer(
        PeerConfig::new(kb.public_key(), Some(B.parse().unwrap())),
        &[p("10.0.0.0", 8), p("fd00::", 8)],
    )
    .unwrap();
    b.add_peer(
        PeerConfig::new(ka.public_key(), Some(A.parse().unwrap())),
        &[p("10.0.0.1", 32), p("fd00::1", 128)],
    )
    .unwrap();
    (a, b)
}

fn datagram(r: DeviceResult<'_>) -> Option<Vec<u8>> {
    match r {
        DeviceResult::WriteToNetwork { datagram, .. } => Some(datagram.to_vec()),
        _ => None,
    }
}

/// A completes a handshake with B (A initiates with a keepalive request).
fn handshake(a: &mut Device<TestRng>, b: &mut Device<TestRng>, buf: &mut [u8]) {
    let packet = [
        0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    let init = datagram(a.encapsulate(now(0), &packet, buf)).expect("initiation");
    let resp =
        datagram(b.decapsulate(Instant::ZERO, A.parse().unwrap(), &init, buf)).expect("response");
    let data =
        datagram(a.decapsulate(Instant::ZERO, B.parse().unwrap(), &resp, buf)).expect("data");
    let _ = b.decapsulate(Instant::ZERO, A.parse().unwrap(), &data, buf);
}

type Pair = (Device<TestRng>, Device<TestRng>);

/// The pair before any message, and the pair after [`handshake`], built once.
fn snapshots() -> &'static (Pair, Pair) {
    static SNAPSHOTS: OnceLock<(Pair, Pair)> = OnceLock::new();
    SNAPSHOTS.get_or_init(|| {
        let fresh = devices();
        let (mut a, mut b) = devices();
        handshake(&mut a, &mut b, &mut vec![0u8; 70_000]);
        (fresh, (a, b))
    })
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 70_000]);
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    BUF.with_borrow_mut(|buf| run(mode, data, buf));
});

fn run(mode: u8, data: &[u8], buf: &mut [u8]) {
    let (fresh, handshaken) = snapshots();
    let (mut a, mut b) = if mode % 4 == 0 {
        fresh.clone()
    } else {
        handshaken.clone()
    };
    let src = A.parse().unwrap();
    match mode % 4 {
        0 => {
            let _ = b.decapsulate(Instant::ZERO, src, data, buf);
        }
        1 => {
            let _ = b.decapsulate(Instant::ZERO, src, data, buf);
            let _ = b.update_timers(now(1), buf);
        }
        2 => {
            let peer = a.peers().next().unwrap().0;
            if let Some(msg) = datagram(a.encapsulate_to(now(0), peer, data, buf)) {
                let r = b.decapsulate(Instant::ZERO, src, &msg, buf);
                if let DeviceResult::WriteToTunnelV4 { packet, .. }
                | DeviceResult::WriteToTunnelV6 { packet, .. } = r
                {
                    // The header may claim the zero padding (up to a multiple of 16), no more.
                    assert!(packet.len() <= data.len().div_ceil(16) * 16);
                }
            }
        }
        _ => {
            let mut t: i64 = 0;
            let mut rest = data;
            while let Some((&op, tail)) = rest.split_first() {
                rest = tail;
                match op % 4 {
                    0 => {
                        // A datagram: next byte is its length.
                        let Some((&len, tail)) = rest.split_first() else {
                            break;
                        };
                        let n = usize::from(len).min(tail.len());
                        let _ = b.decapsulate(Instant::from_micros(t), src, &tail[..n], buf);
                        rest = &tail[n..];
                    }
                    1 => t += i64::from(op) * 1_000_000,
                    2 => while datagram(b.update_timers(now(t), buf)).is_some() {},
                    _ => {
                        let peer = a.peers().next().unwrap().0;
                        if let Some(msg) = datagram(a.encapsulate_to(now(t), peer, &[], buf)) {
                            let _ = b.decapsulate(Instant::from_micros(t), src, &msg, buf);
                        }
                    }
                }
            }
        }
    }
    let c = b.counters();
    assert!(c.drops.total() < u64::MAX);
}
