//! `vdcnet test`: make sure what the tests need is installed, then run the whole suite
//! (`cargo test --workspace --release --no-fail-fast`, extra arguments passed on).

use super::CmdResult;
use std::process::{Command, ExitCode, Stdio};
use vdcnet_qemu::{is_root, workspace_root, IMAGE_TARGET};

/// Debian packages the tests use, with a command each provides, or an absolute path for
/// packages without one (checked instead on non-Debian hosts).
const PACKAGES: [(&str, &str); 25] = [
    ("qemu-system-x86", "qemu-system-x86_64"),
    ("iputils-ping", "ping"),
    ("iproute2", "ip"),
    ("wireguard-go", "wireguard-go"),
    ("wireguard-tools", "wg"),
    ("iperf3", "iperf3"),
    ("tcpdump", "tcpdump"),
    ("tshark", "tshark"),
    // `vdcnet lab` and its tests: `busybox udhcpc` configures workload namespaces by DHCP.
    ("busybox", "busybox"),
    // tests/lab.rs writes raw malformed frames from a workload namespace (AF_PACKET).
    ("python3", "python3"),
    // tests/babel.rs: the routing core against a real Babel router.
    ("babeld", "babeld"),
    // tests/iso.rs: `vdcnet iso` makes a hybrid image with GRUB for BIOS and UEFI
    // (grub-mkrescue, xorriso, mtools) and boots it under OVMF as well as SeaBIOS.
    ("grub-common", "grub-mkrescue"),
    ("grub-pc-bin", "/usr/lib/grub/i386-pc"),
    ("grub-efi-amd64-bin", "/usr/lib/grub/x86_64-efi"),
    ("xorriso", "xorriso"),
    ("mtools", "mcopy"),
    ("ovmf", "/usr/share/ovmf/OVMF.fd"),
    // tests/metrics.rs: a real Prometheus scrapes the appliance (promtool checks a body),
    // curl fetches it, socat plugs an underlay host's tap into the lab's switch.
    ("prometheus", "prometheus"),
    ("curl", "curl"),
    ("socat", "socat"),
    // tests/gateway.rs: real backends (nginx with TLS and PROXY v2) behind the gateway,
    // a certificate made with openssl and checked by curl and `openssl s_client`.
    ("nginx-light", "nginx"),
    ("openssl", "openssl"),
    // tests/dns.rs: the DNS core asked by dig, by ldns's drill, and through unbound;
    // tests/redundancy.rs: unbound delegating to the gateways, dig.
    ("bind9-dnsutils", "dig"),
    ("ldnsutils", "drill"),
    ("unbound", "unbound"),
];

fn quiet(cmd: &mut Command) -> Option<std::process::Output> {
    cmd.stdin(Stdio::null()).output().ok()
}

fn dpkg_installed(package: &str) -> bool {
    quiet(Command::new("dpkg-query").args(["-W", "-f=${Status}", package])).is_some_and(|o| {
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("ok installed")
    })
}

fn on_path(command: &str) -> bool {
    if command.starts_with('/') {
        return std::path::Path::new(command).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|d| std::path::Path::new(d).join(command).is_file())
}

fn status(cmd: &mut Command) -> std::io::Result<std::process::ExitStatus> {
    eprintln!("vdcnet test: {cmd:?}");
    cmd.stdin(Stdio::null()).status()
}

/// Installs or names the missing system packages; `Err` stops the run.
fn system_packages() -> Result<(), String> {
    let debian =
        quiet(Command::new("dpkg-query").arg("--version")).is_some_and(|o| o.status.success());
    if !debian {
        let missing: Vec<&str> = PACKAGES
            .iter()
            .filter(|(_, cmd)| !on_path(cmd))
            .map(|(_, cmd)| *cmd)
            .collect();
        return if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "not a Debian/Ubuntu host and these commands are missing: {}",
                missing.join(" ")
            ))
        };
    }
    let missing: Vec<&str> = PACKAGES
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        return Err(format!(
            "missing packages: {}\ninstall them as root: apt-get install --no-install-recommends {}",
            missing.join(" "),
            missing.join(" ")
        ));
    }
    eprintln!("vdcnet test: installing {}", missing.join(" "));
    let update = status(Command::new("apt-get").args(["update", "-q"]))
        .map_err(|e| format!("apt-get update: {e}"))?;
    if !update.success() {
        return Err(format!("apt-get update failed ({update})"));
    }
    let install = status(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .map_err(|e| format!("apt-get install: {e}"))?;
    if !install.success() {
        return Err(format!("apt-get install failed ({install})"));
    }
    Ok(())
}

/// Adds the image's target with rustup when it is missing.
fn rust_target() -> Result<(), String> {
    let Some(list) = quiet(Command::new("rustup").args(["target", "list", "--installed"])) else {
        eprintln!("vdcnet test: no rustup; assuming the toolchain has {IMAGE_TARGET}");
        return Ok(());
    };
    if String::from_utf8_lossy(&list.stdout)
        .lines()
        .any(|l| l.trim() == IMAGE_TARGET)
    {
        return Ok(());
    }
    let added = status(Command::new("rustup").args(["target", "add", IMAGE_TARGET]))
        .map_err(|e| format!("rustup: {e}"))?;
    if added.success() {
        Ok(())
    } else {
        Err(format!("rustup target add {IMAGE_TARGET} failed ({added})"))
    }
}

pub fn main(args: &[String]) -> CmdResult {
    if let Err(why) = system_packages().and_then(|()| rust_target()) {
        eprintln!("vdcnet test: {why}");
        return Ok(ExitCode::FAILURE);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let run = status(
        Command::new(cargo)
            .current_dir(workspace_root())
            // Every test binary runs even after one fails: CI shows all failures at once.
            .args(["test", "--workspace", "--release", "--no-fail-fast"])
            .args(args),
    )?;
    Ok(match run.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
