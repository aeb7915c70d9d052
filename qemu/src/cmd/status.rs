//! `vdcnet status URL`: a `wg show`-like view of a running appliance, read from its
//! Prometheus metrics (`GET /metrics` over plain HTTP/1.0, std only).
//!
//! The text format is parsed into samples ([`parse`]); [`render`] picks out the tunnel,
//! each peer (endpoint, allowed ips, latest handshake, transfer), the routes, the links'
//! counters and the largest drop counters.

use super::{CmdResult, UsageError};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// The port when the URL gives none (the appliance's default).
const DEFAULT_PORT: u16 = 9100;
/// The largest response read.
const MAX_RESPONSE: u64 = 16 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);
/// Drop reasons shown.
const TOP_DROPS: usize = 5;

pub fn main(args: &[String]) -> CmdResult {
    let [url] = args else {
        return Err(UsageError(
            "status needs exactly one URL, like http://10.20.1.1:9100/metrics".into(),
        )
        .into());
    };
    let body = fetch(url)?;
    let samples = parse(&body).map_err(|e| format!("{url}: {e}"))?;
    print!("{}", render(&samples));
    Ok(ExitCode::SUCCESS)
}

/// `http://HOST[:PORT][/PATH]` (or without `http://`) split into the address to dial,
/// the `Host` header and the path (default `/metrics`).
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    if rest.contains("://") {
        return Err(format!("{url}: only http:// URLs are supported"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    if authority.is_empty() {
        return Err(format!("{url}: no host"));
    }
    let has_port = match authority.rfind(']') {
        Some(close) => authority[close..].contains(':'),
        None => authority.contains(':'),
    };
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{DEFAULT_PORT}")
    };
    Ok((authority, path.to_string()))
}

/// The body of `GET url`, which must answer 200.
pub fn fetch(url: &str) -> Result<String, String> {
    let (authority, path) = split_url(url)?;
    let addrs: Vec<SocketAddr> = authority
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .collect();
    let addr = addrs.first().ok_or_else(|| format!("{url}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(addr, TIMEOUT).map_err(|e| format!("{url}: {e}"))?;
    let io = |e: std::io::Error| format!("{url}: {e}");
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut response = Vec::new();
    stream
        .take(MAX_RESPONSE)
        .read_to_end(&mut response)
        .map_err(io)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{url}: not an HTTP response"))?;
    let status = head.lines().next().unwrap_or("");
    if status.split(' ').nth(1) != Some("200") {
        return Err(format!("{url}: {status}"));
    }
    Ok(body.to_string())
}

/// One sample of the text format.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// Parses a text exposition (version 0.0.4); comments are skipped.
pub fn parse(body: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (n, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_line(line).map_err(|e| format!("line {}: {e}: {line:?}", n + 1))?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(mut cur) = rest.strip_prefix('{') {
        loop {
            cur = cur.trim_start_matches([' ', ',']);
            if let Some(r) = cur.strip_prefix('}') {
                rest = r;
                break;
            }
            let (key, after) = cur.split_once("=\"").ok_or("bad label")?;
            let mut value = String::new();
            let mut it = after.char_indices();
            let end = loop {
                match it.next() {
                    Some((_, '\\')) => match it.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, c)) => value.push(c),
                        None => return Err("unterminated label value".into()),
                    },
                    Some((i, '"')) => break i + 1,
                    Some((_, c)) => value.push(c),
                    None => return Err("unterminated label value".into()),
                }
            };
            labels.insert(key.trim().to_string(), value);
            cur = &after[end..];
        }
    }
    let value = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse::<f64>().map_err(|_| format!("bad value {v:?}"))?,
    };
    Ok(Sample {
        name,
        labels,
        value,
    })
}

fn all<'a>(samples: &'a [Sample], name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
    samples.iter().filter(move |s| s.name == name)
}

fn find<'a>(samples: &'a [Sample], name: &str, label: &str, value: &str) -> Option<&'a Sample> {
    samples
        .iter()
        .find(|s| s.name == name && s.label(label) == value)
}

/// wg's byte units: B, KiB, MiB, GiB, TiB.
fn bytes(n: f64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024.0 {
        return format!("{n} B");
    }
    let mut v = n / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.2} {}", UNITS[unit])
}

/// "1 hour, 2 minutes, 3 seconds ago", as wg prints it.
fn ago(secs: f64) -> String {
    let mut left = secs.max(0.0) as u64;
    if left == 0 {
        return "Now".into();
    }
    let mut parts = Vec::new();
    for (unit, size) in [
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
        ("second", 1),
    ] {
        let n = left / size;
        left %= size;
        if n > 0 {
            parts.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
        }
    }
    format!("{} ago", parts.join(", "))
}

/// The person-readable view.
pub fn render(samples: &[Sample]) -> String {
    let mut o = String::new();
    if let Some(t) = all(samples, "vdcnet_tunnel_info").next() {
        let _ = writeln!(o, "interface: {}", t.label("interface"));
        let _ = writeln!(o, "  public key: {}", t.label("public_key"));
        let _ = writeln!(o, "  listening port: {}", t.label("listen_port"));
        if let Some(m) = all(samples, "vdcnet_tunnel_mtu_bytes").next() {
            let _ = writeln!(o, "  mtu: {}", m.value);
        }
        let peers: Vec<&str> = all(samples, "vdcnet_peer_session_up")
            .map(|s| s.label("peer"))
            .collect();
        for peer in peers {
            let _ = writeln!(o, "\npeer: {peer}");
            if let Some(e) = find(samples, "vdcnet_peer_endpoint_info", "peer", peer) {
                let _ = writeln!(o, "  endpoint: {}", e.label("endpoint"));
            }
            let allowed: Vec<&str> = all(samples, "vdcnet_peer_allowed_ip_info")
                .filter(|s| s.label("peer") == peer)
                .map(|s| s.label("prefix"))
                .collect();
            let allowed = if allowed.is_empty() {
                "(none)".to_string()
            } else {
                allowed.join(", ")
            };
            let _ = writeln!(o, "  allowed ips: {allowed}");
            match find(
                samples,
                "vdcnet_peer_last_handshake_age_seconds",
                "peer",
                peer,
            ) {
                Some(h) => {
                    let _ = writeln!(o, "  latest handshake: {}", ago(h.value));
                }
                None => {
                    let _ = writeln!(o, "  latest handshake: (none)");
                }
            }
            let value = |name| find(samples, name, "peer", peer).map_or(0.0, |s| s.value);
            let _ = writeln!(
                o,
                "  transfer: {} received, {} sent",
                bytes(value("vdcnet_peer_rx_bytes_total")),
                bytes(value("vdcnet_peer_tx_bytes_total"))
            );
            let up = value("vdcnet_peer_session_up") > 0.0;
            let _ = writeln!(o, "  session: {}", if up { "up" } else { "down" });
            if let Some(r) = find(samples, "vdcnet_babel_neighbour_reachable", "peer", peer) {
                let rtt = find(samples, "vdcnet_babel_neighbour_rtt_seconds", "peer", peer)
                    .map_or(String::from("not measured"), |s| {
                        format!("{:.1} ms", s.value * 1000.0)
                    });
                let _ = writeln!(
                    o,
                    "  babel: {}, cost {}, rtt {rtt}",
                    if r.value > 0.0 {
                        "reachable"
                    } else {
                        "unreachable"
                    },
                    value("vdcnet_babel_neighbour_cost"),
                );
            }
        }
        let _ = writeln!(o);
    }
    render_gateway(samples, &mut o);
    let routes: Vec<&Sample> = all(samples, "vdcnet_route_info").collect();
    if !routes.is_empty() {
        let _ = writeln!(o, "routes:");
        for r in routes {
            let via = match r.label("via") {
                "" => String::new(),
                v => format!(" via {v}"),
            };
            let origin = match (r.label("origin"), r.label("metric")) {
                ("", _) => String::new(),
                ("babel", m) => format!(" (babel, metric {m})"),
                (o, _) => format!(" ({})", o.replace('_', " ")),
            };
            let _ = writeln!(
                o,
                "  {} dev {}{via}{origin}",
                r.label("prefix"),
                r.label("target")
            );
        }
        let _ = writeln!(o);
    }
    let links: Vec<&Sample> = all(samples, "vdcnet_link_info").collect();
    if !links.is_empty() {
        let _ = writeln!(o, "links:");
        for l in links {
            let n = l.label("link");
            let get = |name| find(samples, name, "link", n).map_or(0.0, |s| s.value);
            let _ = writeln!(
                o,
                "  link{n} {} {}: rx {} frames, tx {} frames, {} tx dropped, {} malformed",
                l.label("role"),
                l.label("mac"),
                get("vdcnet_link_rx_frames_total"),
                get("vdcnet_link_tx_frames_total"),
                get("vdcnet_link_tx_dropped_frames_total"),
                get("vdcnet_link_malformed_frames_total"),
            );
            if let Some(d) = find(samples, "vdcnet_dhcp_leases", "link", n) {
                let _ = writeln!(o, "    dhcp leases: {}", d.value);
            }
            if let Some(c) = find(samples, "vdcnet_nat_connections", "link", n) {
                let max =
                    find(samples, "vdcnet_nat_connections_max", "link", n).map_or(0.0, |s| s.value);
                let _ = writeln!(o, "    nat connections: {} of {max}", c.value);
            }
        }
        let _ = writeln!(o);
    }
    let one = |name| all(samples, name).next().map_or(0.0, |s| s.value);
    let dir = |name, d| find(samples, name, "direction", d).map_or(0.0, |s| s.value);
    let _ = writeln!(
        o,
        "router: {} forwarded, {} to the tunnel, {} from it, {} ICMP errors",
        one("vdcnet_router_forwarded_packets_total"),
        dir("vdcnet_router_tunnel_packets_total", "out"),
        dir("vdcnet_router_tunnel_packets_total", "in"),
        one("vdcnet_router_icmp_errors_total"),
    );
    let mut drops: Vec<(&str, &str, f64)> = all(samples, "vdcnet_router_drops_total")
        .map(|s| ("router", s.label("reason"), s.value))
        .chain(
            all(samples, "vdcnet_tunnel_drops_total")
                .map(|s| ("tunnel", s.label("reason"), s.value)),
        )
        .filter(|d| d.2 > 0.0)
        .collect();
    drops.sort_by(|a, b| b.2.total_cmp(&a.2));
    if drops.is_empty() {
        let _ = writeln!(o, "drops: none");
    } else {
        let _ = writeln!(o, "top drops:");
        for (room, reason, n) in drops.iter().take(TOP_DROPS) {
            let _ = writeln!(o, "  {room} {reason}: {n}");
        }
    }
    o
}

/// The web gateway: connections, each service with its backends' health, the peer
/// gateways, and the DNS's answers.
fn render_gateway(samples: &[Sample], o: &mut String) {
    let Some(open) = all(samples, "vdcnet_gateway_connections_open").next() else {
        return;
    };
    let one = |name| all(samples, name).next().map_or(0.0, |s| s.value);
    let _ = writeln!(
        o,
        "gateway: {} connections open, {} accepted, {} refused, {} requests",
        open.value,
        one("vdcnet_gateway_accepted_total"),
        one("vdcnet_gateway_refused_total"),
        one("vdcnet_gateway_requests_total"),
    );
    for svc in all(samples, "vdcnet_gateway_service_serving_addresses") {
        let name = svc.label("service");
        let get = |metric| find(samples, metric, "service", name).map_or(0.0, |s| s.value);
        let _ = writeln!(
            o,
            "  service {name}: {} connections, {} requests, served by {} public address(es)",
            get("vdcnet_gateway_service_connections_total"),
            get("vdcnet_gateway_service_requests_total"),
            svc.value,
        );
        for b in all(samples, "vdcnet_gateway_backend_up").filter(|b| b.label("service") == name) {
            let addr = b.label("backend");
            let per = |metric| {
                all(samples, metric)
                    .find(|x| x.label("service") == name && x.label("backend") == addr)
                    .map_or(0.0, |x| x.value)
            };
            let _ = writeln!(
                o,
                "    backend {addr}: {}, {} active, {} connections, {} failed checks",
                if b.value > 0.0 { "up" } else { "down" },
                per("vdcnet_gateway_backend_active_connections"),
                per("vdcnet_gateway_backend_connections_total"),
                per("vdcnet_gateway_backend_check_failures_total"),
            );
        }
    }
    for p in all(samples, "vdcnet_gateway_peer_alive") {
        let state = if p.value > 0.0 { "alive" } else { "dead" };
        let _ = writeln!(o, "  peer gateway {}: {state}", p.label("peer"));
    }
    let outcome = |o: &str| {
        find(samples, "vdcnet_dns_responses_total", "outcome", o).map_or(0.0, |s| s.value)
    };
    if all(samples, "vdcnet_dns_queries_total").next().is_some() {
        let q: f64 = all(samples, "vdcnet_dns_queries_total")
            .map(|s| s.value)
            .sum();
        let _ = writeln!(
            o,
            "  dns: {q} queries, {} answers, {} nodata, {} nxdomain, {} refused",
            outcome("answer"),
            outcome("nodata"),
            outcome("nxdomain"),
            outcome("refused"),
        );
    }
    let _ = writeln!(o);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_shows_the_gateway_its_backends_peers_and_dns() {
        let body = "vdcnet_gateway_connections_open 2\nvdcnet_gateway_accepted_total 10\n\
            vdcnet_gateway_service_serving_addresses{service=\"www.example.org\"} 2\n\
            vdcnet_gateway_service_requests_total{service=\"www.example.org\"} 7\n\
            vdcnet_gateway_backend_up{service=\"www.example.org\",backend=\"10.20.3.10:8080\"} 1\n\
            vdcnet_gateway_backend_up{service=\"www.example.org\",backend=\"10.20.4.10:8080\"} 0\n\
            vdcnet_gateway_backend_check_failures_total{service=\"www.example.org\",backend=\"10.20.4.10:8080\"} 3\n\
            vdcnet_gateway_peer_alive{peer=\"10.20.2.1\"} 1\n\
            vdcnet_dns_queries_total{transport=\"udp\"} 5\n\
            vdcnet_dns_responses_total{outcome=\"answer\"} 4\n";
        let view = render(&parse(body).unwrap());
        for line in [
            "gateway: 2 connections open, 10 accepted, 0 refused, 0 requests\n",
            "  service www.example.org: 0 connections, 7 requests, served by 2 public address(es)\n",
            "    backend 10.20.3.10:8080: up, 0 active, 0 connections, 0 failed checks\n",
            "    backend 10.20.4.10:8080: down, 0 active, 0 connections, 3 failed checks\n",
            "  peer gateway 10.20.2.1: alive\n",
            "  dns: 5 queries, 4 answers, 0 nodata, 0 nxdomain, 0 refused\n",
        ] {
            assert!(view.contains(line), "no {line:?} in\n{view}");
        }
    }

    /// A body the appliance served in the two-node lab (tests/metrics.rs's setup), curled
    /// from node 1's workload after a ping across the mesh.
    const BODY: &str = include_str!("status_fixture.prom");

    #[test]
    fn parses_every_sample_of_a_real_body() {
        let samples = parse(BODY).unwrap();
        let lines = BODY
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count();
        assert_eq!(samples.len(), lines);
        let info = all(&samples, "vdcnet_tunnel_info").next().unwrap();
        assert_eq!(info.label("listen_port"), "51820");
        assert_eq!(info.label("public_key").len(), 44);
    }

    #[test]
    fn label_values_are_unescaped_and_odd_values_read() {
        let s = parse("x{a=\"q\\\"u\\\\o\\nte\",b=\"}\"} +Inf\ny 1.5e3 1700000000\n").unwrap();
        assert_eq!(s[0].label("a"), "q\"u\\o\nte");
        assert_eq!(s[0].label("b"), "}");
        assert_eq!(s[0].value, f64::INFINITY);
        assert_eq!(s[1].value, 1500.0);
        assert!(parse("x{a=\"open} 1\n").is_err());
        assert!(parse("x{a=\"1\"} one\n").is_err());
    }

    #[test]
    fn the_view_names_the_peer_its_handshake_and_transfer() {
        let samples = parse(BODY).unwrap();
        let view = render(&samples);
        let peer = all(&samples, "vdcnet_peer_session_up")
            .next()
            .unwrap()
            .label("peer")
            .to_string();
        assert!(view.starts_with("interface: wg0\n  public key: "), "{view}");
        assert!(
            view.contains(&format!(
                "\npeer: {peer}\n  endpoint: 192.168.100.2:51820\n"
            )),
            "{view}"
        );
        assert!(view.contains("  latest handshake: "), "{view}");
        assert!(
            view.contains(" seconds ago\n") || view.contains(" second ago\n"),
            "{view}"
        );
        assert!(
            view.contains("  allowed ips: fd20:ab:cd:2::/64, 10.20.2.0/24\n"),
            "{view}"
        );
        assert!(
            view.contains(" received, ") && view.contains(" sent\n"),
            "{view}"
        );
        assert!(view.contains("\nroutes:\n"), "{view}");
        assert!(view.contains("\n  10.20.1.0/24 dev link1\n"), "{view}");
        let via = format!("\n  10.20.2.0/24 dev wg0 via {peer}\n");
        assert!(view.contains(&via), "{view}");
        assert!(
            view.contains("  transfer: 84 B received, 84 B sent\n"),
            "{view}"
        );
        assert!(view.contains("\nlinks:\n  link0 underlay "), "{view}");
    }

    #[test]
    fn units_and_ages_read_like_wg() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1536.0), "1.50 KiB");
        assert_eq!(bytes(3.0 * 1024.0 * 1024.0), "3.00 MiB");
        assert_eq!(ago(0.4), "Now");
        assert_eq!(ago(1.0), "1 second ago");
        assert_eq!(ago(3725.0), "1 hour, 2 minutes, 5 seconds ago");
    }

    #[test]
    fn urls_default_to_port_9100_and_path_metrics() {
        let split = |u| split_url(u).unwrap();
        assert_eq!(
            split("http://10.20.1.1"),
            ("10.20.1.1:9100".into(), "/metrics".into())
        );
        assert_eq!(
            split("10.20.1.1:9200/m"),
            ("10.20.1.1:9200".into(), "/m".into())
        );
        assert_eq!(
            split("http://[fd20::1]/metrics"),
            ("[fd20::1]:9100".into(), "/metrics".into())
        );
        assert!(split_url("https://x/").is_err());
    }
}
