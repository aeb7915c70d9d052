//! Shared helpers for the integration tests: each test boots its own VMs through
//! `vdcnet-qemu`, so tests run in parallel without sharing ports, taps or namespaces.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use vdcnet_qemu::{run_command, tcp_echo_retry, Result, Vm, ECHO_PORT};

/// Bound on every wait in the tests (a TCG boot takes well under a second).
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The appliance's address in the default config (and QEMU user-mode networking's guest).
pub const DEFAULT_V4: &str = "10.0.2.15";
/// The appliance's IPv6 address in the default config.
pub const DEFAULT_V6: &str = "fec0::15";

/// Fails the test, with a clear message, unless it runs as root: namespaces and taps need
/// it, and a test that cannot check its behaviour must not pass.
pub fn require_root(test: &str) {
    assert!(
        vdcnet_qemu::is_root(),
        "{test} needs root (it creates a network namespace and a tap device); \
         run the suite as root, e.g. `sudo -E cargo vdcnet test`"
    );
}

/// Unwraps a harness result; on error the panic message carries the VM's evidence.
#[track_caller]
pub fn ok<T>(r: vdcnet_qemu::Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// A payload that differs per caller, so crossed connections would show.
pub fn payload(tag: &str, len: usize) -> Vec<u8> {
    tag.bytes().cycle().take(len).collect()
}

/// Asserts that the TCP echo service behind `addr` returns `payload` unchanged.
#[track_caller]
pub fn assert_echoes(vm: &Vm, addr: SocketAddr, payload: &[u8]) {
    let back = match tcp_echo_retry(addr, payload, TIMEOUT) {
        Ok(b) => b,
        Err(e) => panic!("{}", vm.fail(e)),
    };
    assert!(
        back == payload,
        "echo via {addr} differs: sent {} bytes, got {} bytes back\n{}",
        payload.len(),
        back.len(),
        vm.evidence()
    );
}

/// The host address of the appliance's forwarded echo port (first user NIC).
#[track_caller]
pub fn echo_addr(vm: &Vm) -> SocketAddr {
    vm.forwarded(ECHO_PORT)
        .expect("the VM has a user-mode NIC forwarding the echo port")
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

/// babeld (Debian's) in a network namespace with config `conf`; its pid, state, config and
/// log files live in `dir` (`extra` goes on its command line, e.g. `-d 1`). Killed on drop.
pub struct Babeld {
    child: std::process::Child,
    /// Its log file (`-L`).
    pub log: std::path::PathBuf,
}

impl Babeld {
    /// Starts babeld in `ns`; panics with a hint to install it when it cannot run.
    pub fn start(ns: &vdcnet_qemu::Netns, dir: &Path, conf: &str, extra: &[&str]) -> Babeld {
        let conf_path = dir.join("babeld.conf");
        std::fs::write(&conf_path, conf).expect("writing babeld.conf");
        let log = dir.join("babeld.log");
        let child = ns
            .command("babeld")
            .arg("-c")
            .arg(&conf_path)
            .arg("-I")
            .arg(dir.join("babeld.pid"))
            .arg("-S")
            .arg(dir.join("babeld.state"))
            .arg("-L")
            .arg(&log)
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("babeld runs (`cargo vdcnet test` installs Debian's babeld)");
        Babeld { child, log }
    }

    /// The last 60 lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Babeld {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command's stdout then stderr, as text.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a command in a namespace and returns its output, whatever its status (panics only
/// when it cannot be started).
pub fn run_in(ns: &vdcnet_qemu::Netns, program: &str, args: &[&str]) -> std::process::Output {
    ns.command(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

/// A child process killed (and reaped) on drop: servers and daemons of a test.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `program` in `ns`, its output discarded; killed when the result drops.
pub fn spawn_in(ns: &vdcnet_qemu::Netns, program: &str, args: &[&str]) -> Killed {
    let child = ns
        .command(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    Killed(child)
}

/// Waits (up to a minute) until `addr:port` accepts TCP from inside `ns`.
#[track_caller]
pub fn wait_listening(ns: &vdcnet_qemu::Netns, addr: &str, port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let probe =
        format!("import socket\ns=socket.create_connection(('{addr}',{port}),1)\ns.close()");
    loop {
        if run_in(ns, "python3", &["-c", &probe]).status.success() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing listens on {addr}:{port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// nginx in the foreground, one process (`master_process off`), with `servers` (the
/// `server { ... }` blocks) and every file of its own under `dir`.
pub fn nginx_in(ns: &vdcnet_qemu::Netns, dir: &Path, servers: &str) -> Killed {
    let d = dir.display();
    let conf = format!(
        "master_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    \
         fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n{servers}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("writing nginx.conf");
    spawn_in(
        ns,
        "nginx",
        &[
            "-c",
            path.to_str().expect("a UTF-8 path"),
            "-g",
            "daemon off;",
        ],
    )
}

/// The myceliumd binary ([`vdcnet_qemu::find_mycelium`]), or a failed test saying where
/// it looked.
pub fn mycelium_binary() -> std::path::PathBuf {
    vdcnet_qemu::find_mycelium().unwrap_or_else(|e| panic!("{e}"))
}

/// `mycelium inspect --json`: what myceliumd derives from the key in `key_file`, or from
/// `public_key` when given (the key file is then only the argument the CLI requires). Its
/// JSON text; an offline computation, run on the host.
pub fn mycelium_inspect(bin: &Path, key_file: &Path, public_key: Option<&str>) -> String {
    let out = Command::new(bin)
        .arg("--key-file")
        .arg(key_file)
        .args(["inspect", "--json"])
        .args(public_key)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("mycelium inspect");
    output_text(&out)
}

/// myceliumd in a namespace, killed on drop.
pub struct Myceliumd {
    child: std::process::Child,
    log: std::path::PathBuf,
}

impl Myceliumd {
    /// Starts it with the key file `dir/mycelium.key`, TUN `myc0`, TCP peers on 9651, its
    /// API on 127.0.0.1:8989 of the namespace, logging to `dir/mycelium.log`.
    pub fn start(bin: &Path, ns: &vdcnet_qemu::Netns, dir: &Path) -> Myceliumd {
        let log = dir.join("mycelium.log");
        let child = ns
            .command(bin.to_str().expect("utf-8 path"))
            .arg("--key-file")
            .arg(dir.join("mycelium.key"))
            .args(vdcnet_qemu::MYCELIUMD_ARGS)
            .arg("--debug")
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("myceliumd starts");
        Myceliumd { child, log }
    }

    /// The log's last 60 lines.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Myceliumd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the CLI (`mycelium ARGS`) in `ns` against the daemon's API; its stdout.
pub fn cli(bin: &Path, ns: &vdcnet_qemu::Netns, dir: &Path, args: &[&str]) -> String {
    let out = ns
        .command(bin.to_str().expect("utf-8 path"))
        // A key file path that exists nowhere: the CLI must not make one.
        .arg("--key-file")
        .arg(dir.join("cli-no-key"))
        .args(["--api-addr", "127.0.0.1:8989"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("mycelium CLI runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `"key": "value"` in a JSON text (enough for the CLI's flat objects).
pub fn json_str(text: &str, key: &str) -> Option<String> {
    let at = text.find(&format!("\"{key}\""))?;
    let rest = &text[at + key.len() + 2..];
    let start = rest.find('"')? + 1;
    let end = start + rest[start..].find('"')?;
    Some(rest[start..end].to_string())
}
