//! `vdcnet bench`: the figures the README promises, each next to a peer measured in the
//! same run. `qemu/bench/boot.sh` builds the minimal PVH kernels and calls this.
//!
//! - boot: QEMU start → `vdcnet: ready`, against QEMU start → exit of a PVH kernel that
//!   does nothing (same machine, same NIC), median of N runs;
//! - image size;
//! - host CPU of an idle appliance over 10 s, against QEMU idling a halted PVH kernel;
//! - the smallest `-m` that boots and answers (ping from a namespace when root, else TCP
//!   echo through a host forward);
//! - extras: q35 boot, TCP echo round trip, ping round trip.

use super::{Args, CmdResult, UsageError};
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};
use vdcnet_qemu::{
    build_image, is_root, tcp_echo_retry, BuildOutput, Error, ErrorKind, Machine, Nic, Result, Vm,
    DEFAULT_TIMEOUT, ECHO_PORT,
};

/// How long an idle appliance is watched.
const IDLE_WINDOW: Duration = Duration::from_secs(10);
/// Memory sizes tried, ascending (MiB).
const MEMORY_STEPS: [u32; 11] = [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64];

struct Row {
    figure: String,
    vdcnet: String,
    peer: String,
    ratio: String,
    target: String,
    verdict: &'static str,
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// QEMU start → first console line, and QEMU start → `vdcnet: ready`.
fn time_to_ready(image: &Path, machine: Machine) -> Result<(Duration, Duration)> {
    let vm = Vm::builder("bench")
        .image(image)
        .machine(machine)
        .nic(Nic::user())
        .spawn()?;
    let first = vm.console().wait_from(0, |_| true, DEFAULT_TIMEOUT);
    let banner = vm.started().elapsed();
    if first.is_err() {
        return Err(vm.fail(Error::new(ErrorKind::Exited, "no console output")));
    }
    vm.wait_ready()?;
    Ok((banner, vm.started().elapsed()))
}

/// QEMU start → exit, for a kernel that exits at once.
fn time_to_exit(kernel: &Path, machine: Machine) -> Result<Duration> {
    let vm = Vm::builder("baseline")
        .image(kernel)
        .machine(machine)
        .nic(Nic::user())
        .spawn()?;
    vm.wait_exit(Duration::from_secs(30))?;
    Ok(vm.started().elapsed())
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// Percent of one core used by each VM over the same window.
fn idle_cpu(vms: &[&Vm]) -> Vec<Option<f64>> {
    let hz = clock_ticks_per_second();
    let before: Vec<Option<u64>> = vms.iter().map(|vm| cpu_ticks(vm.pid())).collect();
    let t = Instant::now();
    thread::sleep(IDLE_WINDOW);
    let elapsed = t.elapsed().as_secs_f64();
    vms.iter()
        .zip(before)
        .map(|(vm, b)| {
            let a = cpu_ticks(vm.pid())?;
            Some((a.saturating_sub(b?)) as f64 / hz / elapsed * 100.0)
        })
        .collect()
}

/// Whether the appliance boots in `mib` MiB and answers (ping over a tap when root).
fn answers_with(image: &Path, mib: u32, root: bool) -> bool {
    let nic = if root { Nic::tap() } else { Nic::user() };
    let Ok(vm) = Vm::builder("mem")
        .image(image)
        .memory_mib(mib)
        .nic(nic)
        .spawn()
    else {
        return false;
    };
    if vm
        .wait_for_line("vdcnet: ready", Duration::from_secs(15))
        .is_err()
    {
        return false;
    }
    if root {
        let ip: IpAddr = "10.0.2.15".parse().expect("literal");
        vm.netns(0)
            .is_some_and(|ns| ns.ping(ip, Duration::from_secs(5)).is_ok())
    } else {
        vm.forwarded(ECHO_PORT).is_some_and(|fwd| {
            tcp_echo_retry(fwd, b"ping", Duration::from_secs(5)).is_ok_and(|b| b == b"ping")
        })
    }
}

/// Median round trip of 32-byte echoes on one connection.
fn echo_rtt(vm: &Vm, rounds: usize) -> Option<Duration> {
    let fwd = vm.forwarded(ECHO_PORT)?;
    tcp_echo_retry(fwd, b"warm-up", Duration::from_secs(10)).ok()?;
    let mut s = TcpStream::connect_timeout(&fwd, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_nodelay(true).ok()?;
    let msg = [0x5au8; 32];
    let mut back = [0u8; 32];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        s.write_all(&msg).ok()?;
        s.read_exact(&mut back).ok()?;
        times.push(t.elapsed());
    }
    Some(median(times))
}

/// Average ping round trip from the namespace behind NIC 0 (root only).
fn ping_rtt(vm: &Vm) -> Option<String> {
    let ns = vm.netns(0)?;
    ns.ping(
        "10.0.2.15".parse().expect("literal"),
        Duration::from_secs(10),
    )
    .ok()?;
    let out = ns
        .command("ping")
        .args(["-n", "-q", "-c", "20", "-i", "0.05", "10.0.2.15"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "rtt min/avg/max/mdev = 0.319/0.512/0.9/0.1 ms"
    let stats = text.lines().find(|l| l.contains("min/avg/max"))?;
    let avg = stats.split('=').nth(1)?.trim().split('/').nth(1)?;
    Some(format!("{avg} ms"))
}

fn print_table(rows: &[Row]) {
    let headers = ["figure", "vdcnet", "peer (same run)", "ratio", "target", ""];
    let cells: Vec<[&str; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.figure.as_str(),
                r.vdcnet.as_str(),
                r.peer.as_str(),
                r.ratio.as_str(),
                r.target.as_str(),
                r.verdict,
            ]
        })
        .collect();
    let mut width = headers.map(str::len);
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let line = |row: &[&str; 6]| {
        let mut s = String::new();
        for (i, c) in row.iter().enumerate() {
            s.push_str(&format!("{c:<w$}  ", w = width[i]));
        }
        println!("{}", s.trim_end());
    };
    line(&headers);
    line(&width.map(|w| "-".repeat(w)).each_ref().map(String::as_str));
    for row in &cells {
        line(row);
    }
}

pub fn main(args: &[String]) -> CmdResult {
    let mut baseline: Option<PathBuf> = None;
    let mut idle_baseline: Option<PathBuf> = None;
    let mut n = 5usize;
    let mut a = Args::new(args);
    while let Some(flag) = a.next_flag() {
        match flag {
            "--baseline" => baseline = Some(a.value(flag)?.into()),
            "--idle-baseline" => idle_baseline = Some(a.value(flag)?.into()),
            "--runs" => n = a.parsed::<usize>(flag)?.max(1),
            other => return Err(UsageError(format!("unknown option `{other}`")).into()),
        }
    }
    let image = build_image(BuildOutput::Quiet)?;
    let root = is_root();
    let mut rows = Vec::new();
    let mut extras = Vec::new();
    eprintln!("bench: image {}", image.display());

    for machine in [Machine::Pc, Machine::Microvm] {
        eprintln!("bench: boot to ready on {machine}, {n} runs");
        // Appliance and baseline runs alternate, so both meet the same host noise.
        let (mut banner, mut ready, mut exit) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let (b, r) = time_to_ready(&image, machine)?;
            banner.push(b);
            ready.push(r);
            if let Some(k) = &baseline {
                exit.push(time_to_exit(k, machine)?);
            }
        }
        let ready = median(ready);
        let (peer, ratio, ok) = if exit.is_empty() {
            ("n/a (no --baseline)".into(), "-".into(), true)
        } else {
            let exit = median(exit);
            let ratio = ready.as_secs_f64() / exit.as_secs_f64();
            (
                format!("minimal PVH start→exit {}", secs(exit)),
                format!("{ratio:.2}x"),
                ratio < 1.5,
            )
        };
        rows.push(Row {
            figure: format!("QEMU start → ready, {machine} (median of {n})"),
            vdcnet: secs(ready),
            peer,
            ratio,
            target: "< 1.5x".into(),
            verdict: if baseline.is_some() { verdict(ok) } else { "-" },
        });
        extras.push(Row {
            figure: format!("QEMU start → banner, {machine} (median of {n})"),
            vdcnet: secs(median(banner)),
            peer: String::new(),
            ratio: String::new(),
            target: String::new(),
            verdict: "",
        });
    }

    let size = std::fs::metadata(&image)?.len();
    rows.push(Row {
        figure: "image size (ELF file)".into(),
        vdcnet: format!("{:.1} KiB", size as f64 / 1024.0),
        peer: String::new(),
        ratio: String::new(),
        target: "< 1024 KiB".into(),
        verdict: verdict(size < 1024 * 1024),
    });

    eprintln!("bench: idle CPU over {IDLE_WINDOW:?}");
    let idle = Vm::builder("idle").image(&image).nic(Nic::user()).spawn()?;
    idle.wait_ready()?;
    let halted = match &idle_baseline {
        Some(k) => Some(Vm::builder("halted").image(k).nic(Nic::user()).spawn()?),
        None => None,
    };
    thread::sleep(Duration::from_secs(1));
    if let Some(h) = &halted {
        if h.exit_status().is_some() {
            return Err(h
                .fail(Error::new(
                    ErrorKind::Exited,
                    "the halted baseline kernel exited",
                ))
                .into());
        }
    }
    let mut watched = vec![&idle];
    watched.extend(halted.as_ref());
    let cpu = idle_cpu(&watched);
    let pct = cpu[0].ok_or("cannot read QEMU's CPU time from /proc")?;
    rows.push(Row {
        figure: format!("host CPU, idle appliance, {}s", IDLE_WINDOW.as_secs()),
        vdcnet: format!("{pct:.2} %"),
        peer: match cpu.get(1).copied().flatten() {
            Some(p) => format!("halted PVH kernel {p:.2} %"),
            None => "n/a (no --idle-baseline)".into(),
        },
        ratio: String::new(),
        target: "< 5 % of a core".into(),
        verdict: verdict(pct < 5.0),
    });
    drop(halted);
    drop(idle);

    let how = if root {
        "ping from a namespace"
    } else {
        "TCP echo via hostfwd"
    };
    eprintln!("bench: smallest -m that boots and answers ({how})");
    let floor = MEMORY_STEPS
        .into_iter()
        .find(|&mib| answers_with(&image, mib, root));
    rows.push(Row {
        figure: format!("smallest -m answering ({how})"),
        vdcnet: floor.map_or("none ≤ 64 MiB".into(), |m| format!("{m} MiB")),
        peer: format!("tried {MEMORY_STEPS:?}"),
        ratio: String::new(),
        target: "≤ 16 MiB".into(),
        verdict: verdict(floor.is_some_and(|m| m <= 16)),
    });

    eprintln!("bench: extras");
    let mut q35 = Vec::new();
    for _ in 0..n {
        q35.push(time_to_ready(&image, Machine::Q35)?.1);
    }
    rows.append(&mut extras);
    rows.push(Row {
        figure: format!("QEMU start → ready, q35 (median of {n})"),
        vdcnet: secs(median(q35)),
        peer: String::new(),
        ratio: String::new(),
        target: String::new(),
        verdict: "",
    });
    // With root: a tap (link 0, pinged from its namespace) and a user NIC on its own
    // subnet (link 1, TCP echo); without: one user NIC.
    const RTT_CONFIG: &str =
        "[Link]\nAddress = 10.0.2.15/24, fec0::15/64\n\n[Link]\nAddress = 10.0.3.15/24\n";
    let extra = if root {
        Vm::builder("rtt")
            .image(&image)
            .config(RTT_CONFIG)
            .nic(Nic::tap())
            .nic(Nic::user().subnet("10.0.3.0/24", None))
            .spawn()?
    } else {
        Vm::builder("rtt").image(&image).nic(Nic::user()).spawn()?
    };
    extra.wait_ready()?;
    rows.push(Row {
        figure: "TCP echo round trip via hostfwd (median of 200)".into(),
        vdcnet: echo_rtt(&extra, 200).map_or("failed".into(), |d| {
            format!("{:.3} ms", d.as_secs_f64() * 1e3)
        }),
        peer: String::new(),
        ratio: String::new(),
        target: String::new(),
        verdict: "",
    });
    if root {
        rows.push(Row {
            figure: "ping round trip from a namespace over tap (avg of 20)".into(),
            vdcnet: ping_rtt(&extra).unwrap_or_else(|| "failed".into()),
            peer: String::new(),
            ratio: String::new(),
            target: String::new(),
            verdict: "",
        });
    }
    drop(extra);

    println!();
    print_table(&rows);
    let missed = rows.iter().filter(|r| r.verdict == "MISSED").count();
    Ok(if missed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_reads_utime_and_stime_of_this_process() {
        assert!(cpu_ticks(std::process::id()).is_some());
    }

    #[test]
    fn median_of_odd_count() {
        let v = [3, 1, 2].map(Duration::from_millis).to_vec();
        assert_eq!(median(v), Duration::from_millis(2));
    }
}
