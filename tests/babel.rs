//! The Babel core against a real Babel: babeld (Debian's 1.12.1) in one network
//! namespace, the appliance's routing core in another, joined by a veth pair (one
//! neighbour on that link, IPv6 link-local addresses, UDP port 6696).
//!
//! babeld redistributes `10.99.0.0/24` and `fd99::/64` (static routes on a stub veth in
//! its namespace) plus `10.77.0.0/24` and `fd77::/64`, which lie outside the VDC's plan.
//! The core runs in a thread of this test process that entered the other namespace
//! (`setns`), on a real UDP socket and a real clock, announcing `10.20.1.0/24` and
//! `fd20:ab:cd:1::/64`. The test passes only if
//! - babeld installed the core's prefixes in its kernel table (`proto babel`, via the
//!   core's link-local address; the IPv4 one as v4-via-v6, RFC 9229), which needs our
//!   Hellos, IHUs, Router-Id and Updates to be right on the wire;
//! - the core selected babeld's in-plan prefixes with the right metric, ignored and
//!   counted the out-of-plan ones, measured an RTT from babeld's RFC 9616 timestamps,
//!   and sees babeld as a reachable neighbour;
//! - when the core withdraws its prefixes, babeld stops routing them through the core
//!   (retractions; babeld then holds them as `unreachable` for a while).

use nix::sched::{setns, CloneFlags};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{IpCidr, Ipv4Address, Ipv4Cidr, Ipv6Address, Ipv6Cidr};
use std::fs::File;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use vdcnet_appliance::routing::{
    Babel, Counters, NeighbourId, NeighbourStatus, RouteStatus, RouterId, Settings,
};
use vdcnet_qemu::{Netns, TempDir};
use vdcnet_tests::{ok, require_root, Babeld};

/// Bound on every wait (babeld sends Hellos every second here; convergence takes a few).
const WAIT: Duration = Duration::from_secs(60);

const BABELD_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const CORE_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
const BABELD: NeighbourId = NeighbourId(1);

fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> IpCidr {
    IpCidr::Ipv4(Ipv4Cidr::new(Ipv4Address::new(a, b, c, d), len))
}

fn v6(a: u16, b: u16, c: u16, d: u16, len: u8) -> IpCidr {
    IpCidr::Ipv6(Ipv6Cidr::new(Ipv6Address::new(a, b, c, d, 0, 0, 0, 0), len))
}

/// Whether babeld's table dumps (`-d 1`) show the core as a neighbour whose IHUs say
/// rxcost 96 and `prefix` learnt from it with the core's router-id, the metric we sent (0)
/// and 96 added: babeld read our IHUs and Updates field by field.
fn learnt(babeld: &Babeld, prefix: &str) -> bool {
    let text = std::fs::read_to_string(&babeld.log).unwrap_or_default();
    let neighbour = text
        .lines()
        .any(|l| l.starts_with("Neighbour fe80::2 dev bva") && l.contains("txcost 96 "));
    let route = text.lines().any(|l| {
        l.starts_with(&format!("{prefix} from "))
            && l.contains(" metric 96 ")
            && l.contains("refmetric 0 id 02:00:00:00:00:00:00:01 ")
            && l.contains("neigh fe80::2")
            && l.contains("(installed)")
    });
    neighbour && route
}

/// What the core thread publishes for the test to check.
#[derive(Default, Clone)]
struct Snapshot {
    routes: Vec<RouteStatus>,
    neighbours: Vec<NeighbourStatus>,
    counters: Counters,
    error: Option<String>,
}

/// Runs the core in namespace `ns` until `stop`; `withdraw` empties its local prefixes.
fn run_core(
    ns: String,
    ifname: &'static str,
    stop: Arc<AtomicBool>,
    withdraw: Arc<AtomicBool>,
    snap: Arc<Mutex<Snapshot>>,
) {
    let fail = |e: String| snap.lock().unwrap().error = Some(e);
    let file = match File::open(format!("/run/netns/{ns}")) {
        Ok(f) => f,
        Err(e) => return fail(format!("open /run/netns/{ns}: {e}")),
    };
    // Only this thread moves into the namespace: its sockets live there.
    if let Err(e) = setns(&file, CloneFlags::CLONE_NEWNET) {
        return fail(format!("setns {ns}: {e}"));
    }
    let ifindex = match nix::net::if_::if_nametoindex(ifname) {
        Ok(i) => i,
        Err(e) => return fail(format!("if_nametoindex {ifname}: {e}")),
    };
    let sock = match UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 6696))) {
        Ok(s) => s,
        Err(e) => return fail(format!("bind [::]:6696: {e}")),
    };
    if let Err(e) = sock.join_multicast_v6(&Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 6), ifindex) {
        return fail(format!("join ff02::1:6: {e}"));
    }
    let _ = sock.set_multicast_loop_v6(false);
    let plan = [
        v4(10, 20, 0, 0, 16),
        v6(0xfd20, 0xab, 0xcd, 0, 48),
        v4(10, 99, 0, 0, 16),
        v6(0xfd99, 0, 0, 0, 16),
    ];
    let ours = [v4(10, 20, 1, 0, 24), v6(0xfd20, 0xab, 0xcd, 1, 64)];
    let start = Instant::now();
    let clock = || SmolInstant::from_micros(start.elapsed().as_micros() as i64 + 1_000_000);
    let mut core = Babel::new(
        RouterId([0x02, 0, 0, 0, 0, 0, 0, 0x01]),
        Settings::default(),
        &plan,
    )
    .expect("valid router-id");
    ok_or_fail(
        core.add_neighbour(clock(), BABELD, BABELD_LL, Some(CORE_LL)),
        &fail,
    );
    ok_or_fail(core.set_local_prefixes(clock(), &ours), &fail);
    // To the Babel group on the link, as babeld itself sends.
    let to = SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 6), 6696, 0, ifindex);
    let mut withdrawn = false;
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let now = clock();
        if withdraw.load(Ordering::Relaxed) && !withdrawn {
            withdrawn = true;
            ok_or_fail(core.set_local_prefixes(now, &[]), &fail);
        }
        core.poll(now, |_, bytes| {
            let _ = sock.send_to(bytes, to);
        });
        let wait = (core.poll_at() - clock()).total_millis().clamp(1, 50);
        let _ = sock.set_read_timeout(Some(Duration::from_millis(wait)));
        if let Ok((n, SocketAddr::V6(from))) = sock.recv_from(&mut buf) {
            if *from.ip() == BABELD_LL {
                core.receive(clock(), BABELD, &buf[..n]);
            }
        }
        let now = clock();
        let mut s = snap.lock().unwrap();
        s.routes = core.routes().collect();
        s.neighbours = core.neighbours(now).collect();
        s.counters = core.counters();
    }
}

fn ok_or_fail<T, E: std::fmt::Debug>(r: Result<T, E>, fail: &impl Fn(String)) {
    if let Err(e) = r {
        fail(format!("{e:?}"));
    }
}

fn babeld_routes(ns: &Netns) -> String {
    let v4 = ns
        .ip(&["route", "show"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let v6 = ns
        .ip(&["-6", "route", "show"])
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    format!("{}{}", v4.unwrap_or_default(), v6.unwrap_or_default())
}

/// Whether `table` (ip route output) has `prefix` learnt by babel via the core.
fn has_babel_route(table: &str, prefix: &str) -> bool {
    table.lines().any(|l| {
        l.starts_with(&format!("{prefix} "))
            && l.contains("proto babel")
            && l.contains("via")
            && l.contains("fe80::2")
    })
}

#[test]
fn babeld_and_the_core_learn_each_others_prefixes() {
    require_root("the babeld interop test");
    assert!(
        std::process::Command::new("babeld")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok(),
        "babeld is not installed; `cargo vdcnet test` installs it (Debian package babeld)"
    );
    let a = ok(Netns::create());
    let b = ok(Netns::create());
    for ns in [&a, &b] {
        // Only the addresses we give: one link-local address per side.
        ok(ns.sysctl("net/ipv6/conf/default/addr_gen_mode", "1"));
        ok(ns.sysctl("net/ipv6/conf/all/forwarding", "1"));
    }
    ok(a.ip(&[
        "link",
        "add",
        "bva",
        "type",
        "veth",
        "peer",
        "name",
        "bvb",
        "netns",
        b.name(),
    ]));
    ok(a.ip(&["addr", "add", "fe80::1/64", "dev", "bva", "nodad"]));
    ok(b.ip(&["addr", "add", "fe80::2/64", "dev", "bvb", "nodad"]));
    ok(a.ip(&["link", "set", "bva", "up"]));
    ok(b.ip(&["link", "set", "bvb", "up"]));
    // babeld's own prefixes: static routes on a stub veth (babeld does not redistribute
    // routes of protocol "boot", nor routes through lo).
    ok(a.ip(&[
        "link", "add", "stub0", "type", "veth", "peer", "name", "stub1",
    ]));
    ok(a.ip(&["link", "set", "stub0", "up"]));
    ok(a.ip(&["link", "set", "stub1", "up"]));
    for (fam, p) in [
        ("-4", "10.99.0.0/24"),
        ("-6", "fd99::/64"),
        ("-4", "10.77.0.0/24"),
        ("-6", "fd77::/64"),
    ] {
        ok(a.ip(&[fam, "route", "add", p, "dev", "stub0", "proto", "static"]));
    }
    let dir = ok(TempDir::new("babeld"));
    let babeld = Babeld::start(
        &a,
        dir.path(),
        "interface bva hello-interval 1 enable-timestamps true\n\
         redistribute ip 10.99.0.0/24 allow\n\
         redistribute ip fd99::/64 allow\n\
         redistribute ip 10.77.0.0/24 allow\n\
         redistribute ip fd77::/64 allow\n\
         redistribute local deny\n\
         redistribute deny\n",
        &["-d", "1"],
    );

    let stop = Arc::new(AtomicBool::new(false));
    let withdraw = Arc::new(AtomicBool::new(false));
    let snap = Arc::new(Mutex::new(Snapshot::default()));
    let core = {
        let (stop, withdraw, snap) = (stop.clone(), withdraw.clone(), snap.clone());
        let ns = b.name().to_string();
        thread::spawn(move || run_core(ns, "bvb", stop, withdraw, snap))
    };

    let started = Instant::now();
    let deadline = started + WAIT;
    let p99 = v4(10, 99, 0, 0, 24);
    let p99_6 = v6(0xfd99, 0, 0, 0, 64);
    let (mut table, mut s);
    loop {
        table = babeld_routes(&a);
        s = snap.lock().unwrap().clone();
        let babeld_learnt = has_babel_route(&table, "10.20.1.0/24")
            && has_babel_route(&table, "fd20:ab:cd:1::/64")
            && learnt(&babeld, "10.20.1.0/24")
            && learnt(&babeld, "fd20:ab:cd:1::/64");
        let core_learnt = [p99, p99_6]
            .iter()
            .all(|p| s.routes.iter().any(|r| r.prefix == *p && r.via == BABELD));
        let rtt = s.neighbours.first().is_some_and(|n| n.rtt.is_some());
        if s.error.is_some() || (babeld_learnt && core_learnt && rtt) || Instant::now() > deadline {
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    if let Some(e) = &s.error {
        stop.store(true, Ordering::Relaxed);
        panic!("core thread failed: {e}");
    }
    let check = |cond: bool, what: &str, table: &str, s: &Snapshot| {
        if !cond {
            stop.store(true, Ordering::Relaxed);
            panic!(
                "{what}\nbabeld's table:\n{table}\ncore routes: {:#?}\nneighbours: {:#?}\n\
                 counters: {:?}\nbabeld log:\n{}",
                s.routes,
                s.neighbours,
                s.counters,
                babeld.log_tail()
            );
        }
    };
    check(
        has_babel_route(&table, "10.20.1.0/24") && table.contains("10.20.1.0/24 via inet6 fe80::2"),
        "babeld did not install the core's IPv4 prefix as v4-via-v6",
        &table,
        &s,
    );
    check(
        has_babel_route(&table, "fd20:ab:cd:1::/64"),
        "babeld did not install the core's IPv6 prefix",
        &table,
        &s,
    );
    check(
        learnt(&babeld, "10.20.1.0/24") && learnt(&babeld, "fd20:ab:cd:1::/64"),
        "babeld's dump does not show our prefixes at metric 96 from our router-id",
        &table,
        &s,
    );
    for p in [p99, p99_6] {
        let r = s.routes.iter().find(|r| r.prefix == p);
        check(
            r.is_some_and(|r| r.via == BABELD),
            &format!("the core has no route to babeld's {p}"),
            &table,
            &s,
        );
        // babeld redistributes with metric 0; a loss-free veth costs the nominal 96
        // (its RTT is far below rtt_min).
        check(
            r.is_some_and(|r| r.metric == 96),
            &format!("metric of {p}"),
            &table,
            &s,
        );
    }
    check(
        !s.routes
            .iter()
            .any(|r| r.prefix == v4(10, 77, 0, 0, 24) || r.prefix == v6(0xfd77, 0, 0, 0, 64)),
        "out-of-plan prefixes were selected",
        &table,
        &s,
    );
    check(
        s.counters.out_of_plan > 0,
        "out-of-plan updates not counted",
        &table,
        &s,
    );
    check(
        s.counters.malformed_tlvs == 0 && s.counters.malformed_packets == 0,
        "babeld's packets counted as malformed",
        &table,
        &s,
    );
    let n = s.neighbours.first().copied();
    check(
        n.is_some_and(|n| n.reachable && n.txcost == 96 && n.rtt.is_some()),
        "babeld is not a reachable neighbour with txcost 96 and a measured RTT",
        &table,
        &s,
    );

    eprintln!("converged after {:?}", started.elapsed());

    // Retractions: the core withdraws its prefixes; babeld must drop them.
    withdraw.store(true, Ordering::Relaxed);
    let withdrawn = Instant::now();
    let deadline = withdrawn + WAIT;
    loop {
        table = babeld_routes(&a);
        // babeld keeps a retracted prefix as an `unreachable` route for a while (its
        // hold time); what must go is the route through the core.
        if !has_babel_route(&table, "10.20.1.0/24") && !has_babel_route(&table, "fd20:ab:cd:1::/64")
        {
            eprintln!(
                "babeld dropped the withdrawn prefixes after {:?}",
                withdrawn.elapsed()
            );
            break;
        }
        if Instant::now() > deadline {
            let s = snap.lock().unwrap().clone();
            check(false, "babeld kept the withdrawn prefixes", &table, &s);
        }
        thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    core.join().expect("core thread");
    drop(babeld);
}
