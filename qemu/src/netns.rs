//! Network namespaces and tap devices: a real Linux peer on the other end of a VM NIC.
//!
//! A [`Tap`] is created in the host's namespace, where QEMU attaches to it by name; once
//! QEMU holds it (its carrier goes up) it is moved into its own [`Netns`], which gets the
//! peer's addresses. Tests then run real tools there (`ping`, later `wg`, `iperf3`) with
//! [`Netns::command`]. Names carry our pid, so parallel tests and processes never clash,
//! and leftovers of dead processes are removed the first time a namespace is created.
//! Everything here needs root.

use crate::error::{Error, ErrorKind, Result};
use crate::host::{self, run, unique};
use crate::nic::Mac;
use std::net::IpAddr;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Once};
use std::thread;
use std::time::{Duration, Instant};

const NS_PREFIX: &str = "vdcnet-";
const TAP_PREFIX: &str = "vdt";

fn require_root(what: &str) -> Result<()> {
    if host::is_root() {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Spawn,
            format!("{what} needs root (network namespaces and tap devices); run as root"),
        ))
    }
}

/// Whether the process with this pid still exists.
fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes namespaces and taps left behind by processes that no longer exist.
fn sweep_leftovers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(out) = run("ip", ["netns", "list"]) {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let name = line.split_whitespace().next().unwrap_or("");
                if let Some(pid) = name
                    .strip_prefix(NS_PREFIX)
                    .and_then(|rest| rest.split('-').next())
                    .and_then(|pid| pid.parse().ok())
                {
                    if !alive(pid) {
                        let _ = run("ip", ["netns", "del", name]);
                    }
                }
            }
        }
        if let Ok(entries) = std::fs::read_dir("/sys/class/net") {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name
                    .strip_prefix(TAP_PREFIX)
                    .and_then(|rest| rest.split('x').next())
                    .and_then(|pid| pid.parse().ok())
                {
                    if !alive(pid) {
                        let _ = run("ip", ["link", "del", &name]);
                    }
                }
            }
        }
    });
}

/// A network namespace, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `vdcnet-<pid>-<n>` with its loopback up.
    pub fn create() -> Result<Netns> {
        require_root("a network namespace")?;
        sweep_leftovers();
        let name = format!("{NS_PREFIX}{}-{}", std::process::id(), unique());
        run("ip", ["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (for `ip netns exec NAME ...`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME <args>`.
    pub fn ip(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.name]).args(args);
        host::run_command(&mut cmd)
    }

    /// Writes `value` to `/proc/sys/<key>` inside the namespace, `key` in slash form
    /// (e.g. `net/ipv6/conf/default/accept_ra`).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        if !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_-.".contains(c))
            || key.contains("..")
            || !value.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(Error::new(
                ErrorKind::Spawn,
                format!("refusing sysctl {key:?} = {value:?}"),
            ));
        }
        let mut cmd = self.command("sh");
        cmd.args(["-c", &format!("echo {value} > /proc/sys/{key}")]);
        host::run_command(&mut cmd).map(|_| ())
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `program` with `args` in the namespace and returns its output (stdout then
    /// stderr); an error holding that output if it exits with failure.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::new(ErrorKind::Net, format!("cannot run {program}: {e}")))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(Error::new(
                ErrorKind::Net,
                format!(
                    "`{program} {}` in namespace {} failed ({})",
                    args.join(" "),
                    self.name,
                    out.status
                ),
            )
            .with_evidence(text))
        }
    }

    /// Sends one ICMP echo request to `addr` from inside the namespace (v4 or v6) and waits
    /// up to `wait` for the reply. Returns ping's output, or an error holding it.
    pub fn ping_once(&self, addr: IpAddr, wait: Duration) -> Result<String> {
        let secs = wait.as_secs().max(1).to_string();
        let family = if addr.is_ipv6() { "-6" } else { "-4" };
        let a = addr.to_string();
        self.run("ping", &[family, "-n", "-c", "1", "-W", &secs, &a])
    }

    /// Pings `addr` once a second until a reply comes or `timeout` passes (the first
    /// requests can be lost while the neighbour entry resolves). Returns the output of
    /// the ping that got a reply.
    pub fn ping(&self, addr: IpAddr, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.ping_once(addr, Duration::from_secs(1)) {
                Ok(out) => return Ok(out),
                Err(e) if Instant::now() >= deadline => {
                    return Err(Error::new(
                        ErrorKind::Net,
                        format!(
                            "ping {addr} from namespace {}: no reply within {timeout:?}",
                            self.name
                        ),
                    )
                    .with_evidence(e.evidence().to_string()))
                }
                Err(_) => {}
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", ["netns", "del", &self.name]);
    }
}

/// A tap device whose far end lives in a namespace: its own, or one shared with whoever
/// created it (then the namespace outlives the tap, e.g. across a VM's restarts).
pub struct Tap {
    /// The interface's name now: its host name until moved, then its namespace name.
    name: String,
    ns: Arc<Netns>,
    addrs: Vec<String>,
    /// The name to take in the namespace, if not the host name.
    ns_name: Option<String>,
    /// The MAC address the namespace side takes, if not the kernel's random one.
    mac: Option<Mac>,
    moved: bool,
}

impl Tap {
    /// Creates the namespace and the tap (still in the host's namespace, up, so its
    /// carrier shows when QEMU attaches). `addrs` are the namespace side's addresses with
    /// prefix length, e.g. `10.0.2.2/24`, `fec0::2/64`.
    pub fn create(addrs: &[String]) -> Result<Tap> {
        Tap::create_in(Arc::new(Netns::create()?), None, None, addrs)
    }

    /// Creates a tap whose far end goes into an existing namespace, renamed to `ns_name`
    /// there (if given; the name must be free in that namespace) and with the MAC address
    /// `mac` (if given). The namespace stays when the tap goes.
    pub fn create_in(
        ns: Arc<Netns>,
        ns_name: Option<&str>,
        mac: Option<Mac>,
        addrs: &[String],
    ) -> Result<Tap> {
        require_root("a tap device")?;
        sweep_leftovers();
        let name = format!("{TAP_PREFIX}{}x{}", std::process::id(), unique() % 10_000);
        run("ip", ["tuntap", "add", "dev", &name, "mode", "tap"])?;
        let tap = Tap {
            name,
            ns,
            addrs: addrs.to_vec(),
            ns_name: ns_name.map(str::to_string),
            mac,
            moved: false,
        };
        run("ip", ["link", "set", "dev", &tap.name, "up"])?;
        Ok(tap)
    }

    /// The tap's interface name (in its namespace once attached).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace on the far end.
    pub fn netns(&self) -> &Netns {
        &self.ns
    }

    /// The namespace side's addresses, as given.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// The `-netdev` value for QEMU.
    pub fn qemu_netdev(&self, id: &str) -> String {
        format!("tap,id={id},ifname={},script=no,downscript=no", self.name)
    }

    /// Waits until a process holds the tap (its carrier is up), then moves it into the
    /// namespace and configures the addresses there. `gave_up` is polled and ends the wait
    /// early (QEMU died).
    pub fn attach_to_namespace(
        &mut self,
        timeout: Duration,
        mut gave_up: impl FnMut() -> bool,
    ) -> Result<()> {
        let carrier = format!("/sys/class/net/{}/carrier", self.name);
        let deadline = Instant::now() + timeout;
        loop {
            if std::fs::read_to_string(&carrier).is_ok_and(|c| c.trim() == "1") {
                break;
            }
            if gave_up() || Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Net,
                    format!("nothing attached to tap {} within {timeout:?}", self.name),
                ));
            }
            thread::sleep(Duration::from_millis(2));
        }
        run(
            "ip",
            ["link", "set", "dev", &self.name, "netns", self.ns.name()],
        )?;
        self.moved = true;
        if let Some(ns_name) = self.ns_name.clone() {
            self.ns
                .ip(&["link", "set", "dev", &self.name, "name", &ns_name])?;
            self.name = ns_name;
        }
        if let Some(mac) = self.mac {
            self.ns.ip(&[
                "link",
                "set",
                "dev",
                &self.name,
                "address",
                &mac.to_string(),
            ])?;
        }
        for addr in &self.addrs {
            let mut args = vec!["addr", "add", addr.as_str(), "dev", &self.name];
            if addr.contains(':') {
                // No duplicate address detection: the address is usable at once.
                args.push("nodad");
            }
            self.ns.ip(&args)?;
        }
        self.ns.ip(&["link", "set", "dev", &self.name, "up"])?;
        Ok(())
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        if self.moved {
            let _ = self.ns.ip(&["link", "del", &self.name]);
        } else {
            let _ = run("ip", ["link", "del", &self.name]);
        }
        // The namespace goes when `ns` drops, right after this.
    }
}
