//! Where the image gets its randomness: QEMU's default CPU model (`qemu64`, neither RDRAND
//! nor RDSEED) with a virtio-rng device over PCI (pc, q35) and virtio-mmio (microvm) runs a
//! WireGuard config and handshakes with a real wireguard-go; `-cpu max` plus virtio-rng
//! mixes both; a virtio-rng device that never answers costs a bounded wait and is skipped;
//! and with no source at all a WireGuard config is refused (status 33) by a message naming
//! every way to get one.

// The WireGuard interop helpers; this file uses only part of them.
#[allow(dead_code, unused_imports)]
mod wg;

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::Command;
use vdcnet_qemu::{run_command, Machine, Nic, TempDir, Vm, VmBuilder, APPLIANCE_FAILED, READY};
use vdcnet_tests::{assert_echoes, echo_addr, ok, require_root, TIMEOUT};
use wg::{ip, ApplianceConf, Keys, Underlay, WgGo, WgSpec, APPLIANCE_V4, APPLIANCE_V6};

/// QEMU's own default x86_64 CPU model: no RDRAND, no RDSEED.
const NO_RNG_CPU: &str = "qemu64";
/// The console line naming the sources the image mixes.
const ENTROPY_LINE: &str = "vdcnet: entropy: ";
/// Every way to get an entropy source the fatal message must name.
const WAYS: [&str; 5] = [
    "-cpu max",
    "-cpu host",
    "-device virtio-rng-pci",
    "-device virtio-rng-device",
    "a CPU with RDRAND",
];

/// Boots `builder` (a WireGuard config on underlay `net`, its NIC 0 a tap in a namespace),
/// waits for ready, starts wireguard-go there (knowing the appliance's endpoint, so it
/// initiates), and pings the appliance's overlay addresses through the tunnel. Returns the
/// VM and its entropy line.
fn boots_and_handshakes(builder: VmBuilder, net: Underlay) -> (Vm, String) {
    require_root("entropy handshake tests");
    let keys = ok(Keys::generate());
    let peer_keys = ok(Keys::generate());
    let config = ApplianceConf {
        underlay: net,
        keys: &keys,
        peer_public: &peer_keys.public,
        endpoint: false,
    }
    .text();
    let vm = ok(builder
        .config(&config)
        .nic(Nic::tap_with(&[&net.peer_cidr()]))
        .spawn());
    ok(vm.wait_for_line(READY, TIMEOUT));
    let line = ok(vm.wait_for_line(ENTROPY_LINE, TIMEOUT));
    let ns = vm.netns(0).expect("NIC 0 is a tap");
    let spec = WgSpec {
        keys: peer_keys,
        appliance_public: keys.public.clone(),
        endpoint: Some(net.appliance_endpoint()),
    };
    let peer = ok(WgGo::start(ns, spec).map_err(|e| vm.fail(e)));
    for addr in [APPLIANCE_V4, APPLIANCE_V6] {
        let out = match ns.ping(ip(addr), TIMEOUT) {
            Ok(o) => o,
            Err(e) => panic!("{}\n{}", vm.fail(e), peer.evidence()),
        };
        assert!(out.contains("1 received"), "{out}\n{}", peer.evidence());
    }
    let dump = ok(peer.peer_dump());
    assert!(
        dump.latest_handshake > 0 && dump.rx > 0,
        "wireguard-go completed a handshake with the appliance: {dump:?}\n{}",
        peer.evidence()
    );
    (vm, line)
}

#[test]
fn default_cpu_with_virtio_rng_pci_runs_wireguard_and_handshakes_with_wireguard_go() {
    let builder = Vm::builder("rng-pci").cpu(NO_RNG_CPU).virtio_rng();
    let (vm, line) = boots_and_handshakes(builder, Underlay::new(61));
    assert!(
        line.contains("virtio-rng (PCI)") && !line.contains("RDRAND") && !line.contains("RDSEED"),
        "qemu64 has no RDRAND/RDSEED: the only source is the device: {line}\n{}",
        vm.evidence()
    );
}

#[test]
fn microvm_with_virtio_rng_device_runs_wireguard_and_handshakes_with_wireguard_go() {
    let builder = Vm::builder("rng-mmio")
        .machine(Machine::Microvm)
        .cpu(NO_RNG_CPU)
        .virtio_rng();
    let (vm, line) = boots_and_handshakes(builder, Underlay::new(62));
    assert!(
        line.contains("virtio-rng (virtio-mmio)") && !line.contains("RDRAND"),
        "{line}\n{}",
        vm.evidence()
    );
}

#[test]
fn q35_with_virtio_rng_pci_and_cpu_max_mixes_both_sources() {
    let builder = Vm::builder("rng-mixed")
        .machine(Machine::Q35)
        .cpu("max")
        .virtio_rng();
    let (vm, line) = boots_and_handshakes(builder, Underlay::new(63));
    assert!(
        line.contains("RDRAND") && line.contains("virtio-rng (PCI)") && line.contains(" + "),
        "`-cpu max` (RDRAND) and the device are both mixed: {line}\n{}",
        vm.evidence()
    );
}

/// A WireGuard config with fresh keys and no endpoint (nothing is sent before boot ends).
fn wireguard_config() -> String {
    let keys = ok(Keys::generate());
    let peer = ok(Keys::generate());
    ApplianceConf {
        underlay: Underlay::new(64),
        keys: &keys,
        peer_public: &peer.public,
        endpoint: false,
    }
    .text()
}

#[test]
fn no_entropy_source_refuses_a_wireguard_config_naming_every_way_to_get_one() {
    for machine in [Machine::Pc, Machine::Microvm] {
        let vm = ok(Vm::builder(&format!("no-rng-{machine}"))
            .machine(machine)
            .cpu(NO_RNG_CPU)
            .config(&wireguard_config())
            .nic(Nic::user())
            .spawn());
        let status = ok(vm.wait_exit(TIMEOUT));
        assert_eq!(status.code(), Some(APPLIANCE_FAILED), "{}", vm.evidence());
        let fatal = vm.console().matching("vdcnet: fatal: no entropy source");
        assert_eq!(fatal.len(), 1, "one fatal line\n{}", vm.evidence());
        for way in WAYS {
            assert!(fatal[0].contains(way), "names `{way}`: {}", fatal[0]);
        }
        assert!(vm.console().matching(READY).is_empty(), "{}", vm.evidence());
    }
}

#[test]
fn no_entropy_source_still_boots_a_config_without_wireguard_and_says_how_to_get_one() {
    let vm = ok(Vm::builder("no-rng-links")
        .cpu(NO_RNG_CPU)
        .nic(Nic::user())
        .spawn());
    ok(vm.wait_for_line(READY, TIMEOUT));
    let warn = vm.console().matching("vdcnet: warning: no entropy source");
    assert_eq!(warn.len(), 1, "{}", vm.evidence());
    for way in WAYS {
        assert!(warn[0].contains(way), "names `{way}`: {}", warn[0]);
    }
    assert!(vm.console().matching(ENTROPY_LINE).is_empty());
    assert_echoes(&vm, echo_addr(&vm), b"TCP seeded from timer jitter");
}

/// A FIFO nobody writes, held open for writing so QEMU's `rng-random` backend can open
/// it: a virtio-rng device backed by it never answers a request.
struct SilentFifo {
    _dir: TempDir,
    _writer: File,
    path: std::path::PathBuf,
}

impl SilentFifo {
    fn new() -> SilentFifo {
        let dir = ok(TempDir::new("silent-rng"));
        let path = dir.path().join("rng.fifo");
        ok(run_command(Command::new("mkfifo").arg(&path)));
        // Read-write: opening a FIFO so never blocks, and QEMU's reader then never sees
        // end of file.
        let writer = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("opening the FIFO");
        SilentFifo {
            _dir: dir,
            _writer: writer,
            path,
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

#[test]
fn a_virtio_rng_that_never_answers_is_skipped_after_a_bounded_wait() {
    let fifo = SilentFifo::new();
    // With RDRAND the WireGuard config still boots, on RDRAND alone.
    let vm = ok(Vm::builder("rng-silent-max")
        .cpu("max")
        .virtio_rng_from(fifo.path())
        .config(&wireguard_config())
        .nic(Nic::user())
        .spawn());
    ok(vm.wait_for_line(READY, TIMEOUT));
    let skipped = vm
        .console()
        .matching("vdcnet: warning: entropy source virtio-rng (PCI) skipped");
    assert_eq!(skipped.len(), 1, "{}", vm.evidence());
    assert!(skipped[0].contains("no answer in time"), "{}", skipped[0]);
    let line = ok(vm.wait_for_line(ENTROPY_LINE, TIMEOUT));
    assert!(
        line.contains("RDRAND") && !line.contains("virtio-rng"),
        "{line}"
    );
    drop(vm);

    // Without RDRAND it is as if there were no source: refused, not hung.
    let vm = ok(Vm::builder("rng-silent-qemu64")
        .cpu(NO_RNG_CPU)
        .virtio_rng_from(fifo.path())
        .config(&wireguard_config())
        .nic(Nic::user())
        .spawn());
    let status = ok(vm.wait_exit(TIMEOUT));
    assert_eq!(status.code(), Some(APPLIANCE_FAILED), "{}", vm.evidence());
    assert_eq!(
        vm.console()
            .matching("vdcnet: fatal: no entropy source")
            .len(),
        1,
        "{}",
        vm.evidence()
    );
}
