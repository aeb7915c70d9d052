//! `vdcnet bench-routing`: how long traffic stops when a path is cut, and what the routing
//! protocol costs when idle, for vdcnet's Babel and for babeld with its defaults.
//!
//! vdcnet: three appliances in a lab (`vdcnet_qemu::lab`), Babel inside the tunnels: A–B
//! direct, and a detour A–C–B. A ping train every 50 ms runs from A's workload to B's;
//! after 3 s the A–B path is cut in the software switch (its frames dropped, nothing else
//! changes, so only the protocol can notice). Idle overhead: the Babel bytes node A sent
//! per neighbour over 10 s (its stats line), and every frame on its underlay cable per
//! neighbour.
//!
//! babeld: Debian's, with its defaults (4 s Hellos, 4 s smoothing half-life; only what it
//! redistributes is configured), in the same shape built of network namespaces: routers A, B and C joined by veth pairs A–B, A–C and
//! C–B, and a workload namespace behind A (10.99.1.2/24) and one behind B (10.99.2.2/24),
//! whose subnets babeld redistributes. The ping train runs workload to workload, so the
//! pinging host's own next hop never fails (as behind an appliance). Once A and B route
//! each other's subnet over A–B with metric 96 and know the detour (babeld's read-only
//! local interface, `dump`), the idle cost is counted for 48 s (12 Hellos, 4 IHUs and 3
//! full updates at the defaults): Babel's UDP payload that A sends (nftables counters,
//! less 48 bytes of IPv6 and UDP headers per packet), and every frame on A's two veths,
//! per neighbour. Then the A–B pair is cut with nftables: an ingress hook dropping every
//! frame at both ends, so senders see no error and the links stay up.
//!
//! Two outage figures from each train (`ping -D`): the longest time between two replies,
//! and the pings lost times the interval. They differ: ping sends every 51–56 ms rather
//! than 50 (56 when replies take 0.05 ms, as over veths), a late reply counts as
//! received, and a gap spans one interval more than the pings lost in it.
//!
//! Needs root; installs `babeld` and `nftables` with apt-get when they are missing.

use super::{Args, CmdResult, UsageError};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use vdcnet_qemu::lab::{Lab, Topology};
use vdcnet_qemu::{is_root, Error, ErrorKind, LinkPolicy, Netns, Result, TempDir};

/// The ping train's interval.
const INTERVAL: Duration = Duration::from_millis(50);
/// Pings per vdcnet run: 3 s before the cut, the rest after.
const COUNT: u32 = 400;
/// Pings per babeld run: its outage is longer.
const COUNT_BABELD: u32 = 1000;
/// How long babeld's idle traffic is counted.
const IDLE_BABELD: Duration = Duration::from_secs(48);
/// Bound on babeld's convergence to the direct path (its smoothed metrics can keep a
/// first-found detour selected for half a minute).
const CONVERGE: Duration = Duration::from_secs(120);

/// What one ping train across a cut saw.
#[derive(Clone, Copy, Debug)]
struct Outage {
    /// The longest time between two consecutive replies.
    gap: Duration,
    /// Pings lost times the interval.
    lost: Duration,
}

/// A ping train of `count` from `ns` to `dst` with the cut applied after 3 s by `cut`.
fn outage(ns: &Netns, dst: IpAddr, count: u32, cut: impl FnOnce() -> Result<()>) -> Result<Outage> {
    let mut cmd = ns.command("ping");
    cmd.args([
        "-n",
        "-D",
        "-i",
        "0.05",
        "-W",
        "1",
        "-c",
        &count.to_string(),
    ]);
    let mut child = cmd
        .arg(dst.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::new(ErrorKind::Spawn, format!("ping: {e}")))?;
    thread::sleep(Duration::from_secs(3));
    if let Err(e) = cut() {
        let _ = child.kill();
        let _ = child.wait();
        return Err(e);
    }
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
    // Replies: "[1796126266.516382] 64 bytes from 10.99.2.2: icmp_seq=354 ttl=61 ...".
    let field = |l: &str, key: &str| -> Option<u32> {
        l.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
    };
    let replies: Vec<(f64, u32, u32)> = text
        .lines()
        .filter(|l| l.contains(" bytes from "))
        .filter_map(|l| {
            let t = l.strip_prefix('[')?.split(']').next()?.parse().ok()?;
            Some((t, field(l, "icmp_seq=")?, field(l, "ttl=")?))
        })
        .collect();
    let (Some(first), Some(last)) = (replies.first(), replies.last()) else {
        return Err(Error::new(
            ErrorKind::Net,
            format!("no ping replies: {line}"),
        ));
    };
    if last.1 + 20 < count {
        return Err(Error::new(
            ErrorKind::Net,
            format!(
                "the path did not come back before the train ended (last reply icmp_seq={}): {line}",
                last.1
            ),
        ));
    }
    let gap = replies
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .fold(0.0, f64::max);
    eprintln!(
        "bench-routing: ping: {line}; longest gap {gap:.2} s; ttl {} before, {} after",
        first.2, last.2
    );
    Ok(Outage {
        gap: Duration::from_secs_f64(gap),
        lost: INTERVAL * lost,
    })
}

fn vdcnet_run() -> Result<(Outage, f64, f64)> {
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
    let out = outage(lab.workload(0), dst, COUNT, || {
        if let (Some(a), Some(b)) = ports {
            wire.set_pair_policy(a, b, LinkPolicy::cut());
        }
        Ok(())
    })?;
    lab.set_pair_policy(0, 1, LinkPolicy::default());
    Ok((out, per_neighbour, frames_per_neighbour))
}

/// Whether `command` is on the PATH (or in an sbin directory, which root's PATH may lack).
fn on_path(command: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(command).is_file())
}

/// Installs babeld and nftables with apt-get when their commands are missing.
fn require_tools() -> Result<()> {
    let missing: Vec<&str> = [("babeld", "babeld"), ("nftables", "nft")]
        .into_iter()
        .filter(|(_, cmd)| !on_path(cmd))
        .map(|(package, _)| package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let fail = |why: &str| {
        Error::new(
            ErrorKind::Spawn,
            format!(
                "bench-routing needs the Debian packages {0} ({why}); install them: \
                 apt-get install --no-install-recommends {0}",
                missing.join(" ")
            ),
        )
    };
    if !on_path("apt-get") {
        return Err(fail("no apt-get here"));
    }
    eprintln!("bench-routing: installing {}", missing.join(" "));
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if install() {
        return Ok(());
    }
    let updated = Command::new("apt-get")
        .args(["update", "-q"])
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if updated && install() {
        Ok(())
    } else {
        Err(fail("apt-get failed"))
    }
}

/// A babeld in a namespace, killed on drop.
struct Babeld {
    child: Child,
    /// Its read-only local interface (`-g`).
    socket: PathBuf,
    log: PathBuf,
}

impl Babeld {
    fn start(ns: &Netns, dir: &Path, name: &str, ifaces: &[&str]) -> Result<Babeld> {
        let conf = dir.join(format!("{name}.conf"));
        // Only the workload subnets; babeld's default also announces every local address.
        std::fs::write(
            &conf,
            "redistribute ip 10.99.0.0/16 le 24 allow\n\
             redistribute local deny\n\
             redistribute deny\n",
        )
        .map_err(|e| Error::new(ErrorKind::Io, format!("writing {}: {e}", conf.display())))?;
        let socket = dir.join(format!("{name}.sock"));
        let log = dir.join(format!("{name}.log"));
        let child = ns
            .command("babeld")
            .arg("-c")
            .arg(&conf)
            .arg("-I")
            .arg(dir.join(format!("{name}.pid")))
            .arg("-S")
            .arg(dir.join(format!("{name}.state")))
            .arg("-L")
            .arg(&log)
            .arg("-g")
            .arg(&socket)
            .args(ifaces)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::new(ErrorKind::Spawn, format!("babeld: {e}")))?;
        Ok(Babeld { child, socket, log })
    }

    /// The `add route` lines of a `dump`, or nothing while babeld is not listening yet.
    fn routes(&self) -> Vec<String> {
        let Ok(mut s) = UnixStream::connect(&self.socket) else {
            return Vec::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"dump\n").is_err() {
            return Vec::new();
        }
        // A banner ending in "ok", then the dump ending in "ok".
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while text.lines().filter(|l| *l == "ok").count() < 2 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        text.lines()
            .filter(|l| l.starts_with("add route "))
            .map(str::to_string)
            .collect()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Babeld {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `routes` (a babeld dump) select `prefix` over `direct` with metric 96 and hold
/// a finite route for it over `detour`.
fn converged(routes: &[String], prefix: &str, direct: &str, detour: &str) -> bool {
    let word = |l: &str, key: &str| -> Option<String> {
        let mut w = l.split_whitespace();
        w.position(|x| x == key)?;
        w.next().map(str::to_string)
    };
    let metric = |l: &str| word(l, "metric").and_then(|m| m.parse::<u32>().ok());
    let (mut selected, mut backup) = (false, false);
    for l in routes {
        if word(l, "prefix").as_deref() != Some(prefix) {
            continue;
        }
        let via = word(l, "if");
        if via.as_deref() == Some(direct) {
            selected |= word(l, "installed").as_deref() == Some("yes") && metric(l) == Some(96);
        } else if via.as_deref() == Some(detour) {
            backup |= metric(l).is_some_and(|m| m < 0xFFFF);
        }
    }
    selected && backup
}

/// Two workloads, three routers and the veths between them, namespaces deleted on drop;
/// the babelds (declared first, so dropped first) killed on drop.
struct BabeldLab {
    babelds: Vec<Babeld>,
    wa: Netns,
    a: Netns,
    b: Netns,
    c: Netns,
    wb: Netns,
    dir: TempDir,
}

impl BabeldLab {
    fn start() -> Result<BabeldLab> {
        let lab = BabeldLab {
            babelds: Vec::new(),
            wa: Netns::create()?,
            a: Netns::create()?,
            b: Netns::create()?,
            c: Netns::create()?,
            wb: Netns::create()?,
            dir: TempDir::new("babeld-bench")?,
        };
        for ns in [&lab.wa, &lab.a, &lab.b, &lab.c, &lab.wb] {
            // Link-local addresses usable at once; forwarding (babeld sets it too).
            ns.sysctl("net/ipv6/conf/default/accept_dad", "0")?;
            ns.sysctl("net/ipv4/ip_forward", "1")?;
            ns.sysctl("net/ipv6/conf/all/forwarding", "1")?;
        }
        let veth = |x: &Netns, xn: &str, y: &Netns, yn: &str| -> Result<()> {
            x.ip(&[
                "link",
                "add",
                xn,
                "type",
                "veth",
                "peer",
                "name",
                yn,
                "netns",
                y.name(),
            ])?;
            x.ip(&["link", "set", xn, "up"])?;
            y.ip(&["link", "set", yn, "up"])?;
            Ok(())
        };
        veth(&lab.a, "ab", &lab.b, "ba")?;
        veth(&lab.a, "ac", &lab.c, "ca")?;
        veth(&lab.c, "cb", &lab.b, "bc")?;
        veth(&lab.wa, "eth0", &lab.a, "wl")?;
        veth(&lab.wb, "eth0", &lab.b, "wl")?;
        lab.wa.ip(&["addr", "add", "10.99.1.2/24", "dev", "eth0"])?;
        lab.wa
            .ip(&["route", "add", "default", "via", "10.99.1.1"])?;
        lab.a.ip(&["addr", "add", "10.99.1.1/24", "dev", "wl"])?;
        lab.wb.ip(&["addr", "add", "10.99.2.2/24", "dev", "eth0"])?;
        lab.wb
            .ip(&["route", "add", "default", "via", "10.99.2.1"])?;
        lab.b.ip(&["addr", "add", "10.99.2.1/24", "dev", "wl"])?;
        Ok(lab)
    }

    fn start_babelds(&mut self) -> Result<()> {
        let dir = self.dir.path();
        let a = Babeld::start(&self.a, dir, "a", &["ab", "ac"])?;
        self.babelds.push(a);
        let b = Babeld::start(&self.b, dir, "b", &["ba", "bc"])?;
        self.babelds.push(b);
        let c = Babeld::start(&self.c, dir, "c", &["ca", "cb"])?;
        self.babelds.push(c);
        Ok(())
    }

    /// Waits until A and B route each other's workload over A–B and know the detour.
    fn converge(&self) -> Result<Duration> {
        let started = Instant::now();
        loop {
            let (ra, rb) = (self.babelds[0].routes(), self.babelds[1].routes());
            if converged(&ra, "10.99.2.0/24", "ab", "ac")
                && converged(&rb, "10.99.1.0/24", "ba", "bc")
            {
                return Ok(started.elapsed());
            }
            if started.elapsed() > CONVERGE {
                return Err(Error::new(
                    ErrorKind::Net,
                    format!("babeld did not select the direct path within {CONVERGE:?}"),
                )
                .with_evidence(format!(
                    "A's routes:\n{}\nB's routes:\n{}\nA's log:\n{}",
                    ra.join("\n"),
                    rb.join("\n"),
                    self.babelds[0].log_tail()
                )));
            }
            thread::sleep(Duration::from_millis(500));
        }
    }

    /// Loads an nftables ruleset into `ns` from a file.
    fn nft(&self, ns: &Netns, name: &str, rules: &str) -> Result<()> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, rules)
            .map_err(|e| Error::new(ErrorKind::Io, format!("writing {}: {e}", path.display())))?;
        ns.run("nft", &["-f", &path.to_string_lossy()]).map(|_| ())
    }

    /// Babel packets and bytes A has sent on its veths (IPv6, UDP port 6696).
    fn babel_sent(&self) -> Result<(u64, u64)> {
        let text = self.a.run("nft", &["list", "table", "inet", "idle"])?;
        let (mut packets, mut bytes) = (0, 0);
        for l in text.lines().filter(|l| l.contains("counter packets")) {
            let mut w = l.split_whitespace();
            let mut after = |key: &str| -> u64 {
                w.position(|x| x == key);
                w.next().and_then(|v| v.parse().ok()).unwrap_or(0)
            };
            packets += after("packets");
            bytes += after("bytes");
        }
        Ok((packets, bytes))
    }

    /// Frames in and out of A's veths towards B and C.
    fn frames(&self) -> Result<u64> {
        let mut total = 0;
        for iface in ["ab", "ac"] {
            for dir in ["rx", "tx"] {
                let path = format!("/sys/class/net/{iface}/statistics/{dir}_packets");
                let v = self.a.run("cat", &[&path])?;
                total += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
        Ok(total)
    }
}

fn babeld_run() -> Result<(Outage, f64, f64)> {
    let mut lab = BabeldLab::start()?;
    lab.start_babelds()?;
    let took = lab.converge()?;
    eprintln!(
        "bench-routing: babeld selected the direct path after {:.1} s",
        took.as_secs_f64()
    );
    lab.nft(
        &lab.a,
        "idle.nft",
        "table inet idle {\n\
         \x20 chain out {\n\
         \x20   type filter hook output priority 0; policy accept;\n\
         \x20   oifname { \"ab\", \"ac\" } meta nfproto ipv6 udp dport 6696 counter\n\
         \x20 }\n\
         }\n",
    )?;
    let ((p0, b0), f0) = (lab.babel_sent()?, lab.frames()?);
    thread::sleep(IDLE_BABELD);
    let ((p1, b1), f1) = (lab.babel_sent()?, lab.frames()?);
    let secs = IDLE_BABELD.as_secs_f64();
    // Babel's payload: less IPv6 (40) and UDP (8) headers; A has two neighbours.
    let payload = (b1 - b0).saturating_sub(48 * (p1 - p0));
    let per_neighbour = payload as f64 / secs / 2.0;
    let frames_per_neighbour = (f1 - f0) as f64 / secs / 2.0;
    eprintln!(
        "bench-routing: babeld idle over {secs:.0} s: A sent {} Babel packets, {} bytes with \
         IPv6 and UDP headers; {} frames on its veths",
        p1 - p0,
        b1 - b0,
        f1 - f0
    );
    // Still the direct path after the idle time.
    lab.converge()?;
    let cut = |ns: &Netns, name: &str, iface: &str| {
        lab.nft(
            ns,
            name,
            &format!(
                "table netdev cut {{\n\
                 \x20 chain in {{\n\
                 \x20   type filter hook ingress device {iface} priority 0; policy drop;\n\
                 \x20 }}\n\
                 }}\n"
            ),
        )
    };
    let dst: IpAddr = "10.99.2.2".parse().expect("an address");
    let out = outage(&lab.wa, dst, COUNT_BABELD, || {
        cut(&lab.a, "cut-a.nft", "ab")?;
        cut(&lab.b, "cut-b.nft", "ba")
    })?;
    Ok((out, per_neighbour, frames_per_neighbour))
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn list(v: &[Duration]) -> String {
    v.iter()
        .map(|d| format!("{:.2}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
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
    require_tools()?;
    // nftables must work in this kernel: a table in a scratch namespace.
    {
        let ns = Netns::create()?;
        ns.run("nft", &["add", "table", "inet", "probe"])?;
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut idle, mut frames, mut b_idle, mut b_frames) = (0.0, 0.0, 0.0, 0.0);
    // Alternating, so that a change in the host's load falls on both.
    for k in 0..runs {
        let (o, b, f) = vdcnet_run()?;
        eprintln!(
            "bench-routing: run {k}: vdcnet outage {:.2} s (lost x 50 ms: {:.2} s)",
            o.gap.as_secs_f64(),
            o.lost.as_secs_f64()
        );
        ours.push(o);
        (idle, frames) = (b, f);
        let (o, b, f) = babeld_run()?;
        eprintln!(
            "bench-routing: run {k}: babeld outage {:.2} s (lost x 50 ms: {:.2} s)",
            o.gap.as_secs_f64(),
            o.lost.as_secs_f64()
        );
        theirs.push(o);
        (b_idle, b_frames) = (b, f);
    }
    let gaps = |v: &[Outage]| v.iter().map(|o| o.gap).collect::<Vec<_>>();
    let losts = |v: &[Outage]| v.iter().map(|o| o.lost).collect::<Vec<_>>();
    let row = |what: &str, ours: &[Duration], theirs: &[Duration], target: &str| {
        let (o, t) = (median(ours), median(theirs));
        println!(
            "| {what} (median of {runs}) | {:.2} s ({}) | {:.2} s ({}) | {:.1}× | {target} |",
            o.as_secs_f64(),
            list(ours),
            t.as_secs_f64(),
            list(theirs),
            t.as_secs_f64() / o.as_secs_f64().max(0.001)
        );
    };
    println!("| figure | vdcnet | babeld, defaults | babeld ÷ vdcnet | target |");
    println!("|---|---|---|---|---|");
    row(
        "outage after the cut: longest gap between replies",
        &gaps(&ours),
        &gaps(&theirs),
        "< 2 s",
    );
    row("pings lost × 50 ms", &losts(&ours), &losts(&theirs), "");
    println!(
        "| idle, per neighbour (last run) | {idle:.0} B/s of Babel; {frames:.1} underlay frames/s in all | \
         {b_idle:.1} B/s of Babel; {b_frames:.1} frames/s in all | {:.2}× the bytes | small |",
        b_idle / idle.max(0.001)
    );
    Ok(ExitCode::SUCCESS)
}
