//! Shared helpers for the integration tests: each test boots its own VMs through
//! `vdcnet-qemu`, so tests run in parallel without sharing ports, taps or namespaces.

use std::net::SocketAddr;
use std::time::Duration;
use vdcnet_qemu::{tcp_echo_retry, Vm, ECHO_PORT};

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
