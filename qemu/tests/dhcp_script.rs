//! The lab's udhcpc script (`vdcnet_qemu::lab::write_dhcp_script`) run the way udhcpc
//! runs it, with udhcpc's variables, in a namespace of its own and without an appliance:
//! a visiting /32 lease with classless static routes, a home /24 lease with a router,
//! then deconfig. Needs root (a network namespace, a veth pair) and `ip`.

use std::collections::BTreeSet;
use vdcnet_qemu::lab::write_dhcp_script;
use vdcnet_qemu::{is_root, run_command, Netns, TempDir};

/// Runs `sh SCRIPT event` in `ns` with only `vars` (and PATH) set; its stdout.
fn event(ns: &Netns, script: &std::path::Path, name: &str, vars: &[(&str, &str)]) -> String {
    let mut cmd = ns.command("sh");
    cmd.arg(script).arg(name).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    cmd.env("interface", "eth0").envs(vars.iter().copied());
    let out = run_command(&mut cmd).unwrap_or_else(|e| panic!("{name}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip -4 route` in `ns`, one normalised line each.
fn routes(ns: &Netns) -> BTreeSet<String> {
    let out = ns.ip(&["-4", "route"]).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect()
}

fn set(lines: &[&str]) -> BTreeSet<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

fn addrs(ns: &Netns) -> String {
    let out = ns.ip(&["-4", "-o", "addr", "show", "dev", "eth0"]).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_lab_script_applies_a_slash32_lease_with_static_routes_and_cleans_up() {
    assert!(
        is_root(),
        "this test needs root (a network namespace); run it as root"
    );
    let dir = TempDir::new("dhcp-script").unwrap();
    let script = dir.path().join("udhcpc.sh");
    write_dhcp_script(&script).unwrap();
    let ns = Netns::create().unwrap();
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ])
    .unwrap();
    ns.ip(&["link", "set", "peer0", "up"]).unwrap();

    // udhcpc starts with deconfig: the interface comes up, nothing else yet.
    event(&ns, &script, "deconfig", &[]);
    assert!(addrs(&ns).is_empty());

    // A visiting lease as the appliance gives it: a /32, option 121 with the server on-link
    // and the default route via it (the default listed first: the script sorts them), and
    // option 3, which RFC 3442 says to ignore then.
    let out = event(
        &ns,
        &script,
        "bound",
        &[
            ("ip", "10.20.1.10"),
            ("mask", "32"),
            ("subnet", "255.255.255.255"),
            ("router", "10.20.9.9"),
            ("staticroutes", "0.0.0.0/0 10.20.2.1 10.20.2.1/32 0.0.0.0"),
            ("mtu", "1420"),
            ("lease", "3600"),
        ],
    );
    assert_eq!(
        out.trim(),
        "vdcnet-lab: bound 10.20.1.10/32 router 10.20.9.9 (ignored) static routes \
         0.0.0.0/0 10.20.2.1 10.20.2.1/32 0.0.0.0 mtu 1420 lease 3600s"
    );
    assert!(addrs(&ns).contains("inet 10.20.1.10/32 "), "{}", addrs(&ns));
    assert_eq!(
        routes(&ns),
        set(&[
            "default via 10.20.2.1 dev eth0",
            "10.20.2.1 dev eth0 scope link"
        ])
    );
    let link = ns.ip(&["link", "show", "dev", "eth0"]).unwrap();
    assert!(String::from_utf8_lossy(&link.stdout).contains(" mtu 1420 "));
    let get = ns.ip(&["-4", "route", "get", "10.30.0.1"]).unwrap();
    let get = String::from_utf8_lossy(&get.stdout).into_owned();
    assert!(
        get.contains("via 10.20.2.1 dev eth0 src 10.20.1.10"),
        "{get}"
    );

    // The workload moves home: a /24 and a router, no option 121. The old on-link route
    // and default are gone, the router's default is back.
    let out = event(
        &ns,
        &script,
        "renew",
        &[
            ("ip", "10.20.2.10"),
            ("subnet", "255.255.255.0"),
            ("router", "10.20.2.1"),
        ],
    );
    assert!(
        out.contains("bound 10.20.2.10/24 router 10.20.2.1 static routes none mtu default"),
        "{out}"
    );
    assert_eq!(
        routes(&ns),
        set(&[
            "default via 10.20.2.1 dev eth0",
            "10.20.2.0/24 dev eth0 proto kernel scope link src 10.20.2.10"
        ])
    );

    // Static routes with a gateway other than the server, then deconfig removes them all.
    event(
        &ns,
        &script,
        "bound",
        &[
            ("ip", "10.20.1.10"),
            ("mask", "32"),
            (
                "staticroutes",
                "10.20.2.1/32 0.0.0.0 10.99.0.0/16 10.20.2.1 0.0.0.0/0 10.20.2.1",
            ),
        ],
    );
    assert_eq!(
        routes(&ns),
        set(&[
            "default via 10.20.2.1 dev eth0",
            "10.20.2.1 dev eth0 scope link",
            "10.99.0.0/16 via 10.20.2.1 dev eth0"
        ])
    );
    event(&ns, &script, "deconfig", &[]);
    assert!(routes(&ns).is_empty(), "{:?}", routes(&ns));
    assert!(addrs(&ns).is_empty());
}
