//! The DNS core against real clients: `dig` (BIND 9's) and `unbound` as a recursive
//! resolver with the zone as a stub zone.
//!
//! The core runs in this test process behind a std `UdpSocket` and `TcpListener` on
//! 127.0.0.1 (one port for both, as port 53 would be), started from a node file through
//! the real config parser (`[Gateway]`, `[Service]`s, `[DNS]`). The test passes only if
//! - dig reads every kind of answer as the RFCs say: A/AAAA with rotation, SOA and NS
//!   with glue, ANY (one RRset), NXDOMAIN and NODATA with the SOA, REFUSED out of zone,
//!   the question's case echoed, TCP, BADVERS for EDNS version 1, and an answer too big
//!   for a 512-byte buffer truncated (TC, nothing but the question) then fetched whole
//!   over TCP by dig's own retry;
//! - unbound, told the zone lives at our port, resolves through it: a name, a missing
//!   name, and a 32-address RRset that unbound (its buffer set to 512 bytes) can only get
//!   over TCP after a truncated UDP answer.
//!
//! Needs no root: everything is on the loopback network (127.0.0.1 and 127.0.0.2).

use std::io::{Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use vdcnet_appliance::config;
use vdcnet_appliance::dns::{DnsServer, Reply, TcpQueries, TcpReply, TCP_RESPONSE};
use vdcnet_qemu::TempDir;

const NODE: &str = "\
[Link]
Address = 203.0.113.10/24, 2001:db8::10/64
[Link]
Role = segment
Address = 10.20.1.1/24
[Gateway]
Listen = 203.0.113.10, 2001:db8::10
[Service]
Name = www.example.org
Mode = http
Backend = 10.20.1.10:80
[Service]
Name = big.example.org
Mode = http
Backend = 10.20.1.11:80
[Service]
Name = *.apps.example.org
Mode = tls
Backend = 10.20.1.12:443
[Service]
Name = example.org
Mode = http
Backend = 10.20.1.13:80
[Service]
Name = empty.example.org
Mode = http
Backend = 10.20.1.14:80
[DNS]
Zone = example.org
NameServer = ns1.example.org, 203.0.113.10, 2001:db8::10
NameServer = ns2.example.net
TTL = 30
RateLimit = 0
";

/// The core on a loopback port, UDP and TCP; stops when dropped.
struct Server {
    port: u16,
    core: Arc<Mutex<DnsServer>>,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

fn start() -> Server {
    let cfg = config::parse(NODE.as_bytes()).unwrap_or_else(|e| panic!("{e:#?}"));
    let dns = cfg.dns.expect("a [DNS] section");
    let mut core = DnsServer::new(&dns.server_spec()).expect("a server");
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    for (i, name) in dns.names.iter().enumerate() {
        let addresses: Vec<IpAddr> = match name.pattern.to_string().as_str() {
            "www.example.org" => vec![
                ip("192.0.2.1"),
                ip("192.0.2.2"),
                ip("192.0.2.3"),
                ip("2001:db8::1"),
            ],
            "big.example.org" => (1..=32u16)
                .map(|i| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0xb19, i]))
                .collect(),
            "*.apps.example.org" => vec![ip("198.51.100.7")],
            "example.org" => vec![ip("192.0.2.100")],
            _ => vec![],
        };
        core.set_addresses(i, &addresses).unwrap();
    }
    let core = Arc::new(Mutex::new(core));
    // One port for UDP and TCP.
    let (udp, tcp) = (0..50)
        .find_map(|_| {
            let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
            let port = udp.local_addr().ok()?.port();
            let tcp = TcpListener::bind(("127.0.0.1", port)).ok()?;
            Some((udp, tcp))
        })
        .expect("a free loopback port for UDP and TCP");
    let port = udp.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    udp.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp_thread = {
        let (core, stop) = (core.clone(), stop.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 65535];
            let mut out = [0u8; 1232];
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let Ok((n, from)) = udp.recv_from(&mut buf) else {
                    continue;
                };
                let now = smoltcp::time::Instant::from_millis(t0.elapsed().as_millis() as i64);
                let reply = core
                    .lock()
                    .unwrap()
                    .answer_udp(now, from.ip(), &buf[..n], &mut out);
                if let Reply::Send(len) = reply {
                    let _ = udp.send_to(&out[..len], from);
                }
            }
        })
    };
    let tcp_thread = {
        let (core, stop) = (core.clone(), stop.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match tcp.accept() {
                    Ok((conn, _)) => {
                        let core = core.clone();
                        thread::spawn(move || serve_tcp(conn, &core));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        })
    };
    Server {
        port,
        core,
        stop,
        threads: vec![udp_thread, tcp_thread],
    }
}

/// One TCP connection, as the runtime will drive it: bytes into `TcpQueries`, answers
/// out until it waits for more.
fn serve_tcp(mut conn: TcpStream, core: &Mutex<DnsServer>) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut queries = TcpQueries::new();
    let mut buf = [0u8; 4096];
    let mut out = vec![0u8; TCP_RESPONSE + 2];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut data = &buf[..n];
        while !data.is_empty() {
            let taken = queries.receive(data);
            data = &data[taken..];
            loop {
                let reply = core.lock().unwrap().answer_tcp(&mut queries, &mut out);
                match reply {
                    TcpReply::Send(len) => {
                        if conn.write_all(&out[..len]).is_err() {
                            return;
                        }
                    }
                    TcpReply::Wait => break,
                    TcpReply::Close => return,
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// `dig` at `server:port` with `args`; its whole output.
fn dig_at(server: &str, port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args([
            &format!("@{server}"),
            "-p",
            &port.to_string(),
            "+time=3",
            "+tries=1",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("dig runs (`cargo vdcnet test` installs Debian's bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A dig answer, read from its output.
#[derive(Debug)]
struct Dug {
    text: String,
    status: String,
    flags: Vec<String>,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
}

fn dug(text: String) -> Dug {
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").to_string())
        .unwrap_or_default();
    let flags = text
        .lines()
        .find_map(|l| l.strip_prefix(";; flags: "))
        .map(|l| {
            l.split(';')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let section = |name: &str| -> Vec<String> {
        let head = format!(";; {name} SECTION:");
        text.lines()
            .skip_while(|l| !l.starts_with(&head))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    Dug {
        status,
        flags,
        answer: section("ANSWER"),
        authority: section("AUTHORITY"),
        additional: section("ADDITIONAL"),
        text,
    }
}

fn dig(port: u16, args: &[&str]) -> Dug {
    dug(dig_at("127.0.0.1", port, args))
}

const SOA: &str =
    "example.org. 30 IN SOA ns1.example.org. hostmaster.example.org. 1 3600 600 604800 30";

#[test]
fn dig_reads_every_kind_of_answer() {
    let server = start();
    let p = server.port;

    let a = dig(p, &["+norec", "www.example.org", "A"]);
    assert_eq!(a.status, "NOERROR", "{}", a.text);
    assert!(
        a.flags.contains(&"aa".into()) && !a.flags.contains(&"ra".into()),
        "{}",
        a.text
    );
    assert_eq!(a.answer.len(), 3, "{}", a.text);
    assert!(a
        .answer
        .iter()
        .all(|l| l.starts_with("www.example.org. 30 IN A 192.0.2.")));
    // The EDNS reply: dig prints our OPT's size.
    assert!(
        a.text.contains("; EDNS: version: 0, flags:; udp: 1232"),
        "{}",
        a.text
    );
    // Rotation: the first address moves on each query.
    let firsts: Vec<String> = (0..3)
        .map(|_| dig(p, &["www.example.org", "A"]).answer[0].clone())
        .collect();
    assert!(
        firsts[0] != firsts[1] && firsts[1] != firsts[2],
        "{firsts:?}"
    );

    let aaaa = dig(p, &["www.example.org", "AAAA"]);
    assert_eq!(
        aaaa.answer,
        ["www.example.org. 30 IN AAAA 2001:db8::1"],
        "{}",
        aaaa.text
    );

    let soa = dig(p, &["example.org", "SOA"]);
    assert_eq!(
        soa.answer,
        ["example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. 1 3600 600 604800 30"],
        "{}",
        soa.text
    );
    let ns = dig(p, &["example.org", "NS"]);
    assert_eq!(
        ns.answer,
        [
            "example.org. 3600 IN NS ns1.example.org.",
            "example.org. 3600 IN NS ns2.example.net."
        ],
        "{}",
        ns.text
    );
    assert_eq!(
        ns.additional,
        [
            "ns1.example.org. 3600 IN A 203.0.113.10",
            "ns1.example.org. 3600 IN AAAA 2001:db8::10"
        ],
        "{}",
        ns.text
    );

    let any = dig(p, &["example.org", "ANY"]);
    assert_eq!(
        (any.status.as_str(), any.answer.len()),
        ("NOERROR", 1),
        "{}",
        any.text
    );
    assert!(any.answer[0].contains(" SOA "), "{}", any.text);
    let apex_a = dig(p, &["example.org", "A"]);
    assert_eq!(apex_a.answer, ["example.org. 30 IN A 192.0.2.100"]);
    let wild = dig(p, &["Shop.Apps.Example.org", "A"]);
    assert_eq!(
        wild.answer,
        ["Shop.Apps.Example.org. 30 IN A 198.51.100.7"],
        "{}",
        wild.text
    );

    let nx = dig(p, &["nope.example.org", "A"]);
    assert_eq!(nx.status, "NXDOMAIN", "{}", nx.text);
    assert!(nx.flags.contains(&"aa".into()));
    assert_eq!(nx.authority, [SOA], "{}", nx.text);
    let nodata = dig(p, &["empty.example.org", "A"]);
    assert_eq!(
        (nodata.status.as_str(), nodata.answer.len()),
        ("NOERROR", 0),
        "{}",
        nodata.text
    );
    assert_eq!(nodata.authority, [SOA]);
    let mx = dig(p, &["www.example.org", "MX"]);
    assert_eq!(
        (mx.status.as_str(), mx.authority.len()),
        ("NOERROR", 1),
        "{}",
        mx.text
    );

    let refused = dig(p, &["www.example.com", "A"]);
    assert_eq!(refused.status, "REFUSED", "{}", refused.text);
    assert!(!refused.flags.contains(&"aa".into()));

    // The question comes back as asked; dig would complain of a mismatch otherwise.
    let case = dig(p, &["WwW.ExAmPlE.OrG", "A"]);
    assert_eq!(case.answer.len(), 3, "{}", case.text);
    assert!(
        case.answer[0].starts_with("WwW.ExAmPlE.OrG. "),
        "{}",
        case.text
    );

    let tcp = dig(p, &["+tcp", "www.example.org", "A"]);
    assert_eq!(
        (tcp.status.as_str(), tcp.answer.len()),
        ("NOERROR", 3),
        "{}",
        tcp.text
    );
    assert!(tcp.text.contains("(TCP)"), "{}", tcp.text);
    // Several queries on one connection (+keepopen).
    let several = dig_at(
        "127.0.0.1",
        p,
        &[
            "+tcp",
            "+keepopen",
            "www.example.org",
            "A",
            "example.org",
            "SOA",
            "nope.example.org",
            "A",
        ],
    );
    assert_eq!(several.matches("status: NOERROR").count(), 2, "{several}");
    assert_eq!(several.matches("status: NXDOMAIN").count(), 1, "{several}");

    let badvers = dig(
        p,
        &["+edns=1", "+noednsnegotiation", "www.example.org", "A"],
    );
    assert_eq!(badvers.status, "BADVERS", "{}", badvers.text);
    assert!(badvers.answer.is_empty());

    // 32 AAAA records do not fit 512 bytes: TC and the question only ...
    let cut = dig(p, &["+bufsize=512", "+ignore", "big.example.org", "AAAA"]);
    assert!(cut.flags.contains(&"tc".into()), "{}", cut.text);
    assert!(cut.text.contains("ANSWER: 0, AUTHORITY: 0"), "{}", cut.text);
    assert!(
        cut.text.contains("big.example.org.\t\tIN\tAAAA")
            || cut.text.contains("big.example.org. IN AAAA"),
        "{}",
        cut.text
    );
    // ... and dig, left to itself, retries over TCP and gets all of them.
    let whole = dig(p, &["+bufsize=512", "big.example.org", "AAAA"]);
    assert!(
        whole.text.contains("Truncated, retrying in TCP mode"),
        "{}",
        whole.text
    );
    assert_eq!(whole.answer.len(), 32, "{}", whole.text);
    // Without EDNS the limit is 512 too.
    let plain = dig(p, &["+noedns", "+ignore", "big.example.org", "AAAA"]);
    assert!(plain.flags.contains(&"tc".into()), "{}", plain.text);
    // With dig's default 1232 bytes it all fits in one datagram.
    let fits = dig(p, &["big.example.org", "AAAA"]);
    assert!(
        !fits.flags.contains(&"tc".into()) && fits.answer.len() == 32,
        "{}",
        fits.text
    );
    // Every outcome was counted.
    let c = server.core.lock().unwrap().counters();
    assert!(
        c.answers > 0 && c.nxdomain >= 1 && c.nodata >= 2 && c.refused >= 1,
        "{c:?}"
    );
    assert!(
        c.badvers >= 1 && c.truncated >= 3 && c.tcp_queries >= 5,
        "{c:?}"
    );
}

/// unbound in the foreground on 127.0.0.2, with example.org as a stub zone at our port.
struct Unbound {
    child: std::process::Child,
    port: u16,
    _dir: TempDir,
    log: std::path::PathBuf,
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unbound(auth_port: u16) -> Unbound {
    let dir = TempDir::new("unbound").expect("a temp dir");
    // A free port on 127.0.0.2 (UDP and TCP are both checked free).
    let port = (0..50)
        .find_map(|_| {
            let udp = UdpSocket::bind("127.0.0.2:0").ok()?;
            let port = udp.local_addr().ok()?.port();
            TcpListener::bind(("127.0.0.2", port)).ok()?;
            Some(port)
        })
        .expect("a free port on 127.0.0.2");
    let d = dir.path().display();
    let conf = format!(
        "server:\n  interface: 127.0.0.2\n  port: {port}\n  do-ip6: no\n  do-daemonize: no\n\
         \x20 username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n\
         \x20 use-syslog: no\n  logfile: \"\"\n  verbosity: 1\n  module-config: \"iterator\"\n\
         \x20 do-not-query-localhost: no\n  edns-buffer-size: 512\n  access-control: 127.0.0.0/8 allow\n\
         stub-zone:\n  name: \"example.org\"\n  stub-addr: 127.0.0.1@{auth_port}\n\
         remote-control:\n  control-enable: no\n"
    );
    let conf_path = dir.path().join("unbound.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let log = dir.path().join("unbound.log");
    let child = Command::new("unbound")
        .arg("-d")
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("unbound runs (`cargo vdcnet test` installs Debian's unbound)");
    Unbound {
        child,
        port,
        _dir: dir,
        log,
    }
}

#[test]
fn unbound_resolves_the_zone_through_the_core() {
    let server = start();
    let mut resolver = unbound(server.port);
    let ask = |args: &[&str]| dug(dig_at("127.0.0.2", resolver.port, args));
    let deadline = Instant::now() + Duration::from_secs(20);
    let www = loop {
        let a = ask(&["www.example.org", "A"]);
        if a.status == "NOERROR" || Instant::now() > deadline {
            break a;
        }
        if let Ok(Some(status)) = resolver.child.try_wait() {
            panic!(
                "unbound exited ({status}): {}",
                std::fs::read_to_string(&resolver.log).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(200));
    };
    let log = || std::fs::read_to_string(&resolver.log).unwrap_or_default();
    assert_eq!(www.status, "NOERROR", "{}\nunbound: {}", www.text, log());
    // A recursive answer: RA set, not authoritative.
    assert!(
        www.flags.contains(&"ra".into()) && !www.flags.contains(&"aa".into()),
        "{}",
        www.text
    );
    let mut addrs: Vec<&str> = www
        .answer
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    addrs.sort();
    assert_eq!(
        addrs,
        ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
        "{}",
        www.text
    );
    let nx = ask(&["nope.example.org", "A"]);
    assert_eq!(nx.status, "NXDOMAIN", "{}\nunbound: {}", nx.text, log());
    let nodata = ask(&["empty.example.org", "AAAA"]);
    assert_eq!(
        (nodata.status.as_str(), nodata.answer.len()),
        ("NOERROR", 0),
        "{}",
        nodata.text
    );
    // unbound asks with a 512-byte buffer: this only arrives over TCP.
    let before = server.core.lock().unwrap().counters();
    let big = ask(&["big.example.org", "AAAA"]);
    assert_eq!(big.answer.len(), 32, "{}\nunbound: {}", big.text, log());
    let after = server.core.lock().unwrap().counters();
    assert!(after.truncated > before.truncated, "{after:?}");
    assert!(after.tcp_queries > before.tcp_queries, "{after:?}");
}

/// ldns's `drill` at our port; its output.
fn drill(port: u16, args: &[&str]) -> String {
    let out = Command::new("drill")
        .args(["-p", &port.to_string(), "@127.0.0.1"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("drill runs (`cargo vdcnet test` installs Debian's ldnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn ldns_drill_parses_the_answers_too() {
    let server = start();
    let p = server.port;
    let a = drill(p, &["www.example.org", "A"]);
    assert!(
        a.contains("rcode: NOERROR") && a.contains("ANSWER: 3,"),
        "{a}"
    );
    let ns = drill(p, &["example.org", "NS"]);
    assert!(
        ns.contains("ANSWER: 2, AUTHORITY: 0, ADDITIONAL: 2"),
        "{ns}"
    );
    assert!(
        ns.contains("ns1.example.org.\t3600\tIN\tAAAA\t2001:db8::10"),
        "{ns}"
    );
    let nx = drill(p, &["nope.example.org", "A"]);
    assert!(
        nx.contains("rcode: NXDOMAIN") && nx.contains("AUTHORITY: 1,"),
        "{nx}"
    );
    // Over TCP, and a truncated UDP answer (drill does not retry by itself).
    let tcp = drill(p, &["-t", "big.example.org", "AAAA"]);
    assert!(tcp.contains("ANSWER: 32,"), "{tcp}");
    let cut = drill(p, &["-b", "512", "big.example.org", "AAAA"]);
    assert!(cut.contains(" tc ") && cut.contains("ANSWER: 0,"), "{cut}");
}
