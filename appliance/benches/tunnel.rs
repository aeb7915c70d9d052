//! Tunnel core throughput and handshake rate, ours and boringtun's side by side.
//!
//! `cargo bench -p vdcnet-appliance --bench tunnel -- --measurement-time 3`
//!
//! - `encap_decap/{ours,boringtun}/N`: one packet of N bytes encrypted by one side and
//!   decrypted by the other (an established session, no I/O), reported as throughput.
//! - `handshake/{ours,boringtun}`: initiation, response and its consumption between two
//!   fresh tunnels (creating the tunnels is not measured).
//! - `aead_seal/{ours,rustcrypto,ring}/N`: the AEAD alone sealing N bytes in place under a
//!   fresh counter: the tunnel's wrapper around the `chacha20poly1305` crate, the crate
//!   called directly, and ring's (boringtun's data path). This is the floor under
//!   `encap_decap`, which seals once and opens once per iteration. Host builds run the
//!   crate with `--cfg poly1305_force_soft` (see `.cargo/config.toml`).
//!
//! Both sides of `encap_decap` do the same work per iteration: the packet is built once,
//! then one `encapsulate` and one `decapsulate` of the result, whose kind is checked.
//!
//! boringtun is built with its `mock-instant` feature (for the differential tests), so its
//! per-packet timer updates read a thread-local instead of the OS clock.

use std::hint::black_box;
use std::net::{IpAddr, SocketAddr};

use boringtun::noise::{Tunn, TunnResult as BtResult};
use boringtun::x25519;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand_core::OsRng;
use smoltcp::time::Instant;
use vdcnet_appliance::tunnel::aead;
use vdcnet_appliance::tunnel::{Now, PeerConfig, PrivateKey, Tunnel, TunnelResult};

const SIZES: [usize; 3] = [64, 512, 1420];

fn ipv4_packet(len: usize) -> Vec<u8> {
    let mut p = vec![0xab; len];
    p[0] = 0x45;
    p[1] = 0;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&[10, 0, 0, 1]);
    p[16..20].copy_from_slice(&[10, 0, 0, 2]);
    p
}

fn now() -> Now {
    Now::new(Instant::from_secs(1), 1_700_000_000_000_000_000)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn our_pair() -> (Tunnel<OsRng>, Tunnel<OsRng>) {
    let ka = PrivateKey::generate(&mut OsRng);
    let kb = PrivateKey::generate(&mut OsRng);
    let a = Tunnel::new(
        ka.clone(),
        PeerConfig::new(kb.public_key(), Some(sa("192.0.2.2:1"))),
        OsRng,
    )
    .expect("a tunnel to another key");
    let b = Tunnel::new(
        kb,
        PeerConfig::new(ka.public_key(), Some(sa("192.0.2.1:1"))),
        OsRng,
    )
    .expect("a tunnel to another key");
    (a, b)
}

/// Runs our handshake; returns the keepalive that confirms it (not yet delivered).
fn our_handshake(a: &mut Tunnel<OsRng>, b: &mut Tunnel<OsRng>, x: &mut [u8], y: &mut [u8]) {
    let TunnelResult::WriteToNetwork(init) = a.encapsulate(now(), &[], x) else {
        panic!("initiation")
    };
    let TunnelResult::WriteToNetwork(resp) =
        b.decapsulate(Instant::from_secs(1), sa("192.0.2.1:1"), init, y)
    else {
        panic!("response")
    };
    let TunnelResult::WriteToNetwork(ka) =
        a.decapsulate(Instant::from_secs(1), sa("192.0.2.2:1"), resp, x)
    else {
        panic!("keepalive")
    };
    black_box(ka);
}

fn bt_pair() -> (Tunn, Tunn) {
    let sa_ = x25519::StaticSecret::random_from_rng(OsRng);
    let sb = x25519::StaticSecret::random_from_rng(OsRng);
    let pa = x25519::PublicKey::from(&sa_);
    let pb = x25519::PublicKey::from(&sb);
    (
        Tunn::new(sa_, pb, None, None, 1, None),
        Tunn::new(sb, pa, None, None, 2, None),
    )
}

fn bt_handshake(a: &mut Tunn, b: &mut Tunn, x: &mut [u8], y: &mut [u8]) {
    let src: IpAddr = "192.0.2.1".parse().unwrap();
    let BtResult::WriteToNetwork(init) = a.format_handshake_initiation(x, false) else {
        panic!("initiation")
    };
    let BtResult::WriteToNetwork(resp) = b.decapsulate(Some(src), init, y) else {
        panic!("response")
    };
    let BtResult::WriteToNetwork(ka) = a.decapsulate(Some(src), resp, x) else {
        panic!("keepalive")
    };
    black_box(ka);
}

fn encap_decap(c: &mut Criterion) {
    let mut g = c.benchmark_group("encap_decap");
    for size in SIZES {
        let packet = ipv4_packet(size);
        g.throughput(Throughput::Bytes(size as u64));

        let (mut a, mut b) = our_pair();
        let (mut x, mut y) = (vec![0u8; 2048], vec![0u8; 2048]);
        our_handshake(&mut a, &mut b, &mut x, &mut y);
        let src = sa("192.0.2.1:1");
        g.bench_function(format!("ours/{size}"), |bench| {
            bench.iter(|| {
                let TunnelResult::WriteToNetwork(d) =
                    a.encapsulate(now(), black_box(&packet), &mut x)
                else {
                    panic!()
                };
                let r = b.decapsulate(Instant::from_secs(1), src, d, &mut y);
                assert!(matches!(r, TunnelResult::WriteToTunnelV4(..)));
            })
        });

        let (mut a, mut b) = bt_pair();
        bt_handshake(&mut a, &mut b, &mut x, &mut y);
        let ip: IpAddr = src.ip();
        g.bench_function(format!("boringtun/{size}"), |bench| {
            bench.iter(|| {
                let BtResult::WriteToNetwork(d) = a.encapsulate(black_box(&packet), &mut x) else {
                    panic!()
                };
                let r = b.decapsulate(Some(ip), d, &mut y);
                assert!(matches!(r, BtResult::WriteToTunnelV4(..)));
            })
        });
    }
    g.finish();
}

fn handshakes(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    g.throughput(Throughput::Elements(1));
    let (mut x, mut y) = (vec![0u8; 2048], vec![0u8; 2048]);
    g.bench_function("ours", |bench| {
        bench.iter_batched(
            our_pair,
            |(mut a, mut b)| our_handshake(&mut a, &mut b, &mut x, &mut y),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("boringtun", |bench| {
        bench.iter_batched(
            bt_pair,
            |(mut a, mut b)| bt_handshake(&mut a, &mut b, &mut x, &mut y),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// The WireGuard nonce: four zero bytes, then the counter little-endian.
fn nonce(counter: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_le_bytes());
    n
}

fn aead_seal(c: &mut Criterion) {
    let mut g = c.benchmark_group("aead_seal");
    let key = [7u8; 32];
    for size in SIZES {
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0xabu8; size + 16];

        let ours = aead::aead_cipher(&key);
        let mut counter = 0u64;
        g.bench_function(format!("ours/{size}"), |bench| {
            bench.iter(|| {
                counter += 1;
                aead::aead_seal(&ours, counter, black_box(&mut buf), &[]);
            })
        });

        let theirs = ring::aead::LessSafeKey::new(
            ring::aead::UnboundKey::new(&ring::aead::CHACHA20_POLY1305, &key).unwrap(),
        );
        g.bench_function(format!("ring/{size}"), |bench| {
            bench.iter(|| {
                counter += 1;
                let n = ring::aead::Nonce::assume_unique_for_key(nonce(counter));
                let (data, tag) = buf.split_at_mut(size);
                let t = theirs
                    .seal_in_place_separate_tag(n, ring::aead::Aad::empty(), black_box(data))
                    .unwrap();
                tag.copy_from_slice(t.as_ref());
            })
        });

        let crate_ = ChaCha20Poly1305::new(&key.into());
        g.bench_function(format!("rustcrypto/{size}"), |bench| {
            bench.iter(|| {
                counter += 1;
                let (data, tag) = buf.split_at_mut(size);
                let t = crate_
                    .encrypt_in_place_detached(&nonce(counter).into(), &[], black_box(data))
                    .unwrap();
                tag.copy_from_slice(&t);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encap_decap, handshakes, aead_seal);
criterion_main!(benches);
