//! `vdcnet run`: boot one appliance in the foreground. The console goes to stdout as it
//! comes, the decoded defmt log to stderr. Ctrl-C stops the VM and removes its namespace.

use super::{Args, CmdResult, UsageError};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use vdcnet_qemu::{build_image, BuildOutput, Echo, Machine, Nic, Vm};

pub fn main(args: &[String]) -> CmdResult {
    let mut config: Option<PathBuf> = None;
    let mut machine = Machine::Pc;
    let mut mem = 64u32;
    let mut nics = Vec::new();
    let mut append = String::new();
    let mut cpu = vdcnet_qemu::DEFAULT_CPU.to_string();
    let mut virtio_rng = false;
    let mut a = Args::new(args);
    while let Some(flag) = a.next_flag() {
        match flag {
            "--config" => config = Some(PathBuf::from(a.value(flag)?)),
            "--machine" => machine = a.parsed(flag)?,
            "--mem" => mem = a.parsed(flag)?,
            "--nic" => nics.push(match a.value(flag)? {
                "user" => Nic::user(),
                "tap" => Nic::tap(),
                other => {
                    return Err(UsageError(format!("--nic {other}: expected user or tap")).into())
                }
            }),
            "--append" => {
                append.push(' ');
                append.push_str(a.value(flag)?);
            }
            "--cpu" => cpu = a.value(flag)?.to_string(),
            "--virtio-rng" => virtio_rng = true,
            other => return Err(UsageError(format!("unknown option `{other}`")).into()),
        }
    }
    if nics.is_empty() {
        nics.push(Nic::user());
    }
    if let Some(c) = &config {
        if !c.is_file() {
            return Err(format!("--config {}: no such file", c.display()).into());
        }
    }

    let image = build_image(BuildOutput::Show)?;
    let mut builder = Vm::builder("vdcnet")
        .image(&image)
        .machine(machine)
        .memory_mib(mem)
        .append(&append)
        .cpu(&cpu)
        .echo(Echo::Terminal);
    if virtio_rng {
        builder = builder.virtio_rng();
    }
    if let Some(c) = &config {
        builder = builder.config_file(c);
    }
    for nic in nics {
        builder = builder.nic(nic);
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))?;
    }
    let vm = builder.spawn()?;
    eprintln!(
        "vdcnet: QEMU pid {} ({machine}, {mem} MiB); Ctrl-C stops it",
        vm.pid()
    );
    for nic in vm.describe_nics() {
        eprintln!("vdcnet: {nic}");
    }
    for ns in (0..vm.nic_count()).filter_map(|i| vm.netns(i)) {
        eprintln!(
            "vdcnet: try `ip netns exec {} ping 10.0.2.15` (or ping -6 fec0::15)",
            ns.name()
        );
    }
    if let Some(fwd) = vm.forwarded(vdcnet_qemu::ECHO_PORT) {
        eprintln!("vdcnet: TCP echo: `nc {} {}`", fwd.ip(), fwd.port());
    }

    let status = loop {
        if let Some(status) = vm.exit_status() {
            break Some(status);
        }
        if stop.load(Ordering::SeqCst) {
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    match status {
        None => {
            vm.kill();
            eprintln!("\nvdcnet: stopped");
            Ok(ExitCode::from(130))
        }
        Some(status) => {
            // Let the last console and log bytes through before reporting.
            let _ = vm.wait_exit(Duration::from_secs(2));
            let code = status.code().unwrap_or(1);
            if code == vdcnet_qemu::APPLIANCE_FAILED {
                eprintln!("vdcnet: the appliance failed (QEMU exit status {code})");
            } else {
                eprintln!("vdcnet: QEMU exited ({status})");
            }
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
    }
}
