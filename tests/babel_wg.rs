//! Babel end to end with a real router: babeld (Debian's 1.12.1) on a Linux host, joined
//! to the appliance image by a wireguard-go tunnel (one peer on that interface, IPv6
//! link-local addresses, as one runs babeld over WireGuard). babeld learns the VDC's
//! prefixes from the appliance and installs them in the kernel; the appliance learns the
//! prefix babeld announces (and ignores an out-of-plan one), routes to it, and lets its
//! traffic in by the reverse-path check although it is not in the peer's AllowedIPs.

// The WireGuard interop helpers; this file uses only part of them.
#[allow(dead_code, unused_imports)]
mod wg;

use std::thread;
use std::time::{Duration, Instant};
use vdcnet_qemu::{Nic, TempDir, Vm, READY};
use vdcnet_tests::{ok, require_root, Babeld, TIMEOUT};
use wg::{ApplianceConf, Keys, Underlay, WgGo, WgSpec, APPLIANCE_V4, APPLIANCE_V6};

/// Bound on convergence (babeld's Hellos every second, updates on change).
const WAIT: Duration = Duration::from_secs(90);

/// The appliance's latest stats line.
fn stats(vm: &Vm) -> String {
    vm.console()
        .matching("vdcnet: stats")
        .pop()
        .unwrap_or_default()
}

#[test]
fn babeld_over_wireguard_go_and_the_appliance_learn_and_route_each_others_prefixes() {
    require_root("babeld_over_wireguard_go_and_the_appliance_learn_and_route_each_others_prefixes");
    let net = Underlay::new(61);
    let keys = ok(Keys::generate());
    let peer_keys = ok(Keys::generate());
    let mut config = ApplianceConf {
        underlay: net,
        keys: &keys,
        peer_public: &peer_keys.public,
        endpoint: true,
    }
    .text();
    config.push_str("[Routing]\nNetworks = 10.20.0.0/16, fd20::/16\n");
    let vm = ok(Vm::builder("babel-wg")
        .config(&config)
        .append("vdcnet.stats=1")
        .nic(Nic::tap_with(&[&net.peer_cidr()]))
        .spawn());
    ok(vm.wait_for_line(READY, TIMEOUT));
    let ns = vm.netns(0).expect("NIC 0 is a tap");
    let wg = ok(WgGo::start(
        ns,
        WgSpec {
            keys: peer_keys.clone(),
            appliance_public: keys.public.clone(),
            endpoint: Some(net.appliance_endpoint()),
        },
    ));
    let dev = wg.ifname().to_string();
    // As for babeld over any WireGuard: the peer carries link-local and the Babel group,
    // the interface gets a link-local address and multicast, and babeld (not static
    // routes) decides where the VDC's prefixes go.
    ok(ns.run(
        "wg",
        &[
            "set",
            &dev,
            "peer",
            &keys.public,
            "allowed-ips",
            "10.20.1.0/24,fd20:1::/64,fe80::/64,ff02::1:6/128",
        ],
    ));
    ok(ns.ip(&["addr", "add", "fe80::2/64", "dev", &dev, "nodad"]));
    ok(ns.ip(&["link", "set", "dev", &dev, "multicast", "on"]));
    let _ = ns.ip(&["route", "del", "10.20.1.0/24", "dev", &dev]);
    let _ = ns.ip(&["-6", "route", "del", "fd20:1::/64", "dev", &dev]);
    ok(ns.sysctl("net/ipv4/ip_forward", "1"));
    ok(ns.sysctl("net/ipv6/conf/all/forwarding", "1"));
    // babeld's own prefixes: 10.20.99.0/24 and fd20:99::/64 inside the VDC's plan, and
    // 10.77.0.0/24 outside it, on a stub veth holding 10.20.99.1 and fd20:99::1.
    ok(ns.ip(&[
        "link", "add", "stub0", "type", "veth", "peer", "name", "stub1",
    ]));
    ok(ns.ip(&["link", "set", "stub0", "up"]));
    ok(ns.ip(&["link", "set", "stub1", "up"]));
    ok(ns.ip(&["addr", "add", "10.20.99.1/32", "dev", "stub0"]));
    ok(ns.ip(&["addr", "add", "fd20:99::1/128", "dev", "stub0", "nodad"]));
    for (fam, p) in [
        ("-4", "10.20.99.0/24"),
        ("-6", "fd20:99::/64"),
        ("-4", "10.77.0.0/24"),
    ] {
        ok(ns.ip(&[fam, "route", "add", p, "dev", "stub0", "proto", "static"]));
    }
    let dir = ok(TempDir::new("babeld-wg"));
    let babeld = Babeld::start(
        ns,
        dir.path(),
        &format!(
            "interface {dev} hello-interval 1 enable-timestamps true\n\
             redistribute ip 10.20.99.0/24 allow\n\
             redistribute ip fd20:99::/64 allow\n\
             redistribute ip 10.77.0.0/24 allow\n\
             redistribute local deny\n\
             redistribute deny\n"
        ),
        &[],
    );
    let evidence = |what: &str, table: &str| {
        format!(
            "{what}\nbabeld's routes:\n{table}\nappliance: {}\nbabeld log:\n{}\n{}\n{}",
            stats(&vm),
            babeld.log_tail(),
            vm.evidence(),
            wg.evidence()
        )
    };
    let routes = || {
        let v4 = ns
            .run("ip", &["-4", "route", "show", "proto", "babel"])
            .unwrap_or_default();
        let v6 = ns
            .run("ip", &["-6", "route", "show", "proto", "babel"])
            .unwrap_or_default();
        format!("{v4}{v6}")
    };
    let deadline = Instant::now() + WAIT;
    let mut table;
    loop {
        table = routes();
        let s = stats(&vm);
        let babeld_has = table.contains("10.20.1.0/24") && table.contains("fd20:1::/64");
        let we_have = s.contains(" route=10.20.99.0/24@0:") && s.contains(" route=fd20:99::/64@0:");
        if babeld_has && we_have {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            evidence("no convergence", &table)
        );
        thread::sleep(Duration::from_millis(500));
    }
    // babeld installed the appliance's prefixes through the tunnel, IPv4 as v4-via-v6.
    for line in table
        .lines()
        .filter(|l| l.starts_with("10.20.1.0/24") || l.starts_with("fd20:1::/64"))
    {
        assert!(
            line.contains("via") && line.contains(&dev),
            "{}",
            evidence(line, &table)
        );
    }
    let s = stats(&vm);
    assert!(
        !s.contains("route=10.77.0.0/24"),
        "{}",
        evidence("out-of-plan route", &table)
    );
    assert!(
        !s.contains("out_of_plan=0 "),
        "{}",
        evidence("out-of-plan not counted", &table)
    );
    // The appliance routes to babeld's prefix: its answers to 10.20.99.1 and fd20:99::1
    // (not in the peer's AllowedIPs) go back through the tunnel by the Babel route.
    for (src, dst) in [("10.20.99.1", APPLIANCE_V4), ("fd20:99::1", APPLIANCE_V6)] {
        let out = ns.run("ping", &["-n", "-c", "3", "-W", "2", "-I", src, dst]);
        assert!(
            out.as_ref().is_ok_and(|o| o.contains(" 0% packet loss")),
            "{}",
            evidence(&format!("ping -I {src} {dst}: {out:?}"), &table)
        );
    }
}
