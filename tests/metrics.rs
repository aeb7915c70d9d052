//! The metrics service end to end: a two-node mesh (`vdcnet_qemu::lab`), scraped from
//! node 1's workload namespace by curl (body checked by `promtool check metrics`) and by a
//! real Prometheus server (its HTTP API must report `up == 1` and the peer's counters);
//! a host on the underlay ([`UnderlayHost`]) must not reach the metrics port; and `vdcnet status URL` names the
//! peer and its handshake.
//!
//! One lab is booted and shared by every assertion.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use vdcnet_qemu::lab::{Lab, Topology};
use vdcnet_qemu::{free_tcp_port, Netns, TempDir, UnderlayHost};
use vdcnet_tests::{ok, output_text, require_root, run_in, TIMEOUT};

/// Generous: two TCG guests and a Prometheus server on a shared machine.
const SLOW: Duration = Duration::from_secs(90);

/// `curl` from `ns`: the body on success, `Err` with what curl said otherwise.
fn curl(ns: &Netns, url: &str, max_secs: u32) -> Result<String, String> {
    let t = max_secs.to_string();
    let out = run_in(ns, "curl", &["-sS", "--fail", "--max-time", &t, url]);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(output_text(&out))
    }
}

/// A child process killed on drop (Prometheus).
struct Killed(Child, &'static str);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Killed {
    /// What the process wrote so far, if it already died (for failure messages).
    fn died(&mut self) -> Option<String> {
        match self.0.try_wait() {
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(e) = self.0.stderr.as_mut() {
                    let _ = e.read_to_string(&mut err);
                }
                Some(format!("{} exited with {status}: {err}", self.1))
            }
            _ => None,
        }
    }
}

/// The value of the first sample of `name` (with `labels` as written, e.g.
/// `{peer="..."}`) in an exposition body.
fn sample(body: &str, name_and_labels: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The value of an instant query's first result, from Prometheus's JSON
/// (`..."value":[1700000000.123,"42"]...`).
fn query_value(json: &str) -> Option<f64> {
    let after = json.split_once("\"value\":[")?.1;
    let v = after.split_once(",\"")?.1.split_once('"')?.0;
    v.parse().ok()
}

/// Builds the `vdcnet` host tool (cargo says where it put it).
fn vdcnet_tool() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "vdcnet-qemu",
            "--bin",
            "vdcnet",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "building vdcnet failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let exe = stdout
        .lines()
        .filter(|l| l.contains("\"executable\":\"") && l.contains("vdcnet"))
        .filter_map(|l| l.split_once("\"executable\":\"")?.1.split_once('"'))
        .map(|(path, _)| PathBuf::from(path))
        .next_back()
        .expect("cargo names the vdcnet executable");
    assert!(exe.is_file(), "{}", exe.display());
    exe
}

/// Polls `f` every half second until it gives `Some`, or panics after `within`.
fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + within;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => panic!("{what}: {e}"),
            Err(_) => thread::sleep(Duration::from_millis(500)),
        }
    }
}

#[test]
fn a_mesh_node_serves_valid_metrics_to_its_segment_and_prometheus_but_not_to_the_underlay() {
    require_root("metrics");
    let lab = ok(Lab::start(&Topology::new(2)));
    let ws = lab.workload(0);
    let node1 = &lab.nodes()[0];
    let node2 = &lab.nodes()[1];
    let seg1 = node1.overlay_v4;
    let url = format!("http://{seg1}:9100/metrics");
    // Traffic across the mesh: a handshake and some bytes for node 2's peer counters.
    let far = lab
        .workload_v4(1)
        .expect("node 2's workload has an address");
    ok(ws.ping(far.into(), TIMEOUT));

    // curl, and promtool on the body.
    let body = eventually(TIMEOUT, "curl /metrics", || curl(ws, &url, 10));
    let dir = TempDir::new("vdcnet-metrics").unwrap();
    let body_path = dir.path().join("body.prom");
    std::fs::write(&body_path, &body).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("promtool check metrics < {}", body_path.display()))
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool: {}\n{body}",
        output_text(&out)
    );
    let peer = format!("{{peer=\"{}\"}}", node2.public_key);
    let rx = sample(&body, &format!("vdcnet_peer_rx_bytes_total{peer}"));
    assert!(rx.is_some_and(|v| v > 0.0), "peer rx bytes {rx:?}\n{body}");
    let age = sample(
        &body,
        &format!("vdcnet_peer_last_handshake_age_seconds{peer}"),
    );
    assert!(
        age.is_some_and(|a| a >= 0.0),
        "handshake age {age:?}\n{body}"
    );
    let endpoint = format!(
        "vdcnet_peer_endpoint_info{{peer=\"{}\",endpoint=\"{}:51820\"}} 1",
        node2.public_key, node2.underlay
    );
    assert!(body.contains(&endpoint), "no {endpoint:?}\n{body}");
    // Other paths and methods.
    let status = |extra: &[&str], url: &str| {
        let mut args = vec![
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ];
        args.extend_from_slice(extra);
        args.push(url);
        output_text(&run_in(ws, "curl", &args))
    };
    assert_eq!(status(&[], &format!("http://{seg1}:9100/")), "404");
    assert_eq!(status(&["-X", "POST"], &url), "405");

    // A real Prometheus in the workload namespace, scraping every second.
    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).unwrap();
    let config = prom_dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: vdcnet\n    static_configs:\n      - targets: ['{seg1}:9100']\n"
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", free_tcp_port().unwrap());
    let mut prometheus = Killed(
        ws.command("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                prom_dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("prometheus starts"),
        "prometheus",
    );
    let api = |q: &str| format!("http://{web}/api/v1/query?query={q}");
    let up = eventually(SLOW, "prometheus reports up == 1", || {
        if let Some(e) = prometheus.died() {
            panic!("{e}");
        }
        let json = curl(ws, &api("up%7Bjob%3D%22vdcnet%22%7D"), 5)?;
        match query_value(&json) {
            Some(v) if v == 1.0 => Ok(v),
            _ => Err(json),
        }
    });
    assert_eq!(up, 1.0);
    let q = format!(
        "vdcnet_peer_rx_bytes_total%7Bpeer%3D%22{}%22%7D",
        node2
            .public_key
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let scraped = eventually(SLOW, "prometheus has the peer's rx bytes", || {
        let json = curl(ws, &api(&q), 5)?;
        query_value(&json).ok_or(json)
    });
    // Plausible: at least the ping's 84-byte packet, and no more than what the appliance
    // itself reports now (the counter only grows).
    let now_body = curl(ws, &url, 10).unwrap();
    let now_rx = sample(&now_body, &format!("vdcnet_peer_rx_bytes_total{peer}")).unwrap();
    assert!(
        scraped >= 84.0 && scraped <= now_rx,
        "prometheus says {scraped}, the appliance {now_rx}"
    );
    drop(prometheus);

    // The underlay: a host on the lab's switch (a tap in its own namespace, its frames
    // carried to the switch by socat) reaches node 1's underlay address (ping), but not
    // the metrics port, neither on the segment address nor on the underlay address.
    let host = "192.168.100.50";
    let underlay = ok(UnderlayHost::attach(lab.wire(), &[format!("{host}/24")]));
    let underlay_ns = underlay.netns();
    underlay_ns
        .ip(&[
            "route",
            "add",
            "10.20.0.0/16",
            "via",
            &node1.underlay.to_string(),
        ])
        .unwrap();
    if let Err(e) = underlay_ns.ping(node1.underlay.into(), TIMEOUT) {
        panic!("the underlay host cannot reach node 1 at all: {e}");
    }
    for target in [seg1.to_string(), node1.underlay.to_string()] {
        let r = curl(underlay_ns, &format!("http://{target}:9100/metrics"), 5);
        assert!(r.is_err(), "the underlay scraped {target}:9100: {r:?}");
    }
    drop(underlay);

    // `vdcnet status`, run in the workload namespace.
    let tool = vdcnet_tool();
    let out = run_in(ws, tool.to_str().unwrap(), &["status", &url]);
    let view = output_text(&out);
    assert!(out.status.success(), "{view}");
    assert!(
        view.contains(&format!("peer: {}\n", node2.public_key)),
        "{view}"
    );
    assert!(view.contains("  latest handshake: "), "{view}");
    assert!(!view.contains("latest handshake: (none)"), "{view}");
    assert!(
        view.contains(&format!("  public key: {}\n", node1.public_key)),
        "{view}"
    );
    drop(lab);
}
