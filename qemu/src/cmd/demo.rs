//! `vdcnet demo`: two appliances on one shared wire, meshed by a WireGuard tunnel (configs
//! from `vdcnet mesh`: NIC 0 underlay, NIC 1 segment); `a` also sits behind QEMU's
//! user-mode network with a host forward (NIC 2), `b`'s segment is a tap whose far end is a
//! network namespace (statically addressed: a workload without DHCP).
//! Each step prints what it did and what came back; any failed step makes the exit
//! status non-zero.
//!
//! ```text
//!  host 127.0.0.1:P ──hostfwd──► a ◄──── wire (software switch) ────► b ◄──tap──► namespace
//!                       10.0.2.15   10.10.0.1       10.10.0.2   10.20.2.1       10.20.2.2
//!            segments via WireGuard: 10.20.1.1 ◄═══════► 10.20.2.1
//! ```

use super::{no_args, CmdResult};
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use vdcnet_qemu::mesh::{MeshNode, MeshPlan};
use vdcnet_qemu::{
    build_image, is_root, tcp_echo_retry, BuildOutput, Error, Nic, Vm, Wire, DEFAULT_TIMEOUT,
    ECHO_PORT,
};

/// Appended to `a`'s mesh config: link 2 behind QEMU's user-mode network.
const EXTRA_A: &str = "
# a: link 2 behind QEMU's user-mode network
[Link]
Address = 10.0.2.15/24, fec0::15/64
Gateway = 10.0.2.2
";

/// The namespace behind `b`'s segment: a workload with static addresses.
const B_WORKLOAD: [&str; 2] = ["10.20.2.2/24", "fd20:ab:cd:2::2/64"];

/// The two nodes' configs: a WireGuard mesh over the wire (10.10.0.0/24), plus `a`'s
/// user-mode link.
fn configs() -> Result<(MeshNode, MeshNode), Error> {
    let plan = MeshPlan {
        nodes: 2,
        underlay: std::net::Ipv4Addr::new(10, 10, 0, 0),
        ..MeshPlan::default()
    };
    let mut nodes = plan
        .generate()
        .map_err(|e| Error::new(vdcnet_qemu::ErrorKind::Spawn, e))?;
    let b = nodes.pop().expect("two nodes");
    let mut a = nodes.pop().expect("two nodes");
    a.config.push_str(EXTRA_A);
    Ok((a, b))
}

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

/// Waits for `vm`'s console to report an answered ping of `addr`.
fn wait_ping_reply(vm: &Vm, addr: &str) -> Result<((), String), Error> {
    let pattern = format!("vdcnet: ping {addr} seq=");
    vm.console()
        .wait_from(
            0,
            |l| l.starts_with(&pattern) && l.contains("reply"),
            DEFAULT_TIMEOUT,
        )
        .map(|(_, line)| ((), format!("{}: {line}", vm.name())))
        .map_err(|_| {
            vm.fail(Error::new(
                vdcnet_qemu::ErrorKind::Timeout,
                format!("`{}` reported no reply from {addr}", vm.name()),
            ))
        })
}

pub fn main(args: &[String]) -> CmdResult {
    no_args(args)?;
    let mut steps = Steps { n: 0, failed: 0 };
    let root = is_root();

    let Some(image) = steps.run("build the appliance image", || {
        let path = build_image(BuildOutput::Quiet)?;
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let detail = format!("{} ({:.0} KiB)", path.display(), size as f64 / 1024.0);
        Ok((path, detail))
    }) else {
        return Ok(ExitCode::FAILURE);
    };

    let Some((node_a, node_b)) =
        steps.run("generate a two-node WireGuard mesh (`vdcnet mesh`)", || {
            let (a, b) = configs()?;
            let detail = format!(
                "a: {} overlay {}, b: {} overlay {}",
                a.underlay, a.overlay_v4, b.underlay, b.overlay_v4
            );
            Ok(((a, b), detail))
        })
    else {
        return Ok(ExitCode::FAILURE);
    };
    let (a_v6, b_v6) = (
        node_a.overlay_v6.expect("plan has IPv6").to_string(),
        node_b.overlay_v6.expect("plan has IPv6").to_string(),
    );
    let (a_v4, b_v4) = (node_a.overlay_v4.to_string(), node_b.overlay_v4.to_string());

    let wire = Wire::new("demo");
    let (a_segment, b_segment) = (Wire::new("demo-a-segment"), Wire::new("demo-b-segment"));
    let booted = steps.run(
        "boot `a` (wire + segment + user-mode NIC with a host forward) and `b` (wire + segment \
         tap), pinging each other",
        || {
            // `a`'s segment is a wire of its own with nothing else on it.
            let a = Vm::builder("a")
                .image(&image)
                .config(&node_a.config)
                .append(&format!("vdcnet.ping=10.10.0.2,{b_v4},{b_v6}"))
                .nic(Nic::wire(&wire))
                .nic(Nic::wire(&a_segment))
                .nic(Nic::user())
                .spawn()?;
            let b = Vm::builder("b")
                .image(&image)
                .config(&node_b.config)
                .append(&format!("vdcnet.ping=10.10.0.1,{a_v4},{a_v6}"))
                .nic(Nic::wire(&wire))
                .nic(if root {
                    Nic::tap_with(&B_WORKLOAD)
                } else {
                    Nic::wire(&b_segment)
                })
                .spawn()?;
            let ready_a = a.wait_ready()?;
            let ready_b = b.wait_ready()?;
            let detail = format!("\n      a: {ready_a}\n      b: {ready_b}");
            Ok(((a, b), detail))
        },
    );
    let Some((a, b)) = booted else {
        println!("\ndemo: {} of {} steps failed", steps.failed, steps.n);
        return Ok(ExitCode::FAILURE);
    };
    for vm in [&a, &b] {
        for nic in vm.describe_nics() {
            println!("      {}: {nic}", vm.name());
        }
    }

    for addr in [b_v4.as_str(), b_v6.as_str()] {
        steps.run(&format!("ping b at {addr} from the namespace"), || {
            let ns = b.netns(1).ok_or_else(|| {
                Error::new(
                    vdcnet_qemu::ErrorKind::Spawn,
                    "no namespace: network namespaces and taps need root",
                )
            })?;
            let ip: IpAddr = addr.parse().expect("literal address");
            let out = ns
                .ping(ip, Duration::from_secs(10))
                .map_err(|e| b.fail(e))?;
            Ok((
                (),
                format!(
                    "ip netns exec {} ping {addr}: {}",
                    ns.name(),
                    ping_time(&out)
                ),
            ))
        });
    }

    steps.run("TCP echo from the host through a's forward to a:7", || {
        let fwd = a
            .forwarded(ECHO_PORT)
            .expect("a has a user NIC forwarding 7");
        let payload = b"hello from the host, through QEMU's forward, to vdcnet";
        let back = tcp_echo_retry(fwd, payload, Duration::from_secs(10)).map_err(|e| a.fail(e))?;
        if back != payload {
            return Err(a.fail(Error::new(
                vdcnet_qemu::ErrorKind::Net,
                format!("echo differs: sent {payload:?}, got {back:?}"),
            )));
        }
        Ok((
            (),
            format!(
                "{fwd} -> a:7 sent and got back {:?}",
                String::from_utf8_lossy(&back)
            ),
        ))
    });

    for (vm, addr) in [(&a, "10.10.0.2"), (&b, "10.10.0.1")] {
        steps.run(
            &format!("`{}` pings {addr} over the wire", vm.name()),
            || wait_ping_reply(vm, addr),
        );
    }
    for (vm, addr) in [(&a, &b_v4), (&a, &b_v6), (&b, &a_v4), (&b, &a_v6)] {
        steps.run(
            &format!("`{}` pings {addr} through the WireGuard tunnel", vm.name()),
            || wait_ping_reply(vm, addr),
        );
    }

    println!("wire `{}`:", wire.name());
    for (port, s) in wire.stats() {
        println!(
            "    port {port}: {} frames in, {} out, {} dropped",
            s.rx, s.tx, s.dropped
        );
    }
    if steps.failed == 0 {
        println!("\ndemo: all {} steps passed", steps.n);
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\ndemo: {} of {} steps failed", steps.failed, steps.n);
        Ok(ExitCode::FAILURE)
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
