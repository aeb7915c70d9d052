//! The flashable image (`vdcnet iso`): one hybrid ISO boots through GRUB under SeaBIOS and
//! under OVMF, as a CD and as a USB stick or disk, to ready and answers a ping from a
//! namespace; a node file replaced in the image's config partition with mtools takes
//! effect at the next boot; without one GRUB falls back to the image's built-in copy.
//!
//! One ISO is built per run and shared; each boot gets its own copy-on-write view of it
//! (`snapshot=on`) or its own copy when the test edits it. The boots of a test run
//! concurrently. OVMF under TCG takes tens of seconds: waits are generous.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use vdcnet_qemu::iso::{self, Iso, IsoOptions};
use vdcnet_qemu::{run_command, Firmware, Medium, Nic, Vm, READY};
use vdcnet_tests::{ok, require_root, TIMEOUT};

/// Bound on a boot through firmware and GRUB (OVMF under TCG, several VMs at once on a
/// shared machine).
const BOOT_TIMEOUT: Duration = Duration::from_secs(600);

/// The node file built into the image (the tap's namespace holds 10.0.2.2 and fec0::2).
const NODE: &str = "\
[Link]
Address = 10.0.2.15/24, fec0::15/64
Gateway = 10.0.2.2
";

/// What a farmer writes into the config partition afterwards: another address.
const EDITED: &str = "\
# changed after the image was built
[Link]
Address = 10.0.2.16/24
Gateway = 10.0.2.2
";

/// The ISO every test boots (or copies), built once per run.
fn shared_iso() -> &'static Iso {
    static ISO: OnceLock<Iso> = OnceLock::new();
    ISO.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vdcnet-test.iso");
        let opts = IsoOptions {
            image: ok(vdcnet_qemu::image()),
            config: NODE.to_string(),
            // The command line GRUB passes: the appliance pings the namespace's end too.
            append: "vdcnet.ping=10.0.2.2".to_string(),
            timeout_secs: 0,
        };
        ok(iso::build(&opts, &out))
    })
}

/// A private copy of the shared ISO, for a test that changes it.
fn copy_of_iso(name: &str) -> PathBuf {
    let copy = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("vdcnet-test-{name}.iso"));
    std::fs::copy(&shared_iso().path, &copy).expect("copying the test ISO");
    copy
}

/// Starts a VM that boots `medium` under `firmware`, its NIC a tap into a namespace.
fn boot(name: &str, firmware: Firmware, medium: Medium) -> Vm {
    let mem = match firmware {
        Firmware::SeaBios => 64,
        Firmware::Ovmf => 256,
    };
    ok(Vm::builder(name)
        .image(&ok(vdcnet_qemu::image()))
        .firmware(firmware)
        .memory_mib(mem)
        .boot_from(medium)
        .nic(Nic::tap())
        .spawn())
}

/// Waits for ready, checks that GRUB (multiboot2) booted the appliance with the node file
/// from `node_from` (a substring of GRUB's `vdcnet: grub: node file ...` line) and the
/// image's command line, and that it answers a ping at `addr`.
fn assert_boots_and_answers(vm: &Vm, node_from: &str, addr: &str) {
    ok(vm.wait_for_line(READY, BOOT_TIMEOUT));
    let grub = ok(vm.wait_for_line("vdcnet: grub: node file ", TIMEOUT));
    assert!(
        grub.contains(node_from),
        "GRUB did not take the node file from `{node_from}`: {grub}\n{}",
        vm.evidence()
    );
    assert!(
        !vm.console().matching("booting (Multiboot2").is_empty(),
        "the banner names the multiboot2 loader\n{}",
        vm.evidence()
    );
    assert!(
        vm.console()
            .matching("link0 ")
            .iter()
            .any(|l| l.contains(&format!(" {addr}/24"))),
        "link0 is not on {addr}\n{}",
        vm.evidence()
    );
    let ns = vm.netns(0).expect("NIC 0 is a tap");
    let ip: IpAddr = addr.parse().unwrap();
    let out = ok(ns.ping(ip, TIMEOUT).map_err(|e| vm.fail(e)));
    assert!(out.contains("1 received"), "{out}\n{}", vm.evidence());
    // `vdcnet.ping=10.0.2.2` from grub.cfg's multiboot2 line: the appliance's own pings
    // of the namespace get replies.
    let reply = ok(vm.wait_for_line("vdcnet: ping 10.0.2.2 seq=", TIMEOUT));
    assert!(reply.ends_with("reply"), "{reply}\n{}", vm.evidence());
}

#[test]
fn boots_under_seabios_and_ovmf_as_cd_and_as_usb_or_disk_and_answers_ping() {
    require_root("boots_under_seabios_and_ovmf_as_cd_and_as_usb_or_disk_and_answers_ping");
    let iso = shared_iso();
    let path = &iso.path;
    // All four at once; each waits its turn below.
    let vms = [
        boot("bios-cd", Firmware::SeaBios, Medium::Cdrom(path.clone())),
        boot("bios-disk", Firmware::SeaBios, Medium::Disk(path.clone())),
        boot("uefi-cd", Firmware::Ovmf, Medium::Cdrom(path.clone())),
        boot("uefi-usb", Firmware::Ovmf, Medium::Usb(path.clone())),
    ];
    for vm in &vms {
        // The node file comes from the config partition (a GRUB device with a partition
        // number), not from /boot in the ISO file system.
        assert_boots_and_answers(vm, ",gpt4)/node.conf", "10.0.2.15");
    }
}

#[test]
fn a_node_file_replaced_with_mtools_takes_effect_at_the_next_boot() {
    require_root("a_node_file_replaced_with_mtools_takes_effect_at_the_next_boot");
    let copy = copy_of_iso("edited");
    // Exactly what the README tells a farmer to run on an image file.
    let (offset, _) = ok(iso::config_partition(&copy));
    let new = Path::new(env!("CARGO_TARGET_TMPDIR")).join("edited-node.conf");
    std::fs::write(&new, EDITED).unwrap();
    ok(run_command(
        Command::new("mcopy")
            .arg("-o")
            .arg("-i")
            .arg(format!("{}@@{offset}", copy.display()))
            .arg(&new)
            .arg("::node.conf"),
    ));
    assert_eq!(ok(iso::read_node_file(&copy)), EDITED);
    // The boots the other test does not make: SeaBIOS from a USB stick, OVMF from a disk.
    let vms = [
        boot(
            "edited-bios-usb",
            Firmware::SeaBios,
            Medium::Usb(copy.clone()),
        ),
        boot(
            "edited-uefi-disk",
            Firmware::Ovmf,
            Medium::Disk(copy.clone()),
        ),
    ];
    for vm in &vms {
        assert_boots_and_answers(vm, ",gpt4)/node.conf", "10.0.2.16");
        assert!(
            vm.console().matching("10.0.2.15").is_empty(),
            "the built-in node file's address shows up\n{}",
            vm.evidence()
        );
    }
}

#[test]
fn without_a_node_file_in_the_partition_grub_boots_the_built_in_one() {
    require_root("without_a_node_file_in_the_partition_grub_boots_the_built_in_one");
    let copy = copy_of_iso("no-node-file");
    let (offset, _) = ok(iso::config_partition(&copy));
    ok(run_command(
        Command::new("mdel")
            .arg("-i")
            .arg(format!("{}@@{offset}", copy.display()))
            .arg("::node.conf"),
    ));
    assert!(iso::read_node_file(&copy).is_err(), "node.conf is gone");
    let vm = boot("fallback", Firmware::SeaBios, Medium::Disk(copy));
    assert_boots_and_answers(&vm, "node file /boot/node.conf", "10.0.2.15");
}

#[test]
fn replacing_the_node_file_checks_it_and_keeps_the_old_one_on_errors() {
    let copy = copy_of_iso("update");
    let err = match iso::write_node_file(&copy, "[Link]\nAddress = 10.0.2.16/33\nColour = blue\n") {
        Ok(()) => panic!("a node file with errors was written"),
        Err(e) => e,
    };
    assert!(
        err.message().contains("line 2:") && err.message().contains("line 3:"),
        "every error with its line: {}",
        err.message()
    );
    assert_eq!(
        ok(iso::read_node_file(&copy)),
        NODE,
        "the old node file stays"
    );
    ok(iso::write_node_file(&copy, EDITED));
    assert_eq!(ok(iso::read_node_file(&copy)), EDITED);
    // The built-in copy in the ISO file system is untouched: the image still carries
    // the node file it was built with as its fallback.
    let builtin = Path::new(env!("CARGO_TARGET_TMPDIR")).join("builtin-node.conf");
    let _ = std::fs::remove_file(&builtin);
    ok(run_command(
        Command::new("xorriso")
            .args(["-osirrox", "on", "-indev"])
            .arg(&copy)
            .args(["-extract", "/boot/node.conf"])
            .arg(&builtin),
    ));
    assert_eq!(std::fs::read_to_string(&builtin).unwrap(), NODE);
}
