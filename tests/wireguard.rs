//! The tunnel against a real WireGuard: wireguard-go in the namespace behind the
//! appliance's tap, configured with `wg` and `ip`. Handshakes from either side, ping and
//! TCP echo through the tunnel, `wg show`'s counters, recovery after either end restarts,
//! an underlay that carries nothing in clear, and junk that changes nothing.
//!
//! Every test has its own underlay `192.168.<n>.0/24` (wireguard-go's side `.1`, the
//! appliance `.2`); the overlay is `10.20.1.1` + `fd20:1::1` on the appliance and
//! `10.20.2.1` + `fd20:2::1` on wireguard-go.

mod wg;

use std::thread;
use std::time::{Duration, Instant};
use vdcnet_qemu::{Mac, Nic, Result, Vm, ECHO_PORT, READY};
use vdcnet_tests::{ok, payload, require_root, TIMEOUT};
use wg::{
    assert_alive, dissect, ip, move_tap_into, send_udp_in, tcp_echo_in_retry, udp_datagrams,
    unix_now, wait_reply_from, wait_stats_from, ApplianceConf, Capture, Junk, Keys, Underlay, WgGo,
    WgSpec, APPLIANCE_V4, APPLIANCE_V6, PEER_V4, PEER_V6, PING_PEER, WG_PORT,
};

/// How long a tunnel may take to recover on its own after its peer lost every session:
/// the appliance notices after KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (15 s) of data sent
/// without an answer, then handshakes; this leaves room for a slow TCG host.
const RECOVERY: Duration = Duration::from_secs(60);

/// How long the first boot in the reboot test runs before its peer comes up.
const FIRST_BOOT_AGE: Duration = Duration::from_secs(8);

/// An appliance booted with a tunnel to a wireguard-go peer that is not started yet.
struct Appliance {
    vm: Vm,
    net: Underlay,
    keys: Keys,
    peer_keys: Keys,
}

/// Fresh key pairs for an appliance and its wireguard-go peer, and the appliance's node
/// file on underlay `net` (`endpoint`: whether its `[Peer]` names the peer's endpoint).
fn fresh_config(net: Underlay, endpoint: bool) -> (Keys, Keys, String) {
    let keys = ok(Keys::generate());
    let peer_keys = ok(Keys::generate());
    let config = ApplianceConf {
        underlay: net,
        keys: &keys,
        peer_public: &peer_keys.public,
        endpoint,
    }
    .text();
    (keys, peer_keys, config)
}

impl Appliance {
    /// Boots `name` on underlay `net`; `endpoint`: whether its `[Peer]` names wireguard-go's
    /// endpoint. `append` goes on the kernel command line.
    fn boot(name: &str, net: Underlay, endpoint: bool, append: &str) -> Appliance {
        let (keys, peer_keys, config) = fresh_config(net, endpoint);
        let vm = ok(Vm::builder(name)
            .config(&config)
            .append(append)
            .nic(Nic::tap_with(&[&net.peer_cidr()]))
            .spawn());
        ok(vm.wait_for_line(READY, TIMEOUT));
        Appliance {
            vm,
            net,
            keys,
            peer_keys,
        }
    }

    /// The spec for wireguard-go: `endpoint`: whether it knows the appliance's endpoint.
    fn peer_spec(&self, endpoint: bool) -> WgSpec {
        WgSpec {
            keys: self.peer_keys.clone(),
            appliance_public: self.keys.public.clone(),
            endpoint: endpoint.then(|| self.net.appliance_endpoint()),
        }
    }

    /// Starts wireguard-go in the appliance's namespace.
    fn start_peer(&self, endpoint: bool) -> WgGo {
        ok(WgGo::start(self.ns(), self.peer_spec(endpoint)).map_err(|e| self.vm.fail(e)))
    }

    fn ns(&self) -> &vdcnet_qemu::Netns {
        self.vm.netns(0).expect("NIC 0 is a tap")
    }

    fn tap(&self) -> &str {
        self.vm.tap(0).expect("NIC 0 is a tap").name()
    }
}

/// Unwraps, or fails the test with the error, the VM's evidence and wireguard-go's.
#[track_caller]
fn must<T>(r: Result<T>, vm: &Vm, wg: &WgGo) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}\n{}\n{}", vm.evidence(), wg.evidence()),
    }
}

/// Pings `addr` from the namespace until it answers (the first ping starts a handshake).
#[track_caller]
fn ping_through(a: &Appliance, wg: &WgGo, addr: &str) {
    let out = must(a.ns().ping(ip(addr), TIMEOUT), &a.vm, wg);
    assert!(out.contains("1 received"), "{out}");
}

/// Waits for the appliance's pinger to get a reply from `target` at console line `from`
/// or later.
#[track_caller]
fn reply_after(vm: &Vm, wg: &WgGo, from: usize, target: &str, timeout: Duration) {
    must(wait_reply_from(vm, from, target, timeout), vm, wg);
}

/// TCP echo of `sent` to `addr`:7 from the namespace; the bytes must come back unchanged.
#[track_caller]
fn echo_through(a: &Appliance, wg: &WgGo, addr: &str, sent: &[u8]) {
    let back = must(
        tcp_echo_in_retry(a.ns(), ip(addr), ECHO_PORT, sent, TIMEOUT),
        &a.vm,
        wg,
    );
    assert!(
        back == sent,
        "TCP echo via the tunnel to {addr}:7 differs: sent {} bytes, got {} back\n{}\n{}",
        sent.len(),
        back.len(),
        a.vm.evidence(),
        wg.evidence()
    );
}

/// How many times wireguard-go's log says `event`.
fn log_count(wg: &WgGo, event: &str) -> usize {
    wg.log().matches(event).count()
}

#[test]
fn handshake_from_wireguard_go_carries_ping_v4_v6_and_tcp_echo() {
    require_root("handshake_from_wireguard_go_carries_ping_v4_v6_and_tcp_echo");
    // The appliance has no endpoint for its peer: only wireguard-go can start.
    let a = Appliance::boot("wg-initiates", Underlay::new(51), false, "");
    let line = ok(a.vm.wait_for_line("vdcnet: wg0 port 51820", TIMEOUT));
    assert!(
        line.contains(&format!("key {} peers 1", a.keys.public)),
        "the wg0 line shows the public key `wg pubkey` derives from the config's key: {line}"
    );
    let wg = a.start_peer(true);
    for addr in [APPLIANCE_V4, APPLIANCE_V6] {
        ping_through(&a, &wg, addr);
    }
    echo_through(&a, &wg, APPLIANCE_V4, &payload("v4 through wg ", 100_000));
    echo_through(&a, &wg, APPLIANCE_V6, &payload("v6 through wg ", 30_000));
    assert!(
        log_count(&wg, "Received handshake response") >= 1,
        "wireguard-go initiated and the appliance responded\n{}",
        wg.evidence()
    );
}

#[test]
fn handshake_from_the_appliance_carries_its_pings_to_wireguard_go_v4_and_v6() {
    require_root("handshake_from_the_appliance_carries_its_pings_to_wireguard_go_v4_and_v6");
    // wireguard-go has no endpoint for the appliance: only the appliance can start.
    let a = Appliance::boot("appliance-initiates", Underlay::new(52), true, PING_PEER);
    let wg = a.start_peer(false);
    for target in [PEER_V4, PEER_V6] {
        reply_after(&a.vm, &wg, 0, target, TIMEOUT);
    }
    assert!(
        log_count(&wg, "Received handshake initiation") >= 1,
        "wireguard-go took the appliance's initiation\n{}",
        wg.evidence()
    );
    // wireguard-go learned where the appliance is from its authenticated messages.
    let dump = must(wg.peer_dump(), &a.vm, &wg);
    assert_eq!(dump.endpoint, a.net.appliance_endpoint(), "{dump:?}");
    // And the tunnel carries the namespace's own traffic back, too.
    ping_through(&a, &wg, APPLIANCE_V4);
}

#[test]
fn wg_show_reports_a_recent_handshake_and_bytes_both_ways() {
    require_root("wg_show_reports_a_recent_handshake_and_bytes_both_ways");
    let a = Appliance::boot("wg-show", Underlay::new(53), false, "");
    let started = unix_now();
    let wg = a.start_peer(true);
    ping_through(&a, &wg, APPLIANCE_V4);
    let before = must(wg.peer_dump(), &a.vm, &wg);
    let now = unix_now();
    assert!(
        before.latest_handshake >= started.saturating_sub(1) && before.latest_handshake <= now + 1,
        "latest-handshake {} is not between the test's start {started} and now {now}: {before:?}",
        before.latest_handshake
    );
    assert_eq!(before.endpoint, a.net.appliance_endpoint(), "{before:?}");
    assert!(before.rx > 0 && before.tx > 0, "{before:?}");
    // 50 KB echoed: at least that much more each way.
    echo_through(&a, &wg, APPLIANCE_V4, &payload("counted ", 50_000));
    let after = must(wg.peer_dump(), &a.vm, &wg);
    assert!(
        after.rx >= before.rx + 50_000 && after.tx >= before.tx + 50_000,
        "transfer did not grow by the 50 KB echoed each way: before {before:?}, after {after:?}"
    );
}

#[test]
fn tunnel_recovers_after_wireguard_go_is_killed_and_restarted() {
    require_root("tunnel_recovers_after_wireguard_go_is_killed_and_restarted");
    // The appliance knows the endpoint and pings once a second; wireguard-go does not: the
    // restarted one can only answer, so the appliance must notice its sessions are dead
    // and handshake again by itself.
    let a = Appliance::boot("wg-restart", Underlay::new(54), true, PING_PEER);
    let mut wg = a.start_peer(false);
    reply_after(&a.vm, &wg, 0, PEER_V4, TIMEOUT);
    wg.kill();
    let restarted = unix_now();
    must(wg.restart(None), &a.vm, &wg);
    let from = a.vm.console().len();
    for target in [PEER_V4, PEER_V6] {
        reply_after(&a.vm, &wg, from, target, RECOVERY);
    }
    must(wg.wait_handshake_since(restarted, TIMEOUT), &a.vm, &wg);
    ping_through(&a, &wg, APPLIANCE_V4);
    assert_alive(&a.vm);
}

#[test]
fn tunnel_recovers_at_once_when_restarted_wireguard_go_initiates() {
    require_root("tunnel_recovers_at_once_when_restarted_wireguard_go_initiates");
    // The usual peer config: wireguard-go knows the endpoint. Restarted, it initiates as
    // soon as the namespace sends; the appliance, still holding the old session, must
    // take the new initiation and answer on the new session.
    let a = Appliance::boot("wg-restart-initiates", Underlay::new(58), false, PING_PEER);
    let mut wg = a.start_peer(true);
    ping_through(&a, &wg, APPLIANCE_V4);
    reply_after(&a.vm, &wg, 0, PEER_V4, TIMEOUT);
    wg.kill();
    must(wg.restart(Some(a.net.appliance_endpoint())), &a.vm, &wg);
    let from = a.vm.console().len();
    for addr in [APPLIANCE_V4, APPLIANCE_V6] {
        ping_through(&a, &wg, addr);
    }
    echo_through(&a, &wg, APPLIANCE_V4, &payload("after restart ", 20_000));
    // The appliance's own pings ride the new session too.
    reply_after(&a.vm, &wg, from, PEER_V6, TIMEOUT);
    assert!(
        log_count(&wg, "Received handshake response") >= 1,
        "the restarted wireguard-go initiated and the appliance responded\n{}",
        wg.evidence()
    );
    assert_alive(&a.vm);
}

#[test]
fn tunnel_recovers_after_the_appliance_reboots() {
    require_root("tunnel_recovers_after_the_appliance_reboots");
    // The appliance initiates (it knows the endpoint and pings); wireguard-go only answers
    // and keeps the TAI64N timestamp of the last initiation it took. The first boot's
    // handshake happens late in its life, the second boot's early: wireguard-go takes the
    // second only if its stamps come from wall time (the RTC), not from time since boot.
    let mac = Mac([0x52, 0x54, 0x00, 0x5e, 0x00, 0x55]);
    let net = Underlay::new(55);
    let (keys, peer_keys, config) = fresh_config(net, true);
    let first = ok(Vm::builder("reboot-1")
        .config(&config)
        .append(PING_PEER)
        .nic(Nic::tap_with(&[&net.peer_cidr()]).mac(mac))
        .spawn());
    ok(first.wait_for_line(READY, TIMEOUT));
    let ns = first.netns(0).expect("NIC 0 is a tap");
    let first_tap = first.tap(0).expect("NIC 0 is a tap").name().to_string();
    // Nobody answers yet: the first boot's initiations go unanswered and are retried every
    // REKEY_TIMEOUT, so the one wireguard-go takes carries 10 s or more since boot.
    thread::sleep(FIRST_BOOT_AGE);
    let wg = ok(WgGo::start(
        ns,
        WgSpec {
            keys: peer_keys.clone(),
            appliance_public: keys.public.clone(),
            endpoint: None,
        },
    )
    .map_err(|e| first.fail(e)));
    for target in [PEER_V4, PEER_V6] {
        reply_after(&first, &wg, 0, target, TIMEOUT);
    }
    let handshaken = Instant::now();
    // The RTC counts whole seconds, so a reboot within a second of the last handshake may
    // stamp an earlier time; a real reboot takes longer than that.
    thread::sleep(Duration::from_secs(2).saturating_sub(handshaken.elapsed()));

    // Power off: the first appliance is gone, its tap with it; the second boots with the
    // same config and MAC, and its tap takes the first one's place in the namespace.
    first.kill();
    ok(ns.ip(&["link", "del", &first_tap]));
    let log_before = wg.log().len();
    let second = ok(Vm::builder("reboot-2")
        .config(&config)
        .append(PING_PEER)
        .nic(Nic::tap_with(&[]).mac(mac))
        .spawn());
    let second = ok(move_tap_into(second, 0, ns, &[net.peer_cidr()]));
    let vm = &second.vm;
    ok(vm.wait_for_line(READY, TIMEOUT));
    for target in [PEER_V4, PEER_V6] {
        reply_after(vm, &wg, 0, target, TIMEOUT);
    }
    let log = wg.log();
    let since = log.get(log_before..).unwrap_or("");
    assert!(
        since.contains("Received handshake initiation"),
        "wireguard-go took a new initiation from the rebooted appliance\n{}",
        wg.evidence()
    );
    assert!(
        !since.contains("Received invalid initiation message"),
        "wireguard-go refused an initiation of the rebooted appliance (a TAI64N timestamp \
         not later than the first boot's?)\n{}\n{}",
        vm.evidence(),
        wg.evidence()
    );
    for addr in [APPLIANCE_V4, APPLIANCE_V6] {
        let out = must(ns.ping(ip(addr), TIMEOUT), vm, &wg);
        assert!(out.contains("1 received"), "{out}");
    }
    assert_alive(vm);
}

#[test]
fn underlay_capture_holds_only_wireguard_messages_never_clear_inner_packets() {
    require_root("underlay_capture_holds_only_wireguard_messages_never_clear_inner_packets");
    // The appliance learns its peer's endpoint from wireguard-go's handshake (were it to
    // initiate before wireguard-go listens, the namespace's ICMP port-unreachable errors
    // would be on the wire too), then pings through the tunnel as well.
    let a = Appliance::boot("capture", Underlay::new(56), false, PING_PEER);
    // From before the first handshake to after the last echo.
    let mut cap = ok(Capture::start(a.ns(), a.tap()).map_err(|e| a.vm.fail(e)));
    let wg = a.start_peer(true);
    for addr in [APPLIANCE_V4, APPLIANCE_V6] {
        ping_through(&a, &wg, addr);
    }
    for target in [PEER_V4, PEER_V6] {
        reply_after(&a.vm, &wg, 0, target, TIMEOUT);
    }
    let canary = "CLEARTEXT-CANARY-9d41e7";
    echo_through(&a, &wg, APPLIANCE_V4, &payload(canary, 40_000));
    echo_through(&a, &wg, APPLIANCE_V6, &payload(canary, 10_000));
    let pcap = cap.stop().to_path_buf();
    let tcpdump = cap.messages();

    let frames = must(dissect(&pcap), &a.vm, &wg);
    let mut wg_types = [0usize; 5];
    let mut clear = Vec::new();
    let port = WG_PORT.to_string();
    for f in &frames {
        let p = f.protocols.as_str();
        let is_arp = p == "eth:ethertype:arp";
        // Neighbour discovery and multicast listener reports of the link itself.
        let is_link_icmpv6 = p.starts_with("eth:ethertype:ipv6:")
            && p.ends_with(":icmpv6")
            && matches!(
                f.icmpv6_type.as_str(),
                "130" | "131" | "132" | "133" | "134" | "135" | "136" | "137" | "143"
            );
        let is_wg = p == "eth:ethertype:ip:udp:wg" && f.sport == port && f.dport == port;
        if is_wg {
            if let Ok(t) = f.wg_type.parse::<usize>() {
                wg_types[t.min(4)] += 1;
            }
        }
        if !(is_arp || is_link_icmpv6 || is_wg) {
            clear.push(format!(
                "frame {}: {} (udp {} -> {}, icmpv6 type {})",
                f.number, p, f.sport, f.dport, f.icmpv6_type
            ));
        }
    }
    assert!(
        clear.is_empty(),
        "the underlay carried {} frame(s) that are not WireGuard, ARP or NDP:\n{}\n{tcpdump}",
        clear.len(),
        clear.join("\n")
    );
    // The capture really holds the tunnel: handshake both ways and plenty of data.
    assert!(
        wg_types[1] >= 1 && wg_types[2] >= 1 && wg_types[4] >= 60,
        "expected initiations, responses and data messages (type counts {wg_types:?}) in {} \
         frames ({tcpdump}):\n{}",
        frames.len(),
        frames
            .iter()
            .take(40)
            .map(|f| format!("{f:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Every outer UDP datagram is between the two underlay addresses.
    for d in must(udp_datagrams(&pcap), &a.vm, &wg) {
        let ends = [a.net.peer_ip(), a.net.appliance_ip()];
        assert!(
            ends.contains(&d.src) && ends.contains(&d.dst),
            "outer datagram {}:{} -> {}:{} is not between the underlay ends",
            d.src,
            d.sport,
            d.dst,
            d.dport
        );
    }
    let raw = std::fs::read(&pcap).expect("reading the capture");
    assert!(
        !raw.windows(canary.len()).any(|w| w == canary.as_bytes()),
        "the echoed payload `{canary}` appears in clear in the underlay capture"
    );
}

#[test]
fn junk_and_replayed_datagrams_are_dropped_and_the_tunnel_keeps_working() {
    require_root("junk_and_replayed_datagrams_are_dropped_and_the_tunnel_keeps_working");
    // wireguard-go initiates (the appliance has no endpoint), so its initiation and data
    // messages are on the wire to be replayed. The appliance prints its counters every
    // second.
    let a = Appliance::boot(
        "junk",
        Underlay::new(57),
        false,
        &format!("{PING_PEER} vdcnet.stats=1"),
    );
    let mut real = ok(Capture::start(a.ns(), a.tap()).map_err(|e| a.vm.fail(e)));
    let wg = a.start_peer(true);
    for addr in [APPLIANCE_V4, APPLIANCE_V6] {
        ping_through(&a, &wg, addr);
    }
    reply_after(&a.vm, &wg, 0, PEER_V4, TIMEOUT);
    let pcap = real.stop().to_path_buf();
    let to_appliance: Vec<Vec<u8>> = must(udp_datagrams(&pcap), &a.vm, &wg)
        .into_iter()
        .filter(|d| d.dst == a.net.appliance_ip() && d.dport == WG_PORT)
        .map(|d| d.payload)
        .collect();
    let initiation = to_appliance
        .iter()
        .find(|p| p.len() == 148 && p[0] == 1)
        .expect("wireguard-go's initiation was captured")
        .clone();
    let data = to_appliance
        .iter()
        .find(|p| p.len() > 32 && p[0] == 4)
        .expect("a data message from wireguard-go was captured")
        .clone();

    let seed = unix_now();
    let mut rng = Junk::new(seed);
    let mut junk: Vec<Vec<u8>> = Vec::new();
    // Random bytes of every interesting length, including none.
    for len in [
        0, 1, 3, 4, 16, 31, 32, 64, 91, 92, 93, 147, 148, 149, 500, 1400,
    ] {
        junk.push(rng.bytes(len));
    }
    // Well-formed headers with random bodies: initiation, response, cookie reply, data
    // with a receiver index that is nobody's, and a keepalive-sized one.
    for (kind, len) in [(1u8, 148), (2, 92), (3, 64), (4, 96), (4, 32)] {
        let mut m = rng.bytes(len);
        m[..4].copy_from_slice(&[kind, 0, 0, 0]);
        junk.push(m);
    }
    // An initiation with a nonzero reserved byte, and the real one cut short.
    let mut reserved = initiation.clone();
    reserved[1] = 1;
    junk.push(reserved);
    junk.push(initiation[..100].to_vec());
    junk.push(initiation[..147].to_vec());
    // The real receiver index with a far-future counter and a forged tag: must not move
    // the replay window (checked only after the tag verifies).
    let mut forged = data.clone();
    forged[8..16].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
    *forged.last_mut().expect("nonempty") ^= 0x80;
    junk.push(forged);
    let mut flipped = data.clone();
    flipped[20] ^= 0x01;
    junk.push(flipped);
    // Oversized, with a data header and the real receiver index: 2000 bytes in IP
    // fragments (the link's MTU is 1500) here, and 2000 and 8900 bytes as single jumbo
    // frames below (the MTU raised on the namespace's side only).
    let mut oversized = [2000, 2000, 8900].map(|n| {
        let mut m = rng.bytes(n);
        m[..8].copy_from_slice(&data[..8]);
        m
    });
    junk.push(std::mem::take(&mut oversized[0]));
    let jumbo = &oversized[1..];
    // Replays of every real datagram wireguard-go sent, twice each, from another port:
    // an authenticated replay must not move the peer's endpoint either.
    for _ in 0..2 {
        junk.extend(to_appliance.iter().cloned());
    }

    let replayed_data = to_appliance.iter().filter(|p| p[0] == 4).count() as u64;
    let before = must(
        wait_stats_from(&a.vm, a.vm.console().len(), TIMEOUT),
        &a.vm,
        &wg,
    );
    let mut during = ok(Capture::start(a.ns(), a.tap()).map_err(|e| a.vm.fail(e)));
    let mut junk_ports = vec![must(
        send_udp_in(a.ns(), a.net.appliance_ip(), WG_PORT, &junk),
        &a.vm,
        &wg,
    )];
    ok(a.ns().ip(&["link", "set", "dev", a.tap(), "mtu", "9000"]));
    junk_ports.push(must(
        send_udp_in(a.ns(), a.net.appliance_ip(), WG_PORT, jumbo),
        &a.vm,
        &wg,
    ));
    ok(a.ns().ip(&["link", "set", "dev", a.tap(), "mtu", "1500"]));
    // The tunnel still works both ways: the appliance's pinger still reaches wireguard-go
    // at its real endpoint, and the namespace still reaches the appliance.
    let from = a.vm.console().len();
    reply_after(&a.vm, &wg, from, PEER_V4, TIMEOUT);
    for addr in [APPLIANCE_V4, APPLIANCE_V6] {
        ping_through(&a, &wg, addr);
    }
    echo_through(&a, &wg, APPLIANCE_V4, &payload("after junk ", 10_000));
    let pcap = during.stop().to_path_buf();
    let answers: Vec<String> = must(udp_datagrams(&pcap), &a.vm, &wg)
        .into_iter()
        .filter(|d| d.src == a.net.appliance_ip() && d.dport != WG_PORT)
        .map(|d| {
            format!(
                "{}:{} -> {}:{} type {:?}",
                d.src,
                d.sport,
                d.dst,
                d.dport,
                d.payload.first()
            )
        })
        .collect();
    assert!(
        answers.is_empty(),
        "the appliance sent {} datagram(s) to the junk senders (ports {junk_ports:?}, junk seed \
         {seed}), e.g. {:?}\n{}",
        answers.len(),
        &answers[..answers.len().min(5)],
        a.vm.evidence()
    );
    // Every datagram was dropped and counted, by its reason. Only the empty datagram and
    // the oversized ones may not reach the tunnel at all (smoltcp drops IP fragments, and
    // QEMU frames larger than the guest's buffers), and a replayed data message the
    // appliance had never received would be taken once (then dropped as a replay).
    let after = must(
        wait_stats_from(&a.vm, a.vm.console().len(), TIMEOUT),
        &a.vm,
        &wg,
    );
    let grew = |name: &str| after.grew(&before, name);
    let sent = (junk.len() + jumbo.len()) as u64;
    let least = sent - (2 + jumbo.len() as u64) - replayed_data;
    for (what, got, want) in [
        ("drops", grew("drops"), least),
        ("Replay", grew("Replay"), replayed_data),
        (
            "StaleTimestamp + HandshakeFlood",
            grew("StaleTimestamp") + grew("HandshakeFlood"),
            2,
        ),
        ("DecryptFailed", grew("DecryptFailed"), 1),
        ("UnknownReceiver", grew("UnknownReceiver"), 2),
        ("BadMac1", grew("BadMac1"), 1),
        ("Malformed", grew("Malformed"), 3),
    ] {
        assert!(
            got >= want,
            "{what} grew by {got}, expected at least {want} for {} junk datagrams\n\
             before: {}\nafter:  {}",
            sent,
            before.line(),
            after.line()
        );
    }
    assert_alive(&a.vm);
}

/// Writes forged WireGuard handshake initiations from the namespace for `secs` seconds at
/// `rate` a second, from 150 made-up on-link addresses (`.100` ..= `.249`, each with its
/// own made-up MAC) to the appliance at `dst_mac`. Each has a valid mac1 (the appliance's
/// public key is public), so once the appliance is under load it answers every one with a
/// cookie reply, which needs the forged source's MAC first. Prints how many it sent.
const FLOOD: &str = r#"
import base64, hashlib, os, socket, struct, sys, time
iface, dst_mac, net, public, secs, rate = sys.argv[1:7]
dst_mac = bytes.fromhex(dst_mac.replace(":", ""))
key = hashlib.blake2s(b"mac1----" + base64.b64decode(public)).digest()
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
frames = []
for i in range(150):
    msg = b"\x01\x00\x00\x00" + os.urandom(112)
    msg += hashlib.blake2s(msg, key=key, digest_size=16).digest() + bytes(16)
    src = bytes([192, 168, int(net), 100 + i])
    dst = bytes([192, 168, int(net), 2])
    udp = struct.pack("!HHHH", 40000 + i, 51820, 8 + len(msg), 0) + msg
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    frames.append(dst_mac + bytes([2, 0xee, 0, 0, 0, i]) + b"\x08\x00" + ip + udp)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
start, sent = time.monotonic(), 0
while True:
    now = time.monotonic() - start
    if now >= float(secs):
        break
    while sent < now * float(rate):
        s.send(frames[sent % len(frames)])
        sent += 1
    time.sleep(0.002)
print(sent)
"#;

#[test]
fn forged_initiations_from_150_made_up_neighbours_cost_a_bounded_number_of_arp_requests() {
    require_root(
        "forged_initiations_from_150_made_up_neighbours_cost_a_bounded_number_of_arp_requests",
    );
    let net = Underlay::new(59);
    let a = Appliance::boot("neigh-flood", net, false, "vdcnet.stats=1");
    let wg = a.start_peer(true);
    ping_through(&a, &wg, APPLIANCE_V4);
    // The appliance's MAC, as the namespace resolved it.
    let neigh = must(
        a.ns()
            .run("ip", &["neigh", "show", &net.appliance_ip().to_string()]),
        &a.vm,
        &wg,
    );
    let mac = neigh
        .split_whitespace()
        .skip_while(|w| *w != "lladdr")
        .nth(1)
        .unwrap_or_else(|| panic!("no lladdr in `{neigh}`"))
        .to_string();

    let mut cap = ok(Capture::start(a.ns(), a.tap()).map_err(|e| a.vm.fail(e)));
    let started = Instant::now();
    // The real peer keeps talking through the tunnel during the flood.
    let ns_name = a.ns().name().to_string();
    let pinger = thread::spawn(move || {
        std::process::Command::new("ip")
            .args(["netns", "exec", &ns_name, "ping", "-n", "-c", "10"])
            .args(["-i", "0.5", "-W", "10", APPLIANCE_V4])
            .output()
    });
    let (secs, rate) = (5u64, 1500u64);
    let sent: u64 = must(
        a.ns().run(
            "python3",
            &[
                "-c",
                FLOOD,
                a.tap(),
                &mac,
                "59",
                &a.keys.public,
                &secs.to_string(),
                &rate.to_string(),
            ],
        ),
        &a.vm,
        &wg,
    )
    .trim()
    .parse()
    .expect("the flood prints how many it sent");
    let pinged = pinger.join().expect("ping thread").expect("ping runs");
    let elapsed = started.elapsed();
    let pcap = cap.stop().to_path_buf();
    assert_alive(&a.vm);

    let out = std::process::Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-n", "-Y", &format!("arp.opcode == 1 && eth.src == {mac}")])
        .args(["-T", "fields", "-e", "arp.dst.proto_ipv4"])
        .output()
        .expect("tshark runs");
    let arps: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    // The link's budget (20 a second after a burst of 20) over the whole capture, plus a
    // little for the real peer's re-confirmations.
    let budget = 20 + 20 * (elapsed.as_secs() + 1) + 5;
    let stats =
        a.vm.console()
            .matching("vdcnet: stats")
            .last()
            .cloned()
            .unwrap_or_default();
    let report = format!(
        "{} ARP requests for {sent} forged initiations in {elapsed:?} (budget {budget})\n\
         last stats: {stats}",
        arps.len()
    );
    eprintln!("{report}");
    assert!(
        sent >= secs * rate / 2,
        "the flood sent only {sent}\n{report}"
    );
    assert!(arps.len() as u64 <= budget, "{report}");
    assert!(
        (arps.len() as u64) * 10 < sent,
        "not far below one per forged packet: {report}"
    );
    // The real peer's entry stayed: at most a re-confirmation of it.
    let peer = net.peer_ip().to_string();
    assert!(arps.iter().filter(|t| **t == peer).count() <= 1, "{report}");
    // The appliance did try to answer the forgeries: its budget suppressed probes.
    let limited: u64 = stats
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("probes_limited="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(limited > 0, "{report}");
    // The real peer was served throughout.
    let ping_out = String::from_utf8_lossy(&pinged.stdout).to_string();
    let received: u32 = ping_out
        .split(',')
        .find_map(|f| f.trim().strip_suffix(" received"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        received >= 8,
        "pings through the tunnel during the flood: {ping_out}\n{report}"
    );
}
