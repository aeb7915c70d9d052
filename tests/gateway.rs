//! The web gateway end to end: a two-node lab (`vdcnet_qemu::lab`) where node 1 is the
//! gateway on its underlay address and the backends are real servers in the workload
//! namespaces of both nodes (nginx for HTTP, TLS and PROXY v2; iperf3 for a whole TCP
//! port; a small upgrade server for WebSocket-style tunnels). The clients are real too
//! (curl, openssl s_client, iperf3, python sockets) on a host of the underlay, the
//! lab's "internet" ([`UnderlayHost`]).
//!
//! One lab is booted and shared by every assertion, in this order: routing by Host (v4
//! and v6) and by SNI with a verified certificate, PROXY v2, two names on one keep-alive
//! connection, an upgraded connection, a whole TCP port, private by default, bad input
//! (random bytes, a truncated ClientHello, a slowloris, 1,000 idle connections), then
//! failover: node 2's server stopped, then its VM killed, and both coming back.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use vdcnet_qemu::lab::{Lab, Topology};
use vdcnet_qemu::{Netns, TempDir, UnderlayHost};
use vdcnet_tests::{nginx_in, ok, output_text, require_root, run_in, spawn_in, wait_listening};

/// node1's public (underlay) addresses and the internet host's.
const GW4: &str = "192.168.100.1";
const GW6: &str = "fd99::1";
const CLIENT4: &str = "192.168.100.200";
const CLIENT6: &str = "fd99::200";
/// The backends: one in each node's workload namespace.
const B1: &str = "10.20.1.10";
const B2: &str = "10.20.2.10";
const B2_V6: &str = "fd20:ab:cd:2::10";

/// Generous bounds for waits on two TCG guests on a shared machine (not timings).
const SLOW: Duration = Duration::from_secs(60);

fn gateway_sections() -> String {
    format!(
        "
[Gateway]
Listen = {GW4}, {GW6}
HeadTimeout = 5
ConnectTimeout = 2

[Service]
Name = www.example.org
Mode = http
Backend = {B1}:8080, {B2}:8080
HealthCheck = http /health
CheckInterval = 1000
CheckTimeout = 500

[Service]
Name = v6.example.org
Mode = http
Backend = [{B2_V6}]:8080

[Service]
Name = api.example.org
Mode = http
Backend = {B2}:8081
ProxyProtocol = v2

[Service]
Name = ws.example.org
Mode = http
Backend = {B2}:8090

[Service]
Name = shop.example.org
Mode = tls
Backend = {B2}:8443

[Service]
Name = bulk
Mode = tcp
Port = 5201
Backend = {B2}:5201

[Service]
Name = hold
Mode = tcp
Port = 7000
Backend = {B2}:7000
"
    )
}

/// The nginx `server` blocks of node `n`'s backend (its files under `dir`).
fn nginx_conf(n: usize, dir: &Path, addr: &str) -> String {
    let d = dir.display();
    let tls = if n == 2 {
        format!(
            "
    server {{
        listen {addr}:8081 proxy_protocol;
        location / {{ return 200 \"proxy $proxy_protocol_addr $remote_addr\\n\"; }}
    }}
    server {{
        listen {addr}:8443 ssl;
        ssl_certificate {d}/cert.pem;
        ssl_certificate_key {d}/key.pem;
        location / {{ return 200 \"tls node2\\n\"; }}
    }}
    server {{
        listen [{B2_V6}]:8080;
        location / {{ return 200 \"v6 node2 $http_x_forwarded_for\\n\"; }}
    }}"
        )
    } else {
        String::new()
    };
    format!(
        "
    server {{
        listen {addr}:8080;
        location = /health {{ return 200 \"ok\\n\"; }}
        location = /big {{ alias {d}/big; }}
        location / {{
            return 200 \"node{n} $request_uri xff=$http_x_forwarded_for proto=$http_x_forwarded_proto host=$http_x_forwarded_host\\n\";
        }}
    }}{tls}"
    )
}

/// curl from the internet host: `(ok, body or curl's complaint)`.
fn curl(ns: &Netns, args: &[&str]) -> (bool, String) {
    let mut all = vec!["-sS", "--max-time", "20"];
    all.extend_from_slice(args);
    let out = run_in(ns, "curl", &all);
    if out.status.success() {
        (true, String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        (false, output_text(&out))
    }
}

fn get(ns: &Netns, host: &str, path: &str) -> (bool, String) {
    let url = format!("http://{host}{path}");
    let resolve = format!("{host}:80:{GW4}");
    curl(ns, &["--fail", "--resolve", &resolve, &url])
}

/// Runs a python script in `ns`; its stdout, or a panic with everything it said.
#[track_caller]
fn python(ns: &Netns, script: &str, what: &str) -> String {
    let out = run_in(ns, "python3", &["-c", script]);
    assert!(out.status.success(), "{what}: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A self-signed certificate for shop.example.org in `dir` (cert.pem, key.pem).
fn make_cert(dir: &Path) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=shop.example.org"])
        .args(["-addext", "subjectAltName=DNS:shop.example.org"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl runs");
    assert!(out.status.success(), "openssl req: {}", output_text(&out));
}

/// The gateway's latest stats line.
fn stats(lab: &Lab) -> String {
    lab.vm(0)
        .console()
        .matching("vdcnet: stats")
        .pop()
        .unwrap_or_default()
}

/// The value of `key=` in the gateway part of the latest stats line.
fn gw_stat(lab: &Lab, key: &str) -> Option<u64> {
    let line = stats(lab);
    let gw = line.split(" gw ").nth(1)?;
    let at = gw.find(&format!("{key}="))? + key.len() + 1;
    gw[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

/// Waits until `ok` holds of `get(www)` bodies, asking every 300 ms.
#[track_caller]
fn wait_for(lab: &Lab, ns: &Netns, what: &str, ok: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + SLOW;
    loop {
        let (good, body) = get(ns, "www.example.org", "/");
        if good && ok(&body) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last answer {body:?}\n{}",
            lab.vm(0).evidence()
        );
        thread::sleep(Duration::from_millis(300));
    }
}

/// `n` requests for www in a row: how many failed, and which nodes answered.
fn burst(ns: &Netns, n: usize) -> (Vec<String>, Vec<String>) {
    let mut failed = Vec::new();
    let mut nodes = Vec::new();
    for _ in 0..n {
        let (good, body) = get(ns, "www.example.org", "/");
        if good {
            nodes.push(body.split_whitespace().next().unwrap_or("").to_string());
        } else {
            failed.push(body);
        }
    }
    (failed, nodes)
}

const TWO_NAMES: &str = r#"
import socket
s = socket.create_connection(("192.168.100.1", 80), 10)
s.sendall(b"GET /one HTTP/1.1\r\nHost: www.example.org\r\n\r\nGET /two HTTP/1.1\r\nHost: API.example.org\r\n\r\n")
data = b""
while data.count(b"HTTP/1.1 200") < 2 or not data.rstrip().endswith(b"10.20.1.1"):
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.decode())
"#;

const UPGRADE_SERVER: &str = r#"
import socket, threading
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("10.20.2.10", 8090))
srv.listen(16)
def serve(c):
    head = b""
    while b"\r\n\r\n" not in head:
        d = c.recv(4096)
        if not d:
            return
        head += d
    c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    rest = head.split(b"\r\n\r\n", 1)[1]
    if rest:
        c.sendall(rest)
    while True:
        d = c.recv(4096)
        if not d:
            break
        c.sendall(d.upper())
    c.close()
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

const UPGRADE_CLIENT: &str = r#"
import socket
s = socket.create_connection(("192.168.100.1", 80), 10)
s.sendall(b"GET /chat HTTP/1.1\r\nHost: ws.example.org\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    d = s.recv(4096)
    assert d, "closed before the 101: %r" % head
    head += d
assert head.startswith(b"HTTP/1.1 101"), head
for word in [b"hello", b"through", b"the tunnel"]:
    s.sendall(word)
    got = b""
    while len(got) < len(word):
        d = s.recv(4096)
        assert d, "tunnel closed"
        got += d
    assert got == word.upper(), (got, word)
print("upgraded and echoed")
"#;

/// Sends `payload` (hex) to `port` and reports what came back before the close, and how
/// long the close took.
fn junk_script(port: u16, hex: &str, wait: u32) -> String {
    format!(
        r#"
import socket, time
s = socket.create_connection(("192.168.100.1", {port}), 10)
s.sendall(bytes.fromhex("{hex}"))
s.settimeout({wait})
t = time.time()
got = b""
try:
    while True:
        d = s.recv(4096)
        if not d:
            break
        got += d
    print("closed", round(time.time() - t, 1), got[:64].hex())
except socket.timeout:
    print("still open", got[:64].hex())
"#
    )
}

const SLOWLORIS: &str = r#"
import select, socket, time
s = socket.create_connection(("192.168.100.1", 80), 10)
t = time.time()
try:
    for b in b"GET / HTTP/1.1\r\nHost: www.example.org\r\nX-Slow: " + b"a" * 60:
        s.sendall(bytes([b]))
        if select.select([s], [], [], 0.5)[0]:
            print("closed after", round(time.time() - t), s.recv(100))
            break
    else:
        print("never closed")
except (BrokenPipeError, ConnectionResetError):
    print("closed after", round(time.time() - t), "(reset)")
"#;

/// A TCP server holding any number of connections, echoing what they send.
const HOLD_SERVER: &str = r#"
import resource, selectors, socket
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
sel = selectors.DefaultSelector()
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("10.20.2.10", 7000))
srv.listen(1024)
srv.setblocking(False)
sel.register(srv, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fileobj is srv:
            c, _ = srv.accept()
            c.setblocking(False)
            sel.register(c, selectors.EVENT_READ)
        else:
            try:
                d = key.fileobj.recv(4096)
            except OSError:
                d = b""
            if d:
                key.fileobj.send(d)
            else:
                sel.unregister(key.fileobj)
                key.fileobj.close()
"#;

/// 1,000 connections to the `hold` port held open (each says one word and gets it
/// back, then stays idle) while a request for www is served.
const IDLE_THOUSAND: &str = r#"
import resource, socket, subprocess, time
resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
conns = []
t = time.time()
for i in range(1000):
    c = socket.create_connection(("192.168.100.1", 7000), 30)
    conns.append(c)
for c in conns:
    c.sendall(b"hi")
for c in conns:
    c.settimeout(30)
    assert c.recv(2) == b"hi"
print("opened in", round(time.time() - t, 1))
r = subprocess.run(["curl", "-sS", "--fail", "--max-time", "30", "--resolve",
    "www.example.org:80:192.168.100.1", "http://www.example.org/while-idle"],
    capture_output=True, text=True)
alive = 0
for c in conns:
    c.setblocking(False)
    try:
        d = c.recv(1)
        if d:
            alive += 1  # bytes? count as alive, the gateway said something
    except BlockingIOError:
        alive += 1
    except OSError:
        pass
print("alive", alive)
print("curl", r.returncode, r.stdout.strip(), r.stderr.strip())
for c in conns:
    c.close()
"#;

#[test]
fn the_gateway_serves_public_names_from_private_backends_over_the_mesh() {
    require_root("the gateway test");
    let dir = ok(TempDir::new("gateway"));
    let d1 = dir.path().join("node1");
    let d2 = dir.path().join("node2");
    for d in [&d1, &d2] {
        std::fs::create_dir_all(d).unwrap();
    }
    make_cert(&d2);
    // 4 MB to download through the gateway, a pattern so a corruption would show.
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(d1.join("big"), &big).unwrap();
    std::fs::write(d2.join("big"), &big).unwrap();

    let sections = gateway_sections();
    let topo = Topology::new(2)
        .static_v4(0, B1.parse().unwrap())
        .static_v4(1, B2.parse().unwrap())
        .append(0, "vdcnet.stats=1")
        .edit_config(move |i, text| {
            if i != 0 {
                return text.to_string();
            }
            let text = text.replacen(
                &format!("Address = {GW4}/24\n"),
                &format!("Address = {GW4}/24, {GW6}/64\n"),
                1,
            );
            format!("{text}{sections}")
        });
    let mut lab = ok(Lab::start(&topo));
    let w1 = lab.workload(0);
    let w2 = lab.workload(1);
    assert_eq!(lab.workload_v4(1), Some(B2.parse().unwrap()));
    ok(w2
        .ip(&[
            "-6",
            "addr",
            "add",
            &format!("{B2_V6}/64"),
            "dev",
            "eth0",
            "nodad",
        ])
        .map(|_| ()));
    let _nginx1 = nginx_in(w1, &d1, &nginx_conf(1, &d1, B1));
    let mut nginx2 = Some(nginx_in(w2, &d2, &nginx_conf(2, &d2, B2)));
    let _upgrade = spawn_in(w2, "python3", &["-c", UPGRADE_SERVER]);
    let _iperf = spawn_in(w2, "iperf3", &["-s", "-B", B2, "-p", "5201"]);
    let _hold = spawn_in(w2, "python3", &["-c", HOLD_SERVER]);
    wait_listening(w1, B1, 8080);
    for port in [8080, 8081, 8443, 8090, 5201, 7000] {
        wait_listening(w2, B2, port);
    }
    let internet = ok(UnderlayHost::attach(
        lab.wire(),
        &[format!("{CLIENT4}/24"), format!("{CLIENT6}/64")],
    ));
    let inet = internet.netns();

    // By Host, with X-Forwarded-*; both backends take turns.
    wait_for(&lab, inet, "www answers", |b| b.starts_with("node"));
    let (failed, nodes) = burst(inet, 6);
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        nodes.iter().any(|n| n == "node1") && nodes.iter().any(|n| n == "node2"),
        "round robin over both backends: {nodes:?}"
    );
    let (good, body) = curl(
        inet,
        &[
            "--fail",
            "--resolve",
            &format!("www.example.org:80:{GW4}"),
            "-H",
            "X-Forwarded-For: 6.6.6.6",
            "http://www.example.org/path?q=1",
        ],
    );
    assert!(good, "{body}");
    assert!(
        body.contains("/path?q=1 xff=192.168.100.200 proto=http host=www.example.org"),
        "the backend sees the client's address and no forged one: {body}"
    );
    let got = run_in(
        inet,
        "curl",
        &[
            "-sS",
            "--fail",
            "--max-time",
            "60",
            "--resolve",
            &format!("www.example.org:80:{GW4}"),
            "http://www.example.org/big",
        ],
    );
    assert!(
        got.status.success() && got.stdout == big,
        "the 4 MB body arrives unchanged ({} bytes)",
        got.stdout.len()
    );

    // Over IPv6 on both sides: a v6 public address, a v6 backend.
    let (good, body) = curl(
        inet,
        &[
            "--fail",
            "-g",
            "-H",
            "Host: v6.example.org",
            &format!("http://[{GW6}]/"),
        ],
    );
    assert!(good, "v6: {body}\n{}", lab.vm(0).evidence());
    assert!(body.starts_with(&format!("v6 node2 {CLIENT6}")), "{body}");

    // Unknown names.
    let (_, body) = curl(
        inet,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Host: nope.example.org",
            &format!("http://{GW4}/"),
        ],
    );
    assert_eq!(body, "404", "an unknown host");
    let (_, body) = curl(
        inet,
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Host: shop.example.org",
            &format!("http://{GW4}/"),
        ],
    );
    assert_eq!(body, "421", "a TLS-only name over HTTP");

    // TLS passthrough by SNI: the certificate is the backend's, verified end to end.
    let cert = d2.join("cert.pem");
    let (good, body) = curl(
        inet,
        &[
            "--fail",
            "--cacert",
            cert.to_str().unwrap(),
            "--resolve",
            &format!("shop.example.org:443:{GW4}"),
            "https://shop.example.org/",
        ],
    );
    assert!(good, "https through the gateway: {body}");
    assert_eq!(body, "tls node2\n");
    let s_client = inet
        .command("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("{GW4}:443"),
            "-servername",
            "shop.example.org",
            "-CAfile",
            cert.to_str().unwrap(),
            "-verify_return_error",
            "-brief",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client starts");
    let out = finish_s_client(s_client);
    assert!(out.contains("Verification: OK"), "openssl s_client: {out}");
    let (good, body) = curl(
        inet,
        &[
            "--cacert",
            cert.to_str().unwrap(),
            "--resolve",
            &format!("other.example.org:443:{GW4}"),
            "https://other.example.org/",
        ],
    );
    assert!(
        !good && (body.contains("alert") || body.contains("unrecognized")),
        "an unknown SNI gets an alert: {body}"
    );

    // PROXY v2: nginx reads the client's real address from it.
    let (good, body) = get(inet, "api.example.org", "/");
    assert!(good, "{body}");
    assert!(
        body.starts_with(&format!("proxy {CLIENT4} 10.20.1.1")),
        "{body}"
    );

    // Two names on one keep-alive connection, two backends.
    let both = python(inet, TWO_NAMES, "two names on one connection");
    assert!(both.contains("node") && both.contains("/one"), "{both}");
    assert!(both.contains(&format!("proxy {CLIENT4}")), "{both}");

    // An upgraded connection becomes a tunnel.
    let up = python(inet, UPGRADE_CLIENT, "an upgraded connection");
    assert!(up.contains("upgraded and echoed"), "{up}");

    // A whole TCP port: iperf3 through the gateway, both directions.
    for reverse in [false, true] {
        let mut args = vec!["-c", GW4, "-p", "5201", "-n", "2M", "-J"];
        if reverse {
            args.push("-R");
        }
        let out = run_in(inet, "iperf3", &args);
        let text = output_text(&out);
        assert!(
            out.status.success(),
            "iperf3 through the gateway (reverse {reverse}): {text}"
        );
        assert!(text.contains("\"sum_received\""), "{text}");
    }

    // Private by default: the public side reaches the configured backends only through
    // the gateway, never the segments themselves, nor other ports of the gateway.
    ok(inet
        .ip(&["route", "add", "10.20.0.0/16", "via", GW4])
        .map(|_| ()));
    let (good, body) = curl(inet, &["--max-time", "3", &format!("http://{B1}:8080/")]);
    assert!(!good, "the internet reached a backend directly: {body}");
    let (good, body) = curl(inet, &["--max-time", "3", &format!("http://{GW4}:8080/")]);
    assert!(!good, "a port the gateway does not serve answered: {body}");

    // Bad input.
    let random = "8f3a9c".repeat(300);
    let out = python(inet, &junk_script(443, &random, 10), "random bytes on 443");
    assert!(out.starts_with("closed"), "random bytes on 443: {out}");
    let out = python(inet, &junk_script(80, &random, 10), "random bytes on 80");
    assert!(out.starts_with("closed"), "random bytes on 80: {out}");
    assert!(out.contains(&hex("HTTP/1.1 400")), "400 for garbage: {out}");
    let hello =
        std::fs::read(workspace().join("appliance/src/gateway/fixtures/openssl_shop.bin")).unwrap();
    let truncated: String = hello[..120].iter().map(|b| format!("{b:02x}")).collect();
    let (out_hello, out_slow) = thread::scope(|s| {
        let h = s.spawn(|| {
            python(
                inet,
                &junk_script(443, &truncated, 20),
                "a truncated ClientHello",
            )
        });
        let l = s.spawn(|| python(inet, SLOWLORIS, "a slowloris"));
        (h.join().unwrap(), l.join().unwrap())
    });
    assert!(
        out_hello.starts_with("closed"),
        "a truncated ClientHello is closed at the head timeout: {out_hello}"
    );
    assert!(
        out_slow.starts_with("closed after"),
        "a slowloris is cut off: {out_slow}"
    );
    let out = python(inet, IDLE_THOUSAND, "1,000 idle connections");
    assert!(
        out.contains("alive 1000"),
        "1,000 idle connections stay open: {out}\n{}",
        stats(&lab)
    );
    assert!(
        out.contains("curl 0 node"),
        "a request is served meanwhile: {out}"
    );
    thread::sleep(Duration::from_secs(2));
    assert!(
        gw_stat(&lab, "head_timeouts").unwrap_or(0) >= 2,
        "{}",
        stats(&lab)
    );
    let (good, body) = get(inet, "www.example.org", "/after-bad-input");
    assert!(
        good,
        "still serving after the bad input: {body}\n{}",
        lab.vm(0).evidence()
    );

    // Failover. node2's server stops: every request still succeeds (a refused connect is
    // retried on node1 before any byte reached the client), then only node1 answers.
    drop(nginx2.take());
    let (failed, _) = burst(inet, 8);
    assert!(
        failed.is_empty(),
        "requests failed while node2's server was down: {failed:?}"
    );
    wait_for(&lab, inet, "node2 leaves the rotation", |_| {
        let (f, nodes) = burst(inet, 4);
        f.is_empty() && nodes.iter().all(|n| n == "node1")
    });
    nginx2 = Some(nginx_in(w2, &d2, &nginx_conf(2, &d2, B2)));
    wait_for(&lab, inet, "node2's server rejoins", |b| {
        b.starts_with("node2")
    });

    // node2's VM is killed: still served (by node1), and node2 rejoins once rebooted.
    lab.vm(1).kill();
    let started = Instant::now();
    let (failed, _) = burst(inet, 10);
    assert!(
        failed.is_empty(),
        "requests failed after node2 was killed: {failed:?}"
    );
    eprintln!(
        "10 requests after killing node2: {:.1?}, none failed",
        started.elapsed()
    );
    ok(lab.restart(1));
    wait_for(&lab, inet, "node2 rejoins after its reboot", |b| {
        b.starts_with("node2")
    });
    drop(nginx2);
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Lets `openssl s_client` finish its handshake, then ends it; all it printed.
fn finish_s_client(mut child: Child) -> String {
    thread::sleep(Duration::from_secs(3));
    if let Some(stdin) = child.stdin.as_mut() {
        let _ = stdin.write_all(b"Q\n");
    }
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out: Output = child.wait_with_output().expect("s_client output");
    output_text(&out)
}
