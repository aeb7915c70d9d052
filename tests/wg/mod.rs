//! Helpers for the WireGuard interop tests (`tests/wireguard.rs`): one test's underlay and
//! the appliance's config for it, waits on the appliance's console, and booting a second
//! appliance onto an existing namespace. The pieces that drive host tools live in the
//! submodules:
//!
//! - [`peer`]: a wireguard-go peer in a VM's namespace (killed on drop), keys from
//!   `wg genkey`/`wg pubkey`, `wg show` parsed;
//! - [`capture`]: an underlay capture (tcpdump), a small pcap reader and tshark's view;
//! - [`clients`]: TCP and UDP clients that run inside a namespace (python3: the test
//!   process itself stays in the host's namespace), and junk bytes.
//!
//! Everything returns `vdcnet_qemu::Result`, so a test attaches the VM's evidence with
//! `vm.fail(e)` and the peer's with [`WgGo::evidence`].

mod capture;
mod clients;
mod peer;

pub use capture::{dissect, udp_datagrams, Capture};
pub use clients::{send_udp_in, tcp_echo_in_retry, Junk};
pub use peer::{Keys, WgGo, WgSpec};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Duration;
use vdcnet_qemu::{Error, ErrorKind, Netns, Result, Vm};

/// The WireGuard port on both sides.
pub const WG_PORT: u16 = 51820;
/// The appliance's overlay addresses (its `[Interface] Address`).
pub const APPLIANCE_V4: &str = "10.20.1.1";
/// See [`APPLIANCE_V4`].
pub const APPLIANCE_V6: &str = "fd20:1::1";
/// wireguard-go's overlay addresses (on its interface in the namespace).
pub const PEER_V4: &str = "10.20.2.1";
/// See [`PEER_V4`].
pub const PEER_V6: &str = "fd20:2::1";
/// The command line that makes the appliance ping wireguard-go's overlay addresses.
pub const PING_PEER: &str = "vdcnet.ping=10.20.2.1,fd20:2::1";

fn net_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Net, message)
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Parses an address the tests wrote themselves.
pub fn ip(addr: &str) -> IpAddr {
    addr.parse().expect("a literal address")
}

/// One test's underlay: `192.168.<net>.0/24`, wireguard-go's namespace at `.1`, the
/// appliance at `.2`. Each test takes its own `net`.
#[derive(Clone, Copy, Debug)]
pub struct Underlay {
    net: u8,
}

impl Underlay {
    /// The underlay `192.168.<net>.0/24`.
    pub fn new(net: u8) -> Underlay {
        Underlay { net }
    }

    /// The namespace side's address with its prefix, for `Nic::tap_with`.
    pub fn peer_cidr(&self) -> String {
        format!("192.168.{}.1/24", self.net)
    }

    /// The namespace side's address.
    pub fn peer_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, self.net, 1)
    }

    /// The appliance's underlay address.
    pub fn appliance_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, self.net, 2)
    }

    /// The appliance's WireGuard endpoint, `192.168.<net>.2:51820`.
    pub fn appliance_endpoint(&self) -> String {
        format!("{}:{WG_PORT}", self.appliance_ip())
    }

    /// wireguard-go's endpoint, `192.168.<net>.1:51820`.
    pub fn peer_endpoint(&self) -> String {
        format!("{}:{WG_PORT}", self.peer_ip())
    }
}

/// Runs `cmd` with `input` on its stdin (written from a thread, so a large input and a
/// large output cannot deadlock); fails with its output unless it exits zero.
pub fn pipe(cmd: &mut Command, input: &[u8]) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::new(ErrorKind::Spawn, format!("cannot run {cmd:?}: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child
        .wait_with_output()
        .map_err(|e| Error::new(ErrorKind::Spawn, format!("waiting for {cmd:?}: {e}")))?;
    let _ = writer.join();
    if out.status.success() {
        Ok(out)
    } else {
        Err(
            Error::new(ErrorKind::Spawn, format!("{cmd:?} failed ({})", out.status))
                .with_evidence(text(&out)),
        )
    }
}

/// What the appliance's node config says about its tunnel.
pub struct ApplianceConf<'a> {
    /// Its underlay.
    pub underlay: Underlay,
    /// Its own keys.
    pub keys: &'a Keys,
    /// wireguard-go's public key.
    pub peer_public: &'a str,
    /// Whether the `[Peer]` has `Endpoint = 192.168.<net>.1:51820` (else the appliance
    /// can only answer).
    pub endpoint: bool,
}

impl ApplianceConf<'_> {
    /// The node config text: one `[Link]` on the underlay, the `[Interface]` with the
    /// overlay addresses, one `[Peer]` for wireguard-go's `10.20.2.0/24` and `fd20:2::/64`.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "[Link]");
        let _ = writeln!(s, "Address = {}/24", self.underlay.appliance_ip());
        let _ = writeln!(s, "[Interface]");
        let _ = writeln!(s, "PrivateKey = {}", self.keys.private);
        let _ = writeln!(s, "ListenPort = {WG_PORT}");
        let _ = writeln!(s, "Address = {APPLIANCE_V4}/24, {APPLIANCE_V6}/64");
        let _ = writeln!(s, "[Peer]");
        let _ = writeln!(s, "PublicKey = {}", self.peer_public);
        if self.endpoint {
            let _ = writeln!(s, "Endpoint = {}", self.underlay.peer_endpoint());
        }
        let _ = writeln!(s, "AllowedIPs = 10.20.2.0/24, fd20:2::/64");
        s
    }
}

/// Unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The console line the appliance prints for each echo reply its pinger receives.
fn reply_line(target: &str) -> String {
    format!("vdcnet: ping {target} seq=")
}

/// Waits for a ping reply line for `target` at console index `from` or later (the error
/// carries no evidence; the caller adds the VM's and the peer's).
pub fn wait_reply_from(vm: &Vm, from: usize, target: &str, timeout: Duration) -> Result<String> {
    let prefix = reply_line(target);
    match vm.console().wait_from(
        from,
        |l| l.starts_with(&prefix) && l.ends_with("reply"),
        timeout,
    ) {
        Ok((_, line)) => Ok(line),
        Err(why) => Err(net_error(format!(
            "vm `{}`: no `{prefix}N reply` line after console line {from} ({why:?}, {timeout:?})",
            vm.name()
        ))),
    }
}

/// The tunnel's counters from a `vdcnet: stats` line (`vdcnet.stats=SECONDS`): `rx`,
/// `tx`, `handshakes`, `drops` (the total) and one count per drop reason that happened,
/// named as the image names them (`Replay`, `DecryptFailed`, ...).
#[derive(Clone, Debug, Default)]
pub struct TunnelStats {
    counters: BTreeMap<String, u64>,
    line: String,
}

impl TunnelStats {
    /// Parses the ` wg0 k=v k=v ...` part of a stats line.
    pub fn parse(line: &str) -> Option<TunnelStats> {
        let (_, wg) = line.split_once(" wg0 ")?;
        let counters = wg
            .split_whitespace()
            .filter_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.trim_end_matches(';').parse().ok()?))
            })
            .collect();
        Some(TunnelStats {
            counters,
            line: line.to_string(),
        })
    }

    /// A counter; 0 if the line does not show it.
    pub fn get(&self, name: &str) -> u64 {
        self.counters.get(name).copied().unwrap_or(0)
    }

    /// How much `name` grew since `earlier`.
    pub fn grew(&self, earlier: &TunnelStats, name: &str) -> u64 {
        self.get(name).saturating_sub(earlier.get(name))
    }

    /// The line it came from.
    pub fn line(&self) -> &str {
        &self.line
    }
}

/// Waits for a `vdcnet: stats` line with tunnel counters at console index `from` or later.
pub fn wait_stats_from(vm: &Vm, from: usize, timeout: Duration) -> Result<TunnelStats> {
    match vm.console().wait_from(
        from,
        |l| l.starts_with("vdcnet: stats") && l.contains(" wg0 "),
        timeout,
    ) {
        Ok((_, line)) => TunnelStats::parse(&line)
            .ok_or_else(|| net_error(format!("unreadable stats line: {line}"))),
        Err(why) => Err(net_error(format!(
            "vm `{}`: no `vdcnet: stats ... wg0 ...` line after console line {from} ({why:?}, \
             {timeout:?}); was it booted with vdcnet.stats=?",
            vm.name()
        ))),
    }
}

/// Asserts that the appliance is still running and never printed a fault or a panic.
#[track_caller]
pub fn assert_alive(vm: &Vm) {
    assert!(
        vm.exit_status().is_none(),
        "the appliance exited\n{}",
        vm.evidence()
    );
    for bad in ["vdcnet: fault", "vdcnet: panic", "vdcnet: fatal"] {
        assert!(
            vm.console().matching(bad).is_empty(),
            "the appliance printed `{bad}`\n{}",
            vm.evidence()
        );
    }
}

/// Moves NIC `index` of `vm` (a tap) into `ns`, where it gets `addrs` and goes up. The
/// returned guard deletes it from `ns` and kills `vm` on drop. This is how a second
/// appliance boots onto an existing namespace: the library gives every tap NIC a fresh
/// namespace, so the tap is moved afterwards.
pub fn move_tap_into(vm: Vm, index: usize, ns: &Netns, addrs: &[String]) -> Result<MovedTap> {
    let tap = vm
        .tap(index)
        .ok_or_else(|| net_error(format!("NIC {index} is not a tap")))?;
    let name = tap.name().to_string();
    tap.netns()
        .ip(&["link", "set", "dev", &name, "netns", ns.name()])
        .map_err(|e| vm.fail(e))?;
    let moved = MovedTap {
        vm,
        tap: name,
        ns: ns.name().to_string(),
    };
    for a in addrs {
        ns.ip(&["addr", "add", a, "dev", &moved.tap])?;
    }
    ns.ip(&["link", "set", "dev", &moved.tap, "up"])?;
    Ok(moved)
}

/// A VM whose tap was moved into another VM's namespace; see [`move_tap_into`].
pub struct MovedTap {
    /// The VM.
    pub vm: Vm,
    tap: String,
    ns: String,
}

impl Drop for MovedTap {
    fn drop(&mut self) {
        self.vm.kill();
        let _ = Command::new("ip")
            .args(["-n", &self.ns, "link", "del", &self.tap])
            .stdin(Stdio::null())
            .output();
    }
}
