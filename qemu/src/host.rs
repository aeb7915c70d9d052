//! Small host-side helpers: free loopback ports, a private temporary directory, running a
//! command and keeping its output, and whether we are root.

use crate::error::{Error, ErrorKind, Result};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// Ports this process has handed out already: never hand one out twice, so VMs started in
/// parallel by one test binary cannot be given the same port.
static HANDED_OUT: Mutex<Option<HashSet<(bool, u16)>>> = Mutex::new(None);

fn remember(udp: bool, port: u16) -> bool {
    let mut set = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    set.get_or_insert_with(HashSet::new).insert((udp, port))
}

/// A TCP port on 127.0.0.1 that is free now (the kernel chose it) and that this process
/// has not handed out before. Someone else may still take it before QEMU binds it; the
/// kernel cycles through its ephemeral range, which makes that rare.
pub fn free_tcp_port() -> Result<u16> {
    loop {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("binding a free TCP port", e))?;
        let port = l
            .local_addr()
            .map_err(|e| Error::io("reading a bound TCP port", e))?
            .port();
        if remember(false, port) {
            return Ok(port);
        }
    }
}

/// A UDP port on 127.0.0.1; see [`free_tcp_port`].
pub fn free_udp_port() -> Result<u16> {
    loop {
        let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("binding a free UDP port", e))?;
        let port = s
            .local_addr()
            .map_err(|e| Error::io("reading a bound UDP port", e))?
            .port();
        if remember(true, port) {
            return Ok(port);
        }
    }
}

/// A number unique within this process, for names of namespaces, taps and directories.
pub fn unique() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A directory under the system temp dir, removed on drop unless `VDCNET_KEEP` is set.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `$TMPDIR/vdcnet-<pid>-<n>-<label>`.
    pub fn new(label: &str) -> Result<TempDir> {
        let path = std::env::temp_dir().join(format!(
            "vdcnet-{}-{}-{label}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::io(format_args!("creating {}", path.display()), e))?;
        Ok(TempDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("VDCNET_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Whether this process runs as root (needed for namespaces and taps).
pub fn is_root() -> bool {
    // /proc/self/status has "Uid:\treal\teffective\t...".
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|rest| rest.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Runs a command to completion with stdin closed; fails with its stderr if it exits
/// non-zero or cannot start.
pub fn run<I, S>(program: &str, args: I) -> Result<Output>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_command(&mut cmd)
}

/// Like [`run`], for a prepared `Command`.
pub fn run_command(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::new(ErrorKind::Spawn, format!("cannot run {cmd:?}: {e}")))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(
            Error::new(ErrorKind::Spawn, format!("{cmd:?} failed ({})", out.status)).with_evidence(
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ),
        )
    }
}

/// How the tests and benchmarks run myceliumd (after `--key-file`): TUN `myc0`, TCP peers
/// on 9651, no QUIC, no peer discovery, its API and JSON-RPC on 127.0.0.1:8989 and :8990
/// of its namespace.
pub const MYCELIUMD_ARGS: &[&str] = &[
    "--tun-name",
    "myc0",
    "--disable-quic",
    "--disable-peer-discovery",
    "--tcp-listen-port",
    "9651",
    "--api-addr",
    "127.0.0.1:8989",
    "--jsonrpc-addr",
    "127.0.0.1:8990",
];

/// Finds the myceliumd binary (0.7.10): `VDCNET_MYCELIUM`, else `mycelium` on `PATH`, else
/// `shared/peers/mycelium` beside the repository. `Err` says where it looked.
pub fn find_mycelium() -> std::result::Result<std::path::PathBuf, String> {
    use std::path::PathBuf;
    if let Some(p) = std::env::var_os("VDCNET_MYCELIUM") {
        let p = PathBuf::from(p);
        if !p.is_file() {
            return Err(format!("VDCNET_MYCELIUM={} is not a file", p.display()));
        }
        return Ok(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(p) = std::env::split_paths(&path)
            .map(|d| d.join("mycelium"))
            .find(|p| p.is_file())
        {
            return Ok(p);
        }
    }
    let root = crate::workspace_root();
    let candidates = [
        root.join("../shared/peers/mycelium"),
        PathBuf::from("/work/shared/peers/mycelium"),
    ];
    if let Some(p) = candidates.iter().find(|p| p.is_file()) {
        return Ok(p.clone());
    }
    Err(format!(
        "no mycelium binary: set VDCNET_MYCELIUM, put `mycelium` (0.7.10) on PATH, or \
         provide {} (tried {candidates:?})",
        candidates[0].display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_not_handed_out_twice() {
        let mut seen = HashSet::new();
        for _ in 0..50 {
            assert!(seen.insert(free_udp_port().unwrap()));
        }
    }

    #[test]
    fn failed_command_reports_its_stderr() {
        let err = run("sh", ["-c", "echo oops >&2; exit 3"]).unwrap_err();
        assert!(err.evidence().contains("oops"), "{err}");
    }
}
