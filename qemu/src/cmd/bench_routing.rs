//! `vdcnet bench-routing`: how long traffic stops when a path is cut, and what the routing
//! protocol costs when idle.
//!
//! Three appliances in a lab (`vdcnet_qemu::lab`), Babel inside the tunnels: A–B direct,
//! and a detour A–C–B. A ping train every 50 ms runs from A's workload to B's; after 3 s
//! the A–B path is cut in the software switch (its frames dropped, nothing else changes,
//! so only the protocol can notice), and the outage is the pings lost times the interval.
//! Idle overhead: the Babel bytes node A sent per neighbour over 10 s (its stats line), and
//! every frame on its underlay cable per neighbour.
//!
//! Not here yet: the same measurement against babeld with its defaults. A first attempt
//! (three namespaces on veth pairs, the pair cut with `tc netem loss 100%`) cut nothing:
//! the kernel here has no netem and `nft` was not installed; it was left out rather than
//! reported.

use super::{Args, CmdResult, UsageError};
use std::net::IpAddr;
use std::process::{ExitCode, Stdio};
use std::thread;
use std::time::Duration;
use vdcnet_qemu::lab::{Lab, Topology};
use vdcnet_qemu::{is_root, Error, ErrorKind, LinkPolicy, Netns, Result};

/// The ping train's interval.
const INTERVAL: Duration = Duration::from_millis(50);
/// Pings per run: 3 s before the cut, the rest after.
const COUNT: u32 = 400;

/// Lost pings of a train from `ns` to `dst` with the cut applied after 3 s by `cut`.
fn outage(ns: &Netns, dst: IpAddr, cut: impl FnOnce()) -> Result<Duration> {
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
    let out = outage(lab.workload(0), dst, || {
        if let (Some(a), Some(b)) = ports {
            wire.set_pair_policy(a, b, LinkPolicy::cut());
        }
    })?;
    lab.set_pair_policy(0, 1, LinkPolicy::default());
    Ok((out, per_neighbour, frames_per_neighbour))
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
    let mut ours = Vec::new();
    let (mut idle, mut frames) = (0.0, 0.0);
    for k in 0..runs {
        let (o, b, f) = vdcnet_run()?;
        eprintln!("bench-routing: run {k}: outage {:.2} s", o.as_secs_f64());
        ours.push(o);
        (idle, frames) = (b, f);
    }
    ours.sort();
    let o = ours[ours.len() / 2];
    println!("| figure | vdcnet | target |");
    println!("|---|---|---|");
    println!(
        "| outage after a path cut (median of {runs}; ping every 50 ms) | {:.2} s (runs: {}) | < 2 s |",
        o.as_secs_f64(),
        ours.iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| idle, per neighbour (last run) | {idle:.0} B/s of Babel; {frames:.1} underlay frames/s in all | small |"
    );
    Ok(ExitCode::SUCCESS)
}
