//! A wireguard-go peer configured with `wg` and `ip`, the way a user would: keys from
//! `wg genkey`/`wg pubkey`, one peer (the appliance), the overlay addresses and routes on
//! its interface, and `wg show <if> dump` parsed.

use super::{net_error, pipe, text, PEER_V4, PEER_V6, WG_PORT};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use vdcnet_qemu::{run_command, Error, ErrorKind, Netns, Result, TempDir};

/// A process-unique number for interface names.
fn unique() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
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
                format!(
                    "`wg genkey | wg pubkey` gave keys of {} and {} characters, not 44",
                    private.len(),
                    public.len()
                ),
            ));
        }
        Ok(Keys { private, public })
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

    /// The interface wireguard-go drives, in its namespace (for tests that configure it
    /// further; not every test file that includes this module does).
    #[allow(dead_code)]
    pub fn ifname(&self) -> &str {
        &self.ifname
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
