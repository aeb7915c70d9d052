//! `vdcnet lab FILE`: boot a topology (see `vdcnet_qemu::lab`), print what is where, and
//! keep it running until Ctrl-C; then stop every VM and remove the namespaces.

use super::{CmdResult, UsageError};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use vdcnet_qemu::lab::{Lab, Topology, WORKLOAD_IF};
use vdcnet_qemu::{build_image, BuildOutput};

pub fn main(args: &[String]) -> CmdResult {
    let file = match args {
        [file] if !file.starts_with('-') => PathBuf::from(file),
        [] => return Err(UsageError("lab needs a topology FILE".into()).into()),
        _ => return Err(UsageError("lab takes exactly one topology FILE".into()).into()),
    };
    let topology = Topology::load(&file)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))?;
    }
    // Build first, with cargo's output showing, so a slow build is not a silent wait.
    build_image(BuildOutput::Show)?;
    eprintln!(
        "vdcnet lab: booting {} nodes from {}",
        topology.plan.nodes,
        file.display()
    );
    let lab = Lab::start(&topology)?;
    for line in lab.describe() {
        println!("{line}");
    }
    for i in 0..lab.len() {
        for nic in lab.vm(i).describe_nics() {
            println!("  {}: {nic}", lab.nodes()[i].name);
        }
    }
    if let Some(path) = lab.capture_path() {
        println!("underlay capture: {}", path.display());
    }
    if let Some(to) = lab.workload_v4(1) {
        println!(
            "try: ip netns exec {} ping {to}   (node1's workload to node2's, {WORKLOAD_IF})",
            lab.workload(0).name()
        );
    }
    println!("Ctrl-C stops the lab");
    let ended = loop {
        if stop.load(Ordering::SeqCst) {
            break None;
        }
        if let Some(i) = (0..lab.len()).find(|&i| lab.vm(i).exit_status().is_some()) {
            break Some(i);
        }
        thread::sleep(Duration::from_millis(100));
    };
    match ended {
        None => {
            drop(lab);
            eprintln!("\nvdcnet lab: stopped, namespaces removed");
            Ok(ExitCode::from(130))
        }
        Some(i) => {
            eprintln!(
                "vdcnet lab: {} exited\n{}",
                lab.nodes()[i].name,
                lab.vm(i).evidence()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}
