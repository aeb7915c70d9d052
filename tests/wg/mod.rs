//! Helpers for the WireGuard interop tests: a wireguard-go peer in a VM's namespace
//! (killed on drop), keys from `wg genkey`/`wg pubkey`, the appliance's config, `wg show`
//! parsed, an underlay capture (tcpdump) with a small pcap reader, and TCP/UDP clients
//! that run inside a namespace (python3, since the test process itself stays in the host's
//! namespace).
//!
//! Everything returns `vdcnet_qemu::Result`, so a test attaches the VM's evidence with
//! `vm.fail(e)` and the peer's with [`WgGo::evidence`].

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use vdcnet_qemu::{run_command, Error, ErrorKind, Netns, Result, TempDir, Vm};

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

/// A process-unique number for interface names.
fn unique() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
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

/// A WireGuard key pair, base64 as `wg` prints it.
#[derive(Clone)]
pub struct Keys {
    /// `wg genkey` output.
    pub private: String,
    /// `wg pubkey` of it.
    pub public: String,
}

impl Keys {
    /// A fresh pair from `wg genkey` and `wg pubkey`.
    pub fn generate() -> Result<Keys> {
        let out = run_command(Command::new("wg").arg("genkey"))?;
        let private = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let public = String::from_utf8_lossy(
            &pipe(Command::new("wg").arg("pubkey"), private.as_bytes())?.stdout,
        )
        .trim()
        .to_string();
        if private.len() != 44 || public.len() != 44 {
            return Err(Error::new(
                ErrorKind::Spawn,
                format!("`wg genkey | wg pubkey` gave odd keys: {private:?} {public:?}"),
            ));
        }
        Ok(Keys { private, public })
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
    /// `PersistentKeepalive`, if any.
    pub keepalive: Option<u16>,
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
        if let Some(k) = self.keepalive {
            let _ = writeln!(s, "PersistentKeepalive = {k}");
        }
        s
    }
}

/// How wireguard-go is configured (with `wg set` and `ip`) in the namespace.
#[derive(Clone)]
pub struct WgSpec {
    /// Its own keys.
    pub keys: Keys,
    /// The appliance's public key.
    pub appliance_public: String,
    /// The appliance's endpoint, if wireguard-go is to know it (else it can only answer).
    pub endpoint: Option<String>,
}

/// A wireguard-go process on its own interface (`wg<pid>n<k>`, unique: the UAPI socket
/// under /var/run/wireguard is shared by every network namespace) in a namespace. It
/// holds `10.20.2.1/24` and `fd20:2::1/64` and routes the appliance's overlay
/// (`10.20.1.0/24`, `fd20:1::/64`) into the tunnel. Killed on drop.
pub struct WgGo {
    ns: String,
    ifname: String,
    spec: WgSpec,
    child: Option<Child>,
    dir: TempDir,
    starts: u32,
}

impl WgGo {
    /// Starts wireguard-go in `ns` and configures it; returns once `wg show` sees it.
    pub fn start(ns: &Netns, spec: WgSpec) -> Result<WgGo> {
        let ifname = format!("wg{}n{}", std::process::id(), unique());
        let dir = TempDir::new(&ifname)?;
        let mut wg = WgGo {
            ns: ns.name().to_string(),
            ifname,
            spec,
            child: None,
            dir,
            starts: 0,
        };
        wg.launch()?;
        Ok(wg)
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("private.key")
    }

    fn log_file(&self, start: u32) -> PathBuf {
        self.dir.path().join(format!("wireguard-go.{start}.log"))
    }

    fn in_ns(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, program]);
        cmd
    }

    fn ip(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.ns]).args(args);
        run_command(&mut cmd)
    }

    fn launch(&mut self) -> Result<()> {
        self.starts += 1;
        let log = File::create(self.log_file(self.starts))
            .map_err(|e| Error::new(ErrorKind::Io, format!("creating wireguard-go's log: {e}")))?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::new(ErrorKind::Io, format!("cloning a file handle: {e}")))?;
        let child = self
            .in_ns("wireguard-go")
            .args(["-f", &self.ifname])
            .env("WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD", "1")
            .env("LOG_LEVEL", "verbose")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Spawn,
                    format!("cannot start wireguard-go (is it installed?): {e}"),
                )
            })?;
        self.child = Some(child);
        self.wait_up()?;
        self.configure()
    }

    /// Waits until the UAPI socket answers `wg show`.
    fn wait_up(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(Error::new(
                        ErrorKind::Spawn,
                        format!("wireguard-go {} exited at start ({status})", self.ifname),
                    )
                    .with_evidence(self.evidence()));
                }
            }
            let out = self
                .in_ns("wg")
                .args(["show", &self.ifname])
                .stdin(Stdio::null())
                .output();
            if out.is_ok_and(|o| o.status.success()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("wireguard-go {} did not come up within 10 s", self.ifname),
                )
                .with_evidence(self.evidence()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn configure(&self) -> Result<()> {
        // Mode 0600, so `wg` does not warn about a world-readable key.
        let path = self.key_file();
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| Error::new(ErrorKind::Io, format!("writing {}: {e}", path.display())))?;
        writeln!(f, "{}", self.spec.keys.private)
            .map_err(|e| Error::new(ErrorKind::Io, format!("writing {}: {e}", path.display())))?;
        drop(f);
        let port = WG_PORT.to_string();
        let key = path.to_string_lossy().into_owned();
        let mut args = vec![
            "set",
            self.ifname.as_str(),
            "listen-port",
            &port,
            "private-key",
            &key,
            "peer",
            &self.spec.appliance_public,
            "allowed-ips",
            "10.20.1.0/24,fd20:1::/64",
        ];
        if let Some(e) = &self.spec.endpoint {
            args.extend(["endpoint", e.as_str()]);
        }
        run_command(self.in_ns("wg").args(&args)).map_err(|e| e.with_evidence(self.evidence()))?;
        let dev = self.ifname.as_str();
        self.ip(&["addr", "add", &format!("{PEER_V4}/24"), "dev", dev])?;
        self.ip(&["addr", "add", &format!("{PEER_V6}/64"), "dev", dev, "nodad"])?;
        self.ip(&["link", "set", "dev", dev, "up"])?;
        self.ip(&["route", "add", "10.20.1.0/24", "dev", dev])?;
        self.ip(&["route", "add", "fd20:1::/64", "dev", dev])?;
        Ok(())
    }

    /// Kills wireguard-go (SIGKILL: no goodbye to the appliance) and waits for it to go;
    /// its interface goes with it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            // SIGKILL leaves its UAPI socket behind (a new start replaces it).
            let _ = std::fs::remove_file(format!("/var/run/wireguard/{}.sock", self.ifname));
        }
        // The interface disappears once the process's tun descriptor is closed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.ip(&["link", "show", "dev", &self.ifname]).is_ok() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts a new wireguard-go with the same interface name, key and peer config; it
    /// knows nothing of the sessions the old one had. `endpoint` replaces the spec's.
    pub fn restart(&mut self, endpoint: Option<String>) -> Result<()> {
        self.kill();
        self.spec.endpoint = endpoint;
        self.launch()
    }

    /// `wg show <if> dump`'s line for the appliance.
    pub fn peer_dump(&self) -> Result<PeerDump> {
        let out = run_command(self.in_ns("wg").args(["show", &self.ifname, "dump"]))?;
        let dump = String::from_utf8_lossy(&out.stdout).into_owned();
        dump.lines()
            .skip(1)
            .filter_map(PeerDump::parse)
            .find(|p| p.public_key == self.spec.appliance_public)
            .ok_or_else(|| {
                net_error(format!(
                    "`wg show {} dump` has no line for the appliance",
                    self.ifname
                ))
                .with_evidence(dump.clone())
            })
    }

    /// Waits until `wg show` reports a handshake at or after `since` (Unix seconds).
    pub fn wait_handshake_since(&self, since: u64, timeout: Duration) -> Result<PeerDump> {
        let deadline = Instant::now() + timeout;
        loop {
            let dump = self.peer_dump()?;
            if dump.latest_handshake >= since {
                return Ok(dump);
            }
            if Instant::now() >= deadline {
                return Err(net_error(format!(
                    "wireguard-go {}: no handshake since {since} within {timeout:?} \
                     (latest-handshake {})",
                    self.ifname, dump.latest_handshake
                ))
                .with_evidence(self.evidence()));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The log of the running (or last) wireguard-go process so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file(self.starts)).unwrap_or_default()
    }

    /// `wg show` and the tail of wireguard-go's log, for failure reports.
    pub fn evidence(&self) -> String {
        let mut s = format!(
            "--- wireguard-go {} in namespace {} (start #{}) ---\n",
            self.ifname, self.ns, self.starts
        );
        if let Ok(out) = self
            .in_ns("wg")
            .args(["show", &self.ifname])
            .stdin(Stdio::null())
            .output()
        {
            for l in text(&out).lines() {
                let _ = writeln!(s, "  {l}");
            }
        }
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = &lines[lines.len().saturating_sub(30)..];
        let _ = writeln!(
            s,
            "--- wireguard-go log (last {} of {} lines) ---",
            tail.len(),
            lines.len()
        );
        for l in tail {
            let _ = writeln!(s, "  {l}");
        }
        s
    }
}

impl Drop for WgGo {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One peer line of `wg show <if> dump`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerDump {
    /// The peer's public key.
    pub public_key: String,
    /// `ip:port`, or `(none)`.
    pub endpoint: String,
    /// Unix seconds of the latest handshake; 0 if none.
    pub latest_handshake: u64,
    /// Bytes received from the peer.
    pub rx: u64,
    /// Bytes sent to the peer.
    pub tx: u64,
}

impl PeerDump {
    /// Parses a peer line: public-key, preshared-key, endpoint, allowed-ips,
    /// latest-handshake, transfer-rx, transfer-tx, persistent-keepalive (tab-separated).
    pub fn parse(line: &str) -> Option<PeerDump> {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 8 {
            return None;
        }
        Some(PeerDump {
            public_key: f[0].to_string(),
            endpoint: f[2].to_string(),
            latest_handshake: f[4].parse().ok()?,
            rx: f[5].parse().ok()?,
            tx: f[6].parse().ok()?,
        })
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
pub fn reply_line(target: &str) -> String {
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

const TCP_ECHO_CLIENT: &str = r#"
import socket, sys, threading
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
data = sys.stdin.buffer.read()
s = socket.create_connection((host, port), timeout=timeout)
got, err = [], []
def reader():
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return
            got.append(b)
    except Exception as e:
        err.append(e)
t = threading.Thread(target=reader)
t.start()
s.sendall(data)
s.shutdown(socket.SHUT_WR)
t.join()
sys.stdout.buffer.write(b"".join(got))
if err:
    sys.stderr.write("receiving: %r\n" % err[0])
    sys.exit(1)
"#;

/// Sends `payload` to the TCP echo service at `addr:port` from inside `ns`, half-closes,
/// and returns everything read back until the server closed.
pub fn tcp_echo_in(ns: &Netns, addr: IpAddr, port: u16, payload: &[u8]) -> Result<Vec<u8>> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns.name(), "python3", "-c", TCP_ECHO_CLIENT])
        .arg(addr.to_string())
        .arg(port.to_string())
        .arg("20");
    pipe(&mut cmd, payload).map(|out| out.stdout).map_err(|e| {
        net_error(format!(
            "TCP echo to [{addr}]:{port} from namespace {}",
            ns.name()
        ))
        .with_evidence(e.to_string())
    })
}

/// [`tcp_echo_in`], retried while it fails until `timeout` passes (the first attempt may
/// meet a handshake in progress).
pub fn tcp_echo_in_retry(
    ns: &Netns,
    addr: IpAddr,
    port: u16,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    loop {
        // Only a failed connection is retried: bytes that came back wrong are the answer.
        match tcp_echo_in(ns, addr, port, payload) {
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(500)),
            other => return other,
        }
    }
}

const UDP_SENDER: &str = r#"
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
data = sys.stdin.buffer.read()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
print(s.getsockname()[1], flush=True)
i = 0
while i < len(data):
    n = int.from_bytes(data[i:i + 4], "big")
    s.sendto(data[i + 4:i + 4 + n], (host, port))
    i += 4 + n
    time.sleep(0.005)
"#;

/// Sends each datagram to `to:port` from one ephemeral UDP port inside `ns`; returns that
/// source port.
pub fn send_udp_in(ns: &Netns, to: Ipv4Addr, port: u16, datagrams: &[Vec<u8>]) -> Result<u16> {
    let mut framed = Vec::new();
    for d in datagrams {
        framed.extend_from_slice(&(d.len() as u32).to_be_bytes());
        framed.extend_from_slice(d);
    }
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns.name(), "python3", "-c", UDP_SENDER])
        .arg(to.to_string())
        .arg(port.to_string());
    let out = pipe(&mut cmd, &framed)?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| net_error(format!("the UDP sender printed no port: {}", text(&out))))
}

/// A tcpdump writing every frame on a namespace's interface to a pcap file. Killed on drop.
pub struct Capture {
    child: Option<Child>,
    path: PathBuf,
    _dir: TempDir,
    stderr: mpsc::Receiver<String>,
}

impl Capture {
    /// Starts tcpdump on `iface` in `ns` and returns once it is listening.
    pub fn start(ns: &Netns, iface: &str) -> Result<Capture> {
        let dir = TempDir::new("capture")?;
        let path = dir.path().join("underlay.pcap");
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns.name(),
                "tcpdump",
                "-i",
                iface,
                "-n",
                "-s",
                "0",
            ])
            // Each frame handed over and written at once (not in blocks), so stopping
            // loses nothing already seen; -Z root: keep the right to write the file.
            .args(["--immediate-mode", "-U", "-Z", "root", "-w"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::new(ErrorKind::Spawn, format!("cannot start tcpdump: {e}")))?;
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().expect("piped stderr");
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut cap = Capture {
            child: Some(child),
            path,
            _dir: dir,
            stderr: rx,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match cap.stderr.recv_timeout(left) {
                Ok(line) if line.contains("listening on") => return Ok(cap),
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Err(_) => {
                    cap.stop_child();
                    return Err(Error::new(
                        ErrorKind::Spawn,
                        format!(
                            "tcpdump on {iface} in {} did not start listening",
                            ns.name()
                        ),
                    )
                    .with_evidence(seen));
                }
            }
        }
    }

    fn stop_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT: tcpdump flushes and closes the file.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .stdin(Stdio::null())
                .output();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !matches!(child.try_wait(), Ok(Some(_))) {
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Stops the capture and returns the pcap file's path (valid while `self` lives).
    pub fn stop(&mut self) -> &Path {
        self.stop_child();
        &self.path
    }

    /// What tcpdump said on stderr since it started listening (its drop counts once
    /// stopped).
    pub fn messages(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop_child();
    }
}

/// A UDP datagram over IPv4, as read from a capture.
#[derive(Clone, Debug)]
pub struct Datagram {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// Every UDP-over-IPv4 datagram (first fragments only) of an Ethernet pcap file.
pub fn udp_datagrams(pcap: &Path) -> Result<Vec<Datagram>> {
    let mut bytes = Vec::new();
    File::open(pcap)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| Error::new(ErrorKind::Io, format!("reading {}: {e}", pcap.display())))?;
    let bad = |why: &str| net_error(format!("{}: {why}", pcap.display()));
    if bytes.len() < 24 {
        return Err(bad("shorter than a pcap header"));
    }
    let u32_at = |b: &[u8], at: usize, le: bool| {
        let a: [u8; 4] = b[at..at + 4].try_into().expect("four bytes");
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let le = match &bytes[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return Err(bad("not a pcap file")),
    };
    if u32_at(&bytes, 20, le) != 1 {
        return Err(bad("not an Ethernet capture"));
    }
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let incl = u32_at(&bytes, at + 8, le) as usize;
        let start = at + 16;
        let end = (start + incl).min(bytes.len());
        at = start + incl;
        let frame = &bytes[start..end];
        if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let frag_offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
        if ip[0] >> 4 != 4 || ip[9] != 17 || frag_offset != 0 || ip.len() < ihl + 8 {
            continue;
        }
        let udp = &ip[ihl..];
        let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        let payload_end = len.clamp(8, udp.len());
        out.push(Datagram {
            src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
            sport: u16::from_be_bytes([udp[0], udp[1]]),
            dport: u16::from_be_bytes([udp[2], udp[3]]),
            payload: udp[8..payload_end].to_vec(),
        });
    }
    Ok(out)
}

/// One frame as tshark dissects it.
#[derive(Clone, Debug)]
pub struct Dissected {
    /// Frame number.
    pub number: String,
    /// `frame.protocols`, e.g. `eth:ethertype:ip:udp:wg`.
    pub protocols: String,
    /// `udp.srcport`, empty if not UDP.
    pub sport: String,
    /// `udp.dstport`, empty if not UDP.
    pub dport: String,
    /// `icmpv6.type`, empty if not ICMPv6.
    pub icmpv6_type: String,
    /// `wg.type` (1 initiation, 2 response, 3 cookie reply, 4 data), empty if none.
    pub wg_type: String,
}

/// Every frame of a pcap file, dissected by tshark.
pub fn dissect(pcap: &Path) -> Result<Vec<Dissected>> {
    let out = run_command(
        Command::new("tshark")
            .arg("-r")
            .arg(pcap)
            .args([
                "-n",
                "-T",
                "fields",
                "-E",
                "separator=/t",
                "-E",
                "occurrence=f",
            ])
            .args([
                "-e",
                "frame.number",
                "-e",
                "frame.protocols",
                "-e",
                "udp.srcport",
            ])
            .args(["-e", "udp.dstport", "-e", "icmpv6.type", "-e", "wg.type"]),
    )?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let field = |i: usize| f.get(i).map_or(String::new(), |s| s.to_string());
            Dissected {
                number: field(0),
                protocols: field(1),
                sport: field(2),
                dport: field(3),
                icmpv6_type: field(4),
                wg_type: field(5),
            }
        })
        .collect())
}

/// A small deterministic generator for junk bytes (xorshift64*).
pub struct Junk(u64);

impl Junk {
    /// Seeded from the clock, printed by the caller so a failure can be replayed.
    pub fn new(seed: u64) -> Junk {
        Junk(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
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

/// A VM whose tap was moved into another test's namespace; see [`move_tap_into`].
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
