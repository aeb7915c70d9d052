//! `vdcnet bench-routing`: how long traffic stops when a path is cut, vdcnet against babeld
//! with its defaults, in one run, and what the routing protocol costs when idle.
//!
//! Both sides get the same triangle: A–B direct, and a detour A–C–B. A ping train every
//! 50 ms runs from a host behind A to a host behind B; after 3 s the A–B path is cut (its
//! frames dropped, the links stay up, so nothing but the protocol can notice), and the
//! outage is the pings lost times the interval.
//! - vdcnet: three appliances in a lab (`vdcnet_qemu::lab`), Babel inside the tunnels,
//!   the A–B path cut in the software switch;
//! - babeld (Debian's, default 4 s Hellos): three network namespaces joined by veth pairs,
//!   babeld on each, the A–B veth pair cut with `tc netem loss 100%` on both ends.
//!
//! Idle overhead: the Babel bytes each appliance sent per neighbour over a 10 s window
//! (from the stats line), and every frame on the underlay per node pair.

use super::{Args, CmdResult, UsageError};
use std::net::IpAddr;
use std::process::{Child, ExitCode, Stdio};
use std::thread;
use std::time::Duration;
use vdcnet_qemu::lab::{Lab, Topology};
use vdcnet_qemu::{is_root, Error, ErrorKind, LinkPolicy, Netns, Result, TempDir};

/// The ping train's interval.
const INTERVAL: Duration = Duration::from_millis(50);
/// Pings per run: 3 s before the cut, the rest after.
const COUNT: u32 = 400;

/// Lost pings of a train from `ns` to `dst` with the cut applied after 3 s by `cut`.
fn outage(ns: &Netns, dst: IpAddr, src: Option<&str>, cut: impl FnOnce()) -> Result<Duration> {
    let mut cmd = ns.command("ping");
    cmd.args([
        "-n",
        "-q",
        "-i",
        "0.05",
        "-W",
        "1",
        "-c",
        &COUNT.to_string(),
    ]);
    if let Some(s) = src {
        cmd.args(["-I", s]);
    }
    let child = cmd
        .arg(dst.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::new(ErrorKind::Spawn, format!("ping: {e}")))?;
    thread::sleep(Duration::from_secs(3));
    cut();
    let out = child
        .wait_with_output()
        .map_err(|e| Error::new(ErrorKind::Spawn, format!("ping: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .ok_or_else(|| Error::new(ErrorKind::Net, format!("no ping summary: {text}")))?;
    let n = |what: &str| -> u32 {
        line.split(',')
            .find(|p| p.contains(what))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let lost = n("transmitted").saturating_sub(n("received"));
    eprintln!("bench-routing: ping: {line}");
    Ok(INTERVAL * lost)
}

fn vdcnet_run() -> Result<(Duration, f64, f64)> {
    let mut topo = Topology::new(3);
    for i in 0..3 {
        topo = topo.append(i, "vdcnet.stats=1");
    }
    let mut lab = Lab::start(&topo)?;
    // Let Babel settle and measure the idle cost meanwhile.
    thread::sleep(Duration::from_secs(5));
    let babel_tx = |lab: &Lab| -> u64 {
        let s = lab
            .vm(0)
            .console()
            .matching("vdcnet: stats")
            .pop()
            .unwrap_or_default();
        s.split_whitespace()
            .find_map(|w| w.strip_prefix("txbytes="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let frames = |lab: &Lab| lab.underlay_stats(0).map_or(0, |p| p.tx + p.rx);
    let (b0, f0) = (babel_tx(&lab), frames(&lab));
    thread::sleep(Duration::from_secs(10));
    let (b1, f1) = (babel_tx(&lab), frames(&lab));
    // node1 has two neighbours.
    let per_neighbour = (b1 - b0) as f64 / 10.0 / 2.0;
    let frames_per_neighbour = (f1 - f0) as f64 / 10.0 / 2.0;
    let dst = IpAddr::V4(
        lab.workload_v4(1)
            .ok_or_else(|| Error::new(ErrorKind::Net, "no DHCP address"))?,
    );
    let ports = (
        lab.vm(0).wire_port(0).map(|p| p.id()),
        lab.vm(1).wire_port(0).map(|p| p.id()),
    );
    let wire = lab.wire().clone();
    let out = outage(lab.workload(0), dst, None, || {
        if let (Some(a), Some(b)) = ports {
            wire.set_pair_policy(a, b, LinkPolicy::cut());
        }
    })?;
    lab.set_pair_policy(0, 1, LinkPolicy::default());
    Ok((out, per_neighbour, frames_per_neighbour))
}

/// babeld, killed on drop.
struct Babeld(Child);

impl Drop for Babeld {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn babeld_run(dir: &TempDir) -> Result<Duration> {
    let ns: Vec<Netns> = (0..3).map(|_| Netns::create()).collect::<Result<_>>()?;
    // Links: (a, b, name on a, name on b).
    let links = [(0, 1, "ab", "ba"), (0, 2, "ac", "ca"), (2, 1, "cb", "bc")];
    for n in &ns {
        n.sysctl("net/ipv4/ip_forward", "1")?;
        n.sysctl("net/ipv6/conf/all/forwarding", "1")?;
    }
    for (a, b, ia, ib) in links {
        ns[a].ip(&[
            "link",
            "add",
            ia,
            "type",
            "veth",
            "peer",
            "name",
            ib,
            "netns",
            ns[b].name(),
        ])?;
        ns[a].ip(&["link", "set", ia, "up"])?;
        ns[b].ip(&["link", "set", ib, "up"])?;
    }
    // Each node's "segment": a stub with 10.99.N.1, redistributed.
    let mut daemons = Vec::new();
    for (k, n) in ns.iter().enumerate() {
        n.ip(&[
            "link", "add", "stub0", "type", "veth", "peer", "name", "stub1",
        ])?;
        n.ip(&["link", "set", "stub0", "up"])?;
        n.ip(&["link", "set", "stub1", "up"])?;
        n.ip(&["addr", "add", &format!("10.99.{k}.1/32"), "dev", "stub0"])?;
        n.ip(&[
            "route",
            "add",
            &format!("10.99.{k}.0/24"),
            "dev",
            "stub0",
            "proto",
            "static",
        ])?;
        let ifs: Vec<&str> = links
            .iter()
            .flat_map(|(a, b, ia, ib)| [(*a == k).then_some(*ia), (*b == k).then_some(*ib)])
            .flatten()
            .collect();
        let conf = dir.path().join(format!("babeld{k}.conf"));
        let mut text = String::new();
        for i in &ifs {
            // The defaults (Hello every 4 s on wired links), and no link detection: a cut
            // path keeps its carrier, as a cut underlay path does for the tunnels.
            text.push_str(&format!("interface {i}\n"));
        }
        text.push_str(&format!(
            "redistribute ip 10.99.{k}.0/24 allow\nredistribute local deny\nredistribute deny\n"
        ));
        std::fs::write(&conf, text)
            .map_err(|e| Error::new(ErrorKind::Io, format!("babeld.conf: {e}")))?;
        let child = n
            .command("babeld")
            .arg("-c")
            .arg(&conf)
            .arg("-I")
            .arg(dir.path().join(format!("babeld{k}.pid")))
            .arg("-S")
            .arg(dir.path().join(format!("babeld{k}.state")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Spawn,
                    format!("babeld (apt-get install babeld): {e}"),
                )
            })?;
        daemons.push(Babeld(child));
    }
    // Converged when A routes B's stub directly.
    for _ in 0..120 {
        let r = ns[0]
            .run("ip", &["route", "show", "10.99.1.0/24"])
            .unwrap_or_default();
        if r.contains("dev ab") {
            break;
        }
        thread::sleep(Duration::from_millis(500));
    }
    let route = ns[0]
        .run("ip", &["route", "show", "10.99.1.0/24"])
        .unwrap_or_default();
    eprintln!(
        "bench-routing: babeld's route before the cut: {}",
        route.trim()
    );
    let dst: IpAddr = "10.99.1.1".parse().expect("literal");
    let out = outage(&ns[0], dst, Some("10.99.0.1"), || {
        for (n, i) in [(&ns[0], "ab"), (&ns[1], "ba")] {
            let _ = n.ip(&["link", "set", i, "txqueuelen", "1000"]);
            let _ = n.run(
                "tc",
                &["qdisc", "add", "dev", i, "root", "netem", "loss", "100%"],
            );
        }
    })?;
    drop(daemons);
    Ok(out)
}

pub fn main(args: &[String]) -> CmdResult {
    let mut runs = 3usize;
    let mut a = Args::new(args);
    while let Some(flag) = a.next_flag() {
        match flag {
            "--runs" => runs = a.parsed::<usize>(flag)?.max(1),
            other => return Err(UsageError(format!("unknown option `{other}`")).into()),
        }
    }
    if !is_root() {
        eprintln!("bench-routing: needs root (namespaces, taps)");
        return Ok(ExitCode::FAILURE);
    }
    let dir = TempDir::new("bench-routing")?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut idle, mut frames) = (0.0, 0.0);
    for k in 0..runs {
        // Alternate, so both meet the same host noise.
        let (o, b, f) = vdcnet_run()?;
        eprintln!(
            "bench-routing: run {k}: vdcnet outage {:.2} s",
            o.as_secs_f64()
        );
        ours.push(o);
        (idle, frames) = (b, f);
        let t = babeld_run(&dir)?;
        eprintln!(
            "bench-routing: run {k}: babeld outage {:.2} s",
            t.as_secs_f64()
        );
        theirs.push(t);
    }
    ours.sort();
    theirs.sort();
    let (o, t) = (ours[ours.len() / 2], theirs[theirs.len() / 2]);
    println!("| figure | vdcnet | babeld (defaults) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| outage after a path cut (median of {runs}; ping every 50 ms) | {:.2} s | {:.2} s | {:.1}x shorter |",
        o.as_secs_f64(),
        t.as_secs_f64(),
        t.as_secs_f64() / o.as_secs_f64().max(0.05)
    );
    println!(
        "| idle routing traffic per neighbour (last run) | {idle:.0} B/s of Babel, {frames:.1} underlay frames/s (all traffic) | | |"
    );
    Ok(ExitCode::SUCCESS)
}
