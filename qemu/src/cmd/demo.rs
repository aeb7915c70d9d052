//! `vdcnet demo`: two appliances in a lab (`vdcnet_qemu::lab`): a WireGuard mesh over a
//! software underlay switch, and behind each appliance's segment NIC a workload network
//! namespace that configures itself by the appliance's DHCP server and router
//! advertisements. The workloads then talk to each other over the mesh. Each step prints
//! what it did and what came back; any failed step makes the exit status non-zero. Needs
//! root (namespaces and taps).
//!
//! Node 1 is also the web gateway: a client on the underlay (the "internet", a namespace
//! on the switch) asks node 1's public address for `app.example.org`, and gets the page
//! that workload 2's private web server (python's http.server) serves.
//!
//! ```text
//!                        internet 192.168.100.200 (curl)
//!                                   │
//!  workload 1 ──tap── node1 ◄═══ WireGuard over the underlay switch ═══► node2 ──tap── workload 2
//!  10.20.1.x (DHCP)  10.20.1.1   192.168.100.1          192.168.100.2   10.20.2.1  10.20.2.10 (DHCP)
//! ```

use super::{no_args, CmdResult};
use std::net::IpAddr;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};
use vdcnet_qemu::lab::{Lab, Topology};
use vdcnet_qemu::{
    build_image, is_root, BuildOutput, Error, ErrorKind, LinkPolicy, TempDir, UnderlayHost,
};

/// Workload 2's address (a static lease), where the demo's private web server listens.
const WEB: &str = "10.20.2.10";
/// What node 1 adds to its generated config: the gateway and its one service.
const GATEWAY: &str = "
[Gateway]
Listen = 192.168.100.1

[Service]
Name = app.example.org
Mode = http
Backend = 10.20.2.10:8080
HealthCheck = http /
";

/// Counts and prints steps.
struct Steps {
    n: usize,
    failed: usize,
}

impl Steps {
    fn run<T>(&mut self, what: &str, f: impl FnOnce() -> Result<(T, String), Error>) -> Option<T> {
        self.n += 1;
        println!("[{}] {what}", self.n);
        let t = Instant::now();
        match f() {
            Ok((v, detail)) => {
                println!("    ok ({:.2?}): {detail}", t.elapsed());
                Some(v)
            }
            Err(e) => {
                self.failed += 1;
                println!("    FAILED: {e}");
                None
            }
        }
    }
}

/// The `time=… ms` of a ping's reply line.
fn ping_time(output: &str) -> String {
    output
        .split_whitespace()
        .find_map(|w| w.strip_prefix("time="))
        .map_or_else(|| "reply".to_string(), |t| format!("reply in {t} ms"))
}

/// The last line of `text` that contains `needle`, trimmed.
fn line_with<'a>(text: &'a str, needle: &str) -> Option<&'a str> {
    text.lines()
        .rev()
        .find(|l| l.contains(needle))
        .map(str::trim)
}

pub fn main(args: &[String]) -> CmdResult {
    no_args(args)?;
    if !is_root() {
        eprintln!("vdcnet demo: needs root (it creates network namespaces and tap devices)");
        return Ok(ExitCode::FAILURE);
    }
    let mut steps = Steps { n: 0, failed: 0 };
    let done = |steps: &Steps| {
        if steps.failed == 0 {
            println!("\ndemo: all {} steps passed", steps.n);
            Ok(ExitCode::SUCCESS)
        } else {
            println!("\ndemo: {} of {} steps failed", steps.failed, steps.n);
            Ok(ExitCode::FAILURE)
        }
    };

    if steps
        .run("build the appliance image", || {
            let path = build_image(BuildOutput::Quiet)?;
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            Ok((
                (),
                format!("{} ({:.0} KiB)", path.display(), size as f64 / 1024.0),
            ))
        })
        .is_none()
    {
        return done(&steps);
    }

    let Some(mut lab) = steps.run(
        "start a two-node lab: `vdcnet mesh` configs, underlay switch, a workload namespace \
         behind each segment configured by DHCP and router advertisements",
        || {
            let topo = Topology::new(2)
                .static_v4(1, WEB.parse().expect("an address"))
                .edit_config(|i, text| {
                    if i == 0 {
                        format!("{text}{GATEWAY}")
                    } else {
                        text.to_string()
                    }
                });
            let lab = Lab::start(&topo)?;
            let detail = lab
                .describe()
                .iter()
                .map(|l| format!("\n      {l}"))
                .collect::<String>();
            Ok((lab, detail))
        },
    ) else {
        return done(&steps);
    };
    let addrs = |lab: &Lab, i: usize| -> Vec<IpAddr> {
        let a = lab.workload_addrs(i);
        a.v4.map(IpAddr::V4)
            .into_iter()
            .chain(a.v6.map(IpAddr::V6))
            .collect()
    };

    for (i, j) in [(0, 1), (1, 0)] {
        for dst in addrs(&lab, j) {
            steps.run(
                &format!(
                    "workload {} pings workload {} at {dst} over the mesh",
                    i + 1,
                    j + 1
                ),
                || {
                    let out = lab.workload(i).ping(dst, Duration::from_secs(20))?;
                    Ok(((), ping_time(&out)))
                },
            );
        }
    }

    if let Some(dst) = lab.workload_v4(1) {
        let dst = dst.to_string();
        steps.run(
            "TCP from workload 1 to workload 2 with iperf3 (3 s)",
            || {
                let mut server = lab
                    .workload(1)
                    .command("iperf3")
                    .args(["-s", "-1"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| Error::new(ErrorKind::Net, format!("iperf3: {e}")))?;
                std::thread::sleep(Duration::from_millis(500));
                let r = lab.workload(0).run("iperf3", &["-c", &dst, "-t", "3"]);
                let _ = server.kill();
                let _ = server.wait();
                let out = r?;
                Ok((
                    (),
                    line_with(&out, "receiver").unwrap_or("done").to_string(),
                ))
            },
        );
        steps.run(
            "a 1500-byte ping with DF set gets 'fragmentation needed' (the tunnel's MTU)",
            || {
                let out = lab
                    .workload(0)
                    .run(
                        "ping",
                        &["-n", "-c", "1", "-W", "2", "-M", "do", "-s", "1472", &dst],
                    )
                    .err()
                    .map(|e| e.evidence().to_string())
                    .unwrap_or_default();
                match line_with(&out, "mtu") {
                    Some(l) => Ok(((), l.to_string())),
                    None => Err(Error::new(ErrorKind::Net, "no fragmentation-needed error")
                        .with_evidence(out)),
                }
            },
        );
        let underlay = lab.nodes()[1].underlay.to_string();
        steps.run(
            &format!("workload 1 cannot reach the underlay ({underlay})"),
            || match lab
                .workload(0)
                .run("ping", &["-n", "-c", "1", "-W", "2", &underlay])
            {
                Ok(out) => {
                    Err(Error::new(ErrorKind::Net, "the underlay answered").with_evidence(out))
                }
                Err(e) => Ok((
                    (),
                    line_with(e.evidence(), "filtered")
                        .unwrap_or("no reply")
                        .to_string(),
                )),
            },
        );
        gateway_steps(&mut steps, &lab);
        let dst: IpAddr = dst.parse().expect("an address");
        steps.run("cut node2's underlay link: the mesh stops", || {
            lab.set_policy(1, LinkPolicy::cut());
            match lab.workload(0).ping_once(dst, Duration::from_secs(2)) {
                Ok(_) => Err(Error::new(ErrorKind::Net, "a reply crossed a cut link")),
                Err(_) => Ok(((), "no reply, as expected".to_string())),
            }
        });
        steps.run("restore the link: traffic resumes by itself", || {
            lab.set_policy(1, LinkPolicy::default());
            let t = Instant::now();
            let out = lab.workload(0).ping(dst, Duration::from_secs(30))?;
            Ok(((), format!("{} after {:.1?}", ping_time(&out), t.elapsed())))
        });
    }

    println!("underlay switch `{}`:", lab.wire().name());
    for (port, s) in lab.wire().stats() {
        println!(
            "    port {port}: {} frames in, {} out, {} dropped",
            s.rx, s.tx, s.dropped
        );
    }
    done(&steps)
}

/// The web gateway: a public client reaches workload 2's private web server through
/// node 1, and cannot reach it directly.
fn gateway_steps(steps: &mut Steps, lab: &Lab) {
    let Some(dir) = steps.run(
        "workload 2 serves a page on 10.20.2.10:8080 (python http.server)",
        || {
            let dir = TempDir::new("demo-web")?;
            std::fs::write(dir.path().join("index.html"), "hello from workload 2\n")
                .map_err(|e| Error::new(ErrorKind::Spawn, format!("writing the page: {e}")))?;
            let server = lab
                .workload(1)
                .command("python3")
                .args(["-m", "http.server", "8080", "--bind", WEB, "--directory"])
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| Error::new(ErrorKind::Spawn, format!("python3: {e}")))?;
            Ok(((dir, Killed(server)), "listening".to_string()))
        },
    ) else {
        return;
    };
    let Some(internet) = steps.run(
        "plug an \"internet\" host into the underlay switch at 192.168.100.200",
        || {
            Ok((
                UnderlayHost::attach(lab.wire(), &["192.168.100.200/24".to_string()])?,
                String::new(),
            ))
        },
    ) else {
        return;
    };
    let ns = internet.netns();
    steps.run(
        "the internet asks node 1 (192.168.100.1) for http://app.example.org/: the gateway \
         routes it by Host over the mesh to workload 2",
        || {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let r = ns.run(
                    "curl",
                    &[
                        "-sS",
                        "--fail",
                        "--max-time",
                        "5",
                        "--resolve",
                        "app.example.org:80:192.168.100.1",
                        "http://app.example.org/",
                    ],
                );
                match r {
                    Ok(body) => return Ok(((), body.trim().to_string())),
                    Err(e) if Instant::now() > deadline => return Err(e),
                    Err(_) => std::thread::sleep(Duration::from_millis(500)),
                }
            }
        },
    );
    steps.run("the internet cannot reach workload 2 directly", || {
        ns.ip(&["route", "add", "10.20.0.0/16", "via", "192.168.100.1"])?;
        match ns.run(
            "curl",
            &["-sS", "--max-time", "3", &format!("http://{WEB}:8080/")],
        ) {
            Ok(body) => {
                Err(Error::new(ErrorKind::Net, "the private server answered").with_evidence(body))
            }
            Err(_) => Ok(((), "no answer, as expected".to_string())),
        }
    });
    drop(dir);
}

/// A child process killed on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_time_reads_the_reply_time() {
        let out = "64 bytes from 10.20.0.15: icmp_seq=1 ttl=64 time=0.612 ms\n";
        assert_eq!(ping_time(out), "reply in 0.612 ms");
        assert_eq!(ping_time("1 received"), "reply");
    }
}
