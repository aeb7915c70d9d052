//! The Mycelium core against the real thing: myceliumd 0.7.10 in a network namespace,
//! with its TUN, listening on TCP 9651; the appliance's Mycelium core in a thread of this
//! test process that entered the namespace (`setns`) and connects to it over a real
//! `std::net::TcpStream` on loopback, on a real clock.
//!
//! The test passes only if
//! - `mycelium inspect --json` prints, for our public key, the address the core derived;
//! - myceliumd selected a route to the core's /64 (`mycelium routes selected --json`),
//!   which needs our stream framing, Hello/IHU and Update (with a router-id whose key owns
//!   the prefix) to be right on the wire;
//! - the core selected myceliumd's /64 with myceliumd's router-id, and counted nothing
//!   from it as malformed, unknown or filtered;
//! - an ICMPv6 echo request the core sealed to myceliumd's address was opened by
//!   myceliumd and delivered to its TUN, and the kernel's echo reply, sealed by myceliumd
//!   to us, was opened by the core: the data path both ways, byte-exact;
//! - a packet to an address nobody has makes the core send a route request that
//!   myceliumd takes up (`mycelium routes queried` lists the /64);
//! - myceliumd keeps the core as a live peer past its dead-peer check (a peer without an
//!   IHU for 43 s is dropped; it says Hello every 20 s): the core's IHUs are accepted.
//!   This last phase makes the test take about 52 s.
//!
//! The binary: `VDCNET_MYCELIUM`, else `mycelium` on `PATH`, else `shared/peers/mycelium`
//! beside the repository (see that folder's README).

use nix::sched::{setns, CloneFlags};
use rand_core::{OsRng, RngCore};
use smoltcp::time::Instant as SmolInstant;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv6Addr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use vdcnet_appliance::mycelium::{
    Counters, Node, PeerId, PeerStatus, RouteStatus, SecretKey, Sent, Settings, Subnet, TCP_V4_COST,
};
use vdcnet_qemu::{Netns, TempDir};
use vdcnet_tests::{cli, json_str, mycelium_binary, mycelium_inspect, ok, require_root, Myceliumd};

/// Bound on every wait (the core says Hello on connect; myceliumd answers at once).
const WAIT: Duration = Duration::from_secs(30);
const MYCELIUMD: PeerId = PeerId(1);
const ECHO_ID: u16 = 0x4d59;

/// What the core thread publishes for the test to check.
#[derive(Default, Clone)]
struct Snapshot {
    routes: Vec<RouteStatus>,
    peers: Vec<PeerStatus>,
    counters: Counters,
    queried: Vec<Subnet>,
    delivered: Vec<Vec<u8>>,
    sent: Vec<Result<Sent, String>>,
    error: Option<String>,
}

/// What the test asks the core thread to send, once each.
#[derive(Default)]
struct Orders {
    ping: Option<Ipv6Addr>,
    probe: Option<Ipv6Addr>,
}

fn internet_checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for c in chunks {
        for pair in c.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMPv6 echo request (`kind` 128) from `src` to `dst`.
fn echo_request(src: Ipv6Addr, dst: Ipv6Addr, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut icmp = vec![128u8, 0, 0, 0];
    icmp.extend_from_slice(&ECHO_ID.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(payload);
    let len = (icmp.len() as u32).to_be_bytes();
    let sum = internet_checksum(&[&src.octets(), &dst.octets(), &len, &[0, 0, 0, 58], &icmp]);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    p.extend_from_slice(&[58, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&icmp);
    p
}

/// Whether `p` is the kernel's echo reply from `from` to our request.
fn is_echo_reply(p: &[u8], from: Ipv6Addr, payload: &[u8]) -> bool {
    p.len() >= 48
        && p[6] == 58
        && p[8..24] == from.octets()
        && p[40] == 129
        && p[44..46] == ECHO_ID.to_be_bytes()
        && &p[48..] == payload
}

/// The core: connects to myceliumd inside namespace `ns` and runs until `stop`.
fn run_core(
    ns: String,
    secret: SecretKey,
    stop: Arc<AtomicBool>,
    orders: Arc<Mutex<Orders>>,
    snap: Arc<Mutex<Snapshot>>,
) {
    let fail = |e: String| snap.lock().unwrap().error = Some(e);
    let file = match File::open(format!("/run/netns/{ns}")) {
        Ok(f) => f,
        Err(e) => return fail(format!("open /run/netns/{ns}: {e}")),
    };
    // Only this thread moves into the namespace: its socket lives there.
    if let Err(e) = setns(&file, CloneFlags::CLONE_NEWNET) {
        return fail(format!("setns {ns}: {e}"));
    }
    let deadline = Instant::now() + WAIT;
    let mut stream = loop {
        match TcpStream::connect("127.0.0.1:9651") {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => {
                return fail(format!("connect 127.0.0.1:9651: {e}"))
            }
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    };
    let _ = stream.set_nodelay(true);
    let start = Instant::now();
    let clock = || SmolInstant::from_micros(start.elapsed().as_micros() as i64 + 1_000_000);
    let mut core = Node::new(clock(), secret, Settings::default(), OsRng);
    if let Err(e) = core.add_peer(clock(), MYCELIUMD, TCP_V4_COST) {
        return fail(format!("add_peer: {e:?}"));
    }
    let payload = b"vdcnet mycelium core".to_vec();
    let mut last_ping: Option<Instant> = None;
    let mut buf = [0u8; 4096];
    let mut delivered = Vec::new();
    let mut sent = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now = clock();
        core.poll(now);
        {
            let mut o = orders.lock().unwrap();
            // Pings go once a second until a reply is in (the first waits for nothing:
            // the core has myceliumd's route from its first Update).
            if let Some(dst) = o.ping {
                let replied = delivered
                    .iter()
                    .any(|p: &Vec<u8>| is_echo_reply(p, dst, &payload));
                if !replied && last_ping.is_none_or(|t| t.elapsed() > Duration::from_secs(1)) {
                    last_ping = Some(Instant::now());
                    let seq = sent.len() as u16;
                    let pkt = echo_request(core.address(), dst, seq, &payload);
                    sent.push(core.send(now, &pkt).map_err(|e| format!("{e:?}")));
                }
            }
            if let Some(dst) = o.probe.take() {
                let pkt = echo_request(core.address(), dst, 999, b"nobody");
                sent.push(core.send(now, &pkt).map_err(|e| format!("{e:?}")));
            }
        }
        let out = core.transmit(MYCELIUMD).to_vec();
        if !out.is_empty() {
            if let Err(e) = stream.write_all(&out) {
                return fail(format!("write: {e}"));
            }
            core.transmitted(MYCELIUMD, out.len());
        }
        let wait = (core.poll_at() - clock()).total_millis().clamp(1, 50);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(wait)));
        match stream.read(&mut buf) {
            Ok(0) => return fail("myceliumd closed the connection".into()),
            Ok(n) => {
                if let Err(e) = core.receive(clock(), MYCELIUMD, &buf[..n], |p| {
                    delivered.push(p.to_vec())
                }) {
                    return fail(format!("receive: {e:?}"));
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return fail(format!("read: {e}")),
        }
        let mut dead = Vec::new();
        core.drain_dead(|p| dead.push(p));
        if !dead.is_empty() {
            return fail(format!("the core declared {dead:?} dead"));
        }
        let mut s = snap.lock().unwrap();
        s.routes = core.routes().collect();
        s.peers = core.peers().collect();
        s.counters = core.counters();
        s.queried = core.queried().collect();
        s.delivered = delivered.clone();
        s.sent = sent.clone();
    }
}

#[test]
fn myceliumd_and_the_core_route_and_exchange_sealed_packets() {
    require_root("the mycelium interop test (a TUN in a network namespace)");
    let bin = mycelium_binary();
    let ns = ok(Netns::create());
    let dir = ok(TempDir::new("mycelium"));
    let mut theirs = [0u8; 32];
    OsRng.fill_bytes(&mut theirs);
    std::fs::write(dir.path().join("mycelium.key"), theirs).expect("key file");
    let daemon = Myceliumd::start(&bin, &ns, dir.path());
    let daemon_started = Instant::now();

    // Its identity, as its own CLI derives it from the key file (32 raw octets).
    let text = mycelium_inspect(&bin, &dir.path().join("mycelium.key"), None);
    let their_key = json_str(&text, "publicKey").expect("inspect prints publicKey");
    let their_addr: Ipv6Addr = json_str(&text, "address")
        .and_then(|a| a.parse().ok())
        .expect("inspect prints address");
    let our_secret = SecretKey::generate(&mut OsRng);
    assert_eq!(
        format!(
            "{}",
            SecretKey::from_key_file(&theirs).unwrap().public_key()
        ),
        their_key,
        "our reading of mycelium's key file"
    );

    // Our address, as mycelium derives it from our public key.
    let our_pk = our_secret.public_key();
    let out = mycelium_inspect(
        &bin,
        &dir.path().join("cli-no-key"),
        Some(&our_pk.to_string()),
    );
    let their_view: Ipv6Addr = json_str(&out, "address")
        .and_then(|a| a.parse().ok())
        .expect("inspect KEY prints address");
    assert_eq!(their_view, our_pk.address(), "address derivation");

    let stop = Arc::new(AtomicBool::new(false));
    let orders = Arc::new(Mutex::new(Orders::default()));
    let snap = Arc::new(Mutex::new(Snapshot::default()));
    let core = {
        let (stop, orders, snap) = (stop.clone(), orders.clone(), snap.clone());
        let ns = ns.name().to_string();
        thread::spawn(move || run_core(ns, our_secret, stop, orders, snap))
    };
    let failed = |what: &str, s: &Snapshot, extra: &str| -> ! {
        stop.store(true, Ordering::Relaxed);
        panic!(
            "{what}\n{extra}\ncore routes: {:#?}\npeers: {:#?}\ncounters: {:#?}\nsent: {:?}\n\
             core error: {:?}\nmyceliumd log:\n{}",
            s.routes,
            s.peers,
            s.counters,
            s.sent,
            s.error,
            daemon.log_tail()
        );
    };

    // Routes, both ways.
    let our_subnet = format!("{}", our_pk.subnet());
    let their_subnet = Subnet::new(their_addr, 64).unwrap();
    let deadline = Instant::now() + WAIT;
    let (mut selected, mut s);
    loop {
        selected = cli(&bin, &ns, dir.path(), &["routes", "selected", "--json"]);
        s = snap.lock().unwrap().clone();
        let theirs_has_ours = selected.contains(&format!("\"{our_subnet}\""));
        let ours_has_theirs = s
            .routes
            .iter()
            .any(|r| r.subnet == their_subnet && r.selected);
        if s.error.is_some() || (theirs_has_ours && ours_has_theirs) || Instant::now() > deadline {
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    if s.error.is_some() {
        failed("the core thread failed", &s, "");
    }
    if !selected.contains(&format!("\"{our_subnet}\"")) {
        failed(
            &format!("myceliumd has no selected route to our {our_subnet}"),
            &s,
            &format!("myceliumd's selected routes: {selected}"),
        );
    }
    let r = s
        .routes
        .iter()
        .find(|r| r.subnet == their_subnet && r.selected)
        .copied();
    let Some(r) = r else {
        failed(&format!("the core has no route to {their_subnet}"), &s, "");
    };
    if format!(
        "{}",
        vdcnet_appliance::mycelium::PublicKey(r.router_id.public_key())
    ) != their_key
        || r.advertised != 0
        || r.peer != MYCELIUMD
    {
        failed(
            "the route to myceliumd's /64 is not its own announcement",
            &s,
            "",
        );
    }
    let c = s.counters;
    if c.malformed_tlvs + c.unknown_tlvs + c.unsupported_ae + c.unknown_ae + c.updates_filtered != 0
        || c.ihus_rx == 0
        || c.rtt_samples == 0
    {
        failed(
            "myceliumd's control packets were not all understood",
            &s,
            "",
        );
    }

    // Data, both ways: an echo request to myceliumd's address, the kernel's reply back.
    orders.lock().unwrap().ping = Some(their_addr);
    let payload = b"vdcnet mycelium core";
    let deadline = Instant::now() + WAIT;
    loop {
        s = snap.lock().unwrap().clone();
        if s.error.is_some()
            || s.delivered
                .iter()
                .any(|p| is_echo_reply(p, their_addr, payload))
            || Instant::now() > deadline
        {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let reply = s
        .delivered
        .iter()
        .find(|p| is_echo_reply(p, their_addr, payload));
    let Some(reply) = reply else {
        failed(
            "no echo reply from myceliumd's address came back through the core",
            &s,
            &format!(
                "myceliumd's packet stats: {}",
                cli(&bin, &ns, dir.path(), &["stats", "packets"])
            ),
        );
    };
    assert_eq!(&reply[24..40], &our_pk.address().octets(), "reply to us");
    if s.counters.decrypt_failed + s.counters.spoofed + s.counters.bad_inner != 0 {
        failed("packets from myceliumd failed to open", &s, "");
    }

    // A route request for an address nobody has: myceliumd takes the query up.
    let nowhere = SecretKey::generate(&mut OsRng).public_key().address();
    let nowhere_subnet = format!("{}", Subnet::new(nowhere, 64).unwrap());
    orders.lock().unwrap().probe = Some(nowhere);
    let deadline = Instant::now() + WAIT;
    let mut queried;
    loop {
        queried = cli(&bin, &ns, dir.path(), &["routes", "queried", "--json"]);
        // (The core publishes its state once per turn of its loop, after its read.)
        s = snap.lock().unwrap().clone();
        let ours = s.queried.iter().any(|q| format!("{q}") == nowhere_subnet);
        if s.error.is_some()
            || (ours && queried.contains(&format!("\"{nowhere_subnet}\"")))
            || Instant::now() > deadline
        {
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    if s.error.is_some() {
        failed("the core thread failed", &s, "");
    }
    if !queried.contains(&format!("\"{nowhere_subnet}\"")) {
        failed(
            &format!("myceliumd did not take up our route request for {nowhere_subnet}"),
            &s,
            &format!("myceliumd's queried routes: {queried}"),
        );
    }
    if !s.queried.iter().any(|q| format!("{q}") == nowhere_subnet) {
        failed("the core does not list its own query", &s, "");
    }

    // Liveness: myceliumd checks every 10 s from its start for peers without an IHU for
    // 43 s; 52 s after its start the core has been through that check with only the
    // IHUs it sent in answer to myceliumd's Hellos.
    while daemon_started.elapsed() < Duration::from_secs(52) {
        s = snap.lock().unwrap().clone();
        if s.error.is_some() {
            failed("the connection broke while idle", &s, "");
        }
        thread::sleep(Duration::from_millis(500));
    }
    let peers = cli(&bin, &ns, dir.path(), &["peers", "list", "--json"]);
    s = snap.lock().unwrap().clone();
    if s.error.is_some()
        || !peers.contains("\"alive\"")
        || s.counters.hellos_rx < 2
        || s.counters.ihus_tx < 2
    {
        failed(
            "myceliumd did not keep the core as a live peer",
            &s,
            &format!("myceliumd's peers: {peers}"),
        );
    }
    eprintln!(
        "myceliumd: our route {}, its peers {peers}\ncore: {:?}",
        selected.trim(),
        s.counters
    );
    stop.store(true, Ordering::Relaxed);
    core.join().expect("core thread");
    drop(daemon);
}
