//! Routing between appliances end to end: Babel over the tunnels of a five-node lab
//! (`vdcnet_qemu::lab`) with per-path delays, two hidden nodes behind NAT, and real
//! workloads (ping). One booted lab serves every assertion: the lower-RTT path wins, hidden
//! nodes are reached by everyone and reach each other, a cut path fails over within the
//! loss budget and traffic moves back when it returns.

use std::net::IpAddr;
use std::thread;
use std::time::{Duration, Instant};
use vdcnet_qemu::lab::{Lab, Topology};
use vdcnet_qemu::LinkPolicy;
use vdcnet_tests::{ok, require_root};

/// How long routes may take to settle after boot or a change the test waits out (not
/// the failover budget, which the ping loss measures).
const SETTLE: Duration = Duration::from_secs(60);

fn ms(n: u64) -> LinkPolicy {
    LinkPolicy {
        delay: Duration::from_millis(n),
        ..LinkPolicy::default()
    }
}

fn v4(lab: &Lab, i: usize) -> IpAddr {
    IpAddr::V4(
        lab.workload_v4(i)
            .expect("the workload got an address by DHCP"),
    )
}

fn consoles(lab: &Lab) -> String {
    (0..lab.len())
        .map(|i| format!("--- node{} ---\n{}", i + 1, lab.vm(i).evidence()))
        .collect()
}

/// Which node (index) node `i` forwards node `to`'s segment through, from the selected
/// routes on its latest stats line (`route=PREFIX@PEER:METRIC`, peers named by the
/// `vdcnet: peerK KEY` lines at boot).
fn route_via(lab: &Lab, i: usize, to: usize) -> Option<usize> {
    let console = lab.vm(i).console();
    let stats = console.matching("vdcnet: stats").pop()?;
    let prefix = lab.nodes()[to].segment_v4.to_string();
    let needle = format!(" route={prefix}@");
    let at = stats.find(&needle)? + needle.len();
    let peer: String = stats[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let line = console
        .matching(&format!("vdcnet: peer{peer} "))
        .into_iter()
        .next()?;
    lab.nodes()
        .iter()
        .position(|n| line.contains(&n.public_key))
}

/// Waits until `ok` holds for node `i`'s route toward node `to`.
#[track_caller]
fn wait_route(lab: &Lab, i: usize, to: usize, what: &str, ok: impl Fn(Option<usize>) -> bool) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let via = route_via(lab, i, to);
        if ok(via) {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "node{} toward node{}: {what}, but the route is via {:?}\n{}",
                i + 1,
                to + 1,
                via.map(|v| v + 1),
                consoles(lab)
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// The relay counter of node `i` (packets it forwarded between ports).
fn forwarded(lab: &Lab, i: usize) -> u64 {
    let stats = lab
        .vm(i)
        .console()
        .matching("vdcnet: stats")
        .pop()
        .unwrap_or_default();
    stats
        .split_whitespace()
        .find_map(|w| w.strip_prefix("fwd="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `ping -c count -i 0.1` from node `i`'s workload to `dst`: (sent, received).
fn ping_train(lab: &Lab, i: usize, dst: IpAddr, count: u32) -> (u32, u32, String) {
    let out = lab
        .workload(i)
        .command("ping")
        .args([
            "-4",
            "-n",
            "-q",
            "-i",
            "0.1",
            "-W",
            "1",
            "-c",
            &count.to_string(),
        ])
        .arg(dst.to_string())
        .output()
        .expect("ping runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("");
    let field = |name: &str| -> u32 {
        summary
            .split(',')
            .find(|p| p.contains(name))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("transmitted"), field("received"), text)
}

#[test]
fn babel_takes_the_shortest_path_reaches_hidden_nodes_and_fails_over_a_cut_path() {
    require_root("babel_takes_the_shortest_path_reaches_hidden_nodes_and_fails_over_a_cut_path");
    // node1–node2 direct: 80 ms each way; node1–node3 and node3–node2: 10 ms; nodes 4 and
    // 5 are hidden behind NAT on 30 ms cables (a detour that loses to node3's).
    let mut topo = Topology::new(5)
        .pair(0, 1, ms(80))
        .pair(0, 2, ms(10))
        .pair(2, 1, ms(10))
        .underlay(3, ms(30))
        .underlay(4, ms(30))
        .hidden(3)
        .hidden(4);
    for i in 0..5 {
        topo = topo.append(i, "vdcnet.stats=1");
    }
    let mut lab = ok(Lab::start(&topo));

    // Shortest path: two hops of 10 ms beat the direct 80 ms path, both ways.
    wait_route(&lab, 0, 1, "expected via node3", |v| v == Some(2));
    wait_route(&lab, 1, 0, "expected via node3", |v| v == Some(2));
    let relayed = forwarded(&lab, 2);
    let (sent, got, out) = ping_train(&lab, 0, v4(&lab, 1), 20);
    assert!(got >= sent - 2 && sent == 20, "{out}\n{}", consoles(&lab));
    thread::sleep(Duration::from_millis(1500)); // the next stats line
    assert!(
        forwarded(&lab, 2) >= relayed + 2 * u64::from(got),
        "node3 relays both directions: {} -> {}",
        relayed,
        forwarded(&lab, 2)
    );

    // Hidden nodes: every node reaches them, and they reach each other through a public one.
    for i in 0..5 {
        for j in [3, 4].into_iter().filter(|&j| j != i) {
            if let Err(e) = lab.workload(i).ping(v4(&lab, j), SETTLE) {
                panic!(
                    "node{} -> hidden node{}: {e}\n{}",
                    i + 1,
                    j + 1,
                    consoles(&lab)
                );
            }
        }
    }
    wait_route(
        &lab,
        3,
        4,
        "hidden nodes route through a public node",
        |v| v.is_some_and(|n| n < 3),
    );

    // Failover: cut node1–node3 under a 100 ms ping train; at most 20 lost (2 s).
    let dst = v4(&lab, 1);
    let (sent, got, out) = thread::scope(|s| {
        let h = s.spawn(|| ping_train(&lab, 0, dst, 120));
        thread::sleep(Duration::from_secs(3));
        lab.wire().set_pair_policy(
            lab.vm(0).wire_port(0).unwrap().id(),
            lab.vm(2).wire_port(0).unwrap().id(),
            LinkPolicy::cut(),
        );
        h.join().expect("ping thread")
    });
    assert!(sent >= 100, "{out}");
    assert!(
        sent - got <= 20,
        "{} of {sent} pings lost across the cut (budget 20)\n{out}\n{}",
        sent - got,
        consoles(&lab)
    );
    wait_route(&lab, 0, 1, "expected off node3 after the cut", |v| {
        v.is_some_and(|n| n != 2)
    });

    // The path returns: traffic moves back through node3.
    lab.set_pair_policy(0, 2, ms(10));
    wait_route(&lab, 0, 1, "expected back via node3", |v| v == Some(2));
    wait_route(&lab, 1, 0, "expected back via node3", |v| v == Some(2));
    let (sent, got, out) = ping_train(&lab, 0, v4(&lab, 1), 10);
    assert!(got >= sent - 1, "{out}\n{}", consoles(&lab));
}
