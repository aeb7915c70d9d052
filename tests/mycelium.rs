//! The appliance as a Mycelium node, against the real myceliumd 0.7.10.
//!
//! One setup serves every assertion: a two-node lab (`vdcnet_qemu::lab`), both nodes with
//! a `[Mycelium]` section peered with myceliumd on a host of the underlay
//! (`UnderlayHost`, 192.168.100.200, with its TUN `myc0`). Node 1's segment says
//! `Planetary = yes`; node 2's does not, and node 2 is a web gateway whose backend is node
//! 1's workload at its 400::/7 address.
//!
//! The test passes only if
//! - node 1 prints the Mycelium address `mycelium inspect` derives from its key;
//! - myceliumd selects routes to both appliances' /64s;
//! - node 1's workload configures a 400::/7 address by SLAAC from the RAs, pings
//!   myceliumd's address and fetches a page from a server on it, and myceliumd's host
//!   fetches a page from the workload;
//! - node 2's workload (a segment that did not opt in) gets no 400::/7 address and cannot
//!   reach 400::/7 even from an address it makes up;
//! - the appliances reach each other over the chain node 1 — myceliumd — node 2: node 1's
//!   workload talks to node 2's TCP echo at node 2's Mycelium address, and node 2's
//!   gateway serves a client on the underlay from node 1's workload over Mycelium;
//! - after myceliumd restarts, traffic resumes by itself.

use rand_core::{OsRng, RngCore};
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};
use vdcnet_appliance::mycelium::SecretKey;
use vdcnet_qemu::lab::{Lab, Topology};
use vdcnet_qemu::{Netns, TempDir, UnderlayHost};
use vdcnet_tests::{
    cli, json_str, mycelium_binary, mycelium_inspect, ok, output_text, require_root, run_in,
    spawn_in, wait_listening, Myceliumd,
};

/// myceliumd's underlay address.
const MYC_HOST: &str = "192.168.100.200";
/// Node 2's underlay address (its gateway listens there).
const GW: &str = "192.168.100.2";
/// Generous bounds for two TCG guests on a shared machine (not timings).
const SLOW: Duration = Duration::from_secs(60);

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Polls `f` every half second until it gives `Ok`, or panics after `within`.
fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("{what}: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn curl(ns: &Netns, args: &[&str]) -> Result<String, String> {
    let mut a = vec!["-sS", "--fail", "--max-time", "10", "-g"];
    a.extend_from_slice(args);
    let out = run_in(ns, "curl", &a);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(output_text(&out))
    }
}

/// The interface's global IPv6 addresses in `ns`.
fn v6_addrs(ns: &Netns) -> Vec<Ipv6Addr> {
    let out = run_in(ns, "ip", &["-6", "-o", "addr", "show", "scope", "global"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.contains("tentative"))
        .filter_map(|l| {
            let a = l.split_whitespace().skip_while(|w| *w != "inet6").nth(1)?;
            a.split('/').next()?.parse().ok()
        })
        .collect()
}

fn overlay(a: &Ipv6Addr) -> bool {
    a.octets()[0] & 0xfe == 0x04
}

/// A TCP echo round trip from `ns` to `addr` port 7.
fn echo(ns: &Netns, addr: Ipv6Addr) -> Result<(), String> {
    let code = format!(
        "import socket\ns=socket.create_connection(('{addr}',7),5)\ns.sendall(b'planetary')\n\
         d=b''\nwhile len(d)<9:\n    c=s.recv(64)\n    if not c: break\n    d+=c\n\
         assert d==b'planetary', d\n"
    );
    let out = run_in(ns, "python3", &["-c", &code]);
    if out.status.success() {
        Ok(())
    } else {
        Err(output_text(&out))
    }
}

fn start_daemon(bin: &Path, ns: &Netns, dir: &Path) -> Myceliumd {
    let d = Myceliumd::start(bin, ns, dir);
    wait_listening(ns, MYC_HOST, 9651);
    d
}

#[test]
fn the_appliance_is_a_mycelium_node_and_its_planetary_segment_reaches_myceliumd() {
    require_root("the Mycelium test (QEMU, namespaces, a TUN)");
    let bin = mycelium_binary();
    let keys: Vec<[u8; 32]> = (0..2)
        .map(|_| {
            let mut k = [0u8; 32];
            OsRng.fill_bytes(&mut k);
            k
        })
        .collect();
    let pks: Vec<_> = keys
        .iter()
        .map(|k| SecretKey::from_bytes(*k).public_key())
        .collect();
    let node_addr: Vec<Ipv6Addr> = pks.iter().map(|p| p.address()).collect();
    // Node 1's workload, by SLAAC (EUI-64 of the lab's MAC 52:54:00:57:00:01) in node 1's /64.
    let mut w1 = node_addr[0].octets();
    w1[8..].copy_from_slice(&[0x50, 0x54, 0x00, 0xff, 0xfe, 0x57, 0x00, 0x01]);
    let w1 = Ipv6Addr::from(w1);
    let gateway = format!(
        "
[Gateway]
Listen = {GW}

[Service]
Name = planetary.example
Mode = http
Backend = [{w1}]:8000
CheckInterval = 1000
"
    );
    let k2 = keys.clone();
    let topo = Topology::new(2)
        .append(0, "vdcnet.stats=5")
        .append(1, "vdcnet.stats=5")
        .edit_config(move |i, text| {
            let mut t = text.to_string();
            if i == 0 {
                t = t.replacen("Role = segment\n", "Role = segment\nPlanetary = yes\n", 1);
            }
            t.push_str(&format!(
                "\n[Mycelium]\nPrivateKey = {}\nPeer = tcp://{MYC_HOST}:9651\n",
                hex(&k2[i])
            ));
            if i == 1 {
                t.push_str(&gateway);
            }
            t
        });
    let lab = ok(Lab::start(&topo));
    let host = ok(UnderlayHost::attach(
        lab.wire(),
        &[format!("{MYC_HOST}/24")],
    ));
    let hns = host.netns();
    let dir = ok(TempDir::new("mycelium-lab"));
    let mut their = [0u8; 32];
    OsRng.fill_bytes(&mut their);
    std::fs::write(dir.path().join("mycelium.key"), their).expect("key file");
    let mut daemon = Some(start_daemon(&bin, hns, dir.path()));
    let inspect = mycelium_inspect(&bin, &dir.path().join("mycelium.key"), None);
    let their_addr: Ipv6Addr = json_str(&inspect, "address")
        .and_then(|a| a.parse().ok())
        .expect("inspect prints address");
    let log = |d: &Option<Myceliumd>| d.as_ref().map(|d| d.log_tail()).unwrap_or_default();

    // The printed address is the one mycelium derives from the key.
    for (i, pk) in pks.iter().enumerate() {
        let line = ok(lab.vm(i).wait_for_line("vdcnet: mycelium address", SLOW));
        let out = mycelium_inspect(&bin, &dir.path().join("cli-no-key"), Some(&pk.to_string()));
        let theirs = json_str(&out, "address").expect("inspect KEY: address");
        assert!(
            line.contains(&format!("address {theirs} ")),
            "node{} printed {line:?}; mycelium inspect says {theirs}",
            i + 1
        );
    }

    // myceliumd selects both appliances' /64s.
    let selected = eventually(SLOW, "myceliumd selects both /64s", || {
        let s = cli(&bin, hns, dir.path(), &["routes", "selected", "--json"]);
        let all = pks
            .iter()
            .all(|p| s.contains(&format!("\"{}\"", p.subnet())));
        if all {
            Ok(s)
        } else {
            Err(format!("{s}\n{}", log(&daemon)))
        }
    });
    assert!(selected.contains(&format!("\"{}\"", pks[0].subnet())));

    // Node 1's workload: a 400::/7 address by SLAAC, and myceliumd answers its pings.
    let ws1 = lab.workload(0);
    eventually(SLOW, "node 1's workload gets its 400::/7 address", || {
        let a = v6_addrs(ws1);
        if a.contains(&w1) {
            Ok(())
        } else {
            Err(format!("addresses {a:?}, expected {w1}"))
        }
    });
    if let Err(e) = ws1.ping(IpAddr::V6(their_addr), SLOW) {
        panic!(
            "node 1's workload cannot ping myceliumd at {their_addr}: {e}\nconsole:\n{}\nmyceliumd:\n{}",
            lab.vm(0).evidence(),
            log(&daemon)
        );
    }

    // A page from a server on myceliumd's TUN address, and the other way round.
    let www = ok(TempDir::new("mycelium-www"));
    std::fs::write(www.path().join("hello.txt"), "hello from myceliumd\n").unwrap();
    let wdir = www.path().to_str().unwrap();
    let ta = their_addr.to_string();
    let _srv = spawn_in(
        hns,
        "python3",
        &[
            "-m",
            "http.server",
            "8080",
            "--bind",
            &ta,
            "--directory",
            wdir,
        ],
    );
    wait_listening(hns, &ta, 8080);
    let body = eventually(SLOW, "workload fetches from myceliumd", || {
        curl(ws1, &[&format!("http://[{their_addr}]:8080/hello.txt")])
    });
    assert_eq!(body, "hello from myceliumd\n");
    let www1 = ok(TempDir::new("mycelium-www1"));
    std::fs::write(www1.path().join("hello.txt"), "hello from workload 1\n").unwrap();
    let w1s = w1.to_string();
    let _srv1 = spawn_in(
        ws1,
        "python3",
        &[
            "-m",
            "http.server",
            "8000",
            "--bind",
            &w1s,
            "--directory",
            www1.path().to_str().unwrap(),
        ],
    );
    wait_listening(ws1, &w1s, 8000);
    let body = eventually(SLOW, "myceliumd's host fetches from the workload", || {
        curl(hns, &[&format!("http://[{w1}]:8000/hello.txt")])
    });
    assert_eq!(body, "hello from workload 1\n");
    // The node in node 1's metrics: its peer up, routes selected, packets delivered.
    let metrics = format!("http://{}:9100/metrics", lab.nodes()[0].overlay_v4);
    let body = eventually(SLOW, "node 1's metrics show its Mycelium peer up", || {
        let body = curl(ws1, &[&metrics])?;
        let has = |line: &str| body.lines().any(|l| l == line);
        if has("vdcnet_mycelium_peers{state=\"up\"} 1") {
            Ok(body)
        } else {
            Err(body)
        }
    });
    let count = |name: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(count("vdcnet_mycelium_routes_selected") >= 1.0, "{body}");
    assert!(
        count("vdcnet_mycelium_packets_total{what=\"delivered\"}") >= 1.0,
        "{body}"
    );
    assert!(
        count("vdcnet_mycelium_packets_total{what=\"sealed\"}") >= 1.0,
        "{body}"
    );

    // Node 2's segment did not opt in: no 400::/7 address, and nothing gets through even
    // from an address made up inside node 2's /64.
    let ws2 = lab.workload(1);
    assert!(
        !v6_addrs(ws2).iter().any(overlay),
        "node 2's workload got a 400::/7 address: {:?}",
        v6_addrs(ws2)
    );
    assert!(
        ws2.ping_once(IpAddr::V6(their_addr), Duration::from_secs(2))
            .is_err(),
        "a segment that did not opt in reached myceliumd"
    );
    let mut fake = node_addr[1].octets();
    fake[15] ^= 0x55;
    let fake = Ipv6Addr::from(fake);
    ok(ws2
        .ip(&[
            "-6",
            "addr",
            "add",
            &format!("{fake}/64"),
            "dev",
            "eth0",
            "nodad",
        ])
        .map(|_| ()));
    let out = run_in(
        ws2,
        "ping",
        &[
            "-6",
            "-n",
            "-c",
            "2",
            "-W",
            "2",
            "-I",
            &fake.to_string(),
            &ta,
        ],
    );
    assert!(
        !out.status.success(),
        "node 2's segment reached 400::/7 from {fake}: {}",
        output_text(&out)
    );

    // The chain node 1 — myceliumd — node 2, both ways: node 2's TCP echo at its Mycelium
    // address, and node 2's gateway serving node 1's workload over Mycelium.
    eventually(SLOW, "echo at node 2's Mycelium address", || {
        echo(ws1, node_addr[1])
    });
    let body = eventually(
        SLOW,
        "node 2's gateway serves from node 1's workload",
        || {
            curl(
                hns,
                &[
                    "-H",
                    "Host: planetary.example",
                    &format!("http://{GW}/hello.txt"),
                ],
            )
        },
    );
    assert_eq!(body, "hello from workload 1\n");

    // myceliumd restarts (a new router-id, its peers reconnecting): traffic resumes.
    drop(daemon.take());
    daemon = Some(start_daemon(&bin, hns, dir.path()));
    let t = Instant::now();
    if let Err(e) = ws1.ping(IpAddr::V6(their_addr), SLOW) {
        panic!(
            "no traffic after myceliumd restarted: {e}\nconsole:\n{}\nmyceliumd:\n{}",
            lab.vm(0).evidence(),
            log(&daemon)
        );
    }
    eprintln!(
        "traffic resumed {:?} after myceliumd restarted",
        t.elapsed()
    );
    eventually(SLOW, "echo at node 2 after the restart", || {
        echo(ws1, node_addr[1])
    });
}
