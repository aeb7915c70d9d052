//! `vdcnet bench-mycelium`: throughput (iperf3) and RTT (ping) over the Planetary Network
//! between a workload behind the appliance and a host behind myceliumd, against the same
//! path with myceliumd on both ends, in one run.
//!
//! The setup: a lab (`vdcnet_qemu::lab`; two nodes, as a lab needs, of which node 1 is
//! measured) whose node 1 is a Mycelium node with `Planetary = yes` on its segment,
//! peered with myceliumd "H" on an underlay host (192.168.100.200, its TUN `myc0`), and a
//! second underlay host "M" (192.168.100.201) running myceliumd peered with H. Both
//! paths cross the same software switch to H:
//! - vdcnet: node 1's workload (by SLAAC in node 1's /64) → tap → the appliance (TCG guest)
//!   → the switch → H's myceliumd → H's TUN address;
//! - myceliumd: M's TUN address → M's myceliumd → the switch → H's myceliumd → H's TUN.
//!
//! Figures: iperf3 TCP both ways (`--seconds`, default 10 s each; the receiver's rate),
//! and the mean RTT of 20 pings 0.2 s apart, each for both paths, with the ratio vdcnet /
//! myceliumd. Needs root, iperf3 and the myceliumd binary (`VDCNET_MYCELIUM`, PATH or
//! `shared/peers/mycelium`).

use super::{Args, CmdResult, UsageError};
use std::net::Ipv6Addr;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use vdcnet_appliance::mycelium::SecretKey;
use vdcnet_qemu::lab::{Lab, Topology};
use vdcnet_qemu::{find_mycelium, is_root, Netns, TempDir, UnderlayHost};

const H: &str = "192.168.100.200";
const M: &str = "192.168.100.201";
const WAIT: Duration = Duration::from_secs(90);

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A throwaway key from the kernel's RNG.
fn random_key() -> [u8; 32] {
    use std::io::Read;
    let mut k = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut u| u.read_exact(&mut k))
        .expect("/dev/urandom");
    k
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// myceliumd in `ns` with a fresh key, optionally peered with `peer`; its address.
fn myceliumd(bin: &Path, ns: &Netns, dir: &Path, peer: Option<&str>) -> (Killed, Ipv6Addr) {
    let key = random_key();
    let kf = dir.join(format!("{}.key", ns.name()));
    std::fs::write(&kf, key).expect("key file");
    let mut c = ns.command(bin.to_str().expect("utf-8 path"));
    c.arg("--key-file")
        .arg(&kf)
        .args(vdcnet_qemu::MYCELIUMD_ARGS);
    if let Some(p) = peer {
        c.args(["--peers", &format!("tcp://{p}:9651")]);
    }
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("myceliumd starts");
    let addr = SecretKey::from_bytes(key).public_key().address();
    (Killed(child), addr)
}

fn spawn(ns: &Netns, program: &str, args: &[&str]) -> Killed {
    Killed(
        ns.command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}")),
    )
}

fn until(what: &str, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + WAIT;
    while !f() {
        if Instant::now() > deadline {
            return Err(format!("bench-mycelium: timed out waiting for {what}"));
        }
        thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

fn has_addr(ns: &Netns, a: Ipv6Addr) -> bool {
    ns.run("ip", &["-6", "-o", "addr", "show", "scope", "global"])
        .map(|o| {
            o.lines()
                .any(|l| l.contains(&format!(" {a}/")) && !l.contains("tentative"))
        })
        .unwrap_or(false)
}

/// iperf3 from `ns` to `server` for `secs`, `reverse` for the other direction; Mbit/s
/// at the receiver.
fn iperf(ns: &Netns, server: Ipv6Addr, secs: u32, reverse: bool) -> Result<f64, String> {
    let t = secs.to_string();
    let s = server.to_string();
    let mut args = vec!["-6", "-c", &s, "-t", &t, "-J"];
    if reverse {
        args.push("-R");
    }
    let out = ns.run("iperf3", &args).map_err(|e| e.to_string())?;
    // The receiver's summary: "sum_received": {... "bits_per_second": X ...}.
    let at = out
        .find("\"sum_received\"")
        .ok_or_else(|| format!("iperf3 printed no sum_received: {out}"))?;
    let rest = &out[at..];
    let b = rest
        .find("\"bits_per_second\":")
        .ok_or("no bits_per_second")?;
    let v: String = rest[b + 18..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == '+')
        .collect();
    v.parse::<f64>()
        .map(|bps| bps / 1e6)
        .map_err(|e| format!("{e}: {v}"))
}

/// Mean RTT (ms) of 20 pings 0.2 s apart.
fn rtt(ns: &Netns, to: Ipv6Addr) -> Result<f64, String> {
    let a = to.to_string();
    let out = ns
        .run("ping", &["-6", "-n", "-c", "20", "-i", "0.2", &a])
        .map_err(|e| e.to_string())?;
    // rtt min/avg/max/mdev = 0.1/0.2/0.3/0.04 ms
    let line = out
        .lines()
        .find(|l| l.contains("min/avg/max"))
        .ok_or_else(|| format!("no summary: {out}"))?;
    let nums = line.split('=').nth(1).ok_or("no numbers")?;
    nums.trim()
        .split('/')
        .nth(1)
        .ok_or("no avg")?
        .parse()
        .map_err(|e| format!("{e}"))
}

pub fn main(args: &[String]) -> CmdResult {
    let mut secs = 10u32;
    let mut a = Args::new(args);
    while let Some(flag) = a.next_flag() {
        match flag {
            "--seconds" => secs = a.parsed::<u32>(flag)?.max(1),
            other => return Err(UsageError(format!("unknown option `{other}`")).into()),
        }
    }
    if !is_root() {
        eprintln!("bench-mycelium: needs root (namespaces, taps, TUNs)");
        return Ok(ExitCode::FAILURE);
    }
    let bin = find_mycelium()?;
    if Command::new("iperf3").arg("--version").output().is_err() {
        eprintln!("bench-mycelium: needs iperf3 (apt-get install iperf3)");
        return Ok(ExitCode::FAILURE);
    }
    let key = random_key();
    let node = SecretKey::from_bytes(key).public_key().address();
    let mut w = node.octets();
    w[8..].copy_from_slice(&[0x50, 0x54, 0x00, 0xff, 0xfe, 0x57, 0x00, 0x01]);
    let workload = Ipv6Addr::from(w);
    let topo = Topology::new(2).edit_config(move |i, text| {
        if i != 0 {
            return text.to_string();
        }
        let t = text.replacen("Role = segment\n", "Role = segment\nPlanetary = yes\n", 1);
        format!(
            "{t}\n[Mycelium]\nPrivateKey = {}\nPeer = tcp://{H}:9651\n",
            hex(&key)
        )
    });
    eprintln!("bench-mycelium: booting the lab");
    let lab = Lab::start(&topo)?;
    let dir = TempDir::new("bench-mycelium")?;
    let h = UnderlayHost::attach(lab.wire(), &[format!("{H}/24")])?;
    let m = UnderlayHost::attach(lab.wire(), &[format!("{M}/24")])?;
    let (_hd, h_addr) = myceliumd(&bin, h.netns(), dir.path(), None);
    thread::sleep(Duration::from_secs(1));
    let (_md, m_addr) = myceliumd(&bin, m.netns(), dir.path(), Some(H));
    let ws = lab.workload(0);
    until("the workload's 400::/7 address", || has_addr(ws, workload))?;
    until("M's TUN address", || has_addr(m.netns(), m_addr))?;
    let hs = h_addr.to_string();
    let _iperf = spawn(h.netns(), "iperf3", &["-s", "-B", &hs]);
    until("both paths to H", || {
        ws.ping_once(h_addr.into(), Duration::from_secs(1)).is_ok()
            && m.netns()
                .ping_once(h_addr.into(), Duration::from_secs(1))
                .is_ok()
    })?;
    thread::sleep(Duration::from_secs(1));
    let mut rows = Vec::new();
    for (name, reverse) in [("tcp_to_h_mbps", false), ("tcp_from_h_mbps", true)] {
        eprintln!("bench-mycelium: {name}");
        let v = iperf(ws, h_addr, secs, reverse)?;
        let mm = iperf(m.netns(), h_addr, secs, reverse)?;
        rows.push((name, v, mm));
    }
    eprintln!("bench-mycelium: ping");
    let rv = rtt(ws, h_addr)?;
    let rm = rtt(m.netns(), h_addr)?;
    println!(
        "{:<18} {:>12} {:>12} {:>8}",
        "figure", "vdcnet", "myceliumd", "ratio"
    );
    for (name, v, mm) in rows {
        println!("{name:<18} {v:>12.1} {mm:>12.1} {:>7.2}x", v / mm);
    }
    println!(
        "{:<18} {rv:>12.3} {rm:>12.3} {:>7.2}x",
        "ping_avg_ms",
        rv / rm
    );
    println!("(ratio: vdcnet / myceliumd; the vdcnet path also crosses the workload's tap and a TCG guest)");
    Ok(ExitCode::SUCCESS)
}
