//! Traffic: ping from a real Linux peer in a namespace, TCP echo through a host forward,
//! and two appliances on one shared wire.

use std::net::IpAddr;
use std::thread;
use vdcnet_qemu::{tcp_echo, Nic, Vm, Wire, READY};
use vdcnet_tests::{
    assert_echoes, echo_addr, ok, payload, require_root, DEFAULT_V4, DEFAULT_V6, TIMEOUT,
};

#[test]
fn namespace_pings_the_appliance_over_tap_v4_and_v6() {
    require_root("namespace_pings_the_appliance_over_tap_v4_and_v6");
    // Default config on the tap's NIC; the namespace holds 10.0.2.2/24 and fec0::2/64.
    let vm = ok(Vm::builder("tap").nic(Nic::tap()).spawn());
    ok(vm.wait_for_line(READY, TIMEOUT));
    let ns = vm.netns(0).expect("NIC 0 is a tap");
    for addr in [DEFAULT_V4, DEFAULT_V6] {
        let ip: IpAddr = addr.parse().unwrap();
        let out = ok(ns.ping(ip, TIMEOUT).map_err(|e| vm.fail(e)));
        assert!(out.contains("1 received"), "{out}");
    }
}

#[test]
fn tcp_echo_through_a_host_forward_returns_the_bytes() {
    let vm = ok(Vm::builder("echo").nic(Nic::user()).spawn());
    ok(vm.wait_for_line(READY, TIMEOUT));
    let addr = echo_addr(&vm);
    assert_echoes(&vm, addr, b"x");
    assert_echoes(&vm, addr, &payload("several segments ", 20_000));
}

#[test]
fn concurrent_tcp_echo_connections_each_get_their_own_bytes() {
    let vm = ok(Vm::builder("concurrent").nic(Nic::user()).spawn());
    ok(vm.wait_for_line(READY, TIMEOUT));
    let addr = echo_addr(&vm);
    // Warm up once, so every connection below meets a ready service.
    assert_echoes(&vm, addr, b"warm-up");
    let workers: Vec<_> = (0..6)
        .map(|i| {
            thread::spawn(move || {
                let sent = payload(&format!("connection {i}; "), 4_000 + i * 500);
                tcp_echo(addr, &sent, TIMEOUT).map(|back| back == sent)
            })
        })
        .collect();
    for (i, w) in workers.into_iter().enumerate() {
        match w.join().expect("worker thread") {
            Ok(true) => {}
            Ok(false) => panic!("connection {i} got other bytes back\n{}", vm.evidence()),
            Err(e) => panic!("connection {i}: {}", vm.fail(e)),
        }
    }
}

#[test]
fn two_appliances_on_one_wire_ping_each_other_v4_and_v6() {
    let wire = Wire::new("pair");
    let conf = |n: u8| format!("[Link]\nAddress = 10.9.0.{n}/24, fd09::{n}/64\n");
    let a = ok(Vm::builder("a")
        .config(&conf(1))
        .append("vdcnet.ping=10.9.0.2,fd09::2")
        .nic(Nic::wire(&wire))
        .spawn());
    let b = ok(Vm::builder("b")
        .config(&conf(2))
        .append("vdcnet.ping=10.9.0.1,fd09::1")
        .nic(Nic::wire(&wire))
        .spawn());
    ok(a.wait_for_line(READY, TIMEOUT));
    ok(b.wait_for_line(READY, TIMEOUT));
    for (vm, peer) in [
        (&a, "10.9.0.2"),
        (&a, "fd09::2"),
        (&b, "10.9.0.1"),
        (&b, "fd09::1"),
    ] {
        let line = ok(vm.wait_for_line(&format!("vdcnet: ping {peer} seq="), TIMEOUT));
        assert!(line.ends_with("reply"), "{line}");
    }
    // The frames really crossed the switch, both ways.
    let stats = wire.stats();
    assert!(stats.iter().all(|(_, s)| s.rx > 0 && s.tx > 0), "{stats:?}");
}
