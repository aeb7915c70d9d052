//! The `[Gateway]` and `[Service]` sections of the node file: whole files in, the gateway's
//! config or line-numbered errors out.

use core::net::SocketAddr;

use smoltcp::wire::IpAddress;
use vdcnet_appliance::config::{
    parse, Balance, Config, ConfigError, GatewayConfig, HealthCheck, NamePattern, ServiceMode,
    DEFAULT_MAX_CONNECTIONS,
};

/// An underlay link with two public addresses and a segment (lines 1..=6).
const LINKS: &str = "\
[Link]
Address = 203.0.113.10/24, 2001:db8::10/64
Gateway = 203.0.113.1
[Link]
Role = segment
Address = 10.20.1.1/24
";

fn ok(text: &str) -> Config {
    match parse(text.as_bytes()) {
        Ok(config) => config,
        Err(errors) => panic!("expected a config, got errors: {errors:#?}"),
    }
}

fn gateway(text: &str) -> GatewayConfig {
    ok(text).gateway.expect("a [Gateway]")
}

fn errors(text: &str) -> Vec<ConfigError> {
    parse(text.as_bytes()).expect_err("expected errors")
}

/// Asserts that `text` fails with exactly one error, on `line`, containing `needle`.
#[track_caller]
fn assert_error(text: &str, line: usize, needle: &str) {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    assert_eq!(errors[0].line, line, "wrong line: {errors:#?}");
    assert!(
        errors[0].message.contains(needle),
        "{:?} does not contain {needle:?}",
        errors[0].message
    );
}

/// `LINKS`, a `[Gateway]` at line 7 with `gateway_keys`, then `rest`.
fn file(gateway_keys: &str, rest: &str) -> String {
    format!("{LINKS}[Gateway]\nListen = 203.0.113.10\n{gateway_keys}{rest}")
}

const SHOP: &str = "[Service]\nName = shop.example.org\nMode = tls\nBackend = 10.20.1.10:443\n";

#[test]
fn the_example_from_the_issue_parses_with_defaults() {
    let g = gateway(&format!(
        "{LINKS}[Gateway]\nListen = 203.0.113.10, 2001:db8::10   # public\n\
         [Service]\nName = shop.example.org\nMode = tls\n\
         Backend = 10.20.1.10:443, 10.20.2.10:443\nProxyProtocol = v2\n"
    ));
    assert_eq!(
        g.listen,
        vec![
            IpAddress::v4(203, 0, 113, 10),
            IpAddress::v6(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)
        ]
    );
    assert_eq!((g.http_port, g.tls_port), (80, 443));
    assert_eq!(g.max_connections, DEFAULT_MAX_CONNECTIONS);
    assert_eq!(
        (
            g.head_timeout_secs,
            g.idle_timeout_secs,
            g.connect_timeout_secs
        ),
        (10, 60, 5)
    );
    assert_eq!(g.line, 7);
    let [s] = &g.services[..] else {
        panic!("one service: {:?}", g.services)
    };
    assert_eq!(s.name, NamePattern::Exact("shop.example.org".into()));
    assert_eq!(s.mode, ServiceMode::Tls);
    assert_eq!(
        s.backends,
        vec![
            "10.20.1.10:443".parse::<SocketAddr>().unwrap(),
            "10.20.2.10:443".parse().unwrap()
        ]
    );
    assert!(s.proxy_protocol);
    assert_eq!(s.balance, Balance::RoundRobin);
    assert_eq!(s.health_check, HealthCheck::Tcp);
    assert_eq!(
        (s.check_interval_ms, s.check_timeout_ms, s.rise, s.fall),
        (2000, 1000, 2, 3)
    );
    assert_eq!(s.line, 9);
}

#[test]
fn every_key_is_read() {
    let g = gateway(&file(
        "HttpPort = 8080\nTlsPort = 8443\nMaxConnections = 2000\nHeadTimeout = 5\n\
         IdleTimeout = 120\nConnectTimeout = 3\n",
        "[service]\nname = *.Example.org\nmode = HTTP\nbackend = [fd20:ab:cd:2::10]:8080\n\
         Backend = 10.20.1.10:8080\nBalance = leastconn\nProxyProtocol = off\n\
         HealthCheck = http /healthz?full=1\nCheckInterval = 500\nCheckTimeout = 400\n\
         Rise = 1\nFall = 5\n\
         [Service]\nName = ssh\nMode = tcp\nPort = 2222\nBackend = 10.20.1.10:22\n",
    ));
    assert_eq!(
        (g.http_port, g.tls_port, g.max_connections),
        (8080, 8443, 2000)
    );
    assert_eq!(
        (
            g.head_timeout_secs,
            g.idle_timeout_secs,
            g.connect_timeout_secs
        ),
        (5, 120, 3)
    );
    let web = &g.services[0];
    assert_eq!(web.name, NamePattern::Wildcard("example.org".into()));
    assert_eq!(web.mode, ServiceMode::Http);
    assert_eq!(web.backends.len(), 2);
    assert_eq!(web.backends[0], "[fd20:ab:cd:2::10]:8080".parse().unwrap());
    assert_eq!(web.balance, Balance::LeastConnections);
    assert!(!web.proxy_protocol);
    assert_eq!(
        web.health_check,
        HealthCheck::Http {
            path: "/healthz?full=1".into()
        }
    );
    assert_eq!(
        (
            web.check_interval_ms,
            web.check_timeout_ms,
            web.rise,
            web.fall
        ),
        (500, 400, 1, 5)
    );
    assert_eq!(g.services[1].mode, ServiceMode::Tcp { port: 2222 });
    assert_eq!(g.services[1].name, NamePattern::Exact("ssh".into()));
}

#[test]
fn the_same_name_may_be_served_as_http_and_as_tls() {
    let g = gateway(&file(
        "",
        &format!(
            "{SHOP}[Service]\nName = shop.example.org\nMode = http\nBackend = 10.20.1.10:80\n"
        ),
    ));
    assert_eq!(g.services.len(), 2);
}

#[test]
fn listen_may_repeat() {
    let g = gateway(&file("Listen = 2001:db8::10\n", SHOP));
    assert_eq!(g.listen.len(), 2);
}

#[test]
fn no_gateway_means_none() {
    assert_eq!(ok(LINKS).gateway, None);
}

#[test]
fn gateway_errors_name_their_lines() {
    assert_error(&format!("{LINKS}[Gateway]\n{SHOP}"), 7, "has no Listen");
    assert_error(&file("", ""), 7, "has no [Service]");
    assert_error(
        &format!("{LINKS}[Gateway]\nListen = 203.0.113.10/24\n{SHOP}"),
        8,
        "not an IP address",
    );
    assert_error(
        &format!("{LINKS}[Gateway]\nListen = 203.0.113.10, 203.0.113.10\n{SHOP}"),
        8,
        "already given at line 8",
    );
    assert_error(
        &format!("{LINKS}[Gateway]\nListen = 198.51.100.1\n{SHOP}"),
        8,
        "not an Address of any [Link]",
    );
    assert_error(
        &format!("{LINKS}[Gateway]\nListen = 10.20.1.1\n{SHOP}"),
        8,
        "segment [Link] at line 4",
    );
    assert_error(&file("HttpPort = 0\n", SHOP), 9, "out of range");
    assert_error(&file("TlsPort = 80\n", SHOP), 9, "also the HttpPort");
    assert_error(&file("HeadTimeout = 0\n", SHOP), 9, "out of range");
    assert_error(&file("MaxConnections = 70000\n", SHOP), 9, "out of range");
    assert_error(
        &file("Frontend = 1\n", SHOP),
        9,
        "unknown key \"Frontend\" in [Gateway]",
    );
    assert_error(
        &file("", &format!("{SHOP}[Gateway]\nListen = 203.0.113.10\n")),
        13,
        "second [Gateway]",
    );
}

#[test]
fn a_service_without_a_gateway_is_an_error() {
    assert_error(&format!("{LINKS}{SHOP}"), 7, "without a [Gateway]");
}

#[test]
fn service_errors_name_their_lines() {
    // The service's header is line 9, its keys from line 10.
    let svc = |body: &str| file("", &format!("[Service]\n{body}"));
    assert_error(
        &svc("Mode = tls\nBackend = 10.20.1.10:443\n"),
        9,
        "has no Name",
    );
    assert_error(
        &svc("Name = a.org\nBackend = 10.20.1.10:443\n"),
        9,
        "has no Mode",
    );
    assert_error(&svc("Name = a.org\nMode = tls\n"), 9, "has no Backend");
    assert_error(
        &svc("Name = a..org\nMode = tls\nBackend = 10.20.1.10:443\n"),
        10,
        "not a DNS name",
    );
    assert_error(
        &svc("Name = a.*.org\nMode = tls\nBackend = 10.20.1.10:443\n"),
        10,
        "first label",
    );
    assert_error(
        &svc("Name = a.org\nMode = udp\nBackend = 10.20.1.10:443\n"),
        11,
        "not tls, http or tcp",
    );
    assert_error(
        &svc("Name = a.org\nMode = tcp\nBackend = 10.20.1.10:22\n"),
        11,
        "needs a Port",
    );
    assert_error(
        &svc("Name = a.org\nMode = tls\nPort = 8443\nBackend = 10.20.1.10:443\n"),
        12,
        "only for Mode = tcp",
    );
    assert_error(
        &svc("Name = a.org\nMode = tcp\nPort = 443\nBackend = 10.20.1.10:22\n"),
        9,
        "the gateway's TLS port",
    );
    assert_error(
        &svc("Name = a.org\nMode = tls\nBackend = 10.20.1.10\n"),
        12,
        "needs a port",
    );
    assert_error(
        &svc("Name = a.org\nMode = tls\nBackend = fd20::10:443\n"),
        12,
        "needs a port",
    );
    assert_error(
        &svc("Name = a.org\nMode = tls\nBackend = [10.20.1.10]:443\n"),
        12,
        "in brackets",
    );
    assert_error(
        &svc("Name = a.org\nMode = tls\nBackend = 10.20.1.10:0\n"),
        12,
        "out of range",
    );
    assert_error(
        &svc("Name = a.org\nMode = tls\nBackend = 224.0.0.1:443\n"),
        12,
        "multicast",
    );
    assert_error(
        &svc("Name = a.org\nMode = tls\nBackend = backend.internal:443\n"),
        12,
        "DNS names are not supported",
    );
    assert_error(
        &svc("Name = a.org\nMode = tls\nBackend = 10.20.1.10:443, 10.20.1.10:443\n"),
        12,
        "listed twice",
    );
    assert_error(
        &svc("Name = a.org\nMode = tls\nBackend = 10.20.1.10:443,\n"),
        12,
        "empty item",
    );
    assert_error(
        &svc("Name = a.org\nMode = tls\nBackend = 10.20.1.10:443\nBalance = random\n"),
        13,
        "not roundrobin or leastconn",
    );
    assert_error(
        &svc("Name = a.org\nMode = tls\nBackend = 10.20.1.10:443\nProxyProtocol = v1\n"),
        13,
        "v1",
    );
    assert_error(
        &svc("Name = a.org\nMode = tls\nBackend = 10.20.1.10:443\nHealthCheck = http /\n"),
        13,
        "needs Mode = http",
    );
    assert_error(
        &svc("Name = a.org\nMode = http\nBackend = 10.20.1.10:80\nHealthCheck = http\n"),
        13,
        "needs a path",
    );
    assert_error(
        &svc("Name = a.org\nMode = http\nBackend = 10.20.1.10:80\nHealthCheck = http healthz\n"),
        13,
        "must start with '/'",
    );
    assert_error(
        &svc("Name = a.org\nMode = http\nBackend = 10.20.1.10:80\nCheckTimeout = 3000\n"),
        13,
        "longer than CheckInterval",
    );
    assert_error(
        &svc("Name = a.org\nMode = http\nBackend = 10.20.1.10:80\nFall = 0\n"),
        13,
        "out of range",
    );
    assert_error(
        &svc("Name = a.org\nMode = http\nBackend = 10.20.1.10:80\nWeight = 3\n"),
        13,
        "unknown key",
    );
    let many: String = (0..17)
        .map(|i| format!("10.20.1.{}:80", i + 1))
        .collect::<Vec<_>>()
        .join(", ");
    assert_error(
        &svc(&format!("Name = a.org\nMode = http\nBackend = {many}\n")),
        12,
        "more than 16 Backend",
    );
}

#[test]
fn duplicate_names_and_ports_across_services_are_errors() {
    assert_error(
        &file("", &format!("{SHOP}{SHOP}")),
        14,
        "already has a [Service] of this Mode (Name at line 10)",
    );
    let ssh = "[Service]\nName = ssh\nMode = tcp\nPort = 2222\nBackend = 10.20.1.10:22\n";
    let ssh2 = "[Service]\nName = ssh2\nMode = tcp\nPort = 2222\nBackend = 10.20.1.11:22\n";
    assert_error(
        &file("", &format!("{ssh}{ssh2}")),
        17,
        "Port 2222 already belongs",
    );
    // Wildcard and exact names of the same suffix are different names.
    let g = gateway(&file(
        "",
        "[Service]\nName = *.example.org\nMode = tls\nBackend = 10.20.1.10:443\n\
         [Service]\nName = example.org\nMode = tls\nBackend = 10.20.1.11:443\n",
    ));
    assert_eq!(g.services.len(), 2);
}

#[test]
fn all_errors_of_a_file_come_at_once_in_line_order() {
    let errs = errors(&file(
        "HttpPort = x\n",
        "[Service]\nName = bad name\nMode = tls\nBackend = nope\n",
    ));
    let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![9, 11, 13], "{errs:#?}");
}
