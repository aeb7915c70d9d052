//! The mesh router end to end: three appliances in a full mesh (`vdcnet_qemu::lab`), a
//! workload namespace behind each one's segment NIC, configured only by the appliance's
//! DHCP server and router advertisements. Real clients: ping, iperf3, tshark.
//!
//! Each test boots its own lab; they take turns (one lock) so that three TCG guests per
//! test do not compete with three more for the machine's cores.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};
use vdcnet_qemu::lab::{Lab, Topology, WORKLOAD_IF};
use vdcnet_qemu::{Netns, PortIo};
use vdcnet_tests::{dissect, ok, output_text, require_root, run_in, TIMEOUT};

static TURN: Mutex<()> = Mutex::new(());

/// Boots a three-node lab, waiting for our turn; the guard ends the turn.
fn lab(name: &str, topology: Topology) -> (MutexGuard<'static, ()>, Lab) {
    require_root(name);
    let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    (turn, ok(Lab::start(&topology)))
}

fn v4(lab: &Lab, i: usize) -> IpAddr {
    IpAddr::V4(
        lab.workload_v4(i)
            .expect("the workload got an address by DHCP"),
    )
}

fn v6(lab: &Lab, i: usize) -> IpAddr {
    IpAddr::V6(
        lab.workload_v6(i)
            .expect("the workload got an address by SLAAC"),
    )
}

/// One ping from `ns` to `dst` with `extra` options (`-M do -s 1472`, `-t 1`, ...):
/// whether it got a reply, and everything ping printed.
fn ping(ns: &Netns, dst: IpAddr, extra: &[&str]) -> (bool, String) {
    let d = dst.to_string();
    let family = if dst.is_ipv6() { "-6" } else { "-4" };
    let mut args = vec![family, "-n", "-c", "1", "-W", "2"];
    args.extend_from_slice(extra);
    args.push(&d);
    match ns.run("ping", &args) {
        Ok(out) => (true, out),
        Err(e) => (false, e.evidence().to_string()),
    }
}

/// Evidence for a failed assertion: every node's console tail.
fn consoles(lab: &Lab) -> String {
    (0..lab.len())
        .map(|i| format!("--- node{} ---\n{}", i + 1, lab.vm(i).evidence()))
        .collect()
}

#[test]
fn every_workload_pair_pings_v4_and_v6_and_the_underlay_carries_only_wireguard() {
    let dir = std::env::temp_dir().join(format!("vdcnet-lab-ping-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("underlay.pcap");
    let (_turn, lab) = lab("every_workload_pair_pings", Topology::new(3).capture(&pcap));
    for i in 0..3 {
        // Addresses inside the node's own segment, from its DHCP server and its RAs.
        let n = &lab.nodes()[i];
        let a4 = lab.workload_v4(i).unwrap();
        assert!(n.segment_v4.contains(a4), "{a4} outside {}", n.segment_v4);
        let a6 = lab.workload_v6(i).unwrap();
        assert!(n.segment_v6.unwrap().contains(a6), "{a6}");
    }
    for i in 0..3 {
        for j in (0..3).filter(|&j| j != i) {
            for dst in [v4(&lab, j), v6(&lab, j)] {
                if let Err(e) = lab.workload(i).ping(dst, TIMEOUT) {
                    panic!("node{} workload -> {dst}: {e}\n{}", i + 1, consoles(&lab));
                }
            }
        }
    }
    drop(lab);
    // Every frame on the underlay is ARP, neighbour discovery or WireGuard.
    let frames = ok(dissect(&pcap));
    assert!(frames.len() > 20, "capture nearly empty: {}", frames.len());
    let wg = frames
        .iter()
        .filter(|f| f.protocols.ends_with(":wg"))
        .count();
    assert!(wg > 12, "only {wg} WireGuard frames");
    for f in &frames {
        let allowed = f.protocols.ends_with(":wg")
            || f.protocols.ends_with(":arp")
            || matches!(f.icmpv6_type.as_str(), "133" | "134" | "135" | "136");
        assert!(
            allowed,
            "frame {} on the underlay: {}",
            f.number, f.protocols
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// An iperf3 server in `ns` for one test, killed on drop.
struct Iperf(Child);

impl Drop for Iperf {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Moves `bytes` from `client`'s namespace to `server` (or back with `reverse`) over TCP
/// with iperf3, which exits with success only when the whole test ran. Returns the bytes
/// the sender got through (`sum_sent`). iperf3's receiver figure (the client's and the
/// server's alike) stops when the sender signals the end and misses what is still in
/// flight: on a loaded TCG host that was a fifth of a 5 MB transfer, so it is checked only
/// to show the stream reached the other side (more than half).
fn iperf(client: &Netns, server: &Netns, addr: IpAddr, bytes: u64, reverse: bool) -> u64 {
    let port = "5201";
    let _srv = Iperf(
        server
            .command("iperf3")
            .args(["-s", "-1", "-p", port])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 server"),
    );
    // Wait until the server listens.
    let deadline = Instant::now() + TIMEOUT;
    while !output_text(&run_in(server, "ss", &["-ltn"])).contains(&format!(":{port} ")) {
        assert!(Instant::now() < deadline, "iperf3 server never listened");
        thread::sleep(Duration::from_millis(100));
    }
    let n = bytes.to_string();
    let a = addr.to_string();
    let mut args = vec![
        "-c",
        &a,
        "-p",
        port,
        "-n",
        &n,
        "-J",
        "--connect-timeout",
        "3000",
    ];
    if reverse {
        args.push("-R");
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let out = run_in(client, "iperf3", &args);
        let t = output_text(&out);
        // iperf3 3.12 can exit 0 with an "error" in its JSON (e.g. refused connection).
        if out.status.success() && !t.contains("\"error\"") {
            let sent = sum_bytes(&t, "sum_sent").unwrap_or_else(|| panic!("no byte count in {t}"));
            let received = sum_bytes(&t, "sum_received").unwrap_or(0);
            assert!(
                received > sent / 2,
                "iperf3 to {addr}: sent {sent} bytes, the receiver counted only {received}"
            );
            return sent;
        }
        // The server may not listen yet.
        assert!(Instant::now() < deadline, "iperf3 to {addr} failed: {t}");
        thread::sleep(Duration::from_millis(300));
    }
}

/// `end.<sum>.bytes` of iperf3's JSON report.
fn sum_bytes(json: &str, sum: &str) -> Option<u64> {
    let at = json.find(&format!("\"{sum}\""))?;
    let rest = &json[at..];
    let b = rest.find("\"bytes\"")?;
    let digits: String = rest[b + 7..]
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[test]
fn every_workload_pair_moves_50_mb_over_tcp_both_ways() {
    const MB50: u64 = 50 * 1000 * 1000;
    let (_turn, lab) = lab("every_workload_pair_moves_50_mb", Topology::new(3));
    for (i, j) in [(0, 1), (1, 2), (0, 2)] {
        for reverse in [false, true] {
            let got = iperf(lab.workload(i), lab.workload(j), v4(&lab, j), MB50, reverse);
            assert!(
                got >= MB50,
                "node{} <-> node{} (reverse {reverse}): {got} bytes\n{}",
                i + 1,
                j + 1,
                consoles(&lab)
            );
        }
    }
}

#[test]
fn a_workload_reaches_no_underlay_address() {
    let (_turn, lab) = lab("a_workload_reaches_no_underlay_address", Topology::new(3));
    let w = lab.workload(0);
    let mut targets: Vec<Ipv4Addr> = lab.nodes().iter().map(|n| n.underlay).collect();
    // The underlay's gateway-to-be and an unused underlay address.
    targets.push(Ipv4Addr::new(192, 168, 100, 254));
    targets.push(Ipv4Addr::new(192, 168, 100, 77));
    for t in targets {
        let (replied, out) = ping(w, IpAddr::V4(t), &[]);
        assert!(!replied, "{t} answered: {out}");
        // The appliance says why instead of leaving the workload to time out.
        assert!(out.contains("Packet filtered"), "{t}: {out}");
        // TCP to the appliances' echo service on the underlay fails too.
        let connect = format!("timeout 3 bash -c 'exec 3<>/dev/tcp/{t}/7' && echo open");
        let nc = output_text(&run_in(w, "bash", &["-c", &connect]));
        assert!(!nc.contains("open"), "TCP to {t}:7 connected");
    }
    // Not by IPv6 either (the underlay has none; nothing routes there).
    let (replied, out) = ping(w, "fd00:100::1".parse().unwrap(), &[]);
    assert!(!replied, "{out}");
}

#[test]
fn a_1500_byte_df_ping_gets_fragmentation_needed_with_the_tunnel_mtu_and_tcp_adapts() {
    let (_turn, lab) = lab("a_1500_byte_df_ping", Topology::new(3));
    let (w, dst) = (lab.workload(0), v4(&lab, 1));
    let (_, out) = ping(w, dst, &["-M", "do", "-s", "1472"]);
    assert!(
        out.contains("Frag needed and DF set (mtu = 1420)") || out.contains("mtu=1420"),
        "{out}"
    );
    // The kernel now knows the path MTU.
    let route = output_text(&run_in(w, "ip", &["-4", "route", "get", &dst.to_string()]));
    assert!(route.contains("mtu 1420"), "{route}");
    // A full-size ping that fits the path works.
    let (replied, out) = ping(w, dst, &["-M", "do", "-s", "1392"]);
    assert!(replied, "{out}");
    // A TCP transfer from a fresh namespace view (the workload's MTU is 1500) succeeds.
    let _ = run_in(w, "ip", &["route", "flush", "cache"]);
    let got = iperf(w, lab.workload(1), dst, 5_000_000, false);
    assert!(got >= 5_000_000, "{got}");
    // IPv6: packet too big.
    let (_, out) = ping(w, v6(&lab, 1), &["-M", "do", "-s", "1452"]);
    assert!(
        out.contains("mtu=1420") || out.contains("Packet too big"),
        "{out}"
    );
}

#[test]
fn ttl_expiry_at_either_router_returns_time_exceeded() {
    let (_turn, lab) = lab("ttl_expiry", Topology::new(3));
    let w = lab.workload(0);
    let n = lab.nodes();
    for (ttl, router) in [("1", n[0].overlay_v4), ("2", n[1].overlay_v4)] {
        let (_, out) = ping(w, v4(&lab, 1), &["-t", ttl]);
        assert!(
            out.contains(&format!("From {router}")) && out.contains("Time to live exceeded"),
            "ttl {ttl}: {out}"
        );
    }
    let (_, out) = ping(w, v6(&lab, 2), &["-t", "1"]);
    assert!(out.contains("Time exceeded: Hop limit"), "{out}");
}

#[test]
fn a_restarted_appliance_carries_the_mesh_again_by_itself() {
    let (_turn, mut lab) = lab("a_restarted_appliance", Topology::new(3));
    ok(lab.workload(0).ping(v4(&lab, 1), TIMEOUT));
    ok(lab.restart(1));
    // No one touches the other nodes: their timers and the restarted node's handshakes
    // bring the tunnels back.
    for (i, j) in [(0, 1), (1, 0), (2, 1), (1, 2)] {
        for dst in [v4(&lab, j), v6(&lab, j)] {
            if let Err(e) = lab.workload(i).ping(dst, Duration::from_secs(60)) {
                panic!(
                    "after restart, node{} -> {dst}: {e}\n{}",
                    i + 1,
                    consoles(&lab)
                );
            }
        }
    }
}

/// A switch port that injects the frames it is given, and swallows what it receives.
struct Injector(Arc<Mutex<Vec<Vec<u8>>>>);

impl PortIo for Injector {
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let next = self.0.lock().unwrap().pop();
        match next {
            Some(f) => {
                buf[..f.len()].copy_from_slice(&f);
                Ok(Some(f.len()))
            }
            None => {
                thread::sleep(Duration::from_millis(50));
                Ok(None)
            }
        }
    }
    fn send(&self, _frame: &[u8]) -> io::Result<()> {
        Ok(())
    }
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0];
    h[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn eth(dst: [u8; 6], ty: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0x0b, 0xad]);
    f.extend_from_slice(&ty.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Malformed frames aimed at `mac`: each is dropped as malformed by a correct router.
fn malformed(mac: [u8; 6], src: [u8; 4], dst: [u8; 4]) -> Vec<Vec<u8>> {
    let good = ipv4(
        src,
        dst,
        17,
        &[0x13, 0x88, 0x13, 0x89, 0, 12, 0, 0, 1, 2, 3, 4],
    );
    let mut bad_sum = good.clone();
    bad_sum[10] ^= 0x5a;
    let mut bad_len = good.clone();
    bad_len[2..4].copy_from_slice(&1400u16.to_be_bytes());
    let mut bad_ihl = good.clone();
    bad_ihl[0] = 0x44;
    let mut v6_bad_len = vec![0x60, 0, 0, 0, 0x05, 0xdc, 17, 64];
    v6_bad_len.extend_from_slice(&[0u8; 32]);
    vec![
        eth(mac, 0x0800, &bad_sum),
        eth(mac, 0x0800, &bad_len),
        eth(mac, 0x0800, &bad_ihl),
        eth(mac, 0x0800, &good[..12]),
        eth(mac, 0x86dd, &v6_bad_len),
        eth(mac, 0x86dd, &good),
        eth(mac, 0x0806, &[0, 1, 8, 0, 6, 4]),
        eth(mac, 0x0800, &[]),
    ]
}

/// The `malformed=` counter of `link` in the last stats line of node `i`.
fn malformed_count(lab: &Lab, i: usize, link: usize) -> u64 {
    let line = lab
        .vm(i)
        .console()
        .snapshot()
        .into_iter()
        .rev()
        .find(|l| l.starts_with("vdcnet: stats"))
        .unwrap_or_else(|| panic!("node{} printed no stats line", i + 1));
    let key = format!(" link{link} ");
    let part = line.split_once(&key).expect("link in stats").1;
    let m = part.split_once("malformed=").expect("malformed=").1;
    m.split(';').next().unwrap().parse().unwrap()
}

/// Sends raw Ethernet frames out of `iface` inside `ns` (an AF_PACKET socket via python3).
fn send_raw(ns: &Netns, iface: &str, frames: &[Vec<u8>]) {
    let hex: Vec<String> = frames
        .iter()
        .map(|f| f.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let script = format!(
        "import socket\ns=socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\ns.bind(('{iface}',0))\n\
         for h in {hex:?}:\n    s.send(bytes.fromhex(h))\n"
    );
    let out = run_in(ns, "python3", &["-c", &script]);
    assert!(out.status.success(), "python3: {}", output_text(&out));
}

#[test]
fn malformed_frames_on_every_port_are_dropped_and_counted() {
    let mut topo = Topology::new(3);
    for i in 0..3 {
        topo = topo.append(i, "vdcnet.stats=1");
    }
    let (_turn, lab) = lab("malformed_frames", topo);
    // Counters before (a stats line comes every second).
    thread::sleep(Duration::from_millis(1500));
    let before: Vec<[u64; 2]> = (0..3)
        .map(|i| [malformed_count(&lab, i, 0), malformed_count(&lab, i, 1)])
        .collect();
    // Underlay: frames from a rogue port on the switch, to each appliance's MAC.
    let mut frames = Vec::new();
    for (i, n) in lab.nodes().iter().enumerate() {
        let mac = lab.vm(i).mac(0).unwrap().0;
        frames.extend(malformed(mac, [192, 168, 100, 66], n.underlay.octets()));
    }
    let queue = Arc::new(Mutex::new(frames.clone()));
    let port = ok(lab.wire().attach(Box::new(Injector(queue.clone()))));
    // Segments: the same kinds of frames from each workload to its appliance.
    let per_node = frames.len() / 3;
    for i in 0..3 {
        let mac = lab.vm(i).mac(1).unwrap().0;
        let src = lab.workload_v4(i).unwrap().octets();
        let dst = lab.nodes()[(i + 1) % 3].overlay_v4.octets();
        send_raw(lab.workload(i), WORKLOAD_IF, &malformed(mac, src, dst));
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let now: Vec<[u64; 2]> = (0..3)
            .map(|i| [malformed_count(&lab, i, 0), malformed_count(&lab, i, 1)])
            .collect();
        let done = (0..3).all(|i| (0..2).all(|l| now[i][l] - before[i][l] >= per_node as u64));
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "malformed counters {before:?} -> {now:?}, expected +{per_node} on each link\n{}",
            consoles(&lab)
        );
        thread::sleep(Duration::from_millis(500));
    }
    lab.wire().detach(port);
    assert!(
        queue.lock().unwrap().is_empty(),
        "the switch took every frame"
    );
    // The mesh still works.
    ok(lab.workload(0).ping(v4(&lab, 2), TIMEOUT));
}

#[test]
fn egress_nat_takes_a_workload_to_the_host_and_only_that_node() {
    use std::io::Read;
    use std::net::TcpListener;
    // node1 has a third NIC on QEMU's user-mode network with `Egress = nat`: its workload
    // reaches the host at 10.0.2.2 (QEMU maps it to the host's loopback), masqueraded
    // as 10.0.2.15. node2 has no way out.
    let (_turn, lab) = lab("egress_nat", Topology::new(2).internet(0));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let send = format!("echo through-the-nat > /dev/tcp/10.0.2.2/{port}");
    let got = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    });
    let out = run_in(lab.workload(0), "timeout", &["10", "bash", "-c", &send]);
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        consoles(&lab)
    );
    assert_eq!(got.join().unwrap(), "through-the-nat\n");
    // ICMP echo goes out too (QEMU's user network answers pings to its gateway).
    ok(lab.workload(0).ping("10.0.2.2".parse().unwrap(), TIMEOUT));
    // The other node's workload has no such route.
    let (replied, out) = ping(lab.workload(1), "10.0.2.2".parse().unwrap(), &[]);
    assert!(!replied, "{out}");
    assert!(
        out.contains("Destination Net Unreachable") || out.contains("filtered"),
        "{out}"
    );
}

#[test]
fn a_cut_path_parts_only_its_two_nodes_and_a_hidden_node_is_reached_once_it_reaches_out() {
    use vdcnet_qemu::LinkPolicy;
    // The path node1–node2 is cut (their cables are fine); node3 is hidden: nodes 1 and 2
    // have no endpoint for it, and the switch filters like a NAT in front of it. Without
    // routing (tests/routing.rs has the lab with it), nothing carries node1–node2 traffic.
    let plan = vdcnet_qemu::mesh::MeshPlan {
        nodes: 3,
        routing: false,
        ..vdcnet_qemu::mesh::MeshPlan::default()
    };
    let topo = Topology::new(3)
        .plan(plan)
        .pair(0, 1, LinkPolicy::cut())
        .hidden(2);
    let (_turn, mut lab) = lab("a_cut_path_and_a_hidden_node", topo);
    assert!(lab.is_behind_nat(2) && !lab.is_behind_nat(0));
    for i in [0, 1] {
        let cfg = &lab.nodes()[i].config;
        assert!(!cfg.contains("Endpoint = 192.168.100.3:"), "{cfg}");
    }
    // The hidden node's workload reaches out first; then the others reach it.
    for (i, j) in [(2, 0), (2, 1), (0, 2), (1, 2)] {
        if let Err(e) = lab.workload(i).ping(v4(&lab, j), Duration::from_secs(60)) {
            panic!("node{} -> node{}: {e}\n{}", i + 1, j + 1, consoles(&lab));
        }
    }
    // node1 and node2 cannot talk; what they send each other (ARP first) dies on the path.
    let (replied, out) = ping(lab.workload(0), v4(&lab, 1), &[]);
    assert!(!replied, "node1 reached node2 through a cut path: {out}");
    let (replied, out) = ping(lab.workload(1), v4(&lab, 0), &[]);
    assert!(!replied, "node2 reached node1 through a cut path: {out}");
    for i in [0, 1] {
        assert!(
            lab.underlay_stats(i).unwrap().dropped_cut > 0,
            "node{}",
            i + 1
        );
    }
    assert_eq!((lab.frames_between(0, 1), lab.frames_between(1, 0)), (0, 0));
    assert!(lab.frames_between(0, 2) > 0 && lab.frames_between(2, 1) > 0);
    // Unsolicited WireGuard to the hidden node from a stranger on the underlay is
    // dropped by its NAT and counted.
    let nat_before = lab.underlay_stats(2).unwrap().dropped_nat;
    let mac = lab.vm(2).mac(0).unwrap().0;
    let udp = [0xc3, 0x50, 0xca, 0x6c, 0, 12, 0, 0, 1, 0, 0, 0]; // 50000 -> 51820
    let frame = eth(
        mac,
        0x0800,
        &ipv4(
            [192, 168, 100, 66],
            lab.nodes()[2].underlay.octets(),
            17,
            &udp,
        ),
    );
    let queue = Arc::new(Mutex::new(vec![frame; 3]));
    let port = ok(lab.wire().attach(Box::new(Injector(queue.clone()))));
    let deadline = Instant::now() + TIMEOUT;
    while lab.underlay_stats(2).unwrap().dropped_nat < nat_before + 3 {
        assert!(Instant::now() < deadline, "the NAT let a stranger through");
        thread::sleep(Duration::from_millis(100));
    }
    lab.wire().detach(port);
    // The path restored, node1 and node2 talk again.
    lab.set_pair_policy(0, 1, LinkPolicy::default());
    if let Err(e) = lab.workload(0).ping(v4(&lab, 1), Duration::from_secs(60)) {
        panic!("after restoring the path: {e}\n{}", consoles(&lab));
    }
    assert!(lab.frames_between(0, 1) > 0 && lab.frames_between(1, 0) > 0);
}

/// The smallest round trip in ping's output (`rtt min/avg/max/mdev = a/b/c/d ms`).
fn min_rtt(out: &str) -> Duration {
    let stats = out
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .unwrap_or_else(|| panic!("no rtt line in {out}"));
    let min: f64 = stats
        .split('=')
        .nth(1)
        .unwrap()
        .trim()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    Duration::from_secs_f64(min / 1000.0)
}

#[test]
fn the_square_lab_delays_each_path_by_its_own_policy() {
    let file = vdcnet_qemu::workspace_root().join("qemu/labs/square4.lab");
    let mut topo = ok(Topology::load(&file));
    // The switch's delays are what is measured here: without routing, each tunnel takes
    // its direct path (tests/routing.rs has this shape with Babel choosing the detour).
    topo.plan.routing = false;
    let (_turn, lab) = lab("the_square_lab_delays_each_path", topo);
    let rtt = |i: usize, j: usize| {
        let dst = v4(&lab, j);
        ok(lab.workload(i).ping(dst, TIMEOUT)); // the tunnel is up
        let (replied, out) = ping(lab.workload(i), dst, &["-c", "5", "-i", "0.2"]);
        assert!(
            replied,
            "node{} -> node{}: {out}\n{}",
            i + 1,
            j + 1,
            consoles(&lab)
        );
        min_rtt(&out)
    };
    // Without routing the tunnel takes the direct path: twice its one-way delay at least.
    let direct = rtt(0, 1);
    assert!(
        direct >= Duration::from_millis(160),
        "node1 -> node2 {direct:?}"
    );
    let short = rtt(0, 2);
    assert!(
        short >= Duration::from_millis(20),
        "node1 -> node3 {short:?}"
    );
    // node1–node3 does not cross the 80 ms path (a wide margin: 140 ms).
    assert!(
        short < direct,
        "node1 -> node3 {short:?}, node1 -> node2 {direct:?}"
    );
    let clean = rtt(2, 3);
    assert!(clean < direct, "node3 -> node4 {clean:?}");
    eprintln!(
        "square4 min RTT: node1->node2 {direct:?}, node1->node3 {short:?}, node3->node4 {clean:?}"
    );
}
