//! Several gateways per app: a four-node lab (`vdcnet_qemu::lab`) where node 1 and node 2
//! are gateways (each the other's `Peer`, both authoritative for example.org) and the
//! backends are nginx in node 3's and node 4's workload namespaces. On the underlay (the
//! lab's "internet"): a real recursive resolver (unbound, the zone delegated to both
//! gateways by a stub zone), a client that resolves through it and tries the next address
//! when one fails, as browsers do (curl), and a workload that holds its own WireGuard key
//! (wireguard-go) and peers with both gateways directly.
//!
//! One lab serves every assertion, in order: DNS answers from both gateways list both,
//! rotated, and refuse other zones; the workload with its own key is served under its
//! name, moves to another underlay address with the same key and is served again; a
//! workload of node 3's segment (a VDC-wide static lease on every node) moves with its
//! address to node 4's segment, back home and to node 4 again, served under its name after
//! each move; the client keeps getting answers while node 1 (a gateway) is killed and while
//! node 3 (a backend, and the moved workload's home) is killed; the dead gateway leaves
//! the survivor's answers and comes back after its reboot. The requests that failed, and
//! for how long, are printed.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use vdcnet_qemu::lab::{Lab, Topology, WORKLOAD_IF};
use vdcnet_qemu::{Mac, Netns, TempDir, UnderlayHost};
use vdcnet_tests::{
    nginx_in, ok, output_text, require_root, run_in, spawn_in, wait_listening, Killed,
};

const GW: [&str; 2] = ["192.168.100.1", "192.168.100.2"];
const RESOLVER: &str = "192.168.100.53";
const CLIENT: &str = "192.168.100.200";
/// The workload with its own WireGuard key: its address inside the VDC, and the two
/// underlay addresses it lives at, before and after the move.
const ROAMER: &str = "10.20.99.10";
const ROAMER_AT: [&str; 2] = ["192.168.100.60", "192.168.100.61"];
const B3: &str = "10.20.3.10";
const B4: &str = "10.20.4.10";
/// The workload that moves between segments with its address: at home on node 3's.
const MOVER: &str = "10.20.3.20";
const MOVER_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x33, 0x00, 0x20];
/// Waits for things that must happen (never a timing assertion: the times are printed).
const SLOW: Duration = Duration::from_secs(90);

fn gateway_sections(i: usize, roamer_key: &str) -> String {
    let own = GW[i];
    let peer = format!("10.20.{}.1", 2 - i);
    format!(
        "
[Peer]                      # the workload that holds its own key
PublicKey = {roamer_key}
AllowedIPs = {ROAMER}/32

[Gateway]
Listen = {own}
Peer = {peer}
ConnectTimeout = 2

[Service]
Name = www.example.org
Mode = http
Backend = {B3}:8080, {B4}:8080
HealthCheck = http /health
CheckInterval = 1000
CheckTimeout = 500

[Service]
Name = app.example.org
Mode = http
Backend = {ROAMER}:8080

[Service]
Name = moved.example.org
Mode = http
Backend = {MOVER}:8080
HealthCheck = http /health
CheckInterval = 1000
CheckTimeout = 500

[DNS]
Zone = example.org
TTL = 5
NameServer = ns1.example.org, {}
NameServer = ns2.example.org, {}
",
        GW[0], GW[1]
    )
}

/// `dig +short` of `name`'s A records at `server`: the addresses, in order.
fn dig(ns: &Netns, server: &str, name: &str) -> Vec<String> {
    let out = run_in(
        ns,
        "dig",
        &[
            "+short",
            "+time=2",
            "+tries=1",
            &format!("@{server}"),
            name,
            "A",
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| l.parse::<IpAddr>().is_ok())
        .map(str::to_string)
        .collect()
}

fn dig_status(ns: &Netns, server: &str, name: &str) -> String {
    let out = run_in(
        ns,
        "dig",
        &["+time=2", "+tries=1", &format!("@{server}"), name, "A"],
    );
    let text = output_text(&out);
    text.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("(no answer)")
        .to_string()
}

/// Waits until `ok` holds of `dig`'s answer; how long that took.
#[track_caller]
fn wait_dig(
    ns: &Netns,
    server: &str,
    name: &str,
    what: &str,
    ok: impl Fn(&[String]) -> bool,
) -> Duration {
    wait_or(
        what,
        || ok(&dig(ns, server, name)),
        || format!("{server} still answers {:?}", dig(ns, server, name)),
    )
}

/// curl by name in the namespace called `ns` through its resolver, trying each address
/// it gets.
fn get(ns: &str, name: &str) -> (bool, String) {
    let out = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "curl",
            "-sS",
            "--fail",
            "--connect-timeout",
            "4",
        ])
        .args(["--max-time", "10", &format!("http://{name}/")])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("curl runs");
    if out.status.success() {
        (true, String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        (false, output_text(&out))
    }
}

/// unbound on the underlay, the zone delegated to both gateways.
fn unbound(ns: &Netns, dir: &Path) -> Killed {
    let d = dir.display();
    let conf = format!(
        "server:
    interface: {RESOLVER}
    port: 53
    access-control: 192.168.100.0/24 allow
    do-not-query-localhost: no
    do-ip6: no
    username: \"\"
    chroot: \"\"
    directory: \"{d}\"
    pidfile: \"{d}/unbound.pid\"
    use-syslog: no
    logfile: \"{d}/unbound.log\"
    module-config: \"iterator\"
    infra-host-ttl: 5
    infra-keep-probing: yes
stub-zone:
    name: \"example.org\"
    stub-addr: {}
    stub-addr: {}
",
        GW[0], GW[1]
    );
    let path = dir.join("unbound.conf");
    std::fs::write(&path, conf).unwrap();
    spawn_in(ns, "unbound", &["-d", "-c", path.to_str().unwrap()])
}

/// A namespace's own resolv.conf (`ip netns exec` mounts /etc/netns/NAME/ over /etc).
struct ResolvConf(std::path::PathBuf);

impl ResolvConf {
    fn point(ns: &Netns, server: &str) -> ResolvConf {
        let dir = Path::new("/etc/netns").join(ns.name());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("resolv.conf"),
            format!("nameserver {server}\noptions timeout:2 attempts:2\n"),
        )
        .unwrap();
        ResolvConf(dir)
    }
}

impl Drop for ResolvConf {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// wireguard-go in `ns` as the workload with its own key, peering with both gateways,
/// its web server on the tunnel address.
fn roamer(
    ns: &Netns,
    dir: &Path,
    key: &str,
    gateways: &[String; 2],
    tag: &str,
) -> (Killed, Killed) {
    // A name of this process's own: wireguard-go's control sockets share one directory
    // across namespaces, and a killed one leaves its socket behind.
    let ifname = format!("wgr{}{tag}", std::process::id() % 100_000);
    let _ = std::fs::remove_file(format!("/var/run/wireguard/{ifname}.sock"));
    let wg = ns
        .command("wireguard-go")
        .args(["-f", &ifname])
        .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("wireguard-go runs");
    let wg = Killed(wg);
    // Ready once its UAPI socket answers (the file may exist a moment before).
    let t = Instant::now();
    while !run_in(ns, "wg", &["show", &ifname]).status.success() {
        assert!(
            t.elapsed() < SLOW,
            "wireguard-go's {ifname} never answered `wg show`"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let key_file = dir.join(format!("roamer{tag}.key"));
    std::fs::write(&key_file, key).unwrap();
    let set = run_in(
        ns,
        "wg",
        &[
            "set",
            &ifname,
            "private-key",
            key_file.to_str().unwrap(),
            "peer",
            &gateways[0],
            "endpoint",
            &format!("{}:51820", GW[0]),
            "allowed-ips",
            "10.20.1.0/24",
            "persistent-keepalive",
            "1",
            "peer",
            &gateways[1],
            "endpoint",
            &format!("{}:51820", GW[1]),
            "allowed-ips",
            "10.20.2.0/24",
            "persistent-keepalive",
            "1",
        ],
    );
    assert!(set.status.success(), "wg set: {}", output_text(&set));
    ok(ns
        .ip(&["addr", "add", &format!("{ROAMER}/32"), "dev", &ifname])
        .map(|_| ()));
    ok(ns.ip(&["link", "set", &ifname, "up"]).map(|_| ()));
    ok(ns
        .ip(&["route", "add", "10.20.1.0/24", "dev", &ifname])
        .map(|_| ()));
    ok(ns
        .ip(&["route", "add", "10.20.2.0/24", "dev", &ifname])
        .map(|_| ()));
    let page = dir.join(format!("roamer{tag}"));
    std::fs::create_dir_all(&page).unwrap();
    std::fs::write(page.join("index.html"), format!("roamer at {tag}\n")).unwrap();
    let web = spawn_in(
        ns,
        "python3",
        &[
            "-m",
            "http.server",
            "8080",
            "--bind",
            ROAMER,
            "--directory",
            page.to_str().unwrap(),
        ],
    );
    (wg, web)
}

/// Requests for www every 300 ms from another thread; what came of each, and when.
struct Traffic {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<(Instant, bool, String)>>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(ns: String) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (s, l) = (stop.clone(), log.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let (good, body) = get(&ns, "www.example.org");
                l.lock().unwrap().push((Instant::now(), good, body));
                thread::sleep(Duration::from_millis(300));
            }
        });
        Traffic {
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// Requests since `from`: (total, failed, the longest run of failures and how long it lasted).
    fn since(&self, from: Instant) -> (usize, Vec<String>, Duration) {
        let log = self.log.lock().unwrap();
        let recent: Vec<_> = log.iter().filter(|(t, _, _)| *t >= from).collect();
        let failed: Vec<String> = recent
            .iter()
            .filter(|(_, g, _)| !g)
            .map(|(_, _, b)| b.trim().to_string())
            .collect();
        let mut longest = Duration::ZERO;
        let mut start: Option<Instant> = None;
        for (t, good, _) in &recent {
            match (good, start) {
                (false, None) => start = Some(*t),
                (true, Some(s)) => {
                    longest = longest.max(*t - s);
                    start = None;
                }
                _ => {}
            }
        }
        if let (Some(s), Some((t, _, _))) = (start, recent.last()) {
            longest = longest.max(*t - s);
        }
        (recent.len(), failed, longest)
    }

    /// Whether the last `n` requests all succeeded.
    fn last_ok(&self, n: usize) -> bool {
        let log = self.log.lock().unwrap();
        log.len() >= n && log[log.len() - n..].iter().all(|(_, g, _)| *g)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Node `i`'s latest stats line and its peer lines from boot.
/// Plugs the moving workload's namespace into node `node`'s segment: a macvlan with its
/// MAC on that workload namespace's interface, moved into `mover`, then DHCP there as the
/// lab's workloads do. Returns the address and prefix length it got.
fn plug_mover(lab: &Lab, node: usize, mover: &Netns) -> String {
    let mac = Mac(MOVER_MAC).to_string();
    let ws = lab.workload(node);
    ok(ws
        .ip(&[
            "link",
            "add",
            "mv0",
            "link",
            WORKLOAD_IF,
            "address",
            &mac,
            "type",
            "macvlan",
            "mode",
            "bridge",
        ])
        .map(|_| ()));
    ok(ws
        .ip(&["link", "set", "mv0", "netns", mover.name()])
        .map(|_| ()));
    ok(mover.ip(&["link", "set", "mv0", "up"]).map(|_| ()));
    let script = lab.dhcp_script().to_str().unwrap().to_string();
    let out = run_in(
        mover,
        "busybox",
        &[
            "udhcpc",
            "-i",
            "mv0",
            "-q",
            "-n",
            "-t",
            "10",
            "-O",
            "staticroutes",
            "-s",
            &script,
        ],
    );
    assert!(
        out.status.success(),
        "udhcpc on node{}'s segment: {}",
        node + 1,
        output_text(&out)
    );
    let addr = run_in(mover, "ip", &["-4", "-o", "addr", "show", "dev", "mv0"]);
    let text = output_text(&addr);
    text.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or("(none)")
        .to_string()
}

/// Unplugs the moving workload: its interface goes, with no word to the appliance.
fn unplug_mover(mover: &Netns) {
    ok(mover.ip(&["link", "del", "mv0"]).map(|_| ()));
}

fn gateway_stats(lab: &Lab, i: usize) -> String {
    let console = lab.vm(i).console();
    let mut lines = console.matching("vdcnet: peer");
    lines.extend(console.matching("vdcnet: stats").pop());
    lines.join("\n")
}

#[track_caller]
fn wait_until(what: &str, f: impl Fn() -> bool) -> Duration {
    wait_or(what, f, String::new)
}

/// Waits until `f` holds, for at most [`SLOW`]; on failure says `what` and what `evidence`
/// shows then. How long it took.
#[track_caller]
fn wait_or(what: &str, f: impl Fn() -> bool, evidence: impl Fn() -> String) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < SLOW, "{what}\n{}", evidence());
        thread::sleep(Duration::from_millis(200));
    }
    t.elapsed()
}

/// Both gateways' consoles: their peers and last stats lines.
fn both_gateways(lab: &Lab) -> String {
    format!(
        "gateway stats:\n{}\n{}",
        gateway_stats(lab, 0),
        gateway_stats(lab, 1)
    )
}

#[test]
fn several_gateways_keep_a_name_up_through_lost_gateways_and_nodes_and_moved_workloads() {
    require_root("the redundancy test");
    let dir = ok(TempDir::new("redundancy"));
    let roamer_keys = wg_keys();
    let roamer_public = roamer_keys.1.clone();
    let topo = Topology::new(4)
        .static_v4(2, B3.parse().unwrap())
        .static_v4(3, B4.parse().unwrap())
        .lease(Mac(MOVER_MAC), MOVER.parse().unwrap())
        .append(0, "vdcnet.stats=1")
        .append(1, "vdcnet.stats=1")
        .append(3, "vdcnet.stats=1")
        .edit_config(move |i, text| match i {
            0 | 1 => format!("{text}{}", gateway_sections(i, &roamer_public)),
            _ => text.to_string(),
        });
    let mut lab = ok(Lab::start(&topo));
    let gateway_keys = [
        lab.nodes()[0].public_key.clone(),
        lab.nodes()[1].public_key.clone(),
    ];
    let mut servers = Vec::new();
    for (i, addr) in [(2, B3), (3, B4)] {
        let d = dir.path().join(format!("node{}", i + 1));
        std::fs::create_dir_all(&d).unwrap();
        let servers_conf = format!(
            "    server {{\n        listen {addr}:8080;\n        location = /health {{ return 200 \"ok\\n\"; }}\n        \
             location / {{ return 200 \"node{}\\n\"; }}\n    }}",
            i + 1
        );
        servers.push(nginx_in(lab.workload(i), &d, &servers_conf));
        wait_listening(lab.workload(i), addr, 8080);
    }
    let resolver_host = ok(UnderlayHost::attach(
        lab.wire(),
        &[format!("{RESOLVER}/24")],
    ));
    let _unbound = unbound(resolver_host.netns(), dir.path());
    wait_listening(resolver_host.netns(), RESOLVER, 53);
    let client_host = ok(UnderlayHost::attach(lab.wire(), &[format!("{CLIENT}/24")]));
    let client = client_host.netns();
    let _resolv = ResolvConf::point(client, RESOLVER);

    // Each gateway answers with both, once it has heard from the other; rotated.
    for server in GW {
        let took = wait_or(
            &format!("both gateways listed by {server}"),
            || dig(client, server, "www.example.org").len() == 2,
            || {
                let got = dig(client, server, "www.example.org");
                format!("it answers {got:?}\n{}", both_gateways(&lab))
            },
        );
        eprintln!("{server} lists both gateways {took:.1?} after the lab was up");
    }
    let firsts: Vec<String> = (0..4)
        .map(|_| dig(client, GW[0], "www.example.org")[0].clone())
        .collect();
    assert!(
        firsts.iter().any(|a| a == GW[0]) && firsts.iter().any(|a| a == GW[1]),
        "rotated: {firsts:?}"
    );
    assert_eq!(dig_status(client, GW[0], "nope.example.org"), "NXDOMAIN");
    assert_eq!(dig_status(client, GW[1], "www.example.com"), "REFUSED");
    // Through the real resolver, and then by name with curl.
    let via = wait_dig(
        client,
        RESOLVER,
        "www.example.org",
        "unbound resolves through the gateways",
        |a| a.len() == 2,
    );
    eprintln!("unbound resolves www.example.org after {via:.1?}");
    let (good, body) = get(client.name(), "www.example.org");
    assert!(good && body.starts_with("node"), "curl by name: {body}");

    // A workload holding its own key, peered with both gateways, then moved.
    let roamer_a = ok(UnderlayHost::attach(
        lab.wire(),
        &[format!("{}/24", ROAMER_AT[0])],
    ));
    let (wg_a, web_a) = roamer(
        roamer_a.netns(),
        dir.path(),
        &roamer_keys.0,
        &gateway_keys,
        "a",
    );
    let took = wait_until("the workload with its own key is served by name", || {
        let (g, b) = get(client.name(), "app.example.org");
        g && b.contains("roamer at a")
    });
    eprintln!("the workload with its own key served {took:.1?} after it started");
    // Re-created elsewhere: the same host, another underlay address, a new wireguard-go
    // with the same key (and a new MAC address, as a new VM would have).
    drop((wg_a, web_a));
    let host = roamer_a.netns();
    ok(host
        .ip(&["addr", "flush", "dev", roamer_a.ifname()])
        .map(|_| ()));
    ok(host
        .ip(&[
            "link",
            "set",
            "dev",
            roamer_a.ifname(),
            "address",
            "02:00:00:00:61:61",
        ])
        .map(|_| ()));
    ok(host
        .ip(&[
            "addr",
            "add",
            &format!("{}/24", ROAMER_AT[1]),
            "dev",
            roamer_a.ifname(),
        ])
        .map(|_| ()));
    let roamer_b = roamer_a;
    let moved = Instant::now();
    let (_wg_b, _web_b) = roamer(
        roamer_b.netns(),
        dir.path(),
        &roamer_keys.0,
        &gateway_keys,
        "b",
    );
    wait_or(
        "the moved workload is served again under its name",
        || {
            let (g, b) = get(client.name(), "app.example.org");
            g && b.contains("roamer at b")
        },
        || {
            let wg = run_in(roamer_b.netns(), "wg", &["show", "all"]);
            format!(
                "last answer: {}\nits wg show:\n{}\n{}\ndig: {:?}",
                get(client.name(), "app.example.org").1,
                output_text(&wg),
                both_gateways(&lab),
                dig(client, GW[0], "app.example.org"),
            )
        },
    );
    eprintln!(
        "moved to {} with the same key: served again {:.1?} after it restarted there",
        ROAMER_AT[1],
        moved.elapsed()
    );

    // A workload of node 3's segment moves with its address: to node 4's segment (where
    // the lease is a /32 and node 4 announces a host route), back home (node 4 notices
    // it gone and withdraws the route), and to node 4 again.
    let mover = ok(Netns::create());
    let mover_dir = dir.path().join("mover");
    std::fs::create_dir_all(&mover_dir).unwrap();
    assert_eq!(plug_mover(&lab, 2, &mover), format!("{MOVER}/24"));
    let _mover_web = nginx_in(
        &mover,
        &mover_dir,
        "    server {\n        listen 8080;\n        location = /health { return 200 \"ok\\n\"; }\n        \
         location / { return 200 \"mover\\n\"; }\n    }",
    );
    wait_listening(&mover, MOVER, 8080);
    let took = wait_until("the workload on node 3's segment is served by name", || {
        let (g, b) = get(client.name(), "moved.example.org");
        g && b.starts_with("mover")
    });
    eprintln!("the workload at home on node 3's segment served {took:.1?} after it started");
    for (to, want) in [(3, "/32"), (2, "/24"), (3, "/32")] {
        unplug_mover(&mover);
        let moved = Instant::now();
        let got = plug_mover(&lab, to, &mover);
        assert_eq!(
            got,
            format!("{MOVER}{want}"),
            "DHCP on node{}'s segment",
            to + 1
        );
        wait_or(
            &format!(
                "the workload moved to node{}'s segment is served again",
                to + 1
            ),
            || {
                let (g, b) = get(client.name(), "moved.example.org");
                g && b.starts_with("mover")
            },
            || {
                format!(
                    "last answer: {}\n{}\nnode4: {}",
                    get(client.name(), "moved.example.org").1,
                    both_gateways(&lab),
                    gateway_stats(&lab, 3),
                )
            },
        );
        eprintln!(
            "the workload moved to node{}'s segment with its address ({got}): served again {:.1?} after it was plugged in",
            to + 1,
            moved.elapsed()
        );
    }
    // Its stats line (once a second) lists the visitor.
    let here = format!("here={MOVER}");
    wait_or(
        "node4 lists its visitor",
        || gateway_stats(&lab, 3).contains(&here),
        || gateway_stats(&lab, 3),
    );

    // Kill gateway 1: the client keeps getting answers; the survivor drops it from DNS.
    let traffic = Traffic::start(client.name().to_string());
    thread::sleep(Duration::from_secs(2));
    let killed = Instant::now();
    lab.vm(0).kill();
    let gone = wait_dig(
        client,
        GW[1],
        "www.example.org",
        "the killed gateway leaves the survivor's answers",
        |a| a == [GW[1]],
    );
    eprintln!("node1 (a gateway) killed: gone from node2's answers after {gone:.1?}");
    wait_until(
        "requests succeed again after the gateway was killed",
        || traffic.last_ok(5),
    );
    thread::sleep(Duration::from_secs(3));
    let (n, failed, longest) = traffic.since(killed);
    eprintln!("gateway killed: {} of {n} requests failed, longest failing stretch {longest:.1?}: {failed:?}", failed.len());
    assert!(
        failed.len() * 2 < n,
        "most requests must succeed: {failed:?}"
    );

    // Kill backend node 3: node 4 serves every request.
    let killed = Instant::now();
    lab.vm(2).kill();
    thread::sleep(Duration::from_secs(8));
    wait_until("requests succeed after the backend node was killed", || {
        traffic.last_ok(5)
    });
    let (n, failed, longest) = traffic.since(killed);
    eprintln!("backend node killed: {} of {n} requests failed, longest failing stretch {longest:.1?}: {failed:?}", failed.len());
    assert!(
        failed.len() * 2 < n,
        "most requests must succeed: {failed:?}"
    );
    let bodies: Vec<String> = (0..4)
        .map(|_| get(client.name(), "www.example.org").1)
        .collect();
    assert!(
        bodies.iter().all(|b| b.starts_with("node4")),
        "only node4 is left: {bodies:?}"
    );
    // The moved workload lives on without its home node.
    let (g, b) = get(client.name(), "moved.example.org");
    assert!(
        g && b.starts_with("mover"),
        "the workload visiting node 4 is served with node 3 dead: {b}"
    );

    // Both come back by themselves.
    ok(lab.restart(0));
    let back = wait_dig(
        client,
        GW[1],
        "www.example.org",
        "the rebooted gateway comes back",
        |a| a.len() == 2,
    );
    eprintln!("node1 rebooted: back in node2's answers after {back:.1?}");
    ok(lab.restart(2));
    wait_until("node3 serves again after its reboot", || {
        (0..4).any(|_| get(client.name(), "www.example.org").1.starts_with("node3"))
    });
    drop(traffic);
    drop(servers);
}

/// A WireGuard key pair from `wg genkey` / `wg pubkey`: (private, public).
fn wg_keys() -> (String, String) {
    let private = std::process::Command::new("wg")
        .arg("genkey")
        .output()
        .expect("wg genkey");
    let private = String::from_utf8_lossy(&private.stdout).trim().to_string();
    let mut child = std::process::Command::new("wg")
        .arg("pubkey")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("wg pubkey");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(private.as_bytes())
        .unwrap();
    let public = child.wait_with_output().unwrap();
    (
        private,
        String::from_utf8_lossy(&public.stdout).trim().to_string(),
    )
}
